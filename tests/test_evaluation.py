"""Tests of the Monte-Carlo evaluation under faults and its t-intervals."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

import tf_lanmax as tl
from tf_lanmax.evaluation import (
    FaultEvaluation,
    Interval,
    draw_seed,
    draws_for_half_width,
    evaluate_under_faults,
    t_interval,
)

# ---------------------------------------------------------------------------------------------
# t_interval
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("confidence", [0.5, 0.9, 0.95, 0.99])
def test_t_interval_matches_scipy(confidence):
    samples = np.random.default_rng(1).normal(0.8, 0.03, size=12)
    interval = t_interval(samples, confidence)
    mean = samples.mean()
    sem = samples.std(ddof=1) / math.sqrt(samples.size)
    low, high = stats.t.interval(confidence, samples.size - 1, loc=mean, scale=sem)
    assert isinstance(interval, Interval)
    assert interval.mean == pytest.approx(mean, rel=1e-14)
    assert interval.low == pytest.approx(low, rel=1e-12)
    assert interval.high == pytest.approx(high, rel=1e-12)
    assert interval.half_width == pytest.approx((high - low) / 2, rel=1e-10)
    assert interval.std == pytest.approx(samples.std(ddof=1), rel=1e-14)
    assert interval.n == 12
    assert interval.confidence == confidence


def test_t_interval_by_hand():
    # samples 1, 2, 3: mean 2, s = 1 (n - 1 denominator), t_(0.975, 2) = 4.302652729749464.
    interval = t_interval([1.0, 2.0, 3.0])
    half = 4.302652729749464 / math.sqrt(3)
    assert interval.mean == 2.0
    assert interval.std == pytest.approx(1.0, rel=1e-15)
    assert interval.half_width == pytest.approx(half, rel=1e-12)
    assert (interval.low, interval.high) == pytest.approx((2 - half, 2 + half), rel=1e-12)
    assert interval.to_dict()["n"] == 3


def test_t_interval_constant_samples_has_zero_width():
    interval = t_interval([0.5] * 4)
    assert interval.half_width == 0.0 and interval.low == interval.high == 0.5


def test_t_interval_coverage():
    """The 95 % t-interval covers the true mean 95 % (+-2 %) of the time.

    2000 repetitions: the binomial SE of the coverage is sqrt(.95 * .05 / 2000) = 0.0049, so
    +-0.02 is a 4-SE band. The z = 1.96 interval at K = 10 covers ~91.8 %: outside the band, so
    the test can tell a wrong quantile.
    """
    rng = np.random.default_rng(20240501)
    reps, k, mu, sigma = 2000, 10, 0.7, 0.05
    data = rng.normal(mu, sigma, size=(reps, k))
    covered = 0
    for row in data:
        interval = t_interval(row, 0.95)
        covered += interval.low <= mu <= interval.high
    coverage = covered / reps
    assert abs(coverage - 0.95) <= 0.02

    half_z = 1.96 * data.std(axis=1, ddof=1) / math.sqrt(k)
    coverage_z = np.mean(np.abs(data.mean(axis=1) - mu) <= half_z)
    assert abs(coverage_z - 0.95) > 0.02


@pytest.mark.parametrize("confidence", [1.5, 1.0, 0.0, -0.1, float("nan")])
def test_t_interval_bad_confidence(confidence):
    with pytest.raises(ValueError, match="confidence"):
        t_interval([1.0, 2.0, 3.0], confidence)


def test_t_interval_needs_two_samples():
    with pytest.raises(ValueError, match="2 draws"):
        t_interval([1.0])


# ---------------------------------------------------------------------------------------------
# draws_for_half_width
# ---------------------------------------------------------------------------------------------


def _half_width(std, k, confidence=0.95):
    return stats.t.ppf(0.5 + confidence / 2, k - 1) * std / math.sqrt(k)


def _smallest_k(std, target, confidence=0.95, min_draws=5):
    k = min_draws
    while _half_width(std, k, confidence) > target:
        k += 1
    return k


GRID = [
    (0.01, 0.001),
    (0.01, 0.002),
    (0.02, 0.003),
    (0.05, 0.004),
    (0.05, 0.01),
    (0.1, 0.01),
    (0.5, 0.1),
]


@pytest.mark.parametrize("std, target", GRID)
def test_draws_for_half_width_is_smallest_k(std, target):
    k = draws_for_half_width(std, target)
    assert isinstance(k, int)
    assert _half_width(std, k) <= target
    assert k == 5 or _half_width(std, k - 1) > target
    assert k == _smallest_k(std, target)


@pytest.mark.parametrize("std, target", [(1.0, 1.0), (0.01, 0.005), (0.03, 0.007), (1.033, 1.0)])
def test_draws_for_half_width_overshoot_cases(std, target):
    k = draws_for_half_width(std, target)
    assert _half_width(std, k) <= target
    assert _half_width(std, k - 1) > target  # K - 1 fails


def test_draws_for_half_width_respects_min_draws_and_zero_std():
    assert draws_for_half_width(0.0, 0.01) == 5
    assert draws_for_half_width(1e-6, 0.01, min_draws=12) == 12


@pytest.mark.parametrize("half_width", [0, 0.0, -0.01])
def test_draws_for_half_width_bad_half_width(half_width):
    with pytest.raises(ValueError, match="half_width"):
        draws_for_half_width(0.1, half_width)


@pytest.mark.parametrize("confidence", [1.5, 0.0, -0.1])
def test_draws_for_half_width_bad_confidence(confidence):
    with pytest.raises(ValueError, match="confidence"):
        draws_for_half_width(0.1, 0.01, confidence=confidence)


# ---------------------------------------------------------------------------------------------
# draw_seed
# ---------------------------------------------------------------------------------------------


def test_draw_seed_is_deterministic_and_distinct():
    seeds = {draw_seed(0, k, i) for k in range(50) for i in range(4)}
    assert len(seeds) == 200
    assert all(0 <= s < 2**31 for s in seeds)
    assert draw_seed(7, 3, 1) == draw_seed(7, 3, 1)
    assert draw_seed(7, 3, 1) != draw_seed(8, 3, 1)


# ---------------------------------------------------------------------------------------------
# evaluate_under_faults
# ---------------------------------------------------------------------------------------------


def _tiny_model(metrics=("accuracy",), fault_rate=0.05):
    model = keras.Sequential(
        [
            keras.Input((8,)),
            tl.FaultyDense(16, fault_rate=fault_rate, seed=0, name="f1"),
            tl.FaultyDense(3, fault_rate=fault_rate, seed=1, name="f2"),
            keras.layers.Softmax(),
        ],
        name="tiny",
    )
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=list(metrics))
    return model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 8)).astype("float32")
    y = rng.integers(0, 3, size=96).astype("int32")
    return x, y


@pytest.fixture(scope="module")
def model():
    return _tiny_model()


def test_same_seed_gives_identical_draws(model, data):
    first = evaluate_under_faults(model, data, draws=4, seed=3, verbose=0)
    second = evaluate_under_faults(model, data, draws=4, seed=3, verbose=0)
    assert isinstance(first, FaultEvaluation)
    assert first.per_draw_accuracy == second.per_draw_accuracy
    assert first.per_draw_loss == second.per_draw_loss
    other = evaluate_under_faults(model, data, draws=4, seed=4, verbose=0)
    assert other.per_draw_loss != first.per_draw_loss


def test_dataset_input_is_reproducible_and_matches_arrays(model, data):
    x, y = data
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    first = evaluate_under_faults(model, ds, draws=4, seed=3, verbose=0)
    second = evaluate_under_faults(model, ds, draws=4, seed=3, verbose=0)
    assert first.per_draw_accuracy == second.per_draw_accuracy
    assert first.per_draw_loss == second.per_draw_loss
    other = evaluate_under_faults(model, ds, draws=4, seed=4, verbose=0)
    assert other.per_draw_loss != first.per_draw_loss
    # Same batches (32) in the same order, same seeds: the same fault patterns as with arrays.
    arrays = evaluate_under_faults(model, data, draws=4, seed=3, verbose=0, batch_size=32)
    np.testing.assert_allclose(first.per_draw_accuracy, arrays.per_draw_accuracy, atol=1e-6)
    np.testing.assert_allclose(first.per_draw_loss, arrays.per_draw_loss, rtol=1e-5)


def test_result_is_the_t_interval_of_the_draws(model, data):
    result = evaluate_under_faults(model, data, draws=8, seed=0, verbose=0)
    acc = np.array(result.per_draw_accuracy)
    assert len(acc) == 8 == result.draws
    assert acc.std() > 0  # faults at p = 0.05 change the accuracy from draw to draw
    assert result.metric == "accuracy"
    assert result.mean == pytest.approx(acc.mean(), rel=1e-12)
    assert result.ci[0] <= acc.mean() <= result.ci[1]
    assert result.accuracy == t_interval(acc, 0.95)
    assert result.loss == t_interval(result.per_draw_loss, 0.95)
    assert ((acc >= 0) & (acc <= 1)).all()
    d = result.to_dict()
    assert d["per_draw_accuracy"] == list(acc)
    assert "95% CI over 8 fault draws" in str(result)

    narrow = evaluate_under_faults(model, data, draws=8, seed=0, confidence=0.5, verbose=0)
    assert narrow.per_draw_accuracy == result.per_draw_accuracy
    assert narrow.accuracy == t_interval(acc, 0.5)


def test_target_half_width_sequential_stopping(model, data):
    pilot = 3
    # A loose target: met by the pilot already.
    loose = evaluate_under_faults(
        model, data, draws=pilot, target_half_width=1.0, max_draws=12, seed=0, verbose=0
    )
    assert loose.draws == pilot
    # An impossible target: stops at max_draws.
    tight = evaluate_under_faults(
        model, data, draws=pilot, target_half_width=1e-9, max_draws=9, seed=0, verbose=0
    )
    assert tight.draws == 9
    assert tight.accuracy.half_width > 1e-9
    # The draws continue the same seeded sequence: the pilot is a prefix.
    assert tight.per_draw_accuracy[:pilot] == loose.per_draw_accuracy
    # A target between the pilot's half-width and what max_draws can reach.
    pilot_hw = t_interval(tight.per_draw_accuracy[:pilot]).half_width
    assert pilot_hw > 0
    target = pilot_hw / 2
    mid = evaluate_under_faults(
        model, data, draws=pilot, target_half_width=target, max_draws=40, seed=0, verbose=0
    )
    assert mid.draws > pilot
    assert mid.accuracy.half_width <= target or mid.draws == 40
    assert mid.per_draw_accuracy[:9] == tight.per_draw_accuracy[: min(9, mid.draws)]
    assert mid.accuracy == t_interval(mid.per_draw_accuracy)


def test_tiny_rate_matches_clean_evaluate(data):
    model = _tiny_model(fault_rate=1e-9)
    with tl.faults_disabled(model):
        clean = model.evaluate(*data, verbose=0, return_dict=True)
    result = evaluate_under_faults(model, data, draws=3, seed=0, verbose=0)
    assert result.per_draw_accuracy == (clean["accuracy"],) * 3
    np.testing.assert_allclose(result.per_draw_loss, clean["loss"], rtol=1e-6)
    assert result.accuracy.half_width == 0.0
    # faults_disabled restored the rate.
    assert float(model.layers[0].fault_rate.numpy()) == pytest.approx(1e-9)


@pytest.mark.parametrize("metrics", [(), ("sparse_categorical_crossentropy",)])
def test_model_without_accuracy_metric_raises(metrics, data):
    model = _tiny_model(metrics=metrics)
    with pytest.raises(ValueError, match="accuracy"):
        evaluate_under_faults(model, data, draws=2, verbose=0)


def test_model_without_faulty_layers_raises(data):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)], name="reliable")
    model.compile("sgd", "mse", metrics=["accuracy"])
    with pytest.raises(ValueError, match="faulty"):
        evaluate_under_faults(model, data, draws=2, verbose=0)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"draws": 1}, "draws"),
        ({"draws": 2.5}, "draws"),
        ({"draws": 5, "max_draws": 3}, "max_draws"),
        ({"target_half_width": 0}, "target_half_width"),
        ({"target_half_width": -0.1}, "target_half_width"),
        ({"confidence": 1.5}, "confidence"),
    ],
)
def test_bad_arguments_raise(model, data, kwargs, name):
    with pytest.raises(ValueError, match=name):
        evaluate_under_faults(model, data, **{"draws": 2, "verbose": 0, **kwargs})


# ---------------------------------------------------------------------------------------------
# batched Monte-Carlo (method="batched" / "vectorized") against K model.evaluate calls
# ---------------------------------------------------------------------------------------------

# Keras' torch generator cannot be mapped by torch.vmap: "vectorized" is refused there.
BATCHED = ("batched",) if keras.backend.backend() == "torch" else ("batched", "vectorized")


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="the refusal is torch's")
def test_vectorized_fault_draws_are_refused_on_torch(model, data):
    with pytest.raises(ValueError, match="vectorized.*batched"):
        evaluate_under_faults(model, data, draws=2, verbose=0, method="vectorized")
    with pytest.raises(ValueError, match="vectorized"):
        evaluate_under_faults(model, data, chips=2, verbose=0, method="vectorized")


@pytest.mark.parametrize("method", BATCHED)
def test_batched_draws_equal_sequential_draws(model, data, method):
    """The oracle is `model.evaluate` itself: the same seeds give the same fault streams."""
    reference = evaluate_under_faults(model, data, draws=4, seed=3, verbose=0, method="sequential")
    result = evaluate_under_faults(model, data, draws=4, seed=3, verbose=0, method=method)
    assert result.metric == reference.metric == "accuracy"
    np.testing.assert_allclose(result.per_draw_accuracy, reference.per_draw_accuracy, atol=1e-6)
    np.testing.assert_allclose(result.per_draw_loss, reference.per_draw_loss, rtol=1e-5)
    assert np.std(result.per_draw_accuracy) > 0  # p = 0.05: the draws really differ


@pytest.mark.parametrize("method", BATCHED)
def test_batched_dataset_with_sample_weights_equals_sequential(model, data, method):
    x, y = data
    weights = np.linspace(0.1, 2.0, len(y)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, y, weights)).batch(40)  # last batch of 16
    reference = evaluate_under_faults(model, ds, draws=3, seed=5, verbose=0, method="sequential")
    result = evaluate_under_faults(model, ds, draws=3, seed=5, verbose=0, method=method)
    np.testing.assert_allclose(result.per_draw_accuracy, reference.per_draw_accuracy, atol=1e-6)
    np.testing.assert_allclose(result.per_draw_loss, reference.per_draw_loss, rtol=1e-5)


def test_batched_supports_one_hot_labels_logits_and_activity_losses(data):
    """Keras' own loss and metric objects run per draw: categorical accuracy, from_logits, and
    an activity regulariser's loss (collected in the stateless scope) all match `evaluate`."""
    x, y = data
    model = keras.Sequential(
        [
            keras.Input((8,)),
            tl.FaultyDense(16, fault_rate=0.05, seed=0, activity_regularizer="l2"),
            tl.FaultyDense(3, fault_rate=0.05, seed=1),
        ]
    )
    model.compile(
        "sgd",
        keras.losses.CategoricalCrossentropy(from_logits=True),
        # k = 2 < 3 classes: torch.topk refuses k above the class count (Keras' default k is 5).
        metrics=["accuracy", keras.metrics.TopKCategoricalAccuracy(k=2)],
    )
    one_hot = np.eye(3, dtype="float32")[y]
    reference = evaluate_under_faults(
        model, (x, one_hot), draws=3, seed=1, verbose=0, method="sequential"
    )
    result = evaluate_under_faults(model, (x, one_hot), draws=3, seed=1, verbose=0)
    np.testing.assert_allclose(result.per_draw_accuracy, reference.per_draw_accuracy, atol=1e-6)
    np.testing.assert_allclose(result.per_draw_loss, reference.per_draw_loss, rtol=1e-5)


