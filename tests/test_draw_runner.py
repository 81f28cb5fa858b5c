"""The draw runner shared by `tl.evaluation` and `tl.memse.monte_carlo`: chunks of draws and
examples, the padding of the last chunk, the bounded cache of compiled steps, one t-interval."""

import gc
import weakref

import keras
import numpy as np
import pytest
from keras import layers, ops

import tf_lanmax as tl
from tf_lanmax import memse as ms
from tf_lanmax._draw_runner import COMPILED_STEPS, Chunk, StepCache, chunks
from tf_lanmax._intervals import t_interval

# -- chunks and padding -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7, 10, 12])
def test_chunks_cover_the_rows_once_in_order(size):
    pieces = list(chunks(10, size))
    assert [c.start for c in pieces] == list(range(0, 10, size))
    assert np.concatenate([np.arange(10)[c.slice] for c in pieces]).tolist() == list(range(10))
    assert all(c.width == c.count and c.padding == 0 for c in pieces)
    padded = list(chunks(10, size, pad=True))
    assert all(c.width == size for c in padded)
    assert sum(c.count for c in padded) == 10
    # only the last chunk is padded, and only when `size` does not divide the count
    assert [c.padding for c in padded[:-1]] == [0] * (len(padded) - 1)
    assert padded[-1].padding == -10 % size


@pytest.mark.parametrize("size", [1, 3, 4, 6, 7, 9])
@pytest.mark.parametrize("kind", ["numpy", "tensor"])
def test_padded_chunks_give_what_one_unchunked_pass_gives(size, kind):
    """A row-wise step run on padded chunks, its padding dropped, equals one pass on all rows."""
    rows = np.random.default_rng(0).normal(size=(7, 3)).astype("float32")

    shapes = []

    def step(values):
        shapes.append(tuple(values.shape))
        return ops.tanh(values) * 2.0 + 1.0

    whole = ops.convert_to_numpy(step(rows))  # one unchunked pass
    shapes.clear()
    parts = []
    for chunk in chunks(len(rows), size, pad=True):
        part = rows[chunk.slice] if kind == "numpy" else ops.convert_to_tensor(rows[chunk.slice])
        parts.append(ops.convert_to_numpy(chunk.drop(step(chunk.pad(part)))))
    assert set(shapes) == {(size, 3)}  # one shape: a compiled step traces once
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=1e-6)


def test_padding_repeats_real_rows_and_bad_sizes_are_rejected():
    chunk = Chunk(start=3, stop=5, width=5)
    assert chunk.pad(np.array([[1], [2]])).ravel().tolist() == [1, 2, 1, 2, 1]
    padded = chunk.pad(ops.convert_to_tensor([1, 2]))
    assert ops.convert_to_numpy(padded).tolist() == [1, 2, 1, 2, 1]
    assert chunk.drop(np.arange(5)).tolist() == [0, 1]
    with pytest.raises(ValueError, match="size"):
        list(chunks(10, 0))
    with pytest.raises(ValueError, match="total"):
        list(chunks(-1, 3))


# -- the cache of compiled steps ----------------------------------------------------------------


class _Owner:
    pass


def test_step_cache_is_bounded_least_recently_used_and_frees_evicted_owners():
    cache = StepCache(max_size=2)
    owners = [_Owner() for _ in range(3)]
    refs = [weakref.ref(o) for o in owners]
    built = []

    def build(name):
        def make():
            built.append(name)
            return name

        return make

    assert cache.get(("a",), build("a"), owner=owners[0]) == "a"
    assert cache.get(("b",), build("b"), owner=owners[1]) == "b"
    assert cache.get(("a",), build("a"), owner=owners[0]) == "a"  # a hit: "b" is now oldest
    assert cache.get(("c",), build("c"), owner=owners[2]) == "c"
    assert built == ["a", "b", "c"] and len(cache) == 2
    assert ("a",) in cache and ("c",) in cache and ("b",) not in cache
    assert (cache.hits, cache.misses) == (1, 3)
    del owners
    gc.collect()
    assert refs[1]() is None  # the evicted entry no longer holds its owner
    assert refs[0]() is not None and refs[2]() is not None
    cache.clear()
    gc.collect()
    assert len(cache) == 0 and refs[0]() is None
    with pytest.raises(ValueError, match="max_size"):
        StepCache(max_size=0)


