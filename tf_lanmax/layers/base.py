"""Shared machinery of the faulty layers: the `fault_rate` variable, seed and faulty kernel."""

import math

import keras
from keras import ops

from tf_lanmax import faults, formats
from tf_lanmax._validation import check_int, check_one_of, check_positive, check_probability
from tf_lanmax.energy import DEFAULT_A
from tf_lanmax.faults.ecc import SECDED
from tf_lanmax.layers.chips import PERSISTENCE, ChipSeed, map_key

ECC_CODES = (None, "secded")

#: The Args text of the memory arguments, shared by every faulty layer's docstring.
MEMORY_ARGS_DOC = """\
        fault_persistence: `"transient"` (a fresh fault pattern at every read, the training
            model) or `"persistent"` (a fixed per-chip fault map: the same weak cells fail on
            every read; select the chip with `tl.layers.set_chip`). Defaults to `"transient"`.
        ecc: `None` or `"secded"` (Hamming SECDED over words of `ecc_word_bits` data bits; the
            check bits are stored, read at p and counted in `stored_bits`). Defaults to `None`.
        ecc_word_bits: data bits per ECC word, a positive multiple of the format's bits.
            Defaults to `64` (8 check bits).
        ecc_policy: a detected double error: `"zero"` the word's weights or `"keep"` the raw
            data. Defaults to `"zero"`.
        protected_msbs: most significant bits of each weight kept in robust cells (the sign bit
            of binary), 0 <= k < bits (k <= 1 for binary). Defaults to `0`.
        protected_rate: fault rate of the robust cells (never above p). Defaults to `None`, the
            reliable rate exp(-12.8).
        protected_bit_energy: read energy of one robust bit, in reliable bits. Defaults to `1.0`.
"""


