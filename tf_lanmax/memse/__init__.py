"""MemSE: analytic MSE of networks mapped onto noisy memristor crossbars or faulty memory.

A `MemSE` mirror walks a Sequential or Functional Keras model and propagates the mean and
variance of every activation through the network mapped onto a `Crossbar` (differential pairs,
N conductance levels, programming noise sigma, per-layer Gmax); faulty layers of
`tf_lanmax.layers` go there with their deployed weights, or (`mapping="digital"`) keep the
closed-form moments of their digital faults. `monte_carlo`
samples the very same noise model; `optimize_gmax` spends a power budget across layers;
`MemSEPenaltyModel` trains a network against its predicted MSE.

Example:
>>> cb = Crossbar(sigma=0.01, levels=128, gmax=1.0)
>>> mirror = MemSE(model, cb)          # cov_mode="probe": one reverse pass, weight sharing in
>>> mean, var = mirror(x)                            # logits: per-sample mean and variance
>>> mirror.summary(x)["mse"]                         # predicted MSE vs the clean logits
>>> monte_carlo(model, cb, x, draws=1000).ci         # sampled reference, 95% CI
>>> monte_carlo(model, cb, x, draws=200, per_example=True).mse  # noise per example

Reference: Kern et al., "MemSE: Fast MSE Prediction for Noisy Memristor-Based DNN
Accelerators", arXiv:2205.01707.

The maths, with the papers it follows: docs/maths/memse.md.
"""

from tf_lanmax.errors import UnsupportedLayerError
from tf_lanmax.memse.context import Forward, NodeContext, PassConfig, Reverse
from tf_lanmax.memse.crossbar import Crossbar
from tf_lanmax.memse.device_mapping import DeviceMapping, as_crossbar
from tf_lanmax.memse.digital import faulty_copy
from tf_lanmax.memse.mirror import MemSE
from tf_lanmax.memse.mirror_layers import MirrorRule, Moments
from tf_lanmax.memse.monte_carlo import MonteCarloResult, monte_carlo
from tf_lanmax.memse.optimize import GmaxResult, mse_power_curve, optimize_gmax
from tf_lanmax.memse.penalty import MemSEPenaltyModel
from tf_lanmax.memse.power_budget import power_report
from tf_lanmax.memse.registry import register_mirror, supported_layers

__all__ = [
    "Crossbar",
    "DeviceMapping",
    "GmaxResult",
    "MemSE",
    "MemSEPenaltyModel",
    "MirrorRule",
    "Moments",
    "Forward",
    "Reverse",
    "NodeContext",
    "PassConfig",
    "as_crossbar",
    "MonteCarloResult",
    "monte_carlo",
    "mse_power_curve",
    "optimize_gmax",
    "power_report",
    "faulty_copy",
    "register_mirror",
    "supported_layers",
    "UnsupportedLayerError",
]
