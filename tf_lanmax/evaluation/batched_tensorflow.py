"""TensorFlow compiler of the batched Monte-Carlo step (the only TensorFlow code of `batched`)."""

import tensorflow as tf


def compile_function(fn):
    """Wraps the per-batch step in a `tf.function` (graph mode; XLA is slower on CPU here).

    Args:
        fn: the step, a function of lists of tensors.

    Returns:
        The compiled function; batch shapes that differ (the last batch) retrace once.
    """
    return tf.function(fn, reduce_retracing=True)