def test_batched_at_zero_rate_equals_clean_evaluate(model, data):
    with tl.faults_disabled(model):
        clean = model.evaluate(*data, verbose=0, return_dict=True)
        result = evaluate_under_faults(model, data, draws=3, seed=0, verbose=0)
    assert result.per_draw_accuracy == (pytest.approx(clean["accuracy"], abs=1e-6),) * 3
    np.testing.assert_allclose(result.per_draw_loss, clean["loss"], rtol=1e-6)
    assert result.accuracy.half_width == pytest.approx(0.0, abs=1e-9)


def test_batched_is_reproducible_and_chunking_does_not_change_draws(model, data):
    first = evaluate_under_faults(model, data, draws=5, seed=11, verbose=0)
    again = evaluate_under_faults(model, data, draws=5, seed=11, verbose=0)
    assert first.per_draw_accuracy == again.per_draw_accuracy
    assert first.per_draw_loss == again.per_draw_loss
    chunked = evaluate_under_faults(model, data, draws=5, seed=11, verbose=0, batch_draws=2)
    np.testing.assert_allclose(chunked.per_draw_accuracy, first.per_draw_accuracy, atol=1e-6)
    np.testing.assert_allclose(chunked.per_draw_loss, first.per_draw_loss, rtol=1e-6)
    other = evaluate_under_faults(model, data, draws=5, seed=12, verbose=0)
    assert other.per_draw_loss != first.per_draw_loss


