"""The Student-t confidence interval of a mean over Monte-Carlo draws (float64).

One helper for every Monte-Carlo estimate of the package: `tl.evaluation` (accuracy and loss
over fault draws, chips and noise draws) and `tl.memse.monte_carlo` (the sampled MSE, overall
and per output). It sits below both import levels so that neither reimplements it.
"""

import dataclasses
import math

import numpy as np
from scipy import stats

from tf_lanmax._validation import check_probability


@dataclasses.dataclass(frozen=True)
class Interval:
    """Mean of K draws with its two-sided confidence interval.

    The fields `mean`, `low`, `high`, `half_width` and `std` are floats for draws of scalars,
    arrays of the draws' shape for draws of arrays (see `t_interval`).
    """

    mean: float
    low: float
    high: float
    half_width: float
    std: float
    n: int
    confidence: float

    def to_dict(self):
        """The fields as a JSON-serialisable dict (arrays as nested lists)."""
        return {
            key: value.tolist() if isinstance(value, np.ndarray) else value
            for key, value in dataclasses.asdict(self).items()
        }


def t_interval(samples, confidence=0.95):
    """Student-t interval of the mean of i.i.d. `samples` (n - 1 in the standard deviation).

    ``h = t_((1+c)/2, K-1) s / sqrt(K)``. This measures the spread across draws (fault
    patterns, chips, noise draws); it is not the binomial test-set interval. Draws of arrays
    (``samples`` shaped ``(K, ...)``) get one interval per entry, computed along the first axis.

    Args:
        samples: K >= 2 finite draws: a 1-D array (one value per draw) or an array shaped
            ``(K, ...)``.
        confidence: the coverage in (0, 1). Defaults to `0.95`.

    Returns:
        An `Interval`: floats for 1-D `samples`, arrays shaped ``samples.shape[1:]`` otherwise.

    Raises:
        ValueError: for fewer than 2 draws or a confidence outside (0, 1).

    Example:
    >>> interval = t_interval([1.0, 2.0, 3.0])
    >>> round(interval.mean, 6), round(interval.half_width, 4)  # t_(0.975, 2) = 4.3027
    (2.0, 2.4841)
    >>> t_interval(np.array([[0.0, 1.0], [2.0, 1.0]])).half_width  # one interval per column
    array([12.70620474,  0.        ])
    """
    confidence = check_probability("confidence", confidence, high=1.0 - 1e-12)
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 0:
        x = x.reshape(1)
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"A confidence interval needs at least 2 draws. Received: {n}")
    mean = x.mean(axis=0)
    std = x.std(axis=0, ddof=1)
    half = stats.t.ppf(0.5 + confidence / 2.0, n - 1) * std / math.sqrt(n)
    if x.ndim == 1:
        mean, std, half = float(mean), float(std), float(half)
    return Interval(mean, mean - half, mean + half, half, std, int(n), confidence)
