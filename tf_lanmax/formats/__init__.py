"""Number formats: how float weights are stored as bits (BinaryConnect, fixed point).

`get(identifier)` resolves None, an alias (`"binary"`, `"fixed_point"`), a config dict or an
instance, as `keras.activations.get` does.

The maths, with the papers it follows: docs/maths/formats.md.
"""

import keras

from tf_lanmax._registry import resolve
from tf_lanmax.formats.base import LatentClip, WeightFormat
from tf_lanmax.formats.binary import Binary
from tf_lanmax.formats.fixed_point import FixedPoint
from tf_lanmax.formats.ste import straight_through

ALIASES = {"binary": Binary, "fixed_point": FixedPoint}

__all__ = [
    "ALIASES",
    "Binary",
    "FixedPoint",
    "LatentClip",
    "WeightFormat",
    "deserialize",
    "get",
    "serialize",
    "straight_through",
]


def serialize(weight_format):
    """Returns the Keras-serialised config of a format."""
    return keras.saving.serialize_keras_object(weight_format)


def deserialize(config):
    """Rebuilds a format from `serialize`'s output."""
    return keras.saving.deserialize_keras_object(config)


def get(identifier):
    """Resolves a weight format.

    Args:
        identifier: None (binary), an alias in `ALIASES`, a dict from `serialize` or a
            `WeightFormat` instance.

    Returns:
        A `WeightFormat`.

    Raises:
        ValueError: for an unknown alias or type, naming `weight_format` and the allowed values.
    """
    return resolve(
        identifier, argument="weight_format", base=WeightFormat, aliases=ALIASES, default=Binary
    )
