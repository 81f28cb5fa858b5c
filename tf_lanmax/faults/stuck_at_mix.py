"""Stuck-at faults of both polarities: what a failing low-voltage SRAM cell reads."""

import keras
from keras import ops

from tf_lanmax._validation import check_probability
from tf_lanmax.faults.base import FaultModel, bit_planes


@keras.saving.register_keras_serializable(package="tf_lanmax")
class StuckAtMix(FaultModel):
    """Each faulty bit reads 0 with probability f and 1 otherwise (stuck-at-0 / stuck-at-1 mix).

    Profiled undervolted SRAM chips split their failing cells about evenly between the two
    stuck values (Chandramoorthy et al., HPCA 2019; Yüksel et al., MoRS 2022). The value a faulty
    cell reads is drawn with the fault: redrawn at every read for transient faults, fixed per
    cell for a persistent per-chip fault map (the layer's `fault_persistence="persistent"`).

    Per bit, ``b' = b`` with probability 1 - p, 0 with p f, 1 with p (1 - f), so
    ``E[b'] = (1 - p) b + p (1 - f)`` and ``Var[b'] = E[b'] (1 - E[b'])``; the bits are
    independent, so the code's two's-complement value has mean ``sum_k c_k E[b'_k]`` and
    variance ``sum_k c_k^2 Var[b'_k]`` with ``c_k = 2**k`` (``-2**(n-1)`` for the sign bit).
    f = 1 is `StuckAt(0)`, f = 0 is `StuckAt(1)`.

    Args:
        stuck_at_0_fraction: f, the fraction of faulty cells that read 0, in [0, 1].
            Defaults to `0.5`.

    Example:
    >>> mix = StuckAtMix(stuck_at_0_fraction=0.5)
    >>> codes, _ = mix(keras.ops.convert_to_tensor([5]), 3, 1.0, seed=0)  # each bit 0 or 1
    """

    def __init__(self, stuck_at_0_fraction=0.5):
        self.stuck_at_0_fraction = check_probability(
            "stuck_at_0_fraction", stuck_at_0_fraction, high=1.0, low_inclusive=True
        )

    name = "stuck_at_mix"

    @property
    def polarity_fraction(self):
        return self.stuck_at_0_fraction

    def apply(self, codes, errors, bits):
        raise ValueError(
            "StuckAtMix needs the value each faulty cell reads: use `apply_pattern(codes, "
            "errors, polarity, bits)` or call the model, which draws both."
        )

    def apply_pattern(self, codes, errors, polarity, bits):
        # Faulty bits take the cell's stuck value; the others keep the stored bit.
        kept = ops.bitwise_and(codes, ops.bitwise_invert(errors))
        return ops.bitwise_or(kept, ops.bitwise_and(errors, polarity)), None

    def _bit_means(self, planes, rate):
        return (1.0 - rate) * ops.cast(planes, "float32") + rate * (1.0 - self.stuck_at_0_fraction)

    def code_moments(self, codes, bits, rate):
        means = self._bit_means(bit_planes(codes, bits), rate)
        weights = [2.0**k for k in range(bits - 1)] + [-(2.0 ** (bits - 1))]
        c = ops.convert_to_tensor(weights, "float32")
        mean = ops.sum(means * c, axis=-1)
        var = ops.sum(means * (1.0 - means) * c * c, axis=-1)
        return mean, var

    def binary_moments(self, weights_b, alpha, rate):
        stored = ops.cast(ops.greater_equal(weights_b, 0.0), "float32")
        mean_bit = self._bit_means(stored, rate)
        return alpha * (2.0 * mean_bit - 1.0), 4.0 * alpha * alpha * mean_bit * (1.0 - mean_bit)

    def get_config(self):
        return {"stuck_at_0_fraction": self.stuck_at_0_fraction}
