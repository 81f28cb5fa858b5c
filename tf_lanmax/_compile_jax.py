"""JAX compiler of the library's repeated passes (the only JAX code of `_compile`)."""

import jax


def compile_function(fn, static_shapes=False):
    """Wraps a pure step in `jax.jit` (the step must read state only from its arguments).

    Args:
        fn: the step, a function of (nested lists or dicts of) arrays.
        static_shapes: unused: `jax.jit` always compiles each new shape. Defaults to `False`.

    Returns:
        The jitted function; argument shapes that differ (the last batch) compile once more.
    """
    del static_shapes  # jax.jit specialises on shapes anyway
    return jax.jit(fn)
