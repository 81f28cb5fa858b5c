"""Argument checks shared by the package: each raises one clear `ValueError`.

The message names the argument, what is allowed and the value received, as Keras does:
``ValueError("`fault_rate` must be in (0, 0.5]. Received: fault_rate=0.7")``.
"""

import math
import numbers


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
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        v = float(value)
        ok = math.isfinite(v) and (v >= low if low_inclusive else v > low) and v <= high
    if not ok:
        raise ValueError(
            f"`{name}` must be a number in {bracket}{low:g}, {high:g}]{_where(name, context)}. "
            f"Received: {name}={value!r}"
        )
    return float(value)


def check_positive(name, value, allow_zero=False, context=None):
    """Checks that `value` is a finite real number > 0 (or >= 0 with `allow_zero`).

    Returns:
        `value` as a Python float.
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        v = float(value)
        ok = math.isfinite(v) and (v >= 0 if allow_zero else v > 0)
    if not ok:
        what = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise ValueError(
            f"`{name}` must be {what}{_where(name, context)}. Received: {name}={value!r}"
        )
    return float(value)


def check_int(name, value, low=None, high=None, context=None):
    """Checks that `value` is an integer in [low, high] (either bound may be None).

    Returns:
        `value` as a Python int.
    """
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if ok:
        ok = (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        lo = "-inf" if low is None else str(low)
        hi = "inf" if high is None else str(high)
        raise ValueError(
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
        raise ValueError(f"`{name}` must be True or False. Received: {name}={value!r}")
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
