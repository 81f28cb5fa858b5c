"""The energy-reliability law of unreliable memory: eta(p) = -ln(p) / a."""

import math

import keras
import numpy as np

from tf_lanmax._validation import check_positive
from tf_lanmax.energy.points import check_points

DEFAULT_A = 12.8


@keras.saving.register_keras_serializable(package="tf_lanmax")
class EnergyModel:
    """Read energy per stored bit as a function of the bit fault rate p.

    ``p(eta) = exp(-a eta)``, so ``eta(p) = -ln(p) / a``, normalised so that the reliable
    operating point ``p0 = exp(-a)`` costs ``eta = 1``. p is clipped to ``[p0, 0.5]``, which keeps
    ``d eta / d ln p = -1/a`` exact inside the box. With `zero_energy_at_half` a coin-flip memory
    (p = 0.5) costs nothing, as in the FaultyMemory lineage (discontinuous at 0.5).

    Args:
        a: technology constant a > 0. Defaults to `12.8` (p0 ~ 2.76e-6).
        zero_energy_at_half: whether eta(0.5) = 0. Defaults to `False`.

    Example:
    >>> EnergyModel(a=12.8).eta(1e-2)  # 0.3598
    >>> EnergyModel().rate(0.5)        # the p that costs half the reliable energy
    >>> EnergyModel.fit([(1e-5, 0.9), (1e-2, 0.36)]).a  # a fitted to measured points

    Reference: Henwood, Leduc-Primeau, Savaria, arXiv:1912.10764 (AICAS 2020).
    """

    @classmethod
    def fit(cls, points, zero_energy_at_half=False):
        """The law whose `a` fits measured points best: least squares on ln p against energy.

        The law says ``ln p = -a eta``, a line through the origin, so minimising
        ``sum_i (ln p_i + a eta_i)**2`` gives ``a = -sum_i eta_i ln p_i / sum_i eta_i**2`` in
        closed form. Points made with the law give back its `a` to rounding.

        Args:
            points: one or more ``(p, energy)`` pairs or ``(voltage, p, energy)`` triples
                (e.g. a `tl.memory` technology's `points`), p in (0, 0.5], energy > 0
                relative to the reliable operating point. Noisy, repeated or non-monotone
                points are allowed.
            zero_energy_at_half: passed to the model. Defaults to `False`.

        Returns:
            An `EnergyModel`.

        Raises:
            ValueError: naming `points` for a bad point, or when the fitted a is <= ln 2 (the
                points then put the reliable rate p0 = exp(-a) above 0.5).

        Example:
        >>> EnergyModel.fit([(math.exp(-7.0 * e), e) for e in (0.2, 0.5, 1.0)]).a  # 7.0
        """
        table = check_points(points, "points", min_points=1, monotone=False)
        log_p = np.log(np.array([ber for _, ber, _ in table]))
        eta = np.array([energy for _, _, energy in table])
        a = float(-np.sum(eta * log_p) / np.sum(eta * eta))
        if not a > math.log(2.0):
            raise ValueError(
                f"`points` must fit a law with a > ln 2 (so that p0 = exp(-a) < 0.5); they fit "
                f"a={a:.6g}. Received: points={points!r}"
            )
        return cls(a=a, zero_energy_at_half=zero_energy_at_half)

    def __init__(self, a=DEFAULT_A, zero_energy_at_half=False):
        self.a = check_positive("a", a)
        if self.a <= math.log(2.0):
            # p0 = exp(-a) must be a usable fault rate, below 0.5.
            raise ValueError(f"`a` must be > ln 2 (so that p0 = exp(-a) < 0.5). Received: a={a!r}")
        self.zero_energy_at_half = bool(zero_energy_at_half)

    @property
    def p0(self):
        """The reliable fault rate exp(-a), where eta = 1."""
        return math.exp(-self.a)

    def eta(self, p):
        """Normalised read energy per bit at fault rate `p` (float or array; 0 reads as p0).

        Returns:
            A float (for a scalar `p`) or a float64 array.
        """
        p_arr = np.asarray(p, dtype=np.float64)
        if np.any(np.isnan(p_arr)) or np.any(p_arr < 0) or np.any(p_arr > 0.5):
            raise ValueError(f"`p` must be in [0, 0.5]. Received: p={p!r}")
        clipped = np.clip(p_arr, self.p0, 0.5)
        out = -np.log(clipped) / self.a
        if self.zero_energy_at_half:
            out = np.where(p_arr >= 0.5, 0.0, out)
        return float(out) if out.ndim == 0 else out

    def rate(self, eta):
        """Inverse law: the fault rate p(eta) = exp(-a eta), clipped to [p0, 0.5]."""
        eta_arr = np.asarray(eta, dtype=np.float64)
        out = np.clip(np.exp(-self.a * eta_arr), self.p0, 0.5)
        return float(out) if out.ndim == 0 else out

    def energy(self, bits, p):
        """Memory energy of `bits` stored bits read at rate `p`: ``bits * eta(p)``."""
        return np.asarray(bits, dtype=np.float64) * self.eta(p)

    def mean_energy(self, bits, rates):
        """Bit-weighted mean energy ``sum_l B_l eta(p_l) / sum_l B_l`` (1 = all reliable)."""
        bits = np.asarray(bits, dtype=np.float64)
        return float(np.sum(self.energy(bits, rates)) / np.sum(bits))

    def get_config(self):
        return {"a": self.a, "zero_energy_at_half": self.zero_energy_at_half}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"EnergyModel(a={self.a!r}, zero_energy_at_half={self.zero_energy_at_half!r})"
