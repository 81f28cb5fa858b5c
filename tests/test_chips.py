"""Chip-to-chip evaluation: `evaluate_under_faults(..., chips=K)` on persistent fault maps.

Oracles: `tl.layers.set_chip` + `model.evaluate` chip by chip, numpy's quantiles and scipy's
t and binomial distributions on the per-chip values.
"""

import json
import math
import warnings

import keras
import numpy as np
import pytest
from keras import ops
from scipy import stats

import tf_lanmax as tl
from tf_lanmax.evaluation import (
    ChipEvaluation,
    chip_index,
    draw_seed,
    evaluate_under_faults,
    quantile_lower_bound,
    t_interval,
)

# ---------------------------------------------------------------------------------------------
# quantile_lower_bound
# ---------------------------------------------------------------------------------------------


def _rank_by_hand(k, q, confidence):
    """The largest r with P(Binomial(k, q) >= r) >= confidence, summing the pmf, or None."""
    tails = np.cumsum(stats.binom.pmf(np.arange(k + 1), k, q)[::-1])[::-1]  # tails[r] = P(>= r)
    ranks = [r for r in range(1, k + 1) if tails[r] >= confidence]
    return max(ranks) if ranks else None


@pytest.mark.parametrize(
    "k, q, confidence", [(100, 0.05, 0.95), (100, 0.5, 0.95), (40, 0.1, 0.9), (200, 0.05, 0.99)]
)
def test_quantile_lower_bound_is_the_binomial_order_statistic(k, q, confidence):
    samples = np.random.default_rng(3).normal(size=k)
    r = _rank_by_hand(k, q, confidence)
    assert quantile_lower_bound(samples, q, confidence) == np.sort(samples)[r - 1]


def test_quantile_lower_bound_needs_enough_samples():
    # 1 - 0.95**K >= 0.95 first holds at K = 59: the sample minimum is then the bound.
    assert math.ceil(math.log(0.05) / math.log(0.95)) == 59
    assert quantile_lower_bound(np.arange(58.0), 0.05) is None
    assert quantile_lower_bound(np.arange(59.0), 0.05) == 0.0
    assert quantile_lower_bound(np.arange(28.0), 0.1) is None
    assert quantile_lower_bound(np.arange(29.0), 0.1) == 0.0


def test_quantile_lower_bound_covers_the_true_quantile():
    """Over 2000 samples of K = 100 normals the bound is below the true 5 % quantile in
    P(Bin(100, .05) >= 2) = 96.3 % of them (+-1.7 %: 4 binomial SEs); the point estimate
    `np.quantile` is below it only about half of the time, so the test can tell the two apart."""
    rng = np.random.default_rng(11)
    truth = stats.norm.ppf(0.05)
    data = rng.normal(size=(2000, 100))
    covered = np.mean([quantile_lower_bound(row, 0.05) <= truth for row in data])
    exact = stats.binom.sf(1, 100, 0.05)
    assert abs(covered - exact) <= 4 * math.sqrt(exact * (1 - exact) / 2000)
    naive = np.mean(np.quantile(data, 0.05, axis=1) <= truth)
    assert naive < 0.7


@pytest.mark.parametrize(("q", "confidence"), [(0.0, 0.95), (1.0, 0.95), (0.05, 1.0)])
def test_quantile_lower_bound_bad_arguments(q, confidence):
    name = "confidence" if confidence == 1.0 else "q"
    with pytest.raises(ValueError, match=name):
        quantile_lower_bound(np.arange(100.0), q, confidence)


def test_chip_index_is_deterministic_distinct_and_not_draw_seed():
    chips = {chip_index(0, k) for k in range(200)}
    assert len(chips) == 200 and all(0 <= c < 2**31 for c in chips)
    assert chip_index(5, 3) == chip_index(5, 3) != chip_index(6, 3)
    assert chip_index(0, 3) != draw_seed(0, 3, 0)


# ---------------------------------------------------------------------------------------------
# evaluate_under_faults(chips=K)
# ---------------------------------------------------------------------------------------------

PERSISTENT = ("persistent", "persistent")
MIXED = ("persistent", "transient")


