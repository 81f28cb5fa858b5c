"""Memristor conductance noise: multiplicative variation of the programmed conductances."""

import contextlib
import warnings

import keras
import numpy as np
from keras import ops

from tf_lanmax._validation import check_positive
from tf_lanmax._walk import iter_layers
from tf_lanmax.analog import Multiplicative, conductances, perturb_weights

NOISY_VARIABLES = ("kernel", "depthwise_kernel")


class _MultiplicativeNoise:
    """``w' = w delta``, ``delta ~ N(1, sigma^2)``: the multiplicative device on a layer.

    The implementation behind `ConductanceNoise` (and `evaluate_under_noise`), on top of
    `tl.analog.Multiplicative` with the differential mapping and one W_max per layer: in weight
    units the read weight is ``w' = w delta``, ``E[w'] = w``, ``Var[w'] = sigma^2 w^2``.
    """

    def __init__(self, sigma=0.1, gmax=1.0):
        gmax = check_positive("gmax", gmax)
        self.device = Multiplicative(sigma=sigma, g_max=gmax)

    @property
    def sigma(self):
        return self.device.sigma

    @property
    def gmax(self):
        return self.device.g_max

    def __call__(self, weights, seed=None):
        """One noisy read of `weights` (a tensor or array): ``w * delta``."""
        weights = ops.convert_to_tensor(weights)
        if self.sigma == 0:
            return weights
        return perturb_weights(self.device, weights, seed=seed)

    def conductances(self, weights):
        """The programmed conductances (G+, G-) of a layer: ``c max(+-w, 0)``, c = Gmax/Wmax."""
        g_plus, g_minus = conductances(self.device, weights)
        return self.gmax * g_plus, self.gmax * g_minus

    @contextlib.contextmanager
    def applied(self, model, seed=None):
        """Context in which every Conv/Dense kernel of `model` holds one fresh noisy draw.

        The clean values are copied before and assigned back on exit (also on error), so the
        weights are restored bit for bit.

        Args:
            model: a built Keras model or layer.
            seed: int seed of this draw, or None.
        """
        variables = noisy_variables(model)
        clean = [np.array(ops.convert_to_numpy(v.value), copy=True) for v in variables]
        generator = keras.random.SeedGenerator(seed)
        try:
            for v, w in zip(variables, clean, strict=True):
                v.assign(self(w, seed=generator))
            yield model
        finally:
            for v, w in zip(variables, clean, strict=True):
                v.assign(w)

    def get_config(self):
        return {"sigma": self.sigma, "gmax": self.gmax}


class ConductanceNoise(_MultiplicativeNoise):
    """Deprecated: use ``tl.analog.get("multiplicative", sigma=...)`` and `tl.analog`'s mapping.

    ``g = w (Gmax / Wmax) delta``, ``delta ~ N(1, sigma^2)`` i.i.d. per weight (SAMSON's
    model): in weight units ``w' = w delta``, ``E[w'] = w``, ``Var[w'] = sigma^2 w^2``. Kept for
    one release as a thin layer over `tl.analog.Multiplicative`; constructing it warns with a
    `DeprecationWarning`.

    Args:
        sigma: relative standard deviation of the conductances, >= 0. Defaults to `0.1`.
        gmax: maximum conductance (only used by `conductances`). Defaults to `1.0`.

    Example:
    >>> noise = ConductanceNoise(sigma=0.1)   # DeprecationWarning
    >>> with noise.applied(model, seed=0):
    ...     model.evaluate(test_ds)   # clean weights restored exactly on exit
    >>> # instead: w = tl.analog.perturb_weights(tl.analog.get("multiplicative", sigma=0.1), w)

    Reference: Mordido et al., arXiv:2211.11561.
    """

    def __init__(self, sigma=0.1, gmax=1.0):
        warnings.warn(
            "tl.noise.ConductanceNoise is deprecated and will be removed in the next release; "
            'use tl.analog.get("multiplicative", sigma=...) with tl.analog.perturb_weights.',
            DeprecationWarning,
            stacklevel=2,
        )
        super().__init__(sigma, gmax)


def noisy_variables(model):
    """The weight variables a crossbar holds: every layer's `kernel` / `depthwise_kernel`."""
    found, seen = [], set()
    for layer in iter_layers(model):
        for name in NOISY_VARIABLES:
            variable = getattr(layer, name, None)
            if isinstance(variable, keras.Variable) and id(variable) not in seen:
                seen.add(id(variable))
                found.append(variable)
    if not found:
        raise ValueError(
            f"Model '{getattr(model, 'name', model)}' has no kernel to map onto a crossbar."
        )
    return found
