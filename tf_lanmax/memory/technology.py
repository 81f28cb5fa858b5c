"""`Technology`: an SRAM's measured (voltage, BER, energy) points, with their source."""

import collections

import numpy as np

from tf_lanmax import faults
from tf_lanmax._validation import check_probability
from tf_lanmax.energy import EnergyModel, TabulatedEnergyModel
from tf_lanmax.energy.monotone import LogRateCurve
from tf_lanmax.energy.points import check_points, check_rates

#: One operating point: supply voltage in volts (None where the source gives none), bit error
#: rate per read, and read energy per bit relative to the reliable point (1 = reliable).
OperatingPoint = collections.namedtuple("OperatingPoint", ["voltage", "ber", "energy"])


class Technology:
    """An unreliable memory technology: operating points, their source and its fault behaviour.

    A technology is data: the ``(voltage, BER, energy)`` points a source published (or that
    were derived from it, as `provenance` says point by point), the share of failing cells that
    read 0, and whether a failing cell fails on every read (persistent, the usual behaviour of
    undervolted SRAM) or each read draws afresh (the exponential law's training model). From
    it come the energy model LaNMax and the summary use, the fault model to train with, and
    voltage <-> BER <-> energy conversions for reports, all interpolated monotonically in
    ln BER (PCHIP) and held at the ends of the tabulated range.

    Args:
        name: the technology's name (`tl.memory.get` key).
        points: at least 2 ``(voltage, ber, energy)`` triples, voltage in volts or None for
            every point; BERs distinct in (0, 0.5]; energy > 0 falling as the BER rises (and
            the voltage with it).
        source: the citation of the data.
        provenance: which parts of the curve are measured and which derived or assumed.
        stuck_at_0_fraction: share of failing cells that read 0, in [0, 1], or None when
            faults flip the stored bit (the exponential law's model). Defaults to `0.5`.
        persistent: whether faults persist (the same cells fail on every read). Defaults to
            `True`.
        energy_law: optional `tl.EnergyModel` the energies follow exactly (the points were made
            with it); `energy_model()` then returns the law instead of a table. Defaults to
            `None`.

    Raises:
        ValueError: naming the argument, what is allowed and the value.

    Example:
    >>> tech = tl.memory.get("yang_murmann_28nm")
    >>> tech.voltage(1e-2), tech.rate(0.70), tech.eta(1e-2)
    >>> tech.energy_model()   # a TabulatedEnergyModel for LaNMax and tl.summary
    >>> tech.fault_model()    # StuckAtMix(stuck_at_0_fraction=0.5)

    Reference: each preset cites its source (`source`); the energy law is Henwood,
    Leduc-Primeau, Savaria, arXiv:1912.10764.
    """

    def __init__(
        self,
        name,
        points,
        source,
        provenance,
        stuck_at_0_fraction=0.5,
        persistent=True,
        energy_law=None,
    ):
        for argument, value in (("name", name), ("source", source), ("provenance", provenance)):
            if not (isinstance(value, str) and value.strip()):
                raise ValueError(
                    f"`{argument}` must be a non-empty string. Received: {argument}={value!r}"
                )
        self.name = name
        self.source = source
        self.provenance = provenance
        try:
            points = list(points)
        except TypeError:
            pass  # check_points names the argument
        table = check_points(points, "points", min_points=2, monotone=True)
        if any(len(tuple(point)) != 3 for point in points):
            raise ValueError(
                "`points` must be (voltage, ber, energy) triples (voltage None where the source "
                f"gives none). Received: points={points!r}"
            )
        self.points = tuple(OperatingPoint(*point) for point in table)
        voltages = [point.voltage for point in self.points]
        if any(v is None for v in voltages) and any(v is not None for v in voltages):
            raise ValueError(
                f"`points` must give a voltage for every point or for none. Received: "
                f"points={points!r}"
            )
        self._voltages = None
        if voltages[0] is not None:
            if not all(high < low for low, high in zip(voltages, voltages[1:])):
                raise ValueError(
                    "`points` must have a voltage that falls as the BER rises. Received: "
                    f"points={points!r}"
                )
            self._voltages = LogRateCurve([p.ber for p in self.points], voltages)
        self.stuck_at_0_fraction = (
            None
            if stuck_at_0_fraction is None
            else check_probability(
                "stuck_at_0_fraction", stuck_at_0_fraction, high=1.0, low_inclusive=True
            )
        )
        self.persistent = bool(persistent)
        if energy_law is not None and not isinstance(energy_law, EnergyModel):
            raise ValueError(
                "`energy_law` must be None or a tl.EnergyModel. "
                f"Received: energy_law={energy_law!r}"
            )
        self._law = energy_law
        self._energy = self.energy_model()

    # -- what the rest of the package uses ----------------------------------------------------
    def energy_model(self):
        """A fresh energy model: the law when given, else the points tabulated (PCHIP in ln p)."""
        if self._law is not None:
            return EnergyModel.from_config(self._law.get_config())
        return TabulatedEnergyModel([(p.ber, p.energy) for p in self.points])

    def fault_model(self):
        """The fault model of a failing cell: `StuckAtMix(stuck_at_0_fraction)`, or `BitFlip()`
        when `stuck_at_0_fraction` is None. Use it with the layer's
        ``fault_persistence="persistent"`` when `persistent` is true."""
        if self.stuck_at_0_fraction is None:
            return faults.BitFlip()
        return faults.StuckAtMix(stuck_at_0_fraction=self.stuck_at_0_fraction)

    # -- conversions ---------------------------------------------------------------------------
    @property
    def has_voltages(self):
        """Whether the source gives the voltage of its points."""
        return self._voltages is not None

    @property
    def ber_range(self):
        """``(lowest, highest)`` tabulated BER."""
        return self.points[0].ber, self.points[-1].ber

    @property
    def voltage_range(self):
        """``(lowest, highest)`` tabulated voltage, or None without voltages."""
        if not self.has_voltages:
            return None
        return self.points[-1].voltage, self.points[0].voltage

    def eta(self, p):
        """Relative read energy per bit at BER `p` (the technology's energy model)."""
        return self._energy.eta(p)

    def voltage(self, p):
        """Supply voltage at BER `p` (float or array), or None when the source gives none.

        Interpolated monotonically in ln p; `p` is held inside `ber_range` (a rate below the
        lowest measured BER reads the highest measured voltage, and so on).
        """
        p_arr = check_rates(p)
        if not self.has_voltages:
            return None
        return self._voltages(p_arr)

    def rate(self, voltage):
        """BER at supply `voltage` (float or array): the inverse of `voltage(p)`.

        `voltage` is held inside `voltage_range`.

        Raises:
            ValueError: when the source gives no voltages, or for a non-finite voltage.
        """
        if not self.has_voltages:
            raise ValueError(
                f"`voltage` cannot be converted: technology '{self.name}' gives no voltages "
                f"({self.source}). Received: voltage={voltage!r}"
            )
        v = np.asarray(voltage, dtype=np.float64)
        if not np.all(np.isfinite(v)):
            raise ValueError(f"`voltage` must be finite. Received: voltage={voltage!r}")
        return self._voltages.inverse(v)

    # -- reporting ------------------------------------------------------------------------------
    def to_dict(self):
        """The technology as JSON-ready data (for report.json)."""
        return {
            "name": self.name,
            "source": self.source,
            "provenance": self.provenance,
            "points": [list(point) for point in self.points],
            "stuck_at_0_fraction": self.stuck_at_0_fraction,
            "persistent": self.persistent,
            "energy_model": self._energy.get_config(),
        }

    def __repr__(self):
        volts = (
            f"{self.voltage_range[0]:g}-{self.voltage_range[1]:g} V"
            if self.has_voltages
            else "no voltages"
        )
        low, high = self.ber_range
        return (
            f"Technology('{self.name}', {len(self.points)} points, BER {low:.3g}-{high:.3g}, "
            f"{volts})"
        )
