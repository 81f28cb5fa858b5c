"""The bits a memory holds for a Keras variable as it is: IEEE floats and integer codes.

`tl.inject_faults` reads a layer's variables through a fault model without re-encoding them:
the stored word *is* the variable's value. `StoredWord` views a tensor as its raw bit pattern
(`int32` words, bit k at place k) and back, and names the fields of the word: sign, exponent
and mantissa for IEEE 754 floats (float32: 1 + 8 + 23 bits; float16: 1 + 5 + 10; bfloat16:
1 + 8 + 7), sign and value for two's-complement integer codes (Keras' int8 kernels, and the
int4 kernels Keras packs two to a byte: each stored byte is 8 bits either way).

Reference: IEEE Std 754-2019; Keras quantization (`keras.Model.quantize`).
"""

import keras
from keras import ops

from tf_lanmax._config import ConfigValue

#: (exponent bits, mantissa bits) of the IEEE float dtypes a variable may hold.
IEEE_LAYOUT = {"float32": (8, 23), "float16": (5, 10), "bfloat16": (8, 7)}
#: Integer dtypes stored as two's-complement codes.
INTEGER_BITS = {"int8": 8}
#: The unsigned integer dtype of the same width, for `keras.ops.view`.
_VIEW = {32: "int32", 16: "int16", 8: "int8"}


@keras.saving.register_keras_serializable(package="tf_lanmax")
class StoredWord(ConfigValue):
    """The stored word of one variable dtype: its width, its fields and the bit view.

    Args:
        dtype: the variable's dtype, one of float32, float16, bfloat16, int8.

    Example:
    >>> word = StoredWord("float16")
    >>> word.bits, word.fields["exponent"]
    (16, (10, 15))
    >>> codes = word.to_codes(keras.ops.convert_to_tensor([1.0], "float16"))  # -> [0x3C00]
    """

    def __init__(self, dtype):
        dtype = str(dtype)
        if dtype not in IEEE_LAYOUT and dtype not in INTEGER_BITS:
            raise ValueError(
                f"`dtype` {dtype!r} has no stored-word layout. "
                f"Allowed: {sorted([*IEEE_LAYOUT, *INTEGER_BITS])}"
            )
        self.dtype = dtype

    @property
    def is_float(self):
        return self.dtype in IEEE_LAYOUT

    @property
    def bits(self):
        if self.is_float:
            exponent, mantissa = IEEE_LAYOUT[self.dtype]
            return 1 + exponent + mantissa
        return INTEGER_BITS[self.dtype]

    @property
    def fields(self):
        """Field name -> ``(low, high)`` bit places, high exclusive; the sign is the top bit."""
        top = self.bits - 1
        if not self.is_float:
            return {"value": (0, top), "sign": (top, top + 1)}
        exponent, mantissa = IEEE_LAYOUT[self.dtype]
        return {
            "mantissa": (0, mantissa),
            "exponent": (mantissa, mantissa + exponent),
            "sign": (top, top + 1),
        }

    def to_codes(self, values):
        """The raw bits of `values` as `int32` words (bit k of the word at place k).

        32-bit words fill the whole `int32` (the sign bit is its sign); narrower words are
        zero-extended, as the fault models expect.
        """
        bits = self.bits
        raw = ops.view(ops.convert_to_tensor(values, self.dtype), _VIEW[bits])
        if bits == 32:
            return raw
        return ops.bitwise_and(ops.cast(raw, "int32"), (1 << bits) - 1)

    def from_codes(self, codes):
        """Inverse of `to_codes`: `int32` words -> values of `dtype`."""
        bits = self.bits
        codes = ops.cast(codes, "int32")
        if bits < 32:
            codes = ops.bitwise_and(codes, (1 << bits) - 1)
            # Sign-extend so that the narrowing cast keeps the bit pattern.
            codes = ops.where(codes >= (1 << (bits - 1)), codes - (1 << bits), codes)
            codes = ops.cast(codes, _VIEW[bits])
        return ops.view(codes, self.dtype)

    def get_config(self):
        return {"dtype": self.dtype}
