"""`FaultInjection`: any Keras layer whose stored parameters are read through a fault model.

Design. Keras 3 has no public hook on a variable read, but it has a public way to call a
layer with other values for its variables: `keras.StatelessScope(state_mapping)` (what
`Layer.stateless_call` and the JAX trainer use). `FaultInjection` wraps a built Keras layer
(`keras.layers.Wrapper`) and, at every call, reads each stored parameter of the wrapped layer
(and of its sublayers: the query/key/value/output `EinsumDense` of a `MultiHeadAttention`),
draws a fault pattern on its stored bits at rate p and calls the wrapped layer inside a
`StatelessScope` that maps each parameter to its faulty value. So the wrapped layer's own
`call` runs unchanged, Keras' quantized `int8` / `int4` calls included (the faults then hit
the stored integer codes), no Keras layer is rewritten, and the wrapper saves to `.keras`
(safe_mode=True) as any `Wrapper` does. The alternatives were worse: subclassing every Keras
layer (one class per layer type, and again for each quantized mode), or writing faulty values
into the variables and restoring them (not differentiable, not traceable on JAX).

What is read faulty: every float (float32 / float16 / bfloat16, as IEEE bit patterns) and
`int8` variable of the wrapped layer (and sublayers), except Keras' quantization metadata: the
scales and int4 zero points are reliable unless `fault_scales=True`, and float8 histories,
group indices and seed states are never stored parameters. A Keras float8 kernel (float32 in
the variable, cast at every call) is read as the 8-bit e4m3fn code Keras casts it to
(`tf_lanmax.formats.float8`): the faulty codes are decoded and multiplied by the scale the call
reads (faulty with `fault_scales=True`), a value Keras' own cast maps back to the same codes.
In training Keras' kernel amax history then sees the faulty reads; they are clipped to
``448 s``, so faults can keep the scale from shrinking but never make it grow. Trainable float
parameters get the straight-through gradient ``w + stop_gradient(w_faulty - w)`` written as in
`tf_lanmax.formats.straight_through`. Non-trainable parameters that the call itself updates
(BatchNorm's moving mean and variance) are read clean in training, where BatchNorm uses the
batch statistics and only updates them, and faulty in inference: faults never leak into the
stored statistics.
"""

import inspect
import math

import keras
from keras import ops
from keras.backend import standardize_dtype

from tf_lanmax import faults, formats
from tf_lanmax._validation import check_int, check_one_of, check_positive, check_probability
from tf_lanmax.energy import DEFAULT_A
from tf_lanmax.faults.stream_draws import draw_errors_together
from tf_lanmax.formats.float8 import Float8Word
from tf_lanmax.formats.stored import IEEE_LAYOUT, INTEGER_BITS, StoredWord
from tf_lanmax.layers.chips import PERSISTENCE, ChipSeed, map_key

#: Variable names that are Keras quantization metadata, never stored parameters.
_METADATA = ("amax_history", "inputs_scale", "outputs_grad_scale", "g_idx")
#: Variable names that are quantization scales (and int4 zero points): faulty only on request.
_SCALES = ("_scale", "_zero")
_FLOAT_FIELDS = ("sign", "exponent", "mantissa")
#: Parameters the layer's call updates in training (BatchNorm): read clean there.
_MOVING = ("moving_mean", "moving_variance")


def _short_name(variable):
    return variable.path.split("/")[-1]


def _codes_dtype(word):
    """The dtype of the codes a fresh fault draw acts on for `word`: a quantized layer's int8
    bytes as they are stored, every other word as its `int32` codes (`StoredWord.to_codes`)."""
    return "int8" if word.dtype == "int8" else "int32"


def parameter_kind(variable):
    """`"parameter"`, `"scale"` or `None` (not a stored parameter) for a layer variable."""
    name = _short_name(variable)
    if str(variable.dtype) not in IEEE_LAYOUT and str(variable.dtype) not in INTEGER_BITS:
        return None
    if any(name.endswith(m) for m in _METADATA):
        return None
    if any(name.endswith(s) for s in _SCALES) and name != "scale":
        return "scale"
    return "parameter"


