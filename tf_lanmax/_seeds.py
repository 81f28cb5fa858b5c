"""Seeds of the library's random draws: one derivation for every backend.

Every random stream here (a faulty layer's fault draws, a wrapper's perturbations) is a Keras
seed state ``(s, n)``: ``s`` names the stream, ``n`` counts its draws. TensorFlow (Philox) and
JAX (threefry) key their generators on both words, so distinct pairs give independent draws.
Keras' torch backend seeds a `torch.Generator` with ``s + n``: a stream seeded s reads on its
(n + 1)-th draw exactly what a stream seeded s + 1 reads on its n-th, so layers seeded
``seed + i`` drew time-shifted copies of each other's faults. `seed_value` therefore hashes the
pair on torch (a 64-bit finaliser, `tf_lanmax._seeds_torch`) before the generator sees it, and
`derived_seed` hashes (seed, path) for seeds handed to the parts of one model, so no stream is
a shifted copy of another on any backend. TensorFlow and JAX draws are unchanged.
"""

import hashlib

import keras
from keras import ops


class _SeedValue(keras.random.SeedGenerator):
    """A seed generator that only yields one given seed tensor: `keras.random` draws then stay
    stateless (pure) while taking a seed value computed in the step.

    It holds no variable, so it is never tracked or saved.
    """

    def __init__(self, value):  # no super().__init__: that would create a state variable
        self._value = value

    def next(self, ordered=True):
        del ordered
        return self._value


def mix(state):
    """A seed pair whose draws are independent of every other pair's on this backend.

    The identity on TensorFlow and JAX (their generators hash the full pair); on torch the pair
    ``(s, n)`` becomes ``(h(s, n), 0)``, h a 32-bit hash, since torch's generator sees ``s + n``.

    Args:
        state: a seed tensor of shape (2,), as `SeedGenerator.next()` returns.

    Returns:
        A seed tensor of shape (2,) and the same dtype.
    """
    if keras.backend.backend() == "torch":
        from tf_lanmax._seeds_torch import mix as mix_for_backend

        return mix_for_backend(state)
    return state


def seed_value(seed):
    """What `keras.random` takes for `seed`: an int, SeedGenerator or None as is; a seed tensor
    (shape (2,), as `SeedGenerator.next()` returns) mixed (`mix`) and wrapped, so the draw is a
    pure function of it.

    Example:
    >>> a = keras.random.uniform((2,), seed=seed_value(ops.convert_to_tensor([7, 1])))
    """
    if seed is None or isinstance(seed, (int, keras.random.SeedGenerator)):
        return seed
    return _SeedValue(mix(ops.convert_to_tensor(seed)))


def next_seed(generator):
    """The seed of `generator`'s next draw (the generator advances), mixed as `seed_value`.

    Pass the result as `seed=` to `keras.random` functions instead of the generator itself.
    A seed already resolved (a `seed_value`) is returned as is.

    Example:
    >>> generator = keras.random.SeedGenerator(0)
    >>> u = keras.random.uniform((3,), seed=next_seed(generator))
    """
    if isinstance(generator, _SeedValue):
        return generator
    return seed_value(generator.next())


def draw_seed(seed):
    """The seed of one draw from any `seed` argument: a generator advanced and its state
    mixed (`next_seed`), a seed tensor mixed (`seed_value`), an int or None as is.

    Example:
    >>> u = keras.random.uniform((3,), seed=draw_seed(keras.random.SeedGenerator(0)))
    """
    if isinstance(seed, keras.random.SeedGenerator):
        return next_seed(seed)
    return seed_value(seed)


def tail_seed(seed):
    """A seed independent of `seed` (an int, None or a `draw_seed` result), for a second draw
    that one resolved seed must pay for (`tf_lanmax.faults.gap_draws`).

    A seed value ``(s, n)`` becomes ``(s, ~n)``, a counter no generator reaches (counters count
    up from 0), mixed again on torch; an int seed becomes its `derived_seed`.

    Example:
    >>> tail_seed(3) == derived_seed(3, "tail") != 3
    True
    """
    if seed is None:
        return None
    if isinstance(seed, int):
        return derived_seed(seed, "tail")
    if isinstance(seed, keras.random.SeedGenerator):
        seed = seed.next()
    value = ops.convert_to_tensor(seed)
    return _SeedValue(mix(ops.stack([value[0], ops.bitwise_invert(value[1])])))


def uniform(shape, seed):
    """Uniform draws in [0, 1) of `shape` and Keras' float type from any `seed` argument of
    `draw_seed`: ``keras.random.uniform(shape, seed=draw_seed(seed))``, bit for bit.

    On torch a seed tensor is drawn without the map onto [minval, maxval) that Keras applies
    to every draw (``1 * u + 0``: a multiply and an add over the whole tensor, which cost a fault
    draw more than torch's generator itself); `tf_lanmax._seeds_torch.uniform`.

    Example:
    >>> u = uniform((2, 3), keras.random.SeedGenerator(0))
    >>> tuple(u.shape), bool(ops.all((u >= 0) & (u < 1)))
    ((2, 3), True)
    """
    seed = draw_seed(seed)
    if keras.backend.backend() == "torch" and isinstance(seed, _SeedValue):
        from tf_lanmax._seeds_torch import uniform as uniform_for_backend

        return uniform_for_backend(shape, seed.next(), keras.config.floatx())
    return keras.random.uniform(shape, seed=seed)


def derived_seed(seed, *path):
    """An int seed in [0, 2**31) for the part `path` of something seeded `seed` (a hash).

    Gives each faulty layer of a model built from one `seed` its own seed, never ``seed + i``:
    consecutive integers are the very seeds that collide on the torch backend.

    Args:
        seed: the base seed, an int.
        *path: what names the part (e.g. the layer's position), ints or strings.

    Returns:
        An int in [0, 2**31).

    Example:
    >>> derived_seed(0, 1) == derived_seed(0, 1) != derived_seed(0, 2)
    True
    """
    text = "/".join(str(part) for part in (seed, *path))
    digest = hashlib.blake2b(f"stream/{text}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF
