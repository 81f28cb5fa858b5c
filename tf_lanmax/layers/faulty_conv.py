"""`FaultyConv1D` / `FaultyConv2D`: convolutions whose kernel lives in unreliable memory."""

import keras
from keras import ops

from tf_lanmax.layers.base import MEMORY_ARGS_DOC, FaultyKernelMixin

_ARGS_DOC = (
    """
    Args:
        filters: number of output filters.
        kernel_size: size of the convolution window.
        weight_format: `"binary"`, `"fixed_point"`, a dict or a `tf_lanmax.formats` instance.
            Defaults to `"binary"`.
        fault_model: `"bit_flip"`, `"bit_mask"`, `"stuck_at_0"`, `"stuck_at_1"`, a dict or a
            `tf_lanmax.faults` instance. Defaults to `"bit_flip"`.
        fault_rate: initial per-bit fault probability p in (0, 0.5], held in the non-trainable
            variable `layer.fault_rate`. Defaults to `1e-3`.
        seed: int seed of the fault draws. Defaults to `None` (random).
"""
    + MEMORY_ARGS_DOC
    + """\
        **kwargs: every other argument of the Keras convolution. `kernel_constraint` defaults to
            the format's own (latent clip to [-1, 1] for binary).
"""
)


class _FaultyConvMixin(FaultyKernelMixin):
    def _init_faulty_conv(self, kernel_constraint, *fault_args):
        self._init_faults(*fault_args)
        self.kernel_constraint = keras.constraints.get(
            self._default_kernel_constraint(kernel_constraint)
        )

    def call(self, inputs, training=None):
        padding = self.padding
        if padding == "causal":
            # Conv1D pads causal inputs in its own `call`, which this class replaces.
            left = self.dilation_rate[0] * (self.kernel_size[0] - 1)
            pads = [[0, 0], [left, 0], [0, 0]]
            if self.data_format != "channels_last":
                pads = [[0, 0], [0, 0], [left, 0]]
            inputs, padding = ops.pad(inputs, pads), "valid"
        kernel = ops.cast(self.faulty_kernel(self.kernel), inputs.dtype)
        outputs = ops.conv(
            inputs,
            kernel,
            strides=list(self.strides),
            padding=padding,
            dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )
        if self.use_bias:
            if self.data_format == "channels_last":
                bias_shape = (1,) * (self.rank + 1) + (self.filters,)
            else:
                bias_shape = (1, self.filters) + (1,) * self.rank
            outputs = ops.add(outputs, ops.reshape(self.bias, bias_shape))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def get_config(self):
        return {**super().get_config(), **self._fault_config()}


@keras.saving.register_keras_serializable(package="tf_lanmax")
class FaultyConv2D(_FaultyConvMixin, keras.layers.Conv2D):
    __doc__ = (
        """2D convolution with stored-format weights read through a fault model.

    As `keras.layers.Conv2D`, but the kernel used at every call is read from faulty memory with
    fresh faults at rate `fault_rate` (training and evaluation). The bias is assumed reliable.
"""
        + _ARGS_DOC
        + """
    Example:
    >>> conv = FaultyConv2D(8, 3, fault_model="bit_mask", fault_rate=1e-2, seed=0)
    >>> y = conv(keras.ops.ones((1, 28, 28, 1)))
"""
    )

    def __init__(
        self,
        filters,
        kernel_size,
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
        super().__init__(filters, kernel_size, **kwargs)
        self._init_faulty_conv(
            kernel_constraint,
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


@keras.saving.register_keras_serializable(package="tf_lanmax")
class FaultyConv1D(_FaultyConvMixin, keras.layers.Conv1D):
    __doc__ = (
        """1D convolution with stored-format weights read through a fault model.

    As `keras.layers.Conv1D` (causal padding included), with the kernel read from faulty memory.
"""
        + _ARGS_DOC
    )

    def __init__(
        self,
        filters,
        kernel_size,
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
        super().__init__(filters, kernel_size, **kwargs)
        self._init_faulty_conv(
            kernel_constraint,
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
