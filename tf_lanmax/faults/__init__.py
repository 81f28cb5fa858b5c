"""Fault models on stored bits: bit flip, Hacene bit masking, stuck-at.

`get(identifier)` resolves None (bit flip), an alias (`"bit_flip"`, `"bit_mask"`, `"stuck_at_0"`,
`"stuck_at_1"`, `"stuck_at_mix"`, `"none"`), a config dict or an instance.

The maths, with the papers it follows: docs/maths/faults.md and docs/maths/sram.md.
"""

import keras

from tf_lanmax._registry import resolve
from tf_lanmax.faults.base import FaultModel, bit_planes, draw_error_bits, draw_fault_pattern
from tf_lanmax.faults.bit_flip import BitFlip
from tf_lanmax.faults.bit_mask import BitMask
from tf_lanmax.faults.no_faults import NoFaults
from tf_lanmax.faults.stuck_at import StuckAt
from tf_lanmax.faults.stuck_at_mix import StuckAtMix

ALIASES = {
    "bit_flip": BitFlip,
    "bit_mask": BitMask,
    "stuck_at_0": lambda: StuckAt(0),
    "stuck_at_1": lambda: StuckAt(1),
    "stuck_at_mix": StuckAtMix,
    "none": NoFaults,
}

__all__ = [
    "ALIASES",
    "BitFlip",
    "BitMask",
    "FaultModel",
    "NoFaults",
    "StuckAt",
    "StuckAtMix",
    "bit_planes",
    "deserialize",
    "draw_error_bits",
    "draw_fault_pattern",
    "get",
    "serialize",
]


def serialize(fault_model):
    """Returns the Keras-serialised config of a fault model."""
    return keras.saving.serialize_keras_object(fault_model)


def deserialize(config):
    """Rebuilds a fault model from `serialize`'s output."""
    return keras.saving.deserialize_keras_object(config)


def get(identifier):
    """Resolves a fault model.

    Args:
        identifier: None (bit flip), an alias in `ALIASES`, a dict from `serialize` or a
            `FaultModel` instance.

    Returns:
        A `FaultModel`.

    Raises:
        ValueError: for an unknown alias or type, naming `fault_model` and the allowed values.
    """
    return resolve(
        identifier, argument="fault_model", base=FaultModel, aliases=ALIASES, default=BitFlip
    )