class FaultyKernelMixin:
    """Adds stored-format weights read through a fault model to a Keras layer with a `kernel`.

    The layer keeps float latent weights (what the optimizer updates). At every forward pass the
    kernel is encoded to the stored codes of `weight_format`, a fresh fault pattern is drawn at
    rate `fault_rate` on every stored bit, and the faulty codes are decoded back. The gradient
    reaches the latent weights straight through:
    ``w_used = w + stop_gradient(w_faulty - w)``.

    `fault_rate` is a non-trainable scalar `keras.Variable` (float32, never autocast) that a
    callback can assign between batches without retracing the compiled step.
    """

    @staticmethod
    def memory_arguments():
        """The faulty layers' arguments that describe the memory (not the Keras layer)."""
        return (
            "weight_format",
            "fault_model",
            "fault_rate",
            "seed",
            "fault_persistence",
            "ecc",
            "ecc_word_bits",
            "ecc_policy",
            "protected_msbs",
            "protected_rate",
            "protected_bit_energy",
        )

    def _init_faults(
        self,
        weight_format,
        fault_model,
        fault_rate,
        seed,
        fault_persistence="transient",
        ecc=None,
        ecc_word_bits=64,
        ecc_policy="zero",
        protected_msbs=0,
        protected_rate=None,
        protected_bit_energy=1.0,
    ):
        self.weight_format = formats.get(weight_format)
        self.fault_model = faults.get(fault_model)
        self.initial_fault_rate = check_probability("fault_rate", fault_rate, context=self.name)
        if seed is not None:
            check_int("seed", seed, low=0, context=self.name)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.fault_persistence = check_one_of(
            "fault_persistence", fault_persistence, PERSISTENCE, context=self.name
        )
        # [map key, chip]: saved with the weights, so a reloaded model reads the same chip.
        self.chip_seed = ChipSeed(map_key(seed, self.name), name=f"{self.name}_chip")
        self._init_memory_protection(
            ecc, ecc_word_bits, ecc_policy, protected_msbs, protected_rate, protected_bit_energy
        )
        # Created eagerly (not in build) so `layer.fault_rate` exists before the layer is built.
        self.fault_rate = self.add_weight(
            name="fault_rate",
            shape=(),
            initializer=keras.initializers.Constant(self.initial_fault_rate),
            trainable=False,
            dtype="float32",
            autocast=False,
        )

    def _init_memory_protection(
        self, ecc, ecc_word_bits, ecc_policy, protected_msbs, protected_rate, protected_bit_energy
    ):
        bits = self.weight_format.bits
        if ecc not in ECC_CODES:
            # check_one_of sorts the allowed values, which fails on None next to a string.
            raise ValueError(
                f"`ecc` must be None or 'secded' (in {self.name}). Received: ecc={ecc!r}"
            )
        self.ecc = ecc
        self.ecc_word_bits = ecc_word_bits
        self.ecc_policy = ecc_policy
        self._ecc = None
        if ecc == "secded":
            if not self.fault_model.bitwise:
                raise ValueError(
                    f"`ecc='secded'` needs a fault model that acts bit by bit (in {self.name}): "
                    f"'{self.fault_model.name}' masks whole words itself. Allowed with ECC: "
                    "bit_flip, stuck_at_0, stuck_at_1, stuck_at_mix, none."
                )
            self._ecc = SECDED(ecc_word_bits, ecc_policy, bits=bits, context=self.name)
        else:
            check_int("ecc_word_bits", ecc_word_bits, low=1, context=self.name)
            check_one_of("ecc_policy", ecc_policy, ("zero", "keep"), context=self.name)
        # Binary stores only its sign bit, which may sit in a robust cell; fixed point keeps at
        # least one bit at p.
        highest = bits if bits == 1 else bits - 1
        self.protected_msbs = check_int(
            "protected_msbs", protected_msbs, low=0, high=highest, context=self.name
        )
        reliable = math.exp(-DEFAULT_A)
        self.protected_rate = protected_rate
        self._protected_rate = check_probability(
            "protected_rate",
            reliable if protected_rate is None else protected_rate,
            low_inclusive=True,
            context=self.name,
        )
        self.protected_bit_energy = check_positive(
            "protected_bit_energy", protected_bit_energy, context=self.name
        )

    def _default_kernel_constraint(self, kernel_constraint):
        if kernel_constraint is None:
            return self.weight_format.kernel_constraint()
        return kernel_constraint

    @property
    def stored_bits(self):
        """Bits the memory holds for this layer's kernel: weights x bits, plus ECC check bits."""
        return self._weight_count() * self.weight_format.bits + self.check_bits

    @property
    def check_bits(self):
        """ECC check bits stored for the kernel (0 without ECC)."""
        return 0 if self._ecc is None else self._ecc.stored_check_bits(self._weight_count())

    @property
    def protected_bits(self):
        """Bits held in robust cells (the `protected_msbs` of every weight)."""
        return self._weight_count() * self.protected_msbs

    @property
    def rated_bits(self):
        """Bits read at the layer's fault rate p (stored bits less the protected ones)."""
        return self.stored_bits - self.protected_bits

    def _weight_count(self):
        if not self.built:
            raise ValueError(f"Layer '{self.name}' must be built before its stored bits are known.")
        return int(ops.size(self.kernel))

    @property
    def chip(self):
        """The chip whose persistent fault map this layer reads (see `tl.layers.set_chip`)."""
        return self.chip_seed.chip

    def stored_kernel(self):
        """The clean stored kernel (what a reliable memory returns), as float."""
        return self.weight_format.quantize(ops.convert_to_tensor(self.kernel))

    def _bit_rates(self, rate):
        """The fault rate of each bit position: p, or the robust rate for the protected MSBs."""
        bits, k = self.weight_format.bits, self.protected_msbs
        if k == 0:
            return rate
        robust = ops.convert_to_tensor([i >= bits - k for i in range(bits)])
        rate = ops.cast(rate, "float32")
        # A robust cell never fails more often than the others: at p = 0 (faults off) no bit does.
        return ops.where(robust, ops.minimum(self._protected_rate, rate), rate)

    def read_stored(self, kernel):
        """The kernel as read from the faulty memory (no gradient path)."""
        seed = self.chip_seed if self.fault_persistence == "persistent" else self.seed_generator
        fmt, model = self.weight_format, self.fault_model
        if model.name == "none":
            return fmt.quantize(kernel)
        codes = fmt.encode(kernel)
        rate = ops.cast(self.fault_rate, "float32")
        if self._ecc is not None:
            codes, keep = self._ecc.read(codes, model, self._bit_rates(rate), rate, seed)
        else:
            codes, keep = model(codes, fmt.bits, self._bit_rates(rate), seed)
        values = fmt.decode(codes, kernel)
        return values if keep is None else values * keep

    def faulty_kernel(self, kernel):
        """The kernel as read from the faulty memory, with a straight-through gradient."""
        return formats.straight_through(kernel, ops.cast(self.read_stored(kernel), kernel.dtype))

    def kernel_moments(self):
        """Closed-form per-weight mean and variance of the faulty kernel (`fault_model.moments`).

        A persistent map drawn at random has the same moments over chips as transient faults.
        ECC and protected bits are not in the closed forms: those layers raise ValueError.
        """
        if self._ecc is not None or self.protected_msbs:
            raise ValueError(
                f"Layer '{self.name}': the closed-form fault moments do not model ECC or "
                "protected bits (ecc=None and protected_msbs=0 are needed); use Monte-Carlo."
            )
        return self.fault_model.moments(
            self.weight_format, ops.convert_to_tensor(self.kernel), self.fault_rate
        )

    def reseed(self, seed):
        """Restarts the fault draws from `seed` (reproducible Monte-Carlo draws)."""
        state = self.seed_generator.state
        state.assign(ops.convert_to_tensor([int(seed), 0], dtype=state.dtype))

    def _own_variables(self):
        own = [self.kernel] + ([self.bias] if self.use_bias else [])
        # The fault-draw state and the chip are saved too: a run resumed from a checkpoint draws
        # the faults the uninterrupted run would have drawn, on the same chip.
        return own + [self.fault_rate, self.seed_generator.state, self.chip_seed.state]

    # Dense and Conv save only kernel and bias through their own (quantisation-aware) store
    # layout; the faulty layers save p and the fault-draw state too, so a learned fault rate and
    # the draw position survive `.keras` round trips and checkpoints.
    def save_own_variables(self, store):
        if not self.built:
            return
        for i, variable in enumerate(self._own_variables()):
            store[str(i)] = variable

    def load_own_variables(self, store):
        if not self.built:
            return
        own = self._own_variables()
        # Files written before the draw state was saved hold kernel, bias and p only.
        if len(store.keys()) not in (len(own), len(own) - 2):
            raise ValueError(
                f"Layer '{self.name}' expected {len(own)} variables "
                f"{[v.name for v in own]} but the file holds {len(store.keys())}."
            )
        for i, variable in enumerate(own[: len(store.keys())]):
            variable.assign(store[str(i)])

    def enable_lora(self, *args, **kwargs):
        raise NotImplementedError(
            f"Layer '{self.name}': LoRA is not supported on faulty layers (the stored kernel is "
            "what the faulty memory holds)."
        )

    def quantize(self, *args, **kwargs):
        raise NotImplementedError(
            f"Layer '{self.name}': Keras quantization is not supported on faulty layers; choose "
            "the stored format with `weight_format` instead."
        )

    def _fault_config(self):
        return {
            # keras.layers.Dense.get_config drops it; a faulty layer keeps every argument.
            "activity_regularizer": keras.regularizers.serialize(self.activity_regularizer),
            "weight_format": formats.serialize(self.weight_format),
            "fault_model": faults.serialize(self.fault_model),
            "fault_rate": self.initial_fault_rate,
            "seed": self.seed,
            "fault_persistence": self.fault_persistence,
            "ecc": self.ecc,
            "ecc_word_bits": self.ecc_word_bits,
            "ecc_policy": self.ecc_policy,
            "protected_msbs": self.protected_msbs,
            "protected_rate": self.protected_rate,
            "protected_bit_energy": self.protected_bit_energy,
        }
