"""`energy.get`: one resolver for energy models, as `keras.activations.get` is for activations.

Names resolve through a table that `tf_lanmax.memory` fills with its technologies when it is
imported (which `import tf_lanmax` does): `energy` sits below `memory` in the import levels, so
it cannot look them up itself.
"""

import keras

from tf_lanmax.energy.model import EnergyModel
from tf_lanmax.energy.tabulated import TabulatedEnergyModel
from tf_lanmax.errors import ArgumentTypeError, UnknownNameError

#: The methods and attributes every energy model has (LaNMax and the profile use them).
PROTOCOL = ("p0", "eta", "rate", "get_config")

_NAMED = {}


def register_name(name, factory):
    """Makes `get(name)` return `factory()`; `tl.memory` registers its technologies this way.

    Args:
        name: the identifier, a non-empty string.
        factory: a zero-argument callable returning an energy model.
    """
    if not (isinstance(name, str) and name) or not callable(factory):
        raise ValueError(
            f"`name` must be a non-empty string and `factory` a callable. Received: "
            f"name={name!r}, factory={factory!r}"
        )
    _NAMED[name] = factory


def names():
    """The names `get` resolves, sorted."""
    return sorted(_NAMED)


def is_energy_model(obj):
    """Whether `obj` has the energy-model protocol (`p0`, `eta`, `rate`, `get_config`)."""
    return not isinstance(obj, (str, dict, type)) and all(hasattr(obj, a) for a in PROTOCOL)


def serialize(energy_model):
    """The Keras-serialised config of a registered energy model (`get` reads it back)."""
    return keras.saving.serialize_keras_object(energy_model)


def _from_dict(config):
    if "class_name" in config:
        return keras.saving.deserialize_keras_object(config)
    if "points" in config:
        return TabulatedEnergyModel.from_config(config)
    return EnergyModel.from_config(config)


def get(identifier):
    """Resolves an energy model.

    Args:
        identifier: None (`EnergyModel()`, the exponential law with a = 12.8); a technology
            name of `tl.memory.names()` or a `tl.memory.Technology` (its energy model); a
            config dict (`serialize`'s output, or a model's `get_config()`); or any object
            with `p0`, `eta`, `rate` and `get_config`, returned as is.

    Returns:
        An energy model.

    Raises:
        UnknownNameError: for an unknown name (a `ValueError`), listing the names.
        ArgumentTypeError: for an object that is no energy model (a `TypeError`).
        ValueError: for a config dict that is no energy model.

    Example:
    >>> get(None).a                        # 12.8
    >>> get("yang_murmann_28nm").eta(1e-2) # the technology's tabulated energy
    >>> get({"a": 10.0}).p0                # exp(-10)
    """
    if identifier is None:
        return EnergyModel()
    if isinstance(identifier, str) and identifier in _NAMED:
        return _NAMED[identifier]()
    if isinstance(identifier, dict):
        try:
            obj = _from_dict(identifier)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"`energy_model` config could not be read ({error}). "
                f"Received: energy_model={identifier!r}"
            ) from error
        if is_energy_model(obj):
            return obj
    if is_energy_model(identifier):
        return identifier
    if callable(getattr(identifier, "energy_model", None)):  # a tl.memory.Technology
        return get(identifier.energy_model())
    also = f"None, a technology, a config dict or an object with {', '.join(PROTOCOL)}"
    if isinstance(identifier, str):
        raise UnknownNameError("energy_model", identifier, names(), also)
    raise (ValueError if isinstance(identifier, dict) else ArgumentTypeError)(
        f"`energy_model` must be one of {names()}, {also}. Received: energy_model={identifier!r}"
    )
