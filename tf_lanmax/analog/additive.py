"""MemSE's additive programming noise: ``g' = g + N(0, sigma^2)`` on every device."""

import keras
from keras import ops

from tf_lanmax._validation import check_positive
from tf_lanmax.analog.device import Device


@keras.saving.register_keras_serializable(package="tf_lanmax")
class Additive(Device):
    """Additive programming noise of constant spread, on quantised conductances, no drift.

    ``g_hat' = g_hat + N(0, (sigma / g_max)^2)`` on every device, the one at 0 included, not
    clipped (Kern et al.'s model): ``E = g_hat``, ``Var = (sigma / g_max)^2``. With the
    differential mapping a weight reads ``w' = (g+' - g-') W_max`` with variance
    ``S^2 = 2 sigma^2 W_max^2 / g_max^2``, the weight noise of `tl.memse.Crossbar(sigma,
    levels, gmax)`: a larger `g_max` (more power) means less noise in weight units.

    Quantisation: here `levels` counts the values of one device, ``k / (levels - 1)``;
    `Crossbar(levels=N)` rounds ``|w|`` to multiples of ``W_max / N``, i.e. the grid
    ``k / N`` with N + 1 values, so `Crossbar(levels=N)` is ``levels = N + 1`` here.

    Args:
        sigma: standard deviation of one device's conductance noise, in the units of `g_max`,
            >= 0. Defaults to `0.01`.
        g_max: maximum conductance (same units as `sigma`), > 0. Defaults to `1.0`.
        levels: None or the number of conductance levels (>= 2). Defaults to `128`.
        mapping: `"differential"` or `"single"`. Defaults to `"differential"`.
        w_max: `"layer"` or `"column"`. Defaults to `"layer"`.

    Raises:
        ValueError: for a negative or non-finite `sigma`, and as `Device`.

    Example:
    >>> device = tl.analog.get("additive", sigma=0.01, g_max=2.0)
    >>> mean, var = tl.analog.weight_moments(device, kernel)   # var = 2 (0.01/2)^2 W_max^2

    Reference: Kern et al., "MemSE: Fast MSE Prediction for Noisy Memristor-Based DNN
    Accelerators", arXiv:2205.01707.
    """

    name = "additive"

    def __init__(self, sigma=0.01, g_max=1.0, levels=128, mapping="differential", w_max="layer"):
        super().__init__(g_max, levels, mapping, w_max)
        self.sigma = check_positive("sigma", sigma, allow_zero=True)

    def _sample(self, g, t, normals):
        return g + (self.sigma / self.g_max) * normals[0]

    def _moments(self, g, t):
        return g, ops.full_like(g, (self.sigma / self.g_max) ** 2)

    def get_config(self):
        return {"sigma": self.sigma, **super().get_config()}
