"""A reliable memory: no faults, no draws (the baseline of overhead measurements)."""

import keras
from keras import ops

from tf_lanmax.faults.base import FaultModel


@keras.saving.register_keras_serializable(package="tf_lanmax")
class NoFaults(FaultModel):
    """Reads the stored codes unchanged and draws nothing.

    A layer with `NoFaults` is the same stored-format layer on a reliable memory: the reference
    for fault overheads, or a layer a designer keeps reliable. Its energy is reported at eta = 1.

    Example:
    >>> layer = tl.FaultyDense(10, fault_model="none")
    """

    name = "none"

    def apply(self, codes, errors, bits):
        return codes, None

    def __call__(self, codes, bits, rate, seed):
        return ops.cast(codes, "int32"), None

    def code_moments(self, codes, bits, rate):
        q = ops.cast(codes, "float32")
        sign = ops.cast(ops.right_shift(ops.cast(codes, "int32"), bits - 1), "float32")
        q = q - sign * (2.0**bits)
        return q, ops.zeros_like(q)

    def binary_moments(self, weights_b, alpha, rate):
        return weights_b, ops.zeros_like(weights_b)
