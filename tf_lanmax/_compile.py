"""One compiled function for a step the library runs many times (Monte-Carlo passes).

The step must be pure: it reads model state only from its arguments (under
`keras.StatelessScope`), because `jax.jit` would bake the variables it reads into the
compiled code as constants. The backend compilers live in `_compile_tensorflow.py` and
`_compile_jax.py`; other backends run the step eagerly.
"""

import keras


def compile_function(fn, static_shapes=False):
    """`fn` compiled for the current Keras backend (`tf.function`, `jax.jit`), else as is.

    Args:
        fn: a pure function of (nested lists or dicts of) tensors.
        static_shapes: trace anew for every new argument shape, for a step that reads static
            shapes (`jax.jit` always does). Defaults to `False` (TensorFlow relaxes a shape
            that changes to None and keeps one trace).

    Returns:
        The compiled function.

    Example:
    >>> step = compile_function(lambda values, x: forward(values, x))
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        from tf_lanmax._compile_tensorflow import compile_function as compile_for_backend
    elif backend == "jax":
        from tf_lanmax._compile_jax import compile_function as compile_for_backend
    else:
        return fn
    return compile_for_backend(fn, static_shapes)
