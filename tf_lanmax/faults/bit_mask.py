"""Hacene et al.'s bit masking of detected faults."""

import keras
from keras import ops

from tf_lanmax.faults.base import FaultModel, bit_planes, signed_value, weighted_bit_sum


@keras.saving.register_keras_serializable(package="tf_lanmax")
class BitMask(FaultModel):
    """Detected faults masked as in Hacene et al. (ISCAS 2019, arXiv:1911.10287).

    A fault on the sign bit sets the value to 0 (precedence); a fault on any other bit replaces
    that bit by the sign bit. In two's complement faulty bits move a value towards 0 (q >= 0) or
    towards -1 (q < 0): a masked value never grows in magnitude and never changes sign. A binary
    word is only its sign bit, so any fault gives 0. Moments: `BitMask.moments`.

    Example:
    >>> mask = BitMask()
    >>> codes, keep = mask(keras.ops.convert_to_tensor([5]), 4, 1.0, seed=0)  # keep -> [0.]
    """

    name = "bit_mask"
    bitwise = False

    def apply(self, codes, errors, bits):
        sign_mask = 1 << (bits - 1)
        sign_fault = ops.not_equal(ops.bitwise_and(errors, sign_mask), 0)
        keep = ops.cast(ops.logical_not(sign_fault), "float32")
        low_errors = ops.bitwise_and(errors, sign_mask - 1)
        negative = ops.not_equal(ops.bitwise_and(codes, sign_mask), 0)
        masked = ops.where(
            negative,
            ops.bitwise_or(codes, low_errors),
            ops.bitwise_and(codes, ops.bitwise_invert(low_errors)),
        )
        # Code 0 is the value 0 in two's complement; `keep` also zeroes binary words.
        return ops.where(sign_fault, ops.zeros_like(masked), masked), keep

    def code_moments(self, codes, bits, rate):
        q = signed_value(codes, bits)
        planes = bit_planes(codes, bits)
        s0 = weighted_bit_sum(planes, bits, low_only=True)
        s1 = weighted_bit_sum(1 - planes, bits, low_only=True)
        negative = ops.less(q, 0.0)
        m = ops.where(negative, (1.0 - rate) * q - rate, (1.0 - rate) * q)
        v = rate * (1.0 - rate) * ops.where(negative, s1, s0)
        return (1.0 - rate) * m, (1.0 - rate) * v + rate * (1.0 - rate) * m * m

    def binary_moments(self, weights_b, alpha, rate):
        return (1.0 - rate) * weights_b, rate * (1.0 - rate) * weights_b * weights_b
