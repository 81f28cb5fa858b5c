"""Independent fault streams: no two layers or reads share fault masks, on every backend.

Keras' torch backend seeds its generator with ``s + n`` for the seed state ``(s, n)``, so
before `tf_lanmax._seeds` a layer seeded s read on its (n + 1)-th draw the mask a layer seeded
s + 1 read on its n-th. The masks here are Bernoulli(1/2) bit masks: under independence the
Pearson correlation of N pairs of bits is about N(0, 1/N), so |r| < z_0.9995 / sqrt(N) holds
with probability 99.9 %.
"""

import keras
import numpy as np
import pytest
from keras import ops

import tf_lanmax as tl
from tf_lanmax._seeds import derived_seed, draw_seed, next_seed, seed_value, uniform

Z_999 = 3.2905  # two-sided 99.9 % normal quantile
READS = 16
SHAPE = (100, 60)  # 6,000 binary weights: N = 96,000 bits per comparison


def _layer(seed):
    layer = tl.FaultyDense(
        SHAPE[1], use_bias=False, weight_format="binary", fault_rate=0.5, seed=seed
    )
    layer.build((None, SHAPE[0]))
    return layer


def _masks(layer, reads=READS):
    """The layer's fault masks of `reads` consecutive reads, as 0/1 arrays."""
    clean = ops.convert_to_numpy(layer.stored_kernel())
    kernel = ops.convert_to_tensor(layer.kernel)
    return [
        (ops.convert_to_numpy(layer.read_stored(kernel)) != clean).astype("float64")
        for _ in range(reads)
    ]


def _correlation(a, b):
    x, y = np.concatenate([m.ravel() for m in a]), np.concatenate([m.ravel() for m in b])
    return np.corrcoef(x, y)[0, 1], x.size


def _uncorrelated(a, b):
    r, n = _correlation(a, b)
    return abs(r) < Z_999 / np.sqrt(n)


def _old_torch_masks(seed, reads=READS):
    # What Keras' torch generator drew for the states (seed, n): the draws of the int seed + n.
    return [
        (ops.convert_to_numpy(keras.random.uniform(SHAPE, seed=seed + n)) < 0.5).astype("float64")
        for n in range(reads)
    ]


def test_adjacent_seeds_draw_uncorrelated_masks_across_layers_and_reads():
    a, b = _masks(_layer(0)), _masks(_layer(1))
    assert 0.45 < np.mean(a) < 0.55  # p = 1/2: about half the bits flip
    assert _uncorrelated(a, b), _correlation(a, b)  # the same read of two layers
    assert _uncorrelated(a[1:], b[:-1]), _correlation(a[1:], b[:-1])  # the old torch alignment
    assert _uncorrelated(a[:-1], b[1:]), _correlation(a[:-1], b[1:])
    assert _uncorrelated(a[1:], a[:-1]), _correlation(a[1:], a[:-1])  # consecutive reads


def test_the_correlation_test_rejects_the_old_seed_plus_counter_streams():
    # The same statistic on the streams Keras' torch backend gave layers seeded 0 and 1: read
    # n + 1 of the first is read n of the second, r = 1.
    a, b = _old_torch_masks(0), _old_torch_masks(1)
    r, _ = _correlation(a[1:], b[:-1])
    assert r == pytest.approx(1.0)
    assert not _uncorrelated(a[1:], b[:-1])


def test_a_fixed_seed_reproduces_the_fault_masks():
    first, again = _masks(_layer(7), reads=3), _masks(_layer(7), reads=3)
    for m1, m2 in zip(first, again, strict=True):
        np.testing.assert_array_equal(m1, m2)


def test_a_seed_tensor_gives_the_same_draw_as_the_generator_state_it_came_from():
    generator = keras.random.SeedGenerator(3)
    state = generator.state.value * 1
    u1 = keras.random.uniform((5,), seed=next_seed(generator))
    u2 = keras.random.uniform((5,), seed=seed_value(state))
    np.testing.assert_array_equal(ops.convert_to_numpy(u1), ops.convert_to_numpy(u2))
    assert list(ops.convert_to_numpy(generator.state.value)) == [3, 1]  # advanced once


@pytest.mark.parametrize("seed", [0, 7, 2**31 - 1])
def test_uniform_draws_what_keras_uniform_draws_bit_for_bit(seed):
    # On torch `uniform` seeds its own generator as Keras does and skips Keras' [0, 1) map.
    dtype = keras.random.SeedGenerator(0).state.dtype  # JAX keys are uint32

    def pair(s, n):
        return ops.convert_to_tensor([s, n], dtype)

    for make in (keras.random.SeedGenerator, lambda s: pair(s, 5)):
        ours = uniform((2, 300, 3), make(seed))
        keras_draw = keras.random.uniform((2, 300, 3), seed=draw_seed(make(seed)))
        assert ours.dtype == keras_draw.dtype
        np.testing.assert_array_equal(ops.convert_to_numpy(ours), ops.convert_to_numpy(keras_draw))
    next_draw = uniform((2, 300, 3), pair(seed, 6))  # the comparison can fail
    assert not np.array_equal(ops.convert_to_numpy(ours), ops.convert_to_numpy(next_draw))


def test_models_give_each_faulty_layer_a_hashed_seed():
    model = tl.models.binary_cnn(width_multiplier=0.25, seed=0)
    seeds = [layer.seed for layer in tl.layers.faulty_layers(model)]
    assert seeds == [derived_seed(0, i) for i in range(4)]
    assert len(set(seeds)) == 4 and all(0 <= s < 2**31 for s in seeds)
    assert min(abs(a - b) for a in seeds for b in seeds if a != b) > 1000  # not s, s+1, ...
