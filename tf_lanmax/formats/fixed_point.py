"""Signed fixed point in two's complement, saturating."""

import keras
from keras import ops

from tf_lanmax._validation import check_int
from tf_lanmax.formats.base import WeightFormat

MAX_BITS = 16


@keras.saving.register_keras_serializable(package="tf_lanmax")
class FixedPoint(WeightFormat):
    """`bits`-bit two's-complement fixed point with `fraction_bits` fraction bits.

    Step ``delta = 2**-fraction_bits``; range ``[-2**(n-1) delta, (2**(n-1) - 1) delta]``.
    Encoding rounds half to even and saturates; the code is ``q mod 2**n``, so bit ``n - 1`` is
    the sign bit and decoding sign-extends: ``q = u - 2**n * b_(n-1)``.

    Args:
        bits: bits per weight including the sign, 2..16. Defaults to `8`.
        fraction_bits: fraction bits, 0 <= fraction_bits < bits. Defaults to `6`.

    Example:
    >>> fmt = FixedPoint(bits=4, fraction_bits=2)
    >>> fmt.quantize(keras.ops.convert_to_tensor([0.3, -5.0]))  # -> [0.25, -2.0]
    """

    def __init__(self, bits=8, fraction_bits=6):
        self.bits = check_int("bits", bits, low=2, high=MAX_BITS)
        self.fraction_bits = check_int("fraction_bits", fraction_bits, low=0, high=self.bits - 1)

    @property
    def delta(self):
        return 2.0 ** (-self.fraction_bits)

    @property
    def min_value(self):
        return -(2 ** (self.bits - 1)) * self.delta

    @property
    def max_value(self):
        return (2 ** (self.bits - 1) - 1) * self.delta

    def step(self, weights=None):
        return ops.convert_to_tensor(self.delta, "float32")

    def encode(self, weights):
        half = 2 ** (self.bits - 1)
        q = ops.clip(ops.round(ops.cast(weights, "float32") / self.delta), -half, half - 1)
        q = ops.cast(q, "int32")
        # q mod 2**n for the negative codes: the n-bit two's-complement word as an unsigned int.
        return ops.bitwise_and(q, (1 << self.bits) - 1)

    def decode(self, codes, weights=None):
        return self.code_value(codes) * self.delta

    def get_config(self):
        return {"bits": self.bits, "fraction_bits": self.fraction_bits}
