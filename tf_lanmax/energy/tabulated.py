"""Read energy per bit tabulated at measured fault rates, interpolated monotonically in ln p."""

import keras
import numpy as np

from tf_lanmax.energy.monotone import LogRateCurve
from tf_lanmax.energy.points import check_points, check_rates


@keras.saving.register_keras_serializable(package="tf_lanmax")
class TabulatedEnergyModel:
    """Energy per stored bit read at fault rate p, from measured ``(p, energy)`` points.

    Between the points the energy is a PCHIP interpolant in ln p (Fritsch & Carlson, SIAM J.
    Numer. Anal. 17(2), 1980, via `scipy.interpolate.PchipInterpolator`): exact at every
    point and strictly decreasing between them, as the energy of an undervolted memory falls
    while its BER rises. It has the protocol of `tl.EnergyModel` (`p0`, `eta`, `rate`,
    `energy`, `mean_energy`, `get_config`), so LaNMax, `tl.memory_energy` and `tl.summary`
    take it in place of the exponential law.

    The table fixes the range it knows: `p0` is its most reliable (lowest) fault rate and
    `p_max` its highest. `eta(p)` holds p inside ``[p0, p_max]``: below `p0` (0 included) a bit
    costs ``eta(p0)``, above `p_max` it costs ``eta(p_max)`` — the memory is not known to run
    there, so no saving beyond the last measured point is claimed. `rate(eta)` is the exact
    inverse of `eta` on that range (bisection on the interpolant), clamped likewise.
    Energies are relative to the reliable operating point (1 = a bit in reliable memory);
    put the reliable point in the table to have ``eta(p0) = 1``.

    Args:
        points: at least 2 ``(p, energy)`` pairs (or ``(voltage, p, energy)`` triples, voltage
            ignored) with distinct p in (0, 0.5] and energy > 0 falling strictly as p rises, in
            any order.

    Raises:
        ValueError: naming `points`, what is allowed and the offending entry.

    Example:
    >>> model = TabulatedEnergyModel([(2.76e-6, 1.0), (1e-3, 0.55), (1e-2, 0.36)])
    >>> model.eta(1e-3)               # 0.55, a tabulated point
    >>> model.rate(model.eta(3e-3))   # 3e-3
    >>> model.eta(0.2)                # 0.36: clamped to the table's last point

    Reference: Henwood et al., arXiv:1912.10764 (the energy-reliability trade-off LaNMax
    optimises); Fritsch & Carlson, SIAM J. Numer. Anal. 17(2), 1980 (PCHIP).
    """

    def __init__(self, points):
        table = check_points(points, "points", min_points=2, monotone=True)
        self.points = tuple((ber, energy) for _, ber, energy in table)
        bers, energies = zip(*self.points, strict=True)
        self._curve = LogRateCurve(bers, energies)

    @property
    def p0(self):
        """The most reliable tabulated fault rate."""
        return self.points[0][0]

    @property
    def p_max(self):
        """The least reliable tabulated fault rate."""
        return self.points[-1][0]

    def eta(self, p):
        """Relative read energy per bit at fault rate `p` (float or array), clamped to the table.

        Raises:
            ValueError: if some p is outside [0, 0.5] or NaN.
        """
        return self._curve(check_rates(p))

    def rate(self, eta):
        """The fault rate whose energy is `eta` (float or array), clamped to ``[p0, p_max]``."""
        eta_arr = np.asarray(eta, dtype=np.float64)
        if not np.all(np.isfinite(eta_arr)):
            raise ValueError(f"`eta` must be finite. Received: eta={eta!r}")
        return self._curve.inverse(eta_arr)

    def energy(self, bits, p):
        """Memory energy of `bits` stored bits read at rate `p`: ``bits * eta(p)``."""
        return np.asarray(bits, dtype=np.float64) * self.eta(p)

    def mean_energy(self, bits, rates):
        """Bit-weighted mean energy ``sum_l B_l eta(p_l) / sum_l B_l``."""
        bits = np.asarray(bits, dtype=np.float64)
        return float(np.sum(self.energy(bits, rates)) / np.sum(bits))

    def get_config(self):
        return {"points": [[ber, energy] for ber, energy in self.points]}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        low, high = self.points[0], self.points[-1]
        return (
            f"TabulatedEnergyModel({len(self.points)} points, p in [{low[0]:.3g}, "
            f"{high[0]:.3g}], eta in [{high[1]:.3g}, {low[1]:.3g}])"
        )
