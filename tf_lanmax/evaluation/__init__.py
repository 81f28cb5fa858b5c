"""Monte-Carlo evaluation under faults (draws or chips), with confidence intervals.

The maths, with the papers it follows: docs/maths/monte_carlo.md.
"""

from tf_lanmax.evaluation.chips import ChipEvaluation
from tf_lanmax.evaluation.monte_carlo import FaultEvaluation, evaluate_under_faults
from tf_lanmax.evaluation.noise import NoiseEvaluation, evaluate_under_noise
from tf_lanmax.evaluation.seeds import chip_index, draw_seed
from tf_lanmax.evaluation.sensitivity import sensitivity
from tf_lanmax.evaluation.statistics import (
    Interval,
    draws_for_half_width,
    quantile_lower_bound,
    t_interval,
)

__all__ = [
    "ChipEvaluation",
    "FaultEvaluation",
    "Interval",
    "NoiseEvaluation",
    "chip_index",
    "draw_seed",
    "draws_for_half_width",
    "evaluate_under_faults",
    "evaluate_under_noise",
    "quantile_lower_bound",
    "sensitivity",
    "t_interval",
]
