"""Memristor conductance noise: multiplicative variation of the programmed conductances."""

import contextlib

import keras
import numpy as np
from keras import ops

from tf_lanmax._validation import check_positive
from tf_lanmax._walk import iter_layers

NOISY_VARIABLES = ("kernel", "depthwise_kernel")


class ConductanceNoise:
    """``g = w (Gmax / Wmax) delta``, ``delta ~ N(1, sigma^2)`` i.i.d. per weight (SAMSON's model).

    Each layer's weights are mapped to conductances with the layer's own scale Gmax / Wmax
    (Wmax = max|w|); in weight units the scale cancels, so the read weight is ``w' = w delta``:
    ``E[w'] = w``, ``Var[w'] = sigma^2 w^2``. The variation applies to the magnitude on the
    active device of each differential pair, so the sign of w is what the pair encodes.

    Args:
        sigma: relative standard deviation of the conductances, >= 0. Defaults to `0.1`.
        gmax: maximum conductance (only used by `conductances`). Defaults to `1.0`.

    Example:
    >>> noise = ConductanceNoise(sigma=0.1)
    >>> with noise.applied(model, seed=0):
    ...     model.evaluate(test_ds)   # clean weights restored exactly on exit

    Reference: Mordido et al., arXiv:2211.11561; ALGORITHMS.md §6.1.
    """

    def __init__(self, sigma=0.1, gmax=1.0):
        self.sigma = check_positive("sigma", sigma, allow_zero=True)
        self.gmax = check_positive("gmax", gmax)

    def __call__(self, weights, seed=None):
        """One noisy read of `weights` (a tensor or array): ``w * delta``."""
        weights = ops.convert_to_tensor(weights)
        if self.sigma == 0:
            return weights
        delta = keras.random.normal(ops.shape(weights), 1.0, self.sigma, seed=seed)
        return weights * ops.cast(delta, weights.dtype)

    def conductances(self, weights):
        """The programmed conductances (G+, G-) of a layer: ``c max(+-w, 0)``, c = Gmax/Wmax."""
        weights = ops.convert_to_tensor(weights)
        wmax = ops.maximum(ops.max(ops.abs(weights)), 1e-12)
        c = self.gmax / wmax
        return c * ops.relu(weights), c * ops.relu(-weights)

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
