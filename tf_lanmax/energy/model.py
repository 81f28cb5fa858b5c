"""The energy-reliability law of unreliable memory: eta(p) = -ln(p) / a."""

import math

import numpy as np

from tf_lanmax._validation import check_positive

DEFAULT_A = 12.8


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

    Reference: Henwood et al., arXiv:1912.10764; ALGORITHMS.md §1.
    """

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

    def __repr__(self):
        return f"EnergyModel(a={self.a!r}, zero_energy_at_half={self.zero_energy_at_half!r})"
