"""TensorFlow compiler of the library's repeated passes (the only TensorFlow code of `_compile`)."""

import tensorflow as tf


def compile_function(fn, static_shapes=False):
    """Wraps a pure step in a `tf.function` (graph mode; XLA is slower on CPU here).

    Args:
        fn: the step, a function of (nested lists or dicts of) tensors.
        static_shapes: trace every new argument shape; else a shape that changes (the last
            batch) is relaxed to None and traced once more. Defaults to `False`.

    Returns:
        The compiled function.
    """
    return tf.function(fn, reduce_retracing=not static_shapes)
