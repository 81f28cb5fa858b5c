"""Analog devices in use: `evaluate_under_noise` on deployed weights, drift over time, MemSE."""

import warnings

import keras
import numpy as np
import pytest

import tf_lanmax as tl


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype("float32")
    return x, (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0).astype("int64")


def _compile(model):
    model.compile(
        keras.optimizers.Adam(0.02), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


@pytest.fixture(scope="module")
def float_model():
    keras.utils.set_random_seed(0)
    model = _compile(
        keras.Sequential(
            [
                keras.Input((8,)),
                keras.layers.Dense(16, activation="relu"),
                keras.layers.Dense(3, activation="softmax"),
            ]
        )
    )
    model.fit(*_data(), epochs=20, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="module")
def binary_model():
    keras.utils.set_random_seed(1)
    model = _compile(
        keras.Sequential(
            [
                keras.Input((8,)),
                tl.FaultyDense(32, weight_format="binary", fault_rate=1e-3, use_bias=False),
                keras.layers.BatchNormalization(),
                keras.layers.ReLU(),
                tl.FaultyDense(3, weight_format="binary", fault_rate=1e-3, use_bias=False),
                keras.layers.BatchNormalization(),
                keras.layers.Softmax(),
            ]
        )
    )
    model.fit(*_data(), epochs=15, batch_size=64, verbose=0)
    return model


def test_noise_acts_on_the_deployed_binary_weights(binary_model):
    # The latent kernels are floats of magnitude ~0.1-1; noise on them never flips sign(w) at
    # sigma = 0.3, so the old evaluation printed the clean accuracy. On the deployed +-1 the
    # same sigma changes the loss of every draw and the accuracy of the mean.
    data = _data(300, seed=3)
    latent = binary_model.layers[0].kernel.numpy().copy()
    with warnings.catch_warnings():
        warnings.filterwarnings("error", "Device .* changed no prediction")
        result = tl.evaluate_under_noise(binary_model, data, [0.0, 0.3], draws=4, verbose=0)
    clean = result.point(0.0)
    noisy = result.point(0.3)
    assert clean.loss.half_width == 0 and noisy.loss.std > 0
    assert noisy.loss.mean != pytest.approx(clean.loss.mean, rel=1e-4)
    np.testing.assert_array_equal(binary_model.layers[0].kernel.numpy(), latent)
    # What the array holds: one magnitude per binary layer (+-scale), not the latent floats.
    deployed = tl.layers.deployment_model(binary_model)
    stored = np.abs(deployed.layers[0].kernel.numpy())
    assert np.unique(stored).size == 1
    assert np.unique(np.abs(binary_model.layers[0].kernel.numpy())).size > 1


def test_a_setting_that_cannot_change_the_model_says_so():
    keras.utils.set_random_seed(0)
    model = _compile(
        keras.Sequential(
            [
                keras.Input((8,)),
                keras.layers.Dense(3, activation="softmax", kernel_initializer="zeros"),
            ]
        )
    )
    # w * delta = 0 for a zero kernel: multiplicative noise cannot change anything.
    with pytest.warns(UserWarning, match="changed no prediction"):
        tl.evaluate_under_noise(model, _data(64), [0.3], draws=2, verbose=0)


def test_times_on_a_device_without_drift_warn_and_repeat_the_result(float_model):
    with pytest.warns(UserWarning, match="does not drift"):
        result = tl.evaluate_under_noise(
            float_model, _data(128), [0.2], draws=3, verbose=0, times=[1.0, 86400.0]
        )
    assert result.at(0.2, 1.0) == result.at(0.2, 86400.0)


@pytest.mark.parametrize("method", ["batched", "vectorized"])
def test_drift_batched_equals_sequential_and_follows_the_same_chips(float_model, method):
    data = _data(128, seed=5)
    times = [1.0, 86400.0, 2592000.0]
    reference = tl.evaluate_under_noise(
        float_model, data, draws=3, seed=4, verbose=0, method="sequential", device="pcm",
        times=times,
    )  # fmt: skip
    result = tl.evaluate_under_noise(
        float_model, data, draws=3, seed=4, verbose=0, method=method, batch_draws=2,
        device="pcm", times=times,
    )  # fmt: skip
    np.testing.assert_allclose(result.per_draw_accuracy, reference.per_draw_accuracy, atol=1e-6)
    assert result.times == tuple(times) and result.sigmas == (None,)
    assert len(result.points) == len(times)
    assert all(np.isfinite(p.loss.mean) for p in result.points)


def test_noise_evaluation_bad_input(float_model):
    data = _data(64)
    with pytest.raises(ValueError, match="sigmas"):
        tl.evaluate_under_noise(float_model, data, [0.1], draws=2, device="pcm")
    with pytest.raises(ValueError, match="times"):
        tl.evaluate_under_noise(float_model, data, draws=2, device="pcm", times=[-1.0])
    with pytest.raises(ValueError, match="times"):
        tl.evaluate_under_noise(float_model, data, draws=2, device="pcm", times=[])
    with pytest.raises(ValueError, match="pcm"):  # the message lists the presets
        tl.evaluate_under_noise(float_model, data, draws=2, device="flash")


def test_plot_drift_writes_a_png(float_model, tmp_path):
    result = tl.evaluate_under_noise(
        float_model, _data(64), draws=2, verbose=0, device="pcm", times=[0.0, 1.0, 3600.0]
    )
    path = tl.reports.plot_drift({"mlp": result}, tmp_path / "drift.png")
    assert (tmp_path / "drift.png").stat().st_size > 1000 and path.endswith("drift.png")


# ---------------------------------------------------------------------------------------------
# MemSE on any device
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", tl.analog.names())
def test_memse_agrees_with_monte_carlo_on_every_preset(float_model, device):
    x = _data(32, seed=7)[0]
    time = 3600.0 if tl.analog.get(device).has_drift else None
    mirror = tl.memse.MemSE(float_model, device, t_inference=time)
    predicted = float(mirror.summary(x)["mse"])
    sampled = tl.memse.monte_carlo(mirror, x=x, draws=2000, seed=0)
    assert sampled.mse > 0
    assert predicted == pytest.approx(sampled.mse, rel=0.10), (device, predicted, sampled.mse)


def test_memse_maps_the_deployed_weights_of_faulty_layers(binary_model):
    x = _data(16)[0]
    mirror = tl.memse.MemSE(binary_model, "multiplicative")
    # The deployed (stored +-1) weights: the mirror's clean output is the model's with faults
    # off (before its output softmax, which MemSE skips), and the device noise on them gives a
    # positive MSE.
    with tl.faults_disabled(binary_model):
        expected = keras.ops.convert_to_numpy(binary_model(x))
    clean = keras.ops.convert_to_numpy(keras.ops.softmax(mirror.clean(x)))
    np.testing.assert_allclose(clean, expected, rtol=1e-4, atol=1e-5)
    assert float(mirror.summary(x)["mse"]) > 0


def test_optimize_gmax_refuses_a_scale_free_device(float_model):
    with pytest.raises(ValueError, match="nothing to optimise"):
        tl.memse.optimize_gmax(float_model, "pcm", _data(16)[0], power_budget=10.0)


def test_device_mapping_round_trips_and_additive_becomes_the_crossbar():
    mapping = tl.memse.DeviceMapping("pcm", t_inference=60.0, gmax=2.0)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(mapping))
    assert again == mapping
    crossbar = tl.memse.as_crossbar(tl.analog.get("additive", levels=17))
    assert isinstance(crossbar, tl.memse.Crossbar) and crossbar.levels == 16
    with pytest.raises(ValueError, match="crossbar"):
        tl.memse.as_crossbar(3.0)
