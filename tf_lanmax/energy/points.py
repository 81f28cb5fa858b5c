"""Checks of tabulated (BER, energy) points and of fault rates, each failing with one ValueError.

A point is a pair ``(ber, energy)`` or a triple ``(voltage, ber, energy)`` (the form
`tl.memory` technologies store); `energy` is the read energy per bit relative to the reliable
operating point (1 = reliable).
"""

import math
import numbers

import numpy as np


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _fail(argument, allowed, where, value):
    raise ValueError(f"`{argument}` must {allowed}. Received: {where}={value!r}")


def check_points(points, argument="points", min_points=2, monotone=True):
    """Validates measured points and returns them as ``(voltage, ber, energy)``, BER ascending.

    Args:
        points: a sequence of ``(ber, energy)`` pairs or ``(voltage, ber, energy)`` triples
            (`voltage` may be None).
        argument: the argument's name, for the message. Defaults to `"points"`.
        min_points: fewest points allowed. Defaults to `2`.
        monotone: whether to require distinct BERs and an energy that falls strictly as the BER
            rises (a table to interpolate). `False` for a least-squares fit. Defaults to `True`.

    Returns:
        A list of ``(voltage_or_None, ber, energy)`` tuples of floats, sorted by BER.

    Raises:
        ValueError: naming `argument`, what is allowed and the offending value.

    Example:
    >>> check_points([(1e-2, 0.36), (1e-4, 0.72)])
    [(None, 0.0001, 0.72), (None, 0.01, 0.36)]
    """
    try:
        items = list(points)
    except TypeError:
        _fail(
            argument, "be a sequence of (ber, energy) or (voltage, ber, energy)", argument, points
        )
    if len(items) < min_points:
        _fail(argument, f"hold at least {min_points} points", argument, points)
    table = []
    for index, item in enumerate(items):
        where = f"{argument}[{index}]"
        try:
            fields = () if isinstance(item, str) else tuple(item)
        except TypeError:
            fields = ()
        if len(fields) not in (2, 3):
            _fail(
                argument, "hold (ber, energy) pairs or (voltage, ber, energy) triples", where, item
            )
        voltage, ber, energy = (None, *fields) if len(fields) == 2 else fields
        if not (_is_real(ber) and 0.0 < float(ber) <= 0.5):
            _fail(argument, "have every BER in (0, 0.5]", where, item)
        if not (_is_real(energy) and math.isfinite(energy) and energy > 0):
            _fail(argument, "have every energy finite and > 0", where, item)
        if voltage is not None and not (
            _is_real(voltage) and math.isfinite(voltage) and voltage > 0
        ):
            _fail(argument, "have every voltage None or finite and > 0", where, item)
        table.append((None if voltage is None else float(voltage), float(ber), float(energy)))
    table.sort(key=lambda point: point[1])
    if monotone:
        for low, high in zip(table, table[1:]):
            if low[1] == high[1]:
                _fail(argument, "have distinct BERs", argument, points)
            if not high[2] < low[2]:
                _fail(
                    argument,
                    f"have an energy that falls as the BER rises (BER {low[1]:g} has energy "
                    f"{low[2]:g}, BER {high[1]:g} has {high[2]:g})",
                    argument,
                    points,
                )
    return table


def check_rates(p, argument="p"):
    """`p` as a float64 array after checking every entry is in [0, 0.5] (0 reads as reliable)."""
    p_arr = np.asarray(p, dtype=np.float64)
    if np.any(np.isnan(p_arr)) or np.any(p_arr < 0) or np.any(p_arr > 0.5):
        raise ValueError(f"`{argument}` must be in [0, 0.5]. Received: {argument}={p!r}")
    return p_arr


def scalar_or_array(values):
    """A 0-d result as a Python float, others as the float64 array."""
    return float(values) if np.ndim(values) == 0 else values