def _model(persistence=PERSISTENT, fault_rate=0.1):
    model = keras.Sequential(
        [
            keras.Input((8,)),
            tl.FaultyDense(16, fault_rate=fault_rate, seed=0, fault_persistence=persistence[0]),
            tl.FaultyDense(3, fault_rate=fault_rate, seed=1, fault_persistence=persistence[1]),
            keras.layers.Softmax(),
        ],
        name="chips_model",
    )
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype("float32")  # two full batches: one shape to trace
    y = rng.integers(0, 3, size=64).astype("int32")
    return x, y


@pytest.fixture(scope="module")
def model():
    return _model()


@pytest.fixture(scope="module")
def mixed():
    return _model(MIXED)


def _states(model):
    layers = tl.faulty_layers(model)
    variables = [layer.chip_seed.state for layer in layers]
    variables += [layer.seed_generator.state for layer in layers]
    return [ops.convert_to_numpy(v.value).tolist() for v in variables]


def _by_set_chip(model, data, chips):
    """The oracle: `set_chip` then `model.evaluate`, one chip at a time."""
    rows = []
    for chip in chips:
        tl.layers.set_chip(model, chip)
        rows.append(model.evaluate(*data, verbose=0, return_dict=True))
    return [r["accuracy"] for r in rows], [r["loss"] for r in rows]


@pytest.mark.parametrize("method", ["batched", "vectorized", "sequential"])
def test_chips_equal_set_chip_and_evaluate_chip_by_chip(model, data, method):
    tl.layers.set_chip(model, 7)
    before = _states(model)
    result = evaluate_under_faults(model, data, chips=4, seed=3, method=method, verbose=0)
    assert isinstance(result, ChipEvaluation)
    assert _states(model) == before  # the chip (and the seed states) restored
    assert tl.faulty_layers(model)[0].chip == 7
    assert result.chips == tuple(chip_index(3, k) for k in range(4))
    accuracy, loss = _by_set_chip(model, data, result.chips)
    tl.layers.set_chip(model, 7)
    np.testing.assert_allclose(result.per_chip, accuracy, atol=1e-6)
    np.testing.assert_allclose(result.per_chip_loss, loss, rtol=1e-5)
    # p = 0.1: every chip has its own fault map, hence its own loss.
    assert len(set(np.round(result.per_chip_loss, 5))) == 4


def test_chips_are_reproducible_and_the_seed_picks_them(model, data):
    first = evaluate_under_faults(model, data, chips=4, seed=1, verbose=0)
    again = evaluate_under_faults(model, data, chips=4, seed=1, verbose=0)
    assert (first.per_chip, first.per_chip_loss) == (again.per_chip, again.per_chip_loss)
    other = evaluate_under_faults(model, data, chips=4, seed=2, verbose=0)
    assert set(other.chips).isdisjoint(first.chips)
    assert other.per_chip_loss != first.per_chip_loss


def test_seed_none_draws_fresh_chips_and_records_the_seed(model, data):
    fresh = evaluate_under_faults(model, data, chips=4, seed=None, verbose=0)
    assert 0 <= fresh.seed < 2**31
    assert fresh.chips == tuple(chip_index(fresh.seed, k) for k in range(4))
    again = evaluate_under_faults(model, data, chips=4, seed=fresh.seed, verbose=0)
    assert again.per_chip_loss == fresh.per_chip_loss


def test_mixed_model_chips_equal_set_chip_and_reseed(mixed, data):
    """The transient layer draws as in draw k (`draw_seed(seed, k, i)`) on chip k."""
    before = _states(mixed)
    result = evaluate_under_faults(mixed, data, chips=4, seed=4, verbose=0)
    assert _states(mixed) == before
    transient = tl.faulty_layers(mixed)[1]
    expected = []
    for k, chip in enumerate(result.chips):
        tl.layers.set_chip(mixed, chip)
        transient.reseed(draw_seed(4, k, 1))
        expected.append(mixed.evaluate(*data, verbose=0, return_dict=True)["loss"])
    np.testing.assert_allclose(result.per_chip_loss, expected, rtol=1e-5)