def test_batched_without_seed_gives_fresh_draws(model, data):
    first = evaluate_under_faults(model, data, draws=3, seed=None, verbose=0)
    second = evaluate_under_faults(model, data, draws=3, seed=None, verbose=0)
    assert first.per_draw_loss != second.per_draw_loss


def _blobs(n, seed):
    centres = np.random.default_rng(100).normal(scale=0.7, size=(3, 8))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    return (centres[y] + rng.normal(size=(n, 8))).astype("float32"), y.astype("int32")


@pytest.fixture(scope="module")
def trained():
    """A binary MLP trained at p = 1e-3 that faults at p = 0.05 visibly hurt."""
    keras.utils.set_random_seed(4)
    model = _tiny_model(fault_rate=1e-3)
    model.compile(
        keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    model.fit(*_blobs(600, 0), epochs=30, batch_size=60, verbose=0)
    return model, _blobs(300, 1)


def test_batched_and_sequential_agree_statistically_on_independent_draws(trained):
    """Independent seeds: Welch's t-test of the per-draw accuracies, two-sided p > 1e-3.

    And the test can fail: against the sequential way at 2p the p-value is < 1e-3.
    """
    model, test = trained
    tl.set_fault_rates(model, 0.05)
    batched = evaluate_under_faults(model, test, draws=20, seed=1, verbose=0)
    sequential = evaluate_under_faults(
        model, test, draws=20, seed=2, verbose=0, method="sequential"
    )
    with tl.faults_disabled(model):
        clean = model.evaluate(*test, verbose=0, return_dict=True)["accuracy"]
    # Faults matter at this rate: 4.6 points on JAX (jax 0.10.2, already at 56ba667), more on TF.
    assert batched.mean < clean - 0.02
    assert (
        stats.ttest_ind(
            batched.per_draw_accuracy, sequential.per_draw_accuracy, equal_var=False
        ).pvalue
        > 1e-3
    )
    tl.set_fault_rates(model, 0.1)
    doubled = evaluate_under_faults(model, test, draws=20, seed=2, verbose=0, method="sequential")
    tl.set_fault_rates(model, 1e-3)
    assert (
        stats.ttest_ind(
            batched.per_draw_accuracy, doubled.per_draw_accuracy, equal_var=False
        ).pvalue
        < 1e-3
    )


def test_batched_target_half_width_extends_in_chunks(model, data):
    pilot = 3
    sequential = evaluate_under_faults(
        model,
        data,
        draws=pilot,
        target_half_width=1e-9,
        max_draws=8,
        seed=0,
        verbose=0,
        method="sequential",
    )
    batched = evaluate_under_faults(
        model,
        data,
        draws=pilot,
        target_half_width=1e-9,
        max_draws=8,
        seed=0,
        verbose=0,
        batch_draws=2,
    )
    assert batched.draws == sequential.draws == 8
    np.testing.assert_allclose(batched.per_draw_accuracy, sequential.per_draw_accuracy, atol=1e-6)


def test_batched_refuses_a_one_shot_iterator(model, data):
    x, y = data
    batches = ((x[i : i + 32], y[i : i + 32]) for i in range(0, len(x), 32))
    with pytest.raises(ValueError, match="sequential"):
        evaluate_under_faults(model, batches, draws=2, verbose=0)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"method": "fast"}, "method"),
        ({"method": None}, "method"),
        ({"batch_draws": 0}, "batch_draws"),
        ({"batch_draws": 1.5}, "batch_draws"),
    ],
)
def test_bad_batched_arguments_raise(model, data, kwargs, name):
    with pytest.raises(ValueError, match=name):
        evaluate_under_faults(model, data, **{"draws": 2, "verbose": 0, **kwargs})


