"""Keras layers whose weights live in unreliable memory, and helpers to find and switch them.

The maths, with the papers it follows: docs/maths/faults.md and docs/maths/sram.md.
"""

from tf_lanmax.layers.base import FaultyKernelMixin
from tf_lanmax.layers.chips import set_chip
from tf_lanmax.layers.deployment import deployment_model
from tf_lanmax.layers.faulty_conv import FaultyConv1D, FaultyConv2D
from tf_lanmax.layers.faulty_dense import FaultyDense
from tf_lanmax.layers.reconfigure import with_memory
from tf_lanmax.layers.switch import faults_disabled, faulty_layers, set_fault_rates

__all__ = [
    "FaultyConv1D",
    "FaultyConv2D",
    "FaultyDense",
    "FaultyKernelMixin",
    "deployment_model",
    "faults_disabled",
    "faulty_layers",
    "set_chip",
    "set_fault_rates",
    "with_memory",
]
