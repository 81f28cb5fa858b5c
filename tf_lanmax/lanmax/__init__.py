"""LaNMax: learned per-layer fault rates (callback + the pure least-squares step)."""

from tf_lanmax.lanmax.callback import LaNMax
from tf_lanmax.lanmax.ols import OLSResult, fit_rate_gradient, ols

__all__ = ["LaNMax", "OLSResult", "fit_rate_gradient", "ols"]
