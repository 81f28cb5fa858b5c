"""Argument checks shared by the package: each raises one clear `ValueError`.

The message names the argument, what is allowed and the value received, as Keras does:
``ValueError("`fault_rate` must be in (0, 0.5]. Received: fault_rate=0.7")``. A value of the
wrong type raises `tl.errors.ArgumentTypeError` (a `TypeError`, also a `ValueError`), a name a
registry does not hold `tl.errors.UnknownNameError`.
"""

import math
import numbers

from tf_lanmax.errors import ArgumentTypeError, UnknownNameError


def _number_type(value):
    """`ValueError` for a real number (its range is checked next), else `ArgumentTypeError`."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return ValueError
    return ArgumentTypeError


def _where(name, context):
    return f" (in {context})" if context else ""


def check_probability(name, value, low=0.0, high=0.5, low_inclusive=False, context=None):
    """Checks that `value` is a finite real number in the interval (low, high].

    Args:
        name: argument name used in the message.
        value: the value to check.
        low: lower bound. Defaults to `0.0`.
        high: upper bound (inclusive). Defaults to `0.5`.
        low_inclusive: whether `low` itself is allowed. Defaults to `False`.
        context: e.g. the layer name, added to the message. Defaults to `None`.

    Returns:
        `value` as a Python float.
    """
    bracket = "[" if low_inclusive else "("
    error = _number_type(value)
    v = float(value) if error is ValueError else math.nan
    if not (math.isfinite(v) and (v >= low if low_inclusive else v > low) and v <= high):
        raise error(
            f"`{name}` must be a number in {bracket}{low:g}, {high:g}]{_where(name, context)}. "
            f"Received: {name}={value!r}"
        )
    return float(value)


def check_positive(name, value, allow_zero=False, context=None):
    """Checks that `value` is a finite real number > 0 (or >= 0 with `allow_zero`).

    Returns:
        `value` as a Python float.
    """
    error = _number_type(value)
    v = float(value) if error is ValueError else math.nan
    if not (math.isfinite(v) and (v >= 0 if allow_zero else v > 0)):
        what = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise error(f"`{name}` must be {what}{_where(name, context)}. Received: {name}={value!r}")
    return float(value)


def check_int(name, value, low=None, high=None, context=None):
    """Checks that `value` is an integer in [low, high] (either bound may be None).

    Returns:
        `value` as a Python int.
    """
    is_int = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not (is_int and (low is None or value >= low) and (high is None or value <= high)):
        lo = "-inf" if low is None else str(low)
        hi = "inf" if high is None else str(high)
        raise (ValueError if is_int else ArgumentTypeError)(
            f"`{name}` must be an integer in [{lo}, {hi}]{_where(name, context)}. "
            f"Received: {name}={value!r}"
        )
    return int(value)


def check_bool(name, value):
    """Checks that `value` is True or False (a Python bool).

    Returns:
        `value`.
    """
    if not isinstance(value, bool):
        raise ArgumentTypeError(f"`{name}` must be True or False. Received: {name}={value!r}")
    return value


def check_one_of(name, value, allowed, context=None):
    """Checks that `value` is one of `allowed`.

    Returns:
        `value`.
    """
    if value not in allowed:
        raise ValueError(
            f"`{name}` must be one of {sorted(allowed)}{_where(name, context)}. "
            f"Received: {name}={value!r}"
        )
    return value


def check_name(argument, value, names, also=None):
    """Checks that `value` is one of a registry's `names`.

    Args:
        argument: the argument's name, for the message.
        value: the name looked up.
        names: the names the registry holds.
        also: what else the argument may be, for the message. Defaults to `None`.

    Returns:
        `value`.

    Raises:
        UnknownNameError: for a string the registry does not hold.
        ArgumentTypeError: for a value that is not a string.

    Example:
    >>> check_name("rule", "sam", ["sam", "asam"])
    'sam'
    """
    if not isinstance(value, str):
        more = f" ({also})" if also else ""
        raise ArgumentTypeError(
            f"`{argument}` must be a name of {list(names)}{more}. Received: {argument}={value!r} "
            f"of type {type(value).__name__}"
        )
    if value not in names:
        raise UnknownNameError(argument, value, names, also)
    return value