# ---------------------------------------------------------------------------------------------
# evaluate_under_noise, batched
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def float_model():
    keras.utils.set_random_seed(2)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)]
    )
    model.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    model.fit(*_blobs(300, 0), epochs=10, verbose=0)
    return model


@pytest.mark.parametrize("method", BATCHED)
def test_noise_batched_equals_sequential_and_sigma_zero_is_clean(float_model, data, method):
    sigmas = [0.0, 0.5]
    clean = float_model.evaluate(*data, verbose=0, return_dict=True)
    reference = tl.evaluate_under_noise(
        float_model, data, sigmas, draws=3, seed=2, verbose=0, method="sequential"
    )
    result = tl.evaluate_under_noise(
        float_model, data, sigmas, draws=3, seed=2, verbose=0, method=method, batch_draws=2
    )
    np.testing.assert_allclose(result.per_draw_accuracy, reference.per_draw_accuracy, atol=1e-6)
    assert result.at(0.0).mean == pytest.approx(clean["accuracy"], abs=1e-6)
    assert result.loss[0].mean == pytest.approx(clean["loss"], rel=1e-5)
    assert result.at(0.5).std > 0
    np.testing.assert_allclose(
        [i.mean for i in result.loss], [i.mean for i in reference.loss], rtol=1e-5
    )


@pytest.mark.parametrize(
    "kwargs, name", [({"method": "x"}, "method"), ({"batch_draws": 0}, "batch_draws")]
)
def test_noise_bad_batched_arguments_raise(float_model, data, kwargs, name):
    with pytest.raises(ValueError, match=name):
        tl.evaluate_under_noise(float_model, data, [0.1], **{"draws": 2, "verbose": 0, **kwargs})