@keras.saving.register_keras_serializable(package="tf_lanmax")
class FaultInjection(keras.layers.Wrapper):
    """A Keras layer whose stored parameters are read through a fault model at rate p.

    Made by `tl.inject_faults`; behaves as the wrapped layer, with its float and integer
    variables read with fresh faults at rate `fault_rate` on every stored bit at every call
    (`"transient"`) or through a fixed per-chip fault map (`"persistent"`). `fault_rate` is a
    non-trainable scalar variable, so `tl.LaNMax`, `tl.faults_disabled` and
    `tl.evaluate_under_faults` handle this layer as the faulty layers.

    Args:
        layer: the built Keras layer to wrap.
        fault_model: a bit-wise `tf_lanmax.faults` model (`"bit_flip"`, `"stuck_at_0"`,
            `"stuck_at_1"`, `"stuck_at_mix"`, `"none"`); `"bit_mask"` only on integer codes
            that are one value per word (int8 layers). Defaults to `"bit_flip"`.
        fault_rate: initial p in (0, 0.5]. Defaults to `1e-3`.
        seed: int seed of the fault draws, or None (random). Defaults to `None`.
        fault_persistence: `"transient"` or `"persistent"`. Defaults to `"transient"`.
        fault_scales: also read Keras' quantization scales (and int4 zero points) through the
            faults. Defaults to `False` (reliable scales).
        field_rates: for IEEE float parameters, a dict {field: rate} with field in sign,
            exponent, mantissa: that field's bits sit in robust cells read at
            ``min(rate, p)`` (counted as protected bits). Defaults to `None`.
        protected_msbs: most significant bits of every stored word kept in robust cells, as
            for the faulty layers (the sign bit first, then the exponent). Defaults to `0`.
        protected_rate: fault rate of the robust cells (never above p). Defaults to `None`,
            the reliable rate exp(-12.8).
        protected_bit_energy: read energy of one robust bit, in reliable bits. Defaults to
            `1.0`.
        **kwargs: `keras.layers.Wrapper` arguments (`name`, ...).

    Example:
    >>> dense = keras.layers.Dense(3)
    >>> _ = dense(keras.ops.ones((1, 4)))
    >>> faulty = FaultInjection(dense, fault_rate=1e-2, seed=0)
    >>> y = faulty(keras.ops.ones((2, 4)))
    >>> faulty.stored_bits  # (4 x 3 kernel + 3 bias) float32 values
    480
    """

    def __init__(
        self,
        layer,
        fault_model="bit_flip",
        fault_rate=1e-3,
        seed=None,
        fault_persistence="transient",
        fault_scales=False,
        field_rates=None,
        protected_msbs=0,
        protected_rate=None,
        protected_bit_energy=1.0,
        **kwargs,
    ):
        kwargs.setdefault("name", layer.name)
        super().__init__(layer, **kwargs)
        self.fault_model = faults.get(fault_model)
        self.initial_fault_rate = check_probability("fault_rate", fault_rate, context=self.name)
        if seed is not None:
            check_int("seed", seed, low=0, context=self.name)
        self.seed = seed
        self.fault_persistence = check_one_of(
            "fault_persistence", fault_persistence, PERSISTENCE, context=self.name
        )
        if not isinstance(fault_scales, bool):
            raise TypeError(f"`fault_scales` must be True or False. Received: {fault_scales!r}")
        self.fault_scales = fault_scales
        self.field_rates = self._check_field_rates(field_rates)
        self.protected_msbs = check_int("protected_msbs", protected_msbs, low=0, context=self.name)
        self.protected_rate = protected_rate
        self._protected_rate = check_probability(
            "protected_rate",
            math.exp(-DEFAULT_A) if protected_rate is None else protected_rate,
            low_inclusive=True,
            context=self.name,
        )
        self.protected_bit_energy = check_positive(
            "protected_bit_energy", protected_bit_energy, context=self.name
        )
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.chip_seed = ChipSeed(map_key(seed, self.name), name=f"{self.name}_chip")
        self.fault_rate = self.add_weight(
            name="fault_rate",
            shape=(),
            initializer=keras.initializers.Constant(self.initial_fault_rate),
            trainable=False,
            dtype="float32",
            autocast=False,
        )
        self.supports_masking = layer.supports_masking
        self._takes_training = "training" in inspect.signature(layer.call).parameters
        if layer.built:
            self._check_stored()
            self.built = True

    def _check_field_rates(self, field_rates):
        if field_rates is None:
            return None
        if not isinstance(field_rates, dict) or not set(field_rates) <= set(_FLOAT_FIELDS):
            raise ValueError(
                f"`field_rates` must be a dict with keys in {list(_FLOAT_FIELDS)} (in "
                f"{self.name}). Received: field_rates={field_rates!r}"
            )
        return {
            k: check_probability(f"field_rates[{k!r}]", v, low_inclusive=True, context=self.name)
            for k, v in field_rates.items()
        }

    # -- the stored parameters ----------------------------------------------------------------
    def faulty_variables(self):
        """The wrapped layer's variables read through the faults, in `layer.weights` order."""
        wanted = ("parameter", "scale") if self.fault_scales else ("parameter",)
        return [v for v in self.layer.weights if parameter_kind(v) in wanted]

    def metadata_variables(self):
        """The wrapped layer's variables that are not stored parameters (Keras' quantization
        metadata: float8 scales of inputs and gradients, amax histories; seed states)."""
        return [v for v in self.layer.weights if parameter_kind(v) is None]

    def stored_word(self, variable):
        """The stored word of a faulty variable: a `StoredWord` of its dtype, or the
        `Float8Word` of a Keras float8 kernel (with its scale's current value)."""
        scale = self._float8_scales().get(id(variable))
        if scale is not None:
            return Float8Word(scale.value, compute_dtype=self.layer.compute_dtype)
        return StoredWord(str(variable.dtype))

    def _float8_scales(self):
        """id(kernel) -> its scale variable, for the kernels Keras casts to float8 at each call
        (those with `<path>_scale` and `<path>_amax_history` siblings: Keras' float8 mode)."""
        paths = {v.path: v for v in self.layer.weights}
        return {
            id(v): paths[f"{v.path}_scale"]
            for v in self.layer.weights
            if f"{v.path}_amax_history" in paths and f"{v.path}_scale" in paths
        }

    def _check_stored(self):
        variables = self.faulty_variables()
        if not variables:
            raise ValueError(f"Layer '{self.name}' has no stored parameter to read faulty.")
        for variable in variables:
            word = self.stored_word(variable)
            if self.protected_msbs >= word.bits:
                raise ValueError(
                    f"`protected_msbs` must be below the {word.bits} bits of "
                    f"'{variable.path}' ({word.dtype}) in {self.name}. "
                    f"Received: protected_msbs={self.protected_msbs}"
                )
            one_value_per_word = not word.is_float and not self._packed
            if not self.fault_model.bitwise and not one_value_per_word:
                raise ValueError(
                    f"`fault_model` '{self.fault_model.name}' reads the sign bit of a "
                    f"two's-complement code, but '{variable.path}' holds {self._format(word)} "
                    f"(in {self.name}). Allowed here: bit_flip, stuck_at_0, stuck_at_1, "
                    "stuck_at_mix, none."
                )

    @property
    def _packed(self):
        mode = self.layer.quantization_mode
        return mode is not None and str(mode).startswith("int4")

    def _format(self, word):
        if not word.is_float and self._packed:
            return "int4 x2 (packed int8)"
        return word.dtype

    def _bit_rates(self, word, rate):
        """The fault rate of each bit place: p, or the robust rate of the protected bits."""
        robust = self._robust_places(word)
        if not robust:
            return rate
        robust_rate = [robust.get(k, None) for k in range(word.bits)]
        return ops.stack(
            [rate if r is None else ops.minimum(ops.cast(r, "float32"), rate) for r in robust_rate]
        )

    def _robust_places(self, word):
        """Bit place -> its robust rate, for the bits held in robust cells."""
        places = {
            k: self._protected_rate for k in range(word.bits - self.protected_msbs, word.bits)
        }
        if self.field_rates and word.is_float:
            for field, field_rate in self.field_rates.items():
                low, high = word.fields[field]
                places.update(dict.fromkeys(range(low, high), field_rate))
        return places

    # -- energy protocol (as the faulty layers) -----------------------------------------------
    @property
    def weight_format(self):
        """The stored formats, e.g. ``int8 + float32`` (each parameter: `stored_parameters`)."""
        names = [self._format(self.stored_word(v)) for v in self.faulty_variables()]
        return " + ".join(dict.fromkeys(names))

    def stored_parameters(self):
        """One dict per faulty variable: name, format, values, bits, protected bits."""
        rows = []
        for v in self.faulty_variables():
            word = self.stored_word(v)
            count = math.prod(v.shape)
            rows.append(
                {
                    "name": v.path,
                    "format": self._format(word),
                    "values": count,
                    "stored_bits": count * word.bits,
                    "protected_bits": count * len(self._robust_places(word)),
                }
            )
        return rows

    @property
    def stored_bits(self):
        """Bits the memory holds for the faulty parameters."""
        return sum(row["stored_bits"] for row in self.stored_parameters())

    @property
    def protected_bits(self):
        """Bits held in robust cells (protected MSBs and `field_rates` fields)."""
        return sum(row["protected_bits"] for row in self.stored_parameters())

    @property
    def rated_bits(self):
        """Bits read at the layer's fault rate p."""
        return self.stored_bits - self.protected_bits

    check_bits = 0

    @property
    def chip(self):
        return self.chip_seed.chip

    def reseed(self, seed):
        """Restarts the fault draws from `seed` (reproducible Monte-Carlo draws)."""
        state = self.seed_generator.state
        state.assign(ops.convert_to_tensor([int(seed), 0], dtype=state.dtype))

    # -- the faulty read ----------------------------------------------------------------------
    def read_stored(self, variable, value):
        """`value` (the variable's current value) as read from the faulty memory."""
        return self._read(self.stored_word(variable), value)

    def _read(self, word, value, errors=None):
        if self.fault_model.name == "none":
            return value
        rate = self._bit_rates(word, ops.cast(self.fault_rate, "float32"))
        if self.fault_persistence == "persistent":  # the chip's fixed per-bit map
            codes, keep = self.fault_model(word.to_codes(value), word.bits, rate, self.chip_seed)
        else:
            # Stored int8 bytes go to the fault model as they are (`FaultModel.fresh`).
            codes = value if _codes_dtype(word) == "int8" else word.to_codes(value)
            codes, keep = self.fault_model.fresh(
                codes, word.bits, rate, self.seed_generator, errors
            )
        values = codes if standardize_dtype(codes.dtype) == word.dtype else word.from_codes(codes)
        return values if keep is None else values * ops.cast(keep, values.dtype)

    def read_parameters(self, training=False):
        """The stored parameters as one call reads them from the faulty memory: {variable path:
        faulty value}, drawn as the call draws them (one draw for the parameters that share
        it). After the same `reseed`, a call reads these values (trainable ones through the
        straight-through form, whose forward value is the read; the CPU may flush a faulty
        denormal to zero there).

        Example:
        >>> wrapper = tl.inject_faults(keras.Sequential([keras.Input((2,)),
        ...     keras.layers.Dense(3)]), fault_rate=0.1, seed=0).layers[0]
        >>> sorted(name.split("/")[-1] for name in wrapper.read_parameters())
        ['bias', 'kernel']
        """
        reads, faulty, _ = self._reads(training)
        return {v.path: reads[id(v)] for v in self.faulty_variables() if id(v) in faulty}

    def _reads(self, training):
        """({id(variable): its value read from the memory}, {ids of those read faulty},
        [the variables read clean that the call may update]) for every variable of the
        wrapped layer. The faulty reads are the stored values (before the straight-through
        form the call gives trainable ones)."""
        layer = self.layer
        faulty = {id(v) for v in self.faulty_variables()}
        float8_scales = self._float8_scales()
        read_faulty = {
            id(v): v
            for v in layer.weights
            if id(v) in faulty and not (bool(training) and _short_name(v) in _MOVING)
        }
        # Each faulty variable's word, once; a float8 kernel's is built below from the scale
        # the call reads.
        words = {i: self.stored_word(v) for i, v in read_faulty.items() if i not in float8_scales}
        shared = self._shared_errors([(read_faulty[i], word) for i, word in words.items()])
        reads, updatable = {}, []
        # A float8 kernel decodes with the scale the call reads: the scales are read first.
        for variable in [*float8_scales.values(), *layer.weights]:
            if id(variable) in reads:
                continue
            if id(variable) in read_faulty:
                scale = float8_scales.get(id(variable))
                if scale is None:
                    word = words[id(variable)]
                else:
                    word = Float8Word(scale.value, reads[id(scale)], layer.compute_dtype)
                reads[id(variable)] = self._read(word, variable.value, shared.get(id(variable)))
            else:
                reads[id(variable)] = variable.value
                if not variable.trainable:
                    updatable.append(variable)
        return reads, set(read_faulty), updatable

    def call(self, *args, training=None, **kwargs):
        layer = self.layer
        reads, faulty, updatable = self._reads(training)
        mapping = [
            (v, self._forward_value(v, reads[id(v)]) if id(v) in faulty else reads[id(v)])
            for v in layer.weights
        ]
        if self._takes_training:
            kwargs["training"] = training
        with keras.StatelessScope(state_mapping=mapping) as scope:
            before = [scope.get_current_value(variable) for variable in updatable]
            outputs = layer(*args, **kwargs)
        # Updates the wrapped layer made (moving statistics, dropout seeds) reach its variables;
        # the faulty values never do. Only values the call replaced are written back: torch
        # assigns in place, and rewriting a value the forward pass used (an int8 kernel's
        # scale) would break its backward pass.
        for variable, old in zip(updatable, before, strict=True):
            new = scope.get_current_value(variable)
            if new is not old:
                variable.assign(new)
        return outputs

    def _shared_errors(self, variables):
        """{id(variable): its fault pattern} from one draw over the stored bits of those of
        `variables` (pairs of a variable and its stored word; float8 kernels, decoded with the
        scale the call reads, are not among them) that take transient byte-wise faults at the
        layer's one rate p (`draw_errors_together`), or {} when fewer than two do: each draw
        has a fixed cost, and one draw for a layer's kernel and bias pays it once. Words with
        protected bits (a rate per bit) draw apart."""
        if self.fault_model.name == "none" or self.fault_persistence == "persistent":
            return {}
        together = []
        for variable, word in variables:
            if self._robust_places(word) or not self.fault_model.draws_bytes(word.bits):
                continue
            spec = self.fault_model.fresh_errors(
                tuple(variable.shape), _codes_dtype(word), word.bits
            )
            together.append((variable, spec))
        if len(together) < 2:
            return {}
        errors = draw_errors_together(
            [spec for _, spec in together],
            ops.cast(self.fault_rate, "float32"),
            self.seed_generator,
        )
        return {id(v): e for (v, _), e in zip(together, errors, strict=True)}

    def _forward_value(self, variable, read):
        """The faulty `read` of `variable` as the forward pass uses it: with the
        straight-through gradient to the variable when it is trainable."""
        if not variable.trainable:
            return read
        value = variable.value
        return formats.straight_through(value, ops.cast(read, value.dtype))

    def compute_output_spec(self, *args, **kwargs):
        kwargs.pop("training", None)
        return self.layer.compute_output_spec(*args, **kwargs)

    def compute_output_shape(self, *args, **kwargs):
        return self.layer.compute_output_shape(*args, **kwargs)

    def compute_mask(self, *args, **kwargs):
        return self.layer.compute_mask(*args, **kwargs)

    def get_build_config(self):
        return {"layer": self.layer.get_build_config()}

    def build_from_config(self, config):
        if not self.layer.built and config.get("layer") is not None:
            self.layer.build_from_config(config["layer"])
        self._check_stored()
        self.built = True

    def _own_variables(self):
        # The fault-draw position and the chip (its map key and index) are saved with p, as
        # the faulty layers save them: Keras saves no seed generator state, and a layer made
        # with seed=None draws its map key at random, so a reloaded model would read another
        # chip's faults and restart (or, unseeded, re-randomise) its transient draws.
        return [self.fault_rate, self.seed_generator.state, self.chip_seed.state]

    def save_own_variables(self, store):
        for i, variable in enumerate(self._own_variables()):
            store[str(i)] = variable

    def load_own_variables(self, store):
        own = self._own_variables()
        # Files written before the draw state and chip were saved hold p only.
        if len(store.keys()) not in (1, len(own)):
            raise ValueError(
                f"Layer '{self.name}' expected {len(own)} variables "
                f"{[v.path for v in own]} but the file holds {len(store.keys())}."
            )
        for i, variable in enumerate(own[: len(store.keys())]):
            variable.assign(store[str(i)])

    def get_config(self):
        return {
            **super().get_config(),
            "fault_model": faults.serialize(self.fault_model),
            "fault_rate": self.initial_fault_rate,
            "seed": self.seed,
            "fault_persistence": self.fault_persistence,
            "fault_scales": self.fault_scales,
            "field_rates": self.field_rates,
            "protected_msbs": self.protected_msbs,
            "protected_rate": self.protected_rate,
            "protected_bit_energy": self.protected_bit_energy,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        layer = keras.saving.deserialize_keras_object(config.pop("layer"), custom_objects)
        return cls(layer, **config)
