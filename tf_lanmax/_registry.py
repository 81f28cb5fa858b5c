"""One resolver for the plain serialisable objects (formats, fault models), as keras.*.get does."""

import keras


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
        ValueError: naming `argument`, the allowed values and the value received.
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
    raise ValueError(
        f"`{argument}` must be one of {sorted(aliases)}, a config dict or a {base.__name__} "
        f"instance. Received: {argument}={identifier!r}"
    )
