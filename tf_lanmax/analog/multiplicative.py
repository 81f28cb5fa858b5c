"""SAMSON's multiplicative conductance variation: ``g' = g delta``, ``delta ~ N(1, sigma^2)``."""

import keras

from tf_lanmax._validation import check_positive
from tf_lanmax.analog.device import Device


@keras.saving.register_keras_serializable(package="tf_lanmax")
class Multiplicative(Device):
    """Multiplicative variation of every programmed conductance, no drift.

    ``g' = g delta`` with ``delta ~ N(1, sigma^2)`` i.i.d. per device, not clipped (the model
    of Mordido et al., whose analysis needs the exact law): ``E[g'] = g``,
    ``Var[g'] = sigma^2 g^2``. With the differential mapping a weight's idle device holds 0, so
    in weight units ``w' = w delta``: ``E[w'] = w``, ``Var[w'] = sigma^2 w^2``, whatever
    `g_max` and W_max are.

    Args:
        sigma: relative standard deviation of the conductances, >= 0. Defaults to `0.1`.
        g_max: maximum conductance in uS (the noise is relative, so only the physical scale).
            Defaults to `1.0`.
        levels: None or the number of conductance levels (>= 2). Defaults to `None`.
        mapping: `"differential"` or `"single"`. Defaults to `"differential"`.
        w_max: `"layer"` or `"column"`. Defaults to `"layer"`.

    Raises:
        ValueError: for a negative or non-finite `sigma`, and as `Device`.

    Example:
    >>> device = tl.analog.get("multiplicative", sigma=0.1)
    >>> w_noisy = tl.analog.perturb_weights(device, kernel, seed=0)   # kernel * N(1, 0.01)

    Reference: Mordido et al., "SAMSON: Sharpness-Aware Minimization Scaled by Outlier
    Normalization for Improving DNN Generalization and Robustness", arXiv:2211.11561.
    """

    name = "multiplicative"

    def __init__(self, sigma=0.1, g_max=1.0, levels=None, mapping="differential", w_max="layer"):
        super().__init__(g_max, levels, mapping, w_max)
        self.sigma = check_positive("sigma", sigma, allow_zero=True)

    def _sample(self, g, t, normals):
        return g * (1.0 + self.sigma * normals[0])

    def _moments(self, g, t):
        return g, (self.sigma * g) ** 2

    def get_config(self):
        return {"sigma": self.sigma, **super().get_config()}
