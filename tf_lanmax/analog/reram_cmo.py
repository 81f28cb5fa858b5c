"""CMO/HfOx ReRAM of IBM Research Zurich (aihwkit `ReRamCMONoiseModel`)."""

import math
import warnings

import keras
from keras import ops

from tf_lanmax._validation import check_one_of, check_positive
from tf_lanmax.analog import normal
from tf_lanmax.analog.device import Device

#: Programming spread ``c0 + c1 G`` (uS, G in uS) per program-and-verify acceptance range.
PROGRAMMING = {0.002: (0.00081107, 0.00106879), 0.02: (0.0112185391, 0.01129027418)}

#: Relaxation: the mean moves by ``-0.08900206 ln t``, spread ``0.04201137 ln t + 0.41183342``.
RELAXATION_SHIFT = -0.08900206
RELAXATION_SPREAD = (0.41183342, 0.04201137)

#: Read (1/f) noise: ``0.0277316483 |log10 G| sqrt(ln((t + t_read) / (2 t_read)))`` uS.
READ_K = 0.0277316483
READ_T = 1e-6

#: Earliest time of the relaxation fit used (s).
FIRST_TIME = 1.0

_LOG_FLOOR = 1e-3  # uS: log10 G is taken of max(G, 1e-3 uS)


@keras.saving.register_keras_serializable(package="tf_lanmax")
class ReRamCMO(Device):
    """Conductive-metal-oxide / HfOx ReRAM: programming, relaxation and read noise in uS.

    For a normalised target ``g`` the device is programmed to ``G = g_min + g (g_max - g_min)``
    (aihwkit's `SingleDeviceConductanceConverter` window; normalised values here are fractions
    of this window, so ``g' = (G' - g_min) / (g_max - g_min)``), then, with t = t_inference in
    seconds since programming:

    1. programming: ``G_p = G + (c0 + c1 G) z1`` (not clipped), with ``(c0, c1)`` =
       (0.000811, 0.001069) at the 0.2 % acceptance range, (0.01122, 0.01129) at 2 %;
    2. relaxation: ``G_r = G_p - 0.0890 ln t + (0.04201 ln t + 0.41183) z2``;
    3. read noise: ``G' = G_r + 0.02773 |log10 G_r| sqrt(ln((t + 1 us) / (2 us))) z3``, clipped
       to [g_min, g_max].

    As in aihwkit the coefficients are absolute (uS, G in uS, not scaled with g_max), time has
    no offset t0, and the read noise depends on the relaxed conductance. Choices made here:
    times below 1 s are read as 1 s with a `UserWarning` (the fit is in ln t: below 1 s the mean
    shift changes sign and the spread reaches 0 near 5e-5 s; aihwkit returns the bare programmed
    value at exactly t = 0); the read spread uses ``|log10 max(G_r, 1e-3 uS)|``, the same law as
    aihwkit's signed factor times a symmetric normal, defined for every G_r. aihwkit uses one
    device per weight, so the default `mapping` is `"single"`.

    `moments` integrates the relaxed conductance (a normal) by Gauss-Legendre quadrature over
    the closed-form moments of the clipped read normal.

    Args:
        acceptance_range: the program-and-verify tolerance, 0.002 (0.2 %) or 0.02 (2 %).
            Defaults to `0.002`.
        g_max: maximum conductance in uS. Defaults to `88.2`.
        g_min: minimum conductance in uS, in [0, g_max). Defaults to `9.0`.
        levels: None or the number of conductance levels (>= 2). Defaults to `None`.
        mapping: `"single"` or `"differential"`. Defaults to `"single"`.
        w_max: `"layer"` or `"column"`. Defaults to `"layer"`.

    Raises:
        ValueError: for another `acceptance_range`, `g_min` outside [0, g_max), and as `Device`.

    Example:
    >>> cmo = tl.analog.get("reram_cmo", acceptance_range=0.02)
    >>> cmo.sample([0.2, 0.8], t_inference=3600.0, seed=0)

    References: Falcone et al. (IBM Research Europe - Zurich, CMO/HfOx ReRAM characterisation,
    in review per aihwkit); Lombardo et al., DRC 2024 (read noise); aihwkit
    `ReRamCMONoiseModel`.
    """

    name = "reram_cmo"
    has_drift = True
    stages = 3

    def __init__(
        self,
        acceptance_range=0.002,
        g_max=88.2,
        g_min=9.0,
        levels=None,
        mapping="single",
        w_max="layer",
    ):
        super().__init__(g_max, levels, mapping, w_max)
        self.acceptance_range = check_one_of("acceptance_range", acceptance_range, PROGRAMMING)
        self.g_min = check_positive("g_min", g_min, allow_zero=True)
        if self.g_min >= self.g_max:
            raise ValueError(
                f"`g_min` must be in [0, g_max={self.g_max:g}). Received: g_min={g_min!r}"
            )

    def _time(self, t_inference):
        t = super()._time(t_inference)
        if t < FIRST_TIME:
            warnings.warn(
                f"reram_cmo's relaxation fit is in ln t from {FIRST_TIME:g} s; "
                f"t_inference={t!r} s is read as {FIRST_TIME:g} s.",
                UserWarning,
                stacklevel=3,
            )
            t = FIRST_TIME
        return t

    @property
    def _window(self):
        return self.g_max - self.g_min

    def _relaxed(self, g, t):
        # Mean and sd (uS) of the programmed-and-relaxed conductance G_r, a normal.
        siemens = self.g_min + g * self._window
        c0, c1 = PROGRAMMING[self.acceptance_range]
        programming = c0 + c1 * siemens
        relaxation = RELAXATION_SPREAD[0] + RELAXATION_SPREAD[1] * math.log(t)
        return siemens + RELAXATION_SHIFT * math.log(t), programming, abs(relaxation)

    def _read_sd(self, siemens, t):
        factor = math.sqrt(math.log((t + READ_T) / (2.0 * READ_T)))
        return READ_K * factor * ops.abs(ops.log10(ops.maximum(siemens, _LOG_FLOOR)))

    def _sample(self, g, t, normals):
        mean, programming, relaxation = self._relaxed(g, t)
        relaxed = mean + programming * normals[0] + relaxation * normals[1]
        read = relaxed + self._read_sd(relaxed, t) * normals[2]
        return (ops.clip(read, self.g_min, self.g_max) - self.g_min) / self._window

    def _moments(self, g, t):
        mean, programming, relaxation = self._relaxed(g, t)
        sd = ops.sqrt(programming * programming + relaxation * relaxation)

        def read(x):
            e1, e2 = normal.clipped_central(x, self._read_sd(x, t), self.g_min, self.g_max)
            offset = x - mean[..., None]
            return e1 + offset, e2 + 2.0 * offset * e1 + offset * offset

        breaks = (self.g_min, self.g_max, 1.0, _LOG_FLOOR)
        first, second = normal.normal_expectation(read, mean, sd, breaks)
        variance = ops.maximum(second - first * first, 0.0)
        return (mean + first - self.g_min) / self._window, variance / self._window**2

    def get_config(self):
        return {
            "acceptance_range": self.acceptance_range,
            **super().get_config(),
            "g_min": self.g_min,
        }