def test_statistics_are_those_of_the_per_chip_values(model, data):
    # Chunks of 4 chips: one compiled step for the whole file (a JAX trace costs seconds).
    result = evaluate_under_faults(model, data, chips=64, seed=0, batch_draws=4, verbose=0)
    acc = np.asarray(result.per_chip)
    # Chip k does not depend on how many chips are evaluated or how they are chunked.
    first = evaluate_under_faults(model, data, chips=4, seed=0, verbose=0)
    np.testing.assert_allclose(result.per_chip_loss[:4], first.per_chip_loss, rtol=1e-6)
    assert result.n_chips == 64 and acc.std() > 0
    assert result.accuracy == t_interval(acc, 0.95)
    assert result.loss == t_interval(result.per_chip_loss, 0.95)
    assert result.mean == pytest.approx(acc.mean(), rel=1e-12)
    sem = acc.std(ddof=1) / math.sqrt(64)
    assert result.ci == pytest.approx(stats.t.interval(0.95, 63, loc=acc.mean(), scale=sem))
    assert sorted(result.quantiles) == [0.05, 0.1, 0.5]
    for q, value in result.quantiles.items():
        assert value == np.quantile(acc, q) == result.quantile(q)
        assert result.quantile_bounds[q] == np.sort(acc)[_rank_by_hand(64, q, 0.95) - 1]
    assert result.quantile_bounds[0.05] <= result.quantiles[0.05]

    d = result.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["per_chip_accuracy"] == list(acc) and d["chips"] == list(result.chips)
    assert [row["q"] for row in d["quantiles"]] == [0.05, 0.1, 0.5]
    text = str(result)
    assert "95% CI over 64 chips" in text
    assert f"95% of chips reach >= {result.quantiles[0.05]:.4f}" in text
    assert f"(>= {result.quantile_bounds[0.05]:.4f} at 95% confidence)" in text

    narrow = evaluate_under_faults(
        model, data, chips=64, seed=0, confidence=0.5, batch_draws=4, verbose=0
    )
    assert narrow.per_chip == result.per_chip
    assert narrow.accuracy == t_interval(acc, 0.5)
    assert narrow.quantile_bounds[0.5] == quantile_lower_bound(acc, 0.5, 0.5)


def test_too_few_chips_give_no_quantile_bound(model, data):
    result = evaluate_under_faults(model, data, chips=4, seed=0, verbose=0)
    assert result.quantile_bounds == {0.05: None, 0.1: None, 0.5: None}
    assert "confidence)" not in str(result)
    assert json.loads(json.dumps(result.to_dict()))["quantiles"][0]["lower_bound"] is None


@pytest.mark.parametrize(
    "kwargs, names",
    [
        ({"chips": 4, "draws": 4}, ["chips", "draws"]),
        ({"chips": 1}, ["chips"]),
        ({"chips": 2.5}, ["chips"]),
        ({"chips": True}, ["chips"]),
        ({"chips": 4, "target_half_width": 0.01}, ["target_half_width", "chips"]),
        ({"chips": 4, "method": "loop"}, ["method"]),
    ],
)
def test_bad_chip_arguments_raise(model, data, kwargs, names):
    with pytest.raises(ValueError) as info:
        evaluate_under_faults(model, data, verbose=0, **kwargs)
    for name in names:
        assert f"`{name}`" in str(info.value) or f"{name}=" in str(info.value)


def test_chips_on_a_transient_model_raises(data):
    model = _model(("transient", "transient"))
    with pytest.raises(ValueError, match="`chips` needs faulty layers with fault_persistence"):
        evaluate_under_faults(model, data, chips=3, verbose=0)


def test_draws_on_a_persistent_model_warn_and_point_to_chips(model, data):
    with pytest.warns(UserWarning, match="chips=3") as record:
        result = evaluate_under_faults(model, data, draws=3, seed=0, verbose=0, method="sequential")
    assert record[0].filename == __file__  # stacklevel=2: the caller's line
    assert len(set(result.per_draw_accuracy)) == 1  # what the warning says: one chip, 3 times


def test_draws_on_a_mixed_model_do_not_warn(mixed, data):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = evaluate_under_faults(mixed, data, draws=3, seed=0, verbose=0, method="sequential")
    assert len(set(result.per_draw_loss)) == 3  # the transient layer redraws