@pytest.fixture
def faulty_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            tl.FaultyDense(8, fault_rate=0.05, seed=0),
            layers.ReLU(),
            tl.FaultyDense(3, fault_rate=0.05, seed=1),
            layers.Softmax(),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).random((40, 6)).astype("float32")
    return model, (x, np.arange(40) % 3)


def test_fault_draws_do_not_depend_on_the_chunk_size_and_reuse_one_compiled_step(faulty_model):
    model, data = faulty_model
    COMPILED_STEPS.clear()
    hits, misses = COMPILED_STEPS.hits, COMPILED_STEPS.misses

    def counts():
        return COMPILED_STEPS.hits - hits, COMPILED_STEPS.misses - misses, len(COMPILED_STEPS)

    def run(batch_draws):
        return tl.evaluate_under_faults(
            model, data, draws=7, batch_draws=batch_draws, batch_size=20, seed=4, verbose=0
        )

    whole = run(None)  # one chunk of 7 draws
    assert counts() == (0, 1, 1)
    again = run(None)
    assert counts() == (1, 1, 1)
    assert again.per_draw_accuracy == whole.per_draw_accuracy
    for size in (2, 3):  # neither divides 7: the last chunk is padded
        chunked = run(size)
        assert chunked.per_draw_accuracy == whole.per_draw_accuracy
        np.testing.assert_allclose(chunked.per_draw_loss, whole.per_draw_loss, rtol=1e-6)
    assert len(COMPILED_STEPS) == 3  # one step per chunk size, each kept


def test_memse_monte_carlo_chunks_examples_pads_draws_and_reuses_its_compiled_pass():
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [keras.Input((5,)), layers.Dense(6, activation="relu"), layers.Dense(3)]
    )
    x = np.random.default_rng(3).random((10, 5)).astype("float32")
    mirror = ms.MemSE(model, ms.Crossbar(sigma=0.05, levels=None, gmax=1.0))
    COMPILED_STEPS.clear()
    hits, misses = COMPILED_STEPS.hits, COMPILED_STEPS.misses
    # 6 draws in chunks of 4: the compiled run pads the last chunk, the eager one does not.
    runs = [
        ms.monte_carlo(mirror, None, x, draws=6, batch_draws=4, batch_size=size, seed=1)
        for size in (10, 4)  # 4: examples in chunks of 4, 4 and 2
    ]
    assert COMPILED_STEPS.hits - hits == 1 and COMPILED_STEPS.misses - misses == 1
    assert len(COMPILED_STEPS) == 1
    eager = ms.monte_carlo(mirror, None, x, draws=6, batch_draws=4, seed=1, compiled=False)
    for result in runs[1:] + [eager]:
        np.testing.assert_allclose(result.per_draw, runs[0].per_draw, rtol=1e-5)
    # The interval is the shared t-interval of the per-draw MSE.
    interval = t_interval(runs[0].per_draw, 0.95)
    assert runs[0].ci == (interval.low, interval.high) and runs[0].mse == interval.mean


# -- the t-interval ----------------------------------------------------------------------------


def test_t_interval_of_draws_of_arrays_is_one_interval_per_entry():
    samples = np.random.default_rng(1).normal(size=(9, 4))
    joint = t_interval(samples, 0.9)
    for j in range(4):
        alone = t_interval(samples[:, j], 0.9)
        assert joint.mean[j] == pytest.approx(alone.mean, rel=1e-12)
        assert joint.half_width[j] == pytest.approx(alone.half_width, rel=1e-12)
    assert joint.n == 9 and joint.to_dict()["low"] == joint.low.tolist()
    # A wrong coverage would give another width: the check above can fail.
    assert joint.half_width[0] != pytest.approx(t_interval(samples[:, 0], 0.95).half_width)
