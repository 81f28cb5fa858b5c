"""Sharpness-aware training: SAM, ASAM, SAMSON (with Lookbehind) and RWP rules, and a Keras
model wrapper; the one-pass step at a random perturbation is reusable.

The maths, with the papers it follows: docs/maths/sam.md.
"""

from tf_lanmax.sam.model import SharpnessAwareModel
from tf_lanmax.sam.one_pass_step import one_pass_train_step
from tf_lanmax.sam.perturbation import (
    DEFAULT_RHO,
    GRADIENT_RULES,
    RULES,
    asam_perturbation,
    asam_scales,
    global_norm,
    perturbation,
    sam_perturbation,
    samson_perturbation,
    samson_scales,
)
from tf_lanmax.sam.rwp import layer_rms, rwp_perturbation

__all__ = [
    "DEFAULT_RHO",
    "GRADIENT_RULES",
    "RULES",
    "SharpnessAwareModel",
    "asam_perturbation",
    "asam_scales",
    "global_norm",
    "layer_rms",
    "one_pass_train_step",
    "perturbation",
    "rwp_perturbation",
    "sam_perturbation",
    "samson_perturbation",
    "samson_scales",
]
