"""Base class of number formats: how float weights become the bits a memory stores."""

import keras
from keras import ops

from tf_lanmax._config import ConfigValue


class WeightFormat(ConfigValue):
    """A storage format: float weights <-> unsigned integer codes of `bits` bits.

    Faults act on the codes, so they hit the bits the memory really holds. Codes are `int32`
    tensors with values in ``[0, 2**bits)``; bit `bits - 1` is the sign bit.

    Subclasses implement `encode`, `decode` and `get_config`.
    """

    #: Bits stored per weight.
    bits = None

    def encode(self, weights):
        """Float weights -> `int32` codes in ``[0, 2**bits)``."""
        raise NotImplementedError

    def decode(self, codes, weights=None):
        """Codes -> float weights. `weights` (the latent tensor) sets data-dependent scales."""
        raise NotImplementedError

    def quantize(self, weights):
        """The stored (clean) value of `weights`: ``decode(encode(weights))`` without gradient."""
        return self.decode(self.encode(weights), weights)

    def code_value(self, codes):
        """Signed integer value each code stands for, in units of `step` (float32)."""
        codes = ops.cast(codes, "int32")
        sign = ops.right_shift(codes, self.bits - 1)
        return ops.cast(codes - ops.left_shift(sign, self.bits), "float32")

    def step(self, weights=None):
        """Weight units per integer unit (scalar or broadcastable tensor)."""
        raise NotImplementedError

    def kernel_constraint(self):
        """Constraint applied to latent weights after each optimizer step (or None)."""
        return None

    def get_config(self):
        return {}


@keras.saving.register_keras_serializable(package="tf_lanmax")
class LatentClip(keras.constraints.Constraint):
    """Clips latent weights to ``[-limit, limit]`` after each update (BinaryConnect).

    Args:
        limit: the bound. Defaults to `1.0`.
    """

    def __init__(self, limit=1.0):
        self.limit = float(limit)

    def __call__(self, w):
        return ops.clip(w, -self.limit, self.limit)

    def get_config(self):
        return {"limit": self.limit}
