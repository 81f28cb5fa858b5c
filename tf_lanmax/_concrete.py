"""Whether a tensor's values are known now: eager values are, traced ones are not.

Code that runs both eagerly and inside a compiled program (a `tf.function`, `jax.jit`, a Keras
train step) sometimes needs the values when they exist: to check an argument, or to run one
branch of a switch directly instead of compiling every branch.
"""

import numbers

import numpy as np
from keras import ops


def concrete_value(value):
    """`value` as a numpy array when its values are known (eager tensor, array, number), None
    when it is traced (symbolic TensorFlow tensor, JAX tracer), with no values to read.

    Example:
    >>> concrete_value(keras.ops.convert_to_tensor([1.0, 2.0]))
    array([1., 2.], dtype=float32)
    """
    if isinstance(value, (numbers.Number, list, tuple, np.ndarray, np.generic)):
        return np.asarray(value)
    try:
        return ops.convert_to_numpy(value)
    except (TypeError, NotImplementedError, ValueError):  # JAX tracers; symbolic TF tensors
        return None
