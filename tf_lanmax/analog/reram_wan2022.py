"""ReRAM of Wan et al., Nature 2022 (aihwkit `ReRamWan2022NoiseModel`)."""

import bisect
import math
import warnings

import keras
from keras import ops

from tf_lanmax.analog import normal
from tf_lanmax.analog.device import Device
from tf_lanmax.analog.pcm_like import polynomial

#: Times (s after programming) at which the spread was tabulated: 1 s, 1 day, 2 days.
TIMES = (1.0, 86400.0, 172800.0)

#: The total spread sigma(g) in uS at each time: coefficients of g^0 .. g^4 (g = G / 40 uS).
SPREADS = (
    (0.348, 16.030, -43.853, 45.393, -16.815),
    (0.701, 22.086, -50.773, 47.095, -16.458),
    (0.782, 20.274, -43.507, 37.062, -11.934),
)

REFERENCE_G_MAX = 40.0


@keras.saving.register_keras_serializable(package="tf_lanmax")
class ReRamWan2022(Device):
    """ReRAM whose conductance spread grows after programming (NeuRRAM data).

    ``g' = max(g + sigma(g, t) / 40 uS * z, 0)``: one normal deviation of the target per
    device, with the total spread ``sigma(g, t)`` (programming and relaxation together, in uS
    at g_max = 40 uS; scaled with g_max as aihwkit does, so normalised results do not depend on
    `g_max`) fitted by a degree-4 polynomial in g at 1 s, 1 day and 2 days:

    - 1 s: ``0.348 + 16.030 g - 43.853 g^2 + 45.393 g^3 - 16.815 g^4``;
    - 1 day: ``0.701 + 22.086 g - 50.773 g^2 + 47.095 g^3 - 16.458 g^4``;
    - 2 days: ``0.782 + 20.274 g - 43.507 g^2 + 37.062 g^3 - 11.934 g^4``.

    Between tabulated times sigma is interpolated linearly in ln t (aihwkit accepts only the
    tabulated times); outside [1 s, 2 days] the nearest tabulated time is used and a
    `UserWarning` names the time. The readout is clipped at 0 (a conductance is not negative),
    which raises the mean of low targets. The same seed gives the same standard deviate z at
    every time, so a chip's deviations grow with the spread.

    Args:
        g_max: maximum conductance in uS. Defaults to `40.0`.
        levels: None or the number of conductance levels (>= 2). Defaults to `None`.
        mapping: `"differential"` or `"single"`. Defaults to `"differential"`.
        w_max: `"layer"` or `"column"`. Defaults to `"layer"`.

    Raises:
        ValueError: as `Device`.

    Example:
    >>> reram = tl.analog.get("reram_wan2022")
    >>> mean, var = reram.moments([0.1, 0.9], t_inference=86400.0)

    References: Wan et al., "A compute-in-memory chip based on resistive random-access
    memory", Nature 608, 504 (2022); aihwkit `ReRamWan2022NoiseModel`.
    """

    name = "reram_wan2022"
    has_drift = True

    def __init__(self, g_max=40.0, levels=None, mapping="differential", w_max="layer"):
        super().__init__(g_max, levels, mapping, w_max)

    def _time(self, t_inference):
        t = super()._time(t_inference)
        if t < TIMES[0] or t > TIMES[-1]:
            nearest = min(max(t, TIMES[0]), TIMES[-1])
            warnings.warn(
                f"reram_wan2022 is tabulated between {TIMES[0]:g} s and {TIMES[-1]:g} s; "
                f"t_inference={t!r} s is read as {nearest:g} s.",
                UserWarning,
                stacklevel=3,
            )
            t = nearest
        return t

    def spread(self, g, t):
        """The normalised spread ``sigma(g, t) / 40 uS`` at a time t in [1 s, 2 days]."""
        i = min(bisect.bisect_right(TIMES, t) - 1, len(TIMES) - 2)
        w = (math.log(t) - math.log(TIMES[i])) / (math.log(TIMES[i + 1]) - math.log(TIMES[i]))
        sigma = (1.0 - w) * polynomial(SPREADS[i], g) + w * polynomial(SPREADS[i + 1], g)
        return ops.abs(sigma) / REFERENCE_G_MAX

    def _sample(self, g, t, normals):
        return ops.relu(g + self.spread(g, t) * normals[0])

    def _moments(self, g, t):
        return normal.rectified_moments(g, self.spread(g, t))
