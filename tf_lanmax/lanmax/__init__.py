"""LaNMax: learned fault rates per layer or voltage domain (callback + Keras-free estimator).

The maths, with the papers it follows: docs/maths/lanmax.md.
"""

from tf_lanmax.lanmax.callback import LaNMax
from tf_lanmax.lanmax.domains import check_domains, domain_log_rates, resolve_domains
from tf_lanmax.lanmax.estimator import EpochState, Point, RateEstimator, Step
from tf_lanmax.lanmax.ols import OLSResult, fit_rate_gradient, ols

__all__ = [
    "EpochState",
    "LaNMax",
    "OLSResult",
    "Point",
    "RateEstimator",
    "Step",
    "check_domains",
    "domain_log_rates",
    "fit_rate_gradient",
    "ols",
    "resolve_domains",
]
