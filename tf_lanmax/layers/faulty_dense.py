"""`FaultyDense`: a Dense layer whose kernel lives in unreliable memory."""

import keras
from keras import ops

from tf_lanmax.layers.base import MEMORY_ARGS_DOC, FaultyKernelMixin


@keras.saving.register_keras_serializable(package="tf_lanmax")
class FaultyDense(FaultyKernelMixin, keras.layers.Dense):
    __doc__ = (
        """Densely-connected layer with stored-format weights read through a fault model.

    Behaves as `keras.layers.Dense` except that the kernel used at every call is the kernel as
    stored in `weight_format` and read with fresh faults at rate `fault_rate` (in training and in
    evaluation: that is the faulty hardware; see `tf_lanmax.faults_disabled` for deployment).
    The bias is assumed reliable.

    Args:
        units: dimensionality of the output space.
        weight_format: `"binary"`, `"fixed_point"`, a dict or a `tf_lanmax.formats` instance.
            Defaults to `"binary"`.
        fault_model: `"bit_flip"`, `"bit_mask"`, `"stuck_at_0"`, `"stuck_at_1"`, a dict or a
            `tf_lanmax.faults` instance. Defaults to `"bit_flip"`.
        fault_rate: initial per-bit fault probability p in (0, 0.5]; held in the non-trainable
            variable `layer.fault_rate`. Defaults to `1e-3`.
        seed: int seed of the fault draws. Defaults to `None` (random).
"""
        + MEMORY_ARGS_DOC
        + """\
        **kwargs: every other `keras.layers.Dense` argument. `kernel_constraint` defaults to the
            format's own (latent clip to [-1, 1] for binary).

    Example:
    >>> layer = FaultyDense(10, fault_rate=1e-2, seed=1)
    >>> y = layer(keras.ops.ones((2, 4)))
    >>> layer.fault_rate.assign(1e-3)  # no retrace of a compiled step
"""
    )

    def __init__(
        self,
        units,
        weight_format="binary",
        fault_model="bit_flip",
        fault_rate=1e-3,
        seed=None,
        fault_persistence="transient",
        ecc=None,
        ecc_word_bits=64,
        ecc_policy="zero",
        protected_msbs=0,
        protected_rate=None,
        protected_bit_energy=1.0,
        kernel_constraint=None,
        **kwargs,
    ):
        super().__init__(units, **kwargs)
        self._init_faults(
            weight_format,
            fault_model,
            fault_rate,
            seed,
            fault_persistence,
            ecc,
            ecc_word_bits,
            ecc_policy,
            protected_msbs,
            protected_rate,
            protected_bit_energy,
        )
        self.kernel_constraint = keras.constraints.get(
            self._default_kernel_constraint(kernel_constraint)
        )

    def call(self, inputs, training=None):
        kernel = self.faulty_kernel(self.kernel)
        outputs = ops.matmul(inputs, ops.cast(kernel, inputs.dtype))
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def get_config(self):
        return {**super().get_config(), **self._fault_config()}
