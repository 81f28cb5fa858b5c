"""Bit flips: every faulty stored bit reads inverted."""

import keras
from keras import ops

from tf_lanmax.faults.base import FaultModel, signed_value


@keras.saving.register_keras_serializable(package="tf_lanmax")
class BitFlip(FaultModel):
    """Transient bit flips ``b' = b XOR e`` with ``e ~ Bernoulli(p)`` per stored bit.

    Closed-form moments: binary ``E = (1-2p) w``, ``Var = 4p(1-p) alpha^2``;
    fixed point ``E[q'] = (1-2p) q - p``, ``Var[q'] = p(1-p)(4**n - 1)/3``.

    Example:
    >>> flip = BitFlip()
    >>> codes, _ = flip(keras.ops.convert_to_tensor([0, 3]), 2, 1.0, seed=0)  # -> [3, 0]
    """

    name = "bit_flip"

    def apply(self, codes, errors, bits):
        return ops.bitwise_xor(codes, errors), None

    def code_moments(self, codes, bits, rate):
        q = signed_value(codes, bits)
        mean = (1.0 - 2.0 * rate) * q - rate
        var = rate * (1.0 - rate) * (4.0**bits - 1.0) / 3.0 * ops.ones_like(q)
        return mean, var

    def binary_moments(self, weights_b, alpha, rate):
        mean = (1.0 - 2.0 * rate) * weights_b
        var = 4.0 * rate * (1.0 - rate) * alpha * alpha * ops.ones_like(weights_b)
        return mean, var
