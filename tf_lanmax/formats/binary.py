"""BinaryConnect: one stored bit per weight, the sign of the latent weight."""

import math

import keras
from keras import ops

from tf_lanmax._validation import check_one_of
from tf_lanmax.formats.base import LatentClip, WeightFormat

SCALES = ("none", "mean", "he")


@keras.saving.register_keras_serializable(package="tf_lanmax")
class Binary(WeightFormat):
    """Binary weights ``w_b = alpha * sgn(w)`` with ``sgn(0) = +1`` (BinaryConnect).

    Stores one bit ``b = 1[w >= 0]`` per weight, decoded as ``alpha * (2b - 1)``. A 1-bit sign
    word is not 1-bit two's complement (which would encode {0, -1}): binary is its own format.
    Latent weights are clipped to [-1, 1] after each step by `kernel_constraint()`.

    Args:
        scale: the reliable per-layer scale alpha: `"none"` (1), `"mean"` (mean |w| per output
            channel) or `"he"` (sqrt(2 / fan_in), McDonnell 2018). Defaults to `"he"`.

    Example:
    >>> fmt = Binary(scale="none")
    >>> fmt.encode(keras.ops.convert_to_tensor([[-0.3, 0.0, 0.7]]))  # -> [[0, 1, 1]]

    Reference: Courbariaux et al., arXiv:1511.00363.
    """

    bits = 1

    def __init__(self, scale="he"):
        self.scale = check_one_of("scale", scale, SCALES)

    def encode(self, weights):
        return ops.cast(ops.greater_equal(weights, 0), "int32")

    def step(self, weights=None):
        """The scale alpha: binary values are ``alpha * (+-1)``."""
        if self.scale == "none" or weights is None:
            return ops.convert_to_tensor(1.0, "float32")
        if self.scale == "he":
            fan_in = math.prod(weights.shape[:-1])  # Keras kernels keep the output axis last.
            return ops.convert_to_tensor(math.sqrt(2.0 / max(fan_in, 1)), "float32")
        axes = tuple(range(len(weights.shape) - 1))
        return ops.stop_gradient(ops.mean(ops.abs(weights), axis=axes))

    def code_value(self, codes):
        return ops.cast(2 * ops.cast(codes, "int32") - 1, "float32")

    def decode(self, codes, weights=None):
        return self.code_value(codes) * self.step(weights)

    def kernel_constraint(self):
        return LatentClip(1.0)

    def get_config(self):
        return {"scale": self.scale}
