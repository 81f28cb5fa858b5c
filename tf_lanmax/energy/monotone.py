"""A curve tabulated against ln(BER), interpolated monotonically, with its exact inverse."""

import numpy as np
from scipy.interpolate import PchipInterpolator

from tf_lanmax.energy.points import scalar_or_array

# Bisection halves the bracket once per step: 200 steps take a bracket of ln p a few tens wide
# far below float64 resolution, so the inverse is exact to rounding.
_BISECTION_STEPS = 200


class LogRateCurve:
    """``v(p)`` through points ``(p_i, v_i)``: PCHIP in ln p, clamped to the tabulated range.

    PCHIP (Fritsch & Carlson, SIAM J. Numer. Anal. 17(2), 1980) keeps strictly monotone data
    strictly monotone between the points and passes through every point; outside
    ``[p_1, p_n]`` the curve is held at its end values. `inverse` solves ``v(p) = v`` by
    bisection on the same interpolant, so ``inverse(v(p)) = p`` inside the range.

    Args:
        bers: strictly increasing BERs in (0, 0.5].
        values: strictly monotone values (energies, voltages), one per BER.

    Example:
    >>> curve = LogRateCurve([1e-4, 1e-2], [0.7, 0.4])
    >>> curve(1e-3), curve.inverse(curve(1e-3))  # 0.55, 1e-3
    """

    def __init__(self, bers, values):
        self.bers = np.asarray(bers, dtype=np.float64)
        self.values = np.asarray(values, dtype=np.float64)
        self._log_bers = np.log(self.bers)
        self._curve = PchipInterpolator(self._log_bers, self.values, extrapolate=False)
        self._sign = 1.0 if self.values[-1] > self.values[0] else -1.0

    def __call__(self, p):
        """The value at BER `p` (float or array), `p` clamped into the tabulated range."""
        log_p = np.log(np.clip(np.asarray(p, dtype=np.float64), self.bers[0], self.bers[-1]))
        return scalar_or_array(self._curve(log_p))

    def inverse(self, value):
        """The BER where the curve takes `value` (float or array), `value` clamped to the range."""
        target = np.clip(np.asarray(value, dtype=np.float64), self.values.min(), self.values.max())
        low = np.full(target.shape, self._log_bers[0])
        high = np.full(target.shape, self._log_bers[-1])
        for _ in range(_BISECTION_STEPS):
            middle = 0.5 * (low + high)
            below = self._sign * (self._curve(middle) - target) < 0
            low = np.where(below, middle, low)
            high = np.where(below, high, middle)
        return scalar_or_array(np.exp(0.5 * (low + high)))
