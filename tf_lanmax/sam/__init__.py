"""Sharpness-aware training: SAM, ASAM and SAMSON rules and a Keras model wrapper."""

from tf_lanmax.sam.model import SharpnessAwareModel
from tf_lanmax.sam.perturbation import (
    DEFAULT_RHO,
    RULES,
    asam_perturbation,
    asam_scales,
    global_norm,
    perturbation,
    sam_perturbation,
    samson_perturbation,
    samson_scales,
)

__all__ = [
    "DEFAULT_RHO",
    "RULES",
    "SharpnessAwareModel",
    "asam_perturbation",
    "asam_scales",
    "global_norm",
    "perturbation",
    "sam_perturbation",
    "samson_perturbation",
    "samson_scales",
]
