"""JAX compiler of the batched Monte-Carlo step (the only JAX code of `batched`)."""

import jax


def compile_function(fn):
    """Wraps the per-batch step in `jax.jit` (the step is a pure function of its arguments).

    Args:
        fn: the step, a function of lists of arrays.

    Returns:
        The jitted function; batch shapes that differ (the last batch) compile once more.
    """
    return jax.jit(fn)
