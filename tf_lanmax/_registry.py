"""One resolver for the plain serialisable objects (formats, fault models), as keras.*.get does."""

import keras

from tf_lanmax.errors import ArgumentTypeError, UnknownNameError


def resolve(identifier, *, argument, base, aliases, default):
    """Resolves None (the default), an alias, a Keras config dict or an instance of `base`.

    Args:
        identifier: what the user passed.
        argument: the argument's name, for the error message.
        base: the accepted base class.
        aliases: {name: zero-argument factory}.
        default: zero-argument factory used for None.

    Returns:
        An instance of `base`.

    Raises:
        UnknownNameError: for a name that is none of `aliases` (a `ValueError`), naming
            `argument`, the allowed names and the value received.
        ArgumentTypeError: for a value of another type (a `TypeError`).
        ValueError: for a config dict that does not deserialise to a `base`.
    """
    if identifier is None:
        return default()
    if isinstance(identifier, base):
        return identifier
    if isinstance(identifier, str) and identifier in aliases:
        return aliases[identifier]()
    if isinstance(identifier, dict):
        try:
            obj = keras.saving.deserialize_keras_object(identifier)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"`{argument}` config could not be deserialised ({error}). "
                f"Received: {argument}={identifier!r}"
            ) from error
        if isinstance(obj, base):
            return obj
    also = f"a config dict or a {base.__name__} instance"
    if isinstance(identifier, str):
        raise UnknownNameError(argument, identifier, sorted(aliases), also)
    if isinstance(identifier, dict):
        raise ValueError(
            f"`{argument}` config does not describe a {base.__name__}. Received: "
            f"{argument}={identifier!r}"
        )
    raise ArgumentTypeError(
        f"`{argument}` must be one of {sorted(aliases)}, {also}. Received: "
        f"{argument}={identifier!r} of type {type(identifier).__name__}"
    )
