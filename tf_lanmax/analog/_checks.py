"""Argument checks of the analog devices: times and normalised conductances."""

import numpy as np
from keras import ops

from tf_lanmax._concrete import concrete_value
from tf_lanmax._validation import check_positive


def check_time(t_inference):
    """`t_inference` as a float >= 0 (seconds), or a `ValueError` naming it."""
    return check_positive("t_inference", t_inference, allow_zero=True)


def _concrete_range(g):
    # (min, max) of a concrete input, or None for a symbolic tensor (traced in a compiled
    # step), whose values are not known, or an empty one.
    array = concrete_value(g)
    if array is None or array.size == 0:
        return None
    array = array.astype(np.float64)
    return float(np.min(array)), float(np.max(array))


def check_normalised(name, g):
    """Checks that concrete normalised conductances lie in [0, 1]; returns a float32 tensor.

    Arrays, Python numbers and eager tensors are checked; symbolic tensors (inside a compiled
    train step) pass unchecked.

    Raises:
        ValueError: naming `name`, when a value is outside [0, 1] or NaN.
    """
    found = _concrete_range(g)
    if found is not None and not (found[0] >= 0.0 and found[1] <= 1.0):
        raise ValueError(
            f"`{name}` must hold normalised conductances in [0, 1]. "
            f"Received: {name} with values in [{found[0]:g}, {found[1]:g}]"
        )
    return ops.cast(ops.convert_to_tensor(g), "float32")
