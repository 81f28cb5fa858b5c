"""Tests of `tl.sensitivity`: one faulty layer at a time at a high rate, the others unchanged."""

import importlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_lanmax as tl

# `tf_lanmax.evaluation.sensitivity` is the function (re-exported by the package), which shadows
# the submodule of the same name as an attribute: fetch the module itself to monkeypatch it.
sensitivity_module = importlib.import_module("tf_lanmax.evaluation.sensitivity")

CHANCE = 1.0 / 3.0
RATES = {"a": 1e-3, "b": 2e-3}  # distinct per layer, so a swapped restore is caught
ROW_KEYS = {"accuracy", "ci", "drop", "stored_bits", "rate"}


def _data(n, seed):
    x = np.random.default_rng(seed).normal(size=(n, 8)).astype("float32")
    y = np.argmax(x[:, :3], axis=1).astype("int32")  # separable: the largest of 3 features
    return x, y


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    h = tl.FaultyDense(32, name="a", fault_rate=1e-3, seed=0, activation="relu")(inputs)
    h = tl.FaultyDense(3, name="b", fault_rate=1e-3, seed=1)(h)
    outputs = keras.layers.Softmax()(h)
    model = keras.Model(inputs, outputs, name="tiny")
    model.compile(
        keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    x, y = _data(512, seed=0)
    model.fit(x, y, epochs=5, batch_size=32, verbose=0)
    return model, _data(256, seed=1)


@pytest.fixture
def model_and_test(trained):
    model, test = trained
    tl.set_fault_rates(model, RATES)
    return model, test


def _rates(model):
    return {layer.name: np.asarray(layer.fault_rate).copy() for layer in tl.faulty_layers(model)}


def _assert_rates_exactly(model, expected):
    got = _rates(model)
    assert list(got) == list(expected)
    for name, value in expected.items():
        assert got[name].dtype == value.dtype
        assert got[name].tobytes() == value.tobytes(), (name, got[name], value)


def test_table_has_one_row_per_faulty_layer_in_model_order(model_and_test):
    model, test = model_and_test
    result = tl.sensitivity(model, test, test_rate=0.5, draws=3, seed=0)
    assert set(result) == {"baseline", "test_rate", "layers"}
    assert result["test_rate"] == 0.5
    assert list(result["layers"]) == ["a", "b"]
    for name, bits in (("a", 8 * 32), ("b", 32 * 3)):  # binary weights: one bit each
        row = result["layers"][name]
        assert set(row) == ROW_KEYS
        assert row["rate"] == 0.5
        assert row["stored_bits"] == bits
        low, high = row["ci"]
        assert low <= row["accuracy"] <= high
        assert row["drop"] == pytest.approx(result["baseline"]["accuracy"] - row["accuracy"])
    baseline = result["baseline"]
    assert baseline["rates"] == {n: pytest.approx(p, rel=1e-6) for n, p in RATES.items()}
    assert baseline["ci"][0] <= baseline["accuracy"] <= baseline["ci"][1]


def test_high_rate_lowers_accuracy_towards_chance(model_and_test):
    model, test = model_and_test
    result = tl.sensitivity(model, test, test_rate=0.5, draws=3, seed=0)
    baseline = result["baseline"]
    # The trained model is well above chance (1/3) at its small rates ...
    assert baseline["accuracy"] > 0.7
    # ... and at p = 0.5 every bit of a binary layer is a coin flip: its weights carry no
    # information, so either layer alone brings the model down to about chance.
    for row in result["layers"].values():
        assert row["drop"] > 0
        assert row["ci"][1] < baseline["ci"][0]
        assert row["accuracy"] < CHANCE + 0.2
    assert max(row["drop"] for row in result["layers"].values()) > 0.3


def test_baseline_equals_evaluate_under_faults_with_same_seed_and_draws(model_and_test):
    model, test = model_and_test
    result = tl.sensitivity(model, test, test_rate=0.5, draws=3, seed=7)
    reference = tl.evaluate_under_faults(model, test, draws=3, seed=7, verbose=0)
    assert result["baseline"]["accuracy"] == reference.mean
    assert result["baseline"]["ci"] == list(reference.ci)


def test_row_equals_evaluate_with_only_that_layer_raised(model_and_test):
    model, test = model_and_test
    result = tl.sensitivity(model, test, test_rate=0.25, draws=2, seed=3)
    tl.set_fault_rates(model, {"b": 0.25})  # "a" stays at its rate
    reference = tl.evaluate_under_faults(model, test, draws=2, seed=3, verbose=0)
    row = result["layers"]["b"]
    assert row["accuracy"] == reference.mean
    assert row["ci"] == list(reference.ci)
    assert row["rate"] == 0.25


def test_test_rate_equal_to_current_rate_gives_zero_drop(model_and_test):
    model, test = model_and_test
    tl.set_fault_rates(model, 1e-3)
    result = tl.sensitivity(model, test, test_rate=1e-3, draws=2, seed=0)
    for row in result["layers"].values():
        assert row["accuracy"] == result["baseline"]["accuracy"]
        assert row["drop"] == 0.0


def test_dataset_and_arrays_agree(model_and_test):
    model, (x, y) = model_and_test
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    from_arrays = tl.sensitivity(model, (x, y), draws=2, seed=0)
    from_dataset = tl.sensitivity(model, dataset, draws=2, seed=0)
    assert from_dataset["baseline"]["accuracy"] == pytest.approx(
        from_arrays["baseline"]["accuracy"], abs=1e-6
    )
    for name in ("a", "b"):
        assert from_dataset["layers"][name]["accuracy"] == pytest.approx(
            from_arrays["layers"][name]["accuracy"], abs=1e-6
        )


def test_rates_restored_exactly_afterwards(model_and_test):
    model, test = model_and_test
    before = _rates(model)
    tl.sensitivity(model, test, test_rate=0.5, draws=2, seed=0)
    _assert_rates_exactly(model, before)


@pytest.mark.parametrize("failing_call", [1, 2, 3])
def test_rates_restored_exactly_when_evaluation_raises(model_and_test, monkeypatch, failing_call):
    """Call 1 is the baseline, call 2 has layer "a" raised, call 3 has layer "b" raised."""
    model, test = model_and_test
    before = _rates(model)
    real = sensitivity_module.evaluate_under_faults
    calls = []

    def flaky(*args, **kwargs):
        calls.append(_rates(model))
        if len(calls) == failing_call:
            raise RuntimeError("evaluation failed")
        return real(*args, **kwargs)

    monkeypatch.setattr(sensitivity_module, "evaluate_under_faults", flaky)
    with pytest.raises(RuntimeError, match="evaluation failed"):
        tl.sensitivity(model, test, test_rate=0.5, draws=2, seed=0)
    assert len(calls) == failing_call
    if failing_call > 1:  # the layer under test was really raised when the error came
        name = ["a", "b"][failing_call - 2]
        assert calls[-1][name] == np.float32(0.5)
    _assert_rates_exactly(model, before)


def test_rates_restored_when_draws_is_invalid(model_and_test):
    model, test = model_and_test
    before = _rates(model)
    with pytest.raises(ValueError, match="draws"):
        tl.sensitivity(model, test, draws=1)
    _assert_rates_exactly(model, before)


@pytest.mark.parametrize("test_rate", [0.0, -0.1, 0.51, 1.0, float("nan"), float("inf"), True])
def test_test_rate_outside_range_is_value_error(model_and_test, test_rate):
    model, test = model_and_test
    before = _rates(model)
    with pytest.raises(ValueError, match="test_rate") as info:
        tl.sensitivity(model, test, test_rate=test_rate, draws=2)
    assert repr(test_rate) in str(info.value)
    _assert_rates_exactly(model, before)


def test_test_rate_upper_bound_is_allowed(model_and_test):
    model, test = model_and_test
    result = tl.sensitivity(model, test, test_rate=0.5, draws=2)
    assert result["test_rate"] == 0.5


def test_model_without_faulty_layers_is_value_error():
    inputs = keras.Input((8,))
    outputs = keras.layers.Dense(3, activation="softmax")(inputs)
    model = keras.Model(inputs, outputs, name="plain")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    with pytest.raises(ValueError, match="plain"):
        tl.sensitivity(model, _data(16, seed=0), draws=2)


def test_verbose_prints_one_line_per_layer(model_and_test, capsys):
    model, test = model_and_test
    tl.sensitivity(model, test, draws=2, verbose=1)
    lines = [line for line in capsys.readouterr().out.splitlines() if "accuracy" in line]
    assert [line.split(":")[0] for line in lines] == ["a", "b"]
