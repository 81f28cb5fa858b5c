"""`tl.analog.HardwareAwareModel`: device noise in the forward pass, gradient applied at w."""

import keras
import numpy as np
import pytest
from helpers import variable_gradients

import tf_lanmax as tl


def _mlp(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, activation="tanh"),
            keras.layers.Dense(3),
        ]
    )


def _batch(n=16):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 6)).astype("float32"), rng.normal(size=(n, 3)).astype("float32")


def _values(model):
    return [v.numpy().copy() for v in model.trainable_variables]


def _one_step(trainer, x, y, lr=0.1):
    trainer.compile(keras.optimizers.SGD(lr), "mse")
    trainer.train_on_batch(x, y)


def test_zero_noise_is_the_plain_step():
    x, y = _batch()
    plain = _mlp()
    _one_step(plain, x, y)
    inner = _mlp()
    _one_step(tl.analog.HardwareAwareModel(inner, "pcm", noise_scale=0.0, seed=1), x, y)
    for a, b in zip(_values(plain), _values(inner), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("device", ["pcm", "reram_wan2022"])
def test_the_gradient_is_taken_at_one_device_read_and_applied_at_w(device):
    x, y = _batch()
    inner = _mlp()
    start = _values(inner)
    hwa = tl.analog.HardwareAwareModel(inner, device, t_inference=3600.0, seed=5)
    hwa.build((None, 6))
    # The step's seed is the generator's first; eps is the device read minus w per kernel.
    seed = keras.random.SeedGenerator(5).next()
    eps = hwa.device_perturbation([keras.ops.convert_to_tensor(w) for w in start], seed)
    assert [e is None for e in eps] == [False, True, False, True]  # kernels only
    reference = _mlp()
    for v, w, e in zip(reference.trainable_variables, start, eps, strict=True):
        v.assign(w if e is None else w + keras.ops.convert_to_numpy(e))

    def loss():
        return keras.ops.mean(keras.ops.square(reference(x) - y))

    grads = variable_gradients(loss, reference.trainable_variables)
    _one_step(hwa, x, y, lr=0.1)
    for w0, g, w1 in zip(start, grads, _values(inner), strict=True):
        np.testing.assert_allclose(w1, w0 - 0.1 * g, rtol=1e-4, atol=1e-6)
    # The read is really noisy: relative deviation of the first kernel of the order of PCM's.
    relative = np.std(keras.ops.convert_to_numpy(eps[0])) / np.max(np.abs(start[0]))
    assert 1e-3 < relative < 0.2


def test_noise_scale_multiplies_the_deviation():
    inner = _mlp()
    inner.build((None, 6))
    weights = [keras.ops.convert_to_tensor(w) for w in _values(inner)]
    seed = keras.random.SeedGenerator(2).next()
    one = tl.analog.HardwareAwareModel(inner, "pcm", noise_scale=1.0)
    two = tl.analog.HardwareAwareModel(inner, "pcm", noise_scale=2.0)
    e1 = one.device_perturbation(weights, seed)[0]
    e2 = two.device_perturbation(weights, seed)[0]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(e2), 2 * keras.ops.convert_to_numpy(e1), rtol=1e-6
    )


def test_round_trips_through_keras_files(tmp_path):
    x, y = _batch(32)
    hwa = tl.analog.HardwareAwareModel(
        _mlp(), tl.analog.get("pcm", drift_compensation=True), t_inference=60.0, seed=4
    )
    hwa.compile("adam", "mse")
    hwa.fit(x, y, epochs=2, batch_size=8, verbose=0)
    path = tmp_path / "hwa.keras"
    hwa.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, tl.analog.HardwareAwareModel)
    assert loaded.device == hwa.device and loaded.t_inference == 60.0
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded.seed_generator.state.value),
        keras.ops.convert_to_numpy(hwa.seed_generator.state.value),
    )
    np.testing.assert_allclose(loaded.predict(x, verbose=0), hwa.predict(x, verbose=0))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="pcm"):
        tl.analog.HardwareAwareModel(_mlp(), "flash")
    with pytest.raises(ValueError, match="noise_scale"):
        tl.analog.HardwareAwareModel(_mlp(), "pcm", noise_scale=-1.0)
    with pytest.raises(ValueError, match="t_inference"):
        tl.analog.HardwareAwareModel(_mlp(), "pcm", t_inference=-1.0)
    faulty = keras.Sequential([keras.Input((6,)), tl.FaultyDense(3, fault_rate=0.01)])
    with pytest.raises(ValueError, match="faulty layers"):
        tl.analog.HardwareAwareModel(faulty, "pcm")
