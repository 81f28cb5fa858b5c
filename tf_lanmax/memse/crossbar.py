"""`Crossbar`: how a layer's weights become noisy memristor conductances.

One configuration object is shared by the analytic mirror (`MemSE`, which asks it for the mean
and variance of every effective weight) and by the sampled reference (`monte_carlo`, which asks
it for weight draws), so both always see the very same noise model.
"""

import math
import numbers

import keras
from keras import ops
from keras import random as krandom

from tf_lanmax._config import ConfigValue
from tf_lanmax._validation import check_bool, check_int, check_one_of, check_positive

QUANTIZATION_MODES = ("exact", "noise")
ROUNDING_MODES = ("nearest", "floor")


@keras.saving.register_keras_serializable(package="tf_lanmax")
class Crossbar(ConfigValue):
    """Memristor crossbar mapping with differential pairs, quantisation and programming noise.

    A layer with kernel ``W`` and ``Wmax = max |W|`` is stored with the scale ``c = Gmax / Wmax``
    on a differential pair per weight (after Kern et al., MemSE):

        G+ = c max(W, 0),   G- = c max(-W, 0),   W_eff = (G+_q + e+ - G-_q - e-) / c,

    where ``G_q`` is the conductance quantised to ``levels`` levels of ``Delta = Gmax / levels``
    and ``e+-`` are independent programming noises ``N(0, sigma^2)`` on both devices (the device
    at 0 included). In weight units the effective weight is the quantised weight plus zero-mean
    noise of variance ``S^2 = 2 sigma^2 Wmax^2 / Gmax^2``, identical for every weight of a layer.
    Quantisation does not depend on Gmax in weight units (``Delta / c = Wmax / levels``).

    Args:
        sigma: standard deviation of the conductance noise of one device, in the units of Gmax,
            >= 0. Defaults to `0.01`.
        levels: number of conductance levels N (>= 2), or `None` for analog (unquantised)
            devices. Defaults to `128`.
        gmax: the maximal conductance: one float for every layer, or a dict
            {layer name: float} with one entry per crossbar-mapped layer. Defaults to `1.0`.
        quantization: how the analytic mirror treats quantisation: `"exact"` propagates the
            deterministic quantised weight (the error shows in the bias term) or `"noise"`
            models it as independent uniform noise of variance ``(Wmax/N)^2 / 12`` around the
            float weight. The Monte-Carlo reference always quantises exactly. Defaults to
            `"exact"`.
        rounding: the quantiser, `"nearest"` or `"floor"` (the MemSE reference code's, biased by
            -Delta/2). Defaults to `"nearest"`.
        tia_gain: transimpedance gain r of the column amplifiers (power model only).
            Defaults to `1.0`.
        fold_batchnorm: fold an inference BatchNormalization that directly follows a Dense or
            convolution into its kernel before mapping (this changes Wmax and thus the noise),
            as the MemSE reference does; else BN stays a reliable digital affine map.
            Defaults to `True`.

    Example:
    >>> cb = Crossbar(sigma=0.01, levels=128, gmax=2.0)
    >>> cb.weight_noise_variance(wmax=0.5, gmax=2.0)  # 2 sigma^2 Wmax^2 / Gmax^2
    1.25e-05

    Reference: Kern et al., "MemSE: Fast MSE Prediction for Noisy Memristor-Based DNN
    Accelerators", arXiv:2205.01707.
    """

    def __init__(
        self,
        sigma=0.01,
        levels=128,
        gmax=1.0,
        quantization="exact",
        rounding="nearest",
        tia_gain=1.0,
        fold_batchnorm=True,
    ):
        self.sigma = check_positive("sigma", sigma, allow_zero=True)
        self.levels = None if levels is None else check_int("levels", levels, low=2)
        self.gmax = _check_gmax(gmax)
        self.quantization = check_one_of("quantization", quantization, QUANTIZATION_MODES)
        self.rounding = check_one_of("rounding", rounding, ROUNDING_MODES)
        self.tia_gain = check_positive("tia_gain", tia_gain)
        self.fold_batchnorm = check_bool("fold_batchnorm", fold_batchnorm)

    # -- configuration ---------------------------------------------------------------------

    def gmax_for(self, name):
        """The Gmax of the layer called `name` (float)."""
        if isinstance(self.gmax, dict):
            if name not in self.gmax:
                raise ValueError(
                    f"`gmax` has no entry for the crossbar-mapped layer '{name}'. "
                    f"Allowed: a float, or a dict with every mapped layer. "
                    f"Received: gmax keys={sorted(self.gmax)}"
                )
            return self.gmax[name]
        return self.gmax

    def with_gmax(self, gmax):
        """A copy of this crossbar with another `gmax` (float or {layer name: float})."""
        config = self.get_config()
        config["gmax"] = gmax
        return Crossbar(**config)

    def weight_noise_variance(self, wmax, gmax):
        """Variance ``2 sigma^2 Wmax^2 / Gmax^2`` of one effective weight (Python floats)."""
        return 2.0 * self.sigma**2 * (wmax / gmax) ** 2

    # -- keras.ops maths shared by the mirror and the Monte-Carlo reference ---------------

    def wmax(self, kernel):
        """``Wmax = max |W|`` of a kernel (scalar tensor, with gradient)."""
        return ops.maximum(ops.max(ops.abs(kernel)), 1e-12)

    def quantize(self, kernel):
        """The quantised effective weight ``sign(W) (Wmax/N) round(N |W| / Wmax)``.

        Only the active device of a pair carries the weight, so quantising the magnitude is
        quantising that device's conductance. The gradient passes straight through.
        """
        if self.levels is None:
            return kernel
        step = ops.stop_gradient(self.wmax(kernel)) / self.levels
        codes = ops.abs(kernel) / step
        codes = ops.floor(codes) if self.rounding == "floor" else ops.round(codes)
        quantized = ops.sign(kernel) * codes * step
        return kernel + ops.stop_gradient(quantized - kernel)

    def kernel_moments(self, kernel, gmax):
        """Mean and variance of the effective weights of a layer mapped with `gmax`.

        Args:
            kernel: the (folded) float kernel.
            gmax: scalar Gmax (float or tensor, differentiable).

        Returns:
            `(mean, variance)`: the mean kernel and the scalar variance ``S^2`` shared by every
            weight (plus ``(Wmax/N)^2/12`` in `"noise"` quantisation mode).
        """
        wmax = self.wmax(kernel)
        var = 2.0 * self.sigma**2 * ops.square(wmax / gmax)
        if self.levels is not None and self.quantization == "noise":
            return kernel, var + ops.square(wmax / self.levels) / 12.0
        return self.quantize(kernel), var

    def sample_kernels(self, kernel, gmax, draws, seed):
        """`draws` independent effective kernels, stacked on a new leading axis.

        The two devices' noises ``e+ - e-`` are summed as one ``N(0, 2 sigma^2)`` draw, which
        has the same law.

        Args:
            kernel: the (folded) float kernel.
            gmax: scalar Gmax.
            draws: number of draws D.
            seed: a `keras.random.SeedGenerator` or int.

        Returns:
            A tensor of shape ``(draws,) + kernel.shape``.
        """
        kernel = ops.convert_to_tensor(kernel)
        quantized = ops.expand_dims(self.quantize(kernel), 0)
        if self.sigma == 0:
            return ops.repeat(quantized, draws, axis=0)
        scale = math.sqrt(2.0) * self.sigma * self.wmax(kernel) / gmax
        noise = krandom.normal((draws,) + tuple(kernel.shape), seed=seed)
        return quantized + ops.cast(scale, noise.dtype) * noise

    def conductances(self, kernel, gmax):
        """Programmed (quantised, noise-free) conductances ``(G+, G-)`` of the pairs."""
        c = gmax / self.wmax(kernel)
        quantized = self.quantize(kernel)
        return c * ops.relu(quantized), c * ops.relu(-quantized)

    # -- serialisation ----------------------------------------------------------------------

    def get_config(self):
        gmax = dict(self.gmax) if isinstance(self.gmax, dict) else self.gmax
        return {
            "sigma": self.sigma,
            "levels": self.levels,
            "gmax": gmax,
            "quantization": self.quantization,
            "rounding": self.rounding,
            "tia_gain": self.tia_gain,
            "fold_batchnorm": self.fold_batchnorm,
        }


def _check_gmax(gmax):
    if isinstance(gmax, dict):
        if not gmax:
            raise ValueError("`gmax` must be a float > 0 or a non-empty dict. Received: gmax={}")
        return {str(k): check_positive(f"gmax['{k}']", v) for k, v in gmax.items()}
    if isinstance(gmax, numbers.Real):
        return check_positive("gmax", gmax)
    raise ValueError(
        f"`gmax` must be a float > 0 or a dict {{layer name: float > 0}}. Received: gmax={gmax!r}"
    )
