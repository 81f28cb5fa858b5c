"""The float8 code Keras' float8 layers store: e4m3fn of the kernel over its scale.

Keras' float8 mode (`model.quantize("float8")`, Dense and EinsumDense) keeps the kernel w in
float32 and, at every call, quantizes it with a per-tensor scale s (delayed scaling,
Micikevicius et al., "FP8 formats for deep learning", arXiv:2209.05433):
``code = e4m3fn(clip(w / s, -448, 448))``, then computes with ``decode(code) * s``. The 8-bit
code is what a float8 memory holds, so that is the word a fault hits. `Float8Word` computes the
code exactly as Keras does (same division, clip and cast, in the layer's compute dtype) and
reads it back as ``decode(code) * s``: Keras' own quantization of that value returns the same
code, so a layer fed the decoded value computes exactly Keras' float8 output on those codes.

e4m3fn (OCP 8-bit floating point specification, 2023): 1 sign bit, 4 exponent bits (bias 7),
3 mantissa bits, subnormals ``m * 2**-9``, no infinities, ``S.1111.111`` is NaN (a fault can
make one: it is counted as a non-finite output, not hidden). The codes are computed
arithmetically from the float32 bit pattern (TensorFlow cannot bitcast float8), the values
from a 128-entry table.
"""

import keras
import numpy as np
from keras import ops

#: Largest finite e4m3fn value.
E4M3_MAX = 448.0
_MANTISSA, _EXPONENT, _BIAS = 3, 4, 7


def e4m3fn_magnitudes():
    """The 128 magnitudes of the e4m3fn codes 0..127 (sign bit clear), as float32; code 127 is
    NaN.

    Example:
    >>> e4m3fn_magnitudes()[[0, 1, 8, 56, 126]].tolist()  # 0, 2**-9, 2**-6, 1, max
    [0.0, 0.001953125, 0.015625, 1.0, 448.0]
    """
    codes = np.arange(128)
    exponent, mantissa = codes >> _MANTISSA, codes & 7
    normal = (8 + mantissa) * 2.0 ** (exponent - _BIAS - _MANTISSA)
    subnormal = mantissa * 2.0 ** (1 - _BIAS - _MANTISSA)
    values = np.where(exponent == 0, subnormal, normal)
    values[127] = np.nan
    return values.astype(np.float32)


class Float8Word:
    """The e4m3fn word of a Keras float8 kernel with scale `scale`, in the `StoredWord` protocol.

    Args:
        scale: the kernel's scale s (a scalar tensor; the value Keras' call reads).
        decode_scale: the scale the layer multiplies the codes by, when it differs from the
            one that made them (a faulty stored scale). Defaults to `None` (`scale`).
        compute_dtype: the layer's compute dtype, in which Keras divides by the scale.
            Defaults to `"float32"`.

    Example:
    >>> word = Float8Word(keras.ops.convert_to_tensor(0.5))
    >>> keras.ops.convert_to_numpy(word.to_codes(keras.ops.convert_to_tensor([0.5, -1.0])))
    array([ 56, 192], dtype=int32)
    """

    dtype = "float8_e4m3fn"
    bits = 8
    is_float = True
    fields = {"mantissa": (0, 3), "exponent": (3, 7), "sign": (7, 8)}

    def __init__(self, scale, decode_scale=None, compute_dtype="float32"):
        self.scale = scale
        self.decode_scale = scale if decode_scale is None else decode_scale
        self.compute_dtype = compute_dtype

    def to_codes(self, values):
        """The 8-bit codes (as `int32` in [0, 255]) Keras' float8 call computes from `values`."""
        values = ops.cast(values, self.compute_dtype)
        scaled = ops.divide(values, ops.cast(self.scale, self.compute_dtype))
        scaled = ops.clip(scaled, -E4M3_MAX, E4M3_MAX)
        v = ops.cast(ops.cast(scaled, "float8_e4m3fn"), "float32")
        raw = ops.view(v, "int32")
        exponent = ops.bitwise_and(ops.right_shift(raw, 23), 0xFF)
        normal = ops.bitwise_or(
            ops.left_shift(exponent - (127 - _BIAS), _MANTISSA),
            ops.bitwise_and(ops.right_shift(raw, 23 - _MANTISSA), 7),
        )
        subnormal = ops.cast(ops.round(ops.abs(v) * 2.0 ** (_BIAS + _MANTISSA - 1)), "int32")
        magnitude = ops.where(exponent >= 127 - _BIAS + 1, normal, subnormal)
        magnitude = ops.where(ops.isnan(v), 127, magnitude)
        # A NaN's sign is the input's (NaN arithmetic need not keep it).
        negative = ops.where(ops.isnan(v), ops.view(values, _int_view(values)) < 0, raw < 0)
        return ops.where(negative, magnitude + 128, magnitude)

    def from_codes(self, codes):
        """The float32 values ``decode(code) * decode_scale`` the layer computes with."""
        codes = ops.cast(codes, "int32")
        magnitude = ops.take(e4m3fn_magnitudes(), ops.bitwise_and(codes, 127))
        value = ops.where(ops.bitwise_and(codes, 128) > 0, ops.negative(magnitude), magnitude)
        return ops.multiply(value, ops.cast(self.decode_scale, "float32"))


def _int_view(values):
    width = {"float32": "int32", "float16": "int16", "bfloat16": "int16"}
    return width[keras.backend.standardize_dtype(values.dtype)]
