"""Confidence intervals across Monte-Carlo draws (float64, Student t), and how many draws.

`Interval` and `t_interval` are the package's one Student-t helper (shared with
`tl.memse.monte_carlo`, defined in `tf_lanmax._intervals`), re-exported here.
"""

import math

import numpy as np
from scipy import stats

from tf_lanmax._intervals import Interval, t_interval
from tf_lanmax._validation import check_probability

__all__ = ["Interval", "draws_for_half_width", "quantile_lower_bound", "t_interval"]


def draws_for_half_width(std, half_width, confidence=0.95, min_draws=5):
    """Smallest K with ``t_(K-1) std / sqrt(K) <= half_width`` (t iterated at the new K).

    Args:
        std: pilot standard deviation across draws.
        half_width: the target half-width h* > 0.
        confidence: coverage. Defaults to `0.95`.
        min_draws: lower bound on K. Defaults to `5`.

    Returns:
        An int K.
    """
    confidence = check_probability("confidence", confidence, high=1.0 - 1e-12)
    if not half_width > 0:
        raise ValueError(f"`half_width` must be > 0. Received: half_width={half_width!r}")
    if not (math.isfinite(std) and std >= 0):
        raise ValueError(f"`std` must be a finite number >= 0. Received: std={std!r}")
    # The normal quantile is below every t quantile, so this K is a lower bound; t_(K-1)/sqrt(K)
    # decreases in K, so the first K that passes going up is the smallest.
    z = stats.norm.ppf(0.5 + confidence / 2.0)
    k = max(min_draws, 2, math.ceil((z * std / half_width) ** 2))
    while stats.t.ppf(0.5 + confidence / 2.0, k - 1) * std / math.sqrt(k) > half_width:
        k += 1
    return k


def quantile_lower_bound(samples, q, confidence=0.95):
    """Distribution-free lower confidence bound of the `q`-quantile: an order statistic.

    With K i.i.d. samples sorted as ``x_(1) <= ... <= x_(K)``, ``x_(r) <= xi_q`` holds when at
    least r samples fall at or below the quantile ``xi_q``, so ``P(x_(r) <= xi_q) >=
    P(Binomial(K, q) >= r)`` for any distribution (equal for a continuous one). The bound is
    ``x_(r)`` with the largest r whose probability is at least `confidence`. Read for chips: with
    that confidence, a fraction ``1 - q`` of all chips reach at least the bound. It exists only
    once ``1 - (1 - q)**K >= confidence``, i.e. ``K >= log(1 - confidence) / log(1 - q)``
    (59 samples for q = 0.05 at 95 %, 29 for q = 0.1).

    Args:
        samples: 1-D array of finite values (per-chip accuracies).
        q: the quantile level, in (0, 1).
        confidence: the coverage in (0, 1). Defaults to `0.95`.

    Returns:
        The bound as a float, or None when there are too few samples for one.

    Example:
    >>> quantile_lower_bound(np.arange(100.0), 0.05)  # x_(2): P(Bin(100, .05) >= 2) = 0.963
    1.0
    """
    q = check_probability("q", q, high=1.0 - 1e-12)
    confidence = check_probability("confidence", confidence, high=1.0 - 1e-12)
    x = np.sort(np.asarray(samples, dtype=np.float64).ravel())
    ranks = np.arange(1, x.size + 1)
    # P(Bin(K, q) >= r) falls as r grows: the ranks that reach the confidence are a prefix.
    reached = ranks[stats.binom.sf(ranks - 1, x.size, q) >= confidence]
    return float(x[reached[-1] - 1]) if reached.size else None
