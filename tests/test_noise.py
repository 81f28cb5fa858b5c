"""Memristor conductance noise and `evaluate_under_noise`."""

import math

import keras
import numpy as np
import pytest

import tf_lanmax as tl
from tf_lanmax.noise import ConductanceNoise, noisy_variables

# ConductanceNoise is deprecated for tl.analog (tested below); these tests still cover it.
pytestmark = pytest.mark.filterwarnings("ignore:tl.noise.ConductanceNoise:DeprecationWarning")


def test_conductance_noise_is_deprecated_for_the_analog_multiplicative_device():
    with pytest.warns(DeprecationWarning, match='tl.analog.get\\("multiplicative"'):
        noise = ConductanceNoise(0.2, gmax=3.0)
    assert noise.device == tl.analog.get("multiplicative", sigma=0.2, g_max=3.0)
    w = np.linspace(-1, 1, 12, dtype="float32").reshape(3, 4)
    np.testing.assert_array_equal(
        np.asarray(noise(w, seed=5)),
        np.asarray(tl.analog.perturb_weights(noise.device, w, seed=5)),
    )


def test_noisy_weights_have_mean_w_and_variance_sigma_squared_w_squared():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(50,)).astype("float32")
    sigma, draws = 0.2, 4000
    noise = ConductanceNoise(sigma)
    samples = np.asarray(noise(np.tile(w, (draws, 1)), seed=3), dtype=np.float64)
    se_mean = sigma * np.abs(w) / math.sqrt(draws)
    assert np.all(np.abs(samples.mean(0) - w) < 5 * se_mean + 1e-7)
    var = samples.var(0, ddof=1)
    expected = (sigma * w.astype(np.float64)) ** 2
    assert np.all(np.abs(var - expected) < 5 * expected * math.sqrt(2 / (draws - 1)) + 1e-9)
    # The same check rejects a wrong sigma, so it can fail.
    wrong = (1.2 * sigma * w.astype(np.float64)) ** 2
    assert not np.all(np.abs(var - wrong) < 5 * wrong * math.sqrt(2 / (draws - 1)))


def test_sigma_zero_is_the_identity_and_conductances_encode_the_weight():
    w = np.array([[-0.5, 0.25], [1.0, 0.0]], "float32")
    noise = ConductanceNoise(0.0, gmax=40.0)
    np.testing.assert_array_equal(np.asarray(noise(w)), w)
    g_plus, g_minus = (np.asarray(g) for g in noise.conductances(w))
    np.testing.assert_allclose(g_plus - g_minus, 40.0 * w, rtol=1e-6)  # c = Gmax / Wmax = 40
    assert g_plus.max() == pytest.approx(40.0) and g_minus.min() >= 0 and g_plus.min() >= 0


def _model():
    keras.utils.set_random_seed(0)
    inner = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu")])
    inputs = keras.Input((8,))
    outputs = keras.layers.Dense(3, activation="softmax")(inner(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(
        keras.optimizers.Adam(0.02), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


def _data(n=400):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 8)).astype("float32")
    return x, (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0).astype("int64")


def test_applied_restores_the_clean_weights_bit_for_bit_even_on_error():
    model = _model()
    assert len(noisy_variables(model)) == 2  # the nested model's kernel is found too
    clean = [np.asarray(v).copy() for v in model.weights]
    with ConductanceNoise(0.3).applied(model, seed=1):
        assert not np.array_equal(np.asarray(model.weights[0]), clean[0])
    with pytest.raises(RuntimeError), ConductanceNoise(0.3).applied(model, seed=2):
        raise RuntimeError("boom")
    for a, v in zip(clean, model.weights, strict=True):
        np.testing.assert_array_equal(a, np.asarray(v))


def test_evaluate_under_noise_degrades_with_sigma_and_is_reproducible():
    model = _model()
    x, y = _data()
    model.fit(x, y, epochs=20, batch_size=64, verbose=0)
    sigmas = [0.0, 0.3, 1.0]
    result = tl.evaluate_under_noise(model, (x, y), sigmas, draws=5, seed=0, verbose=0)
    clean = model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"]
    assert result.at(0.0).mean == pytest.approx(clean) and result.at(0.0).half_width == 0
    assert result.at(1.0).mean < result.at(0.0).mean - 0.05
    assert result.at(0.3).std > 0
    again = tl.evaluate_under_noise(model, (x, y), sigmas, draws=5, seed=0, verbose=0)
    assert again.per_draw_accuracy == result.per_draw_accuracy
    other = tl.evaluate_under_noise(model, (x, y), [0.3], draws=5, seed=1, verbose=0)
    assert other.per_draw_accuracy[0] != result.per_draw_accuracy[1]
    assert result.to_dict()["sigmas"] == sigmas


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [({"sigmas": [-0.1]}, "sigmas"), ({"sigmas": []}, "sigmas"), ({"draws": 1}, "draws")],
)
def test_bad_input_raises_value_error(kwargs, argument):
    args = {"sigmas": [0.1], "draws": 3, **kwargs}
    with pytest.raises(ValueError, match=argument):
        tl.evaluate_under_noise(_model(), _data(32), **args)


@pytest.mark.parametrize("sigma", [-1.0, float("nan")])
def test_conductance_noise_refuses_a_bad_sigma(sigma):
    with pytest.raises(ValueError, match="sigma"):
        ConductanceNoise(sigma)


def test_model_without_kernels_is_refused():
    model = keras.Sequential([keras.Input((3,)), keras.layers.ReLU()])
    with pytest.raises(ValueError, match="no kernel"):
        noisy_variables(model)
