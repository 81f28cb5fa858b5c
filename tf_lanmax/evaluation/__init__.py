"""Monte-Carlo evaluation under faults, with confidence intervals across draws."""

from tf_lanmax.evaluation.monte_carlo import FaultEvaluation, draw_seed, evaluate_under_faults
from tf_lanmax.evaluation.noise import NoiseEvaluation, evaluate_under_noise
from tf_lanmax.evaluation.sensitivity import sensitivity
from tf_lanmax.evaluation.statistics import Interval, draws_for_half_width, t_interval

__all__ = [
    "FaultEvaluation",
    "Interval",
    "NoiseEvaluation",
    "draw_seed",
    "draws_for_half_width",
    "evaluate_under_faults",
    "evaluate_under_noise",
    "sensitivity",
    "t_interval",
]
