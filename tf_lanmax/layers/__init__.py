"""Keras layers whose weights live in unreliable memory, and helpers to find and switch them.

The maths, with the papers it follows: docs/maths/faults.md and docs/maths/sram.md.
"""

from tf_lanmax.layers.base import FaultyKernelMixin
from tf_lanmax.layers.chips import set_chip
from tf_lanmax.layers.deployment import deployment_model
from tf_lanmax.layers.faulty_conv import FaultyConv1D, FaultyConv2D
from tf_lanmax.layers.faulty_copy import faulty_copy, fixed_point_for
from tf_lanmax.layers.faulty_dense import FaultyDense
from tf_lanmax.layers.inject import COVERED, covered_layers, inject_faults
from tf_lanmax.layers.injection import FaultInjection
from tf_lanmax.layers.reconfigure import with_memory
from tf_lanmax.layers.switch import faults_disabled, faulty_layers, set_fault_rates
from tf_lanmax.layers.twins import FAULTY, TWINS, to_deployment, to_faulty, twin_class

__all__ = [
    "COVERED",
    "FaultInjection",
    "FAULTY",
    "TWINS",
    "FaultyConv1D",
    "FaultyConv2D",
    "FaultyDense",
    "FaultyKernelMixin",
    "covered_layers",
    "deployment_model",
    "faults_disabled",
    "faulty_copy",
    "faulty_layers",
    "fixed_point_for",
    "inject_faults",
    "set_chip",
    "set_fault_rates",
    "to_deployment",
    "to_faulty",
    "twin_class",
    "with_memory",
]
