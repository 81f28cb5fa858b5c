"""Shared machinery of the faulty layers: the `fault_rate` variable, seed and faulty kernel."""

import keras
from keras import ops

from tf_lanmax import faults, formats
from tf_lanmax._validation import check_int, check_probability


class FaultyKernelMixin:
    """Adds stored-format weights read through a fault model to a Keras layer with a `kernel`.

    The layer keeps float latent weights (what the optimizer updates). At every forward pass the
    kernel is encoded to the stored codes of `weight_format`, a fresh fault pattern is drawn at
    rate `fault_rate` on every stored bit, and the faulty codes are decoded back. The gradient
    reaches the latent weights straight through (ALGORITHMS.md §3.5):
    ``w_used = w + stop_gradient(w_faulty - w)``.

    `fault_rate` is a non-trainable scalar `keras.Variable` (float32, never autocast) that a
    callback can assign between batches without retracing the compiled step.
    """

    def _init_faults(self, weight_format, fault_model, fault_rate, seed):
        self.weight_format = formats.get(weight_format)
        self.fault_model = faults.get(fault_model)
        self.initial_fault_rate = check_probability("fault_rate", fault_rate, context=self.name)
        if seed is not None:
            check_int("seed", seed, low=0, context=self.name)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        # Created eagerly (not in build) so `layer.fault_rate` exists before the layer is built.
        self.fault_rate = self.add_weight(
            name="fault_rate",
            shape=(),
            initializer=keras.initializers.Constant(self.initial_fault_rate),
            trainable=False,
            dtype="float32",
            autocast=False,
        )

    def _default_kernel_constraint(self, kernel_constraint):
        if kernel_constraint is None:
            return self.weight_format.kernel_constraint()
        return kernel_constraint

    @property
    def stored_bits(self):
        """Bits the memory holds for this layer's kernel (weights x bits per weight)."""
        if not self.built:
            raise ValueError(f"Layer '{self.name}' must be built before its stored bits are known.")
        return int(ops.size(self.kernel)) * self.weight_format.bits

    def stored_kernel(self):
        """The clean stored kernel (what a reliable memory returns), as float."""
        return self.weight_format.quantize(ops.convert_to_tensor(self.kernel))

    def faulty_kernel(self, kernel):
        """The kernel as read from the faulty memory, with a straight-through gradient."""
        faulty = self.fault_model.corrupt(
            self.weight_format, kernel, self.fault_rate, self.seed_generator
        )
        return formats.straight_through(kernel, ops.cast(faulty, kernel.dtype))

    def kernel_moments(self):
        """Closed-form per-weight mean and variance of the faulty kernel (ALGORITHMS.md §3)."""
        return self.fault_model.moments(
            self.weight_format, ops.convert_to_tensor(self.kernel), self.fault_rate
        )

    def reseed(self, seed):
        """Restarts the fault draws from `seed` (reproducible Monte-Carlo draws)."""
        state = self.seed_generator.state
        state.assign(ops.convert_to_tensor([int(seed), 0], dtype=state.dtype))

    def _own_variables(self):
        own = [self.kernel] + ([self.bias] if self.use_bias else [])
        return own + [self.fault_rate]

    # Dense and Conv save only kernel and bias through their own (quantisation-aware) store
    # layout; the faulty layers save p too, so a learned fault rate survives `.keras` round trips.
    def save_own_variables(self, store):
        if not self.built:
            return
        for i, variable in enumerate(self._own_variables()):
            store[str(i)] = variable

    def load_own_variables(self, store):
        if not self.built:
            return
        own = self._own_variables()
        if len(store.keys()) != len(own):
            raise ValueError(
                f"Layer '{self.name}' expected {len(own)} variables "
                f"{[v.name for v in own]} but the file holds {len(store.keys())}."
            )
        for i, variable in enumerate(own):
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
        }
