"""The device presets by name: `get`, `names`, `serialize`, `deserialize`."""

import inspect

import keras

from tf_lanmax.analog.additive import Additive
from tf_lanmax.analog.device import Device
from tf_lanmax.analog.hermes import Hermes
from tf_lanmax.analog.multiplicative import Multiplicative
from tf_lanmax.analog.pcm import PCM
from tf_lanmax.analog.reram_cmo import ReRamCMO
from tf_lanmax.analog.reram_wan2022 import ReRamWan2022
from tf_lanmax.errors import ArgumentTypeError, UnknownNameError

PRESETS = {
    device.name: device
    for device in (Multiplicative, Additive, PCM, Hermes, ReRamWan2022, ReRamCMO)
}


def names():
    """The preset names `get` accepts, sorted."""
    return sorted(PRESETS)


def get(identifier, **overrides):
    """Resolves a device: a preset name with optional overrides, a config dict or a `Device`.

    Args:
        identifier: a name in `names()`, a dict from `serialize`, or a `Device` instance.
        **overrides: constructor arguments replacing the preset's defaults (for a `Device`,
            a copy with these arguments replaced).

    Returns:
        A `Device`.

    Raises:
        UnknownNameError: for an unknown name (a `ValueError`; the message lists `names()`).
        ArgumentTypeError: for an identifier of another type (a `TypeError`).
        ValueError: for a bad override value (naming the argument).

    Example:
    >>> tl.analog.get("pcm")
    >>> tl.analog.get("hermes", devices=1, drift_compensation=True)
    """
    if isinstance(identifier, Device):
        if not overrides:
            return identifier
        _check_overrides(type(identifier), identifier.name, overrides)
        return type(identifier).from_config({**identifier.get_config(), **overrides})
    if isinstance(identifier, str) and identifier in PRESETS:
        _check_overrides(PRESETS[identifier], identifier, overrides)
        return PRESETS[identifier](**overrides)
    if isinstance(identifier, dict) and not overrides:
        device = deserialize(identifier)
        if isinstance(device, Device):
            return device
    also = "a config dict or a tl.analog.Device"
    if isinstance(identifier, str):
        raise UnknownNameError("device", identifier, names(), also)
    if isinstance(identifier, dict):
        raise ValueError(
            f"`device` config does not describe a tl.analog.Device. Received: device={identifier!r}"
        )
    raise ArgumentTypeError(
        f"`device` must be one of {names()}, {also}. Received: device={identifier!r} of type "
        f"{type(identifier).__name__}"
    )


def _check_overrides(cls, name, overrides):
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    for key in overrides:
        if key not in allowed:
            raise ValueError(
                f"`{key}` is not an argument of the '{name}' device; allowed: {allowed}. "
                f"Received: {key}={overrides[key]!r}"
            )


def serialize(device):
    """The Keras-serialised config of a device."""
    return keras.saving.serialize_keras_object(device)


def deserialize(config):
    """Rebuilds a device from `serialize`'s output."""
    return keras.saving.deserialize_keras_object(config)
