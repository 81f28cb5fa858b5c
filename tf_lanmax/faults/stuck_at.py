"""Stuck-at faults: a faulty bit reads a fixed value."""

import keras
from keras import ops

from tf_lanmax._validation import check_int
from tf_lanmax.faults.base import FaultModel, bit_planes, signed_value, weighted_bit_sum


@keras.saving.register_keras_serializable(package="tf_lanmax")
class StuckAt(FaultModel):
    """Each faulty bit reads `value` (stuck-at-0 or stuck-at-1), redrawn at every read.

    Moments: SA0 ``E[q'] = (1-p) q``, ``Var = p(1-p) sum_k b_k 4**k``;
    SA1 ``E[q'] = (1-p) q - p``, ``Var = p(1-p) sum_k (1-b_k) 4**k``; binary
    ``E = (1-p) w + p w_v``, ``Var = p(1-p)(w - w_v)**2``.

    Args:
        value: the value a faulty bit reads, 0 or 1. Defaults to `0`.

    Example:
    >>> sa0 = StuckAt(0)
    >>> codes, _ = sa0(keras.ops.convert_to_tensor([7]), 3, 1.0, seed=0)  # -> [0]
    """

    def __init__(self, value=0):
        self.value = check_int("value", value, low=0, high=1)

    @property
    def name(self):
        return f"stuck_at_{self.value}"

    def apply(self, codes, errors, bits):
        if self.value == 1:
            return ops.bitwise_or(codes, errors), None
        return ops.bitwise_and(codes, ops.bitwise_invert(errors)), None

    def code_moments(self, codes, bits, rate):
        q = signed_value(codes, bits)
        planes = bit_planes(codes, bits)
        if self.value == 1:
            mean = (1.0 - rate) * q - rate
            var = rate * (1.0 - rate) * weighted_bit_sum(1 - planes, bits, low_only=False)
        else:
            mean = (1.0 - rate) * q
            var = rate * (1.0 - rate) * weighted_bit_sum(planes, bits, low_only=False)
        return mean, var

    def binary_moments(self, weights_b, alpha, rate):
        w_v = alpha * (2.0 * self.value - 1.0)
        diff = weights_b - w_v
        return (1.0 - rate) * weights_b + rate * w_v, rate * (1.0 - rate) * diff * diff

    def get_config(self):
        return {"value": self.value}
