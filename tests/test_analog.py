"""`tl.analog`'s API: presets, argument checks, serialisation, compiled and differentiable use."""

import keras
import numpy as np
import pytest
from helpers import gradient

import tf_lanmax as tl

NAMES = ["additive", "hermes", "multiplicative", "pcm", "reram_cmo", "reram_wan2022"]


def test_names_and_presets():
    assert tl.analog.names() == NAMES
    for name in NAMES:
        device = tl.analog.get(name)
        assert isinstance(device, tl.analog.Device) and device.name == name
    assert tl.analog.get("pcm").g_max == 25.0
    assert tl.analog.get("reram_wan2022").g_max == 40.0
    assert tl.analog.get("hermes").g_max == 20.7
    assert tl.analog.get("hermes", devices=1).g_max == 10.35
    assert tl.analog.get("reram_cmo").mapping == "single"
    assert tl.analog.get("additive").levels == 128


def test_get_applies_overrides_and_passes_devices_through():
    device = tl.analog.get("pcm", levels=16, w_max="column", drift_compensation=True)
    assert (device.levels, device.w_max, device.drift_compensation) == (16, "column", True)
    assert tl.analog.get(device) is device
    copy = tl.analog.get(device, levels=8)
    assert copy.levels == 8 and device.levels == 16 and copy.w_max == "column"
    assert tl.analog.get(tl.analog.serialize(device)) == device


@pytest.mark.parametrize("name", NAMES)
def test_config_and_keras_serialisation_round_trip(name):
    device = tl.analog.get(name, levels=32)
    config = device.get_config()
    assert type(device).from_config(config) == device
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(device))
    assert restored == device and type(restored) is type(device)
    assert hash(restored) == hash(device) and repr(restored) == repr(device)
    assert tl.analog.deserialize(tl.analog.serialize(device)) == device


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: tl.analog.get("no_such_device"), "reram_wan2022"),  # the message lists names()
        (lambda: tl.analog.get(3), "device"),
        (lambda: tl.analog.get("pcm").sample([0.5], t_inference=-1.0), "t_inference"),
        (lambda: tl.analog.get("pcm").moments([0.5], t_inference=-1.0), "t_inference"),
        (lambda: tl.analog.get("additive").sample([0.5], t_inference="1"), "t_inference"),
        (lambda: tl.analog.perturb_weights(tl.analog.get("pcm"), [1.0], -2.0), "t_inference"),
        (lambda: tl.analog.weight_moments(tl.analog.get("pcm"), [1.0], -2.0), "t_inference"),
        (lambda: tl.analog.get("pcm").sample([0.5, 1.2]), "`g`"),
        (lambda: tl.analog.get("pcm").moments(np.array([-0.1, 0.5])), "`g`"),
        (lambda: tl.analog.get("hermes").sample(float("nan")), "`g`"),
        (lambda: tl.analog.get("pcm").programmed([2.0]), "`g`"),
        (lambda: tl.analog.get("pcm").drift_exponent([2.0]), "`g`"),
        (lambda: tl.analog.get("multiplicative", sigma=-0.1), "sigma"),
        (lambda: tl.analog.get("additive", sigma=float("inf")), "sigma"),
        (lambda: tl.analog.get("pcm", g_max=0.0), "g_max"),
        (lambda: tl.analog.get("hermes", g_max=25.0), "g_max"),
        (lambda: tl.analog.get("pcm", levels=1), "levels"),
        (lambda: tl.analog.get("additive", levels=2.5), "levels"),
        (lambda: tl.analog.get("pcm", mapping="pairs"), "mapping"),
        (lambda: tl.analog.get("pcm", w_max="row"), "w_max"),
        (lambda: tl.analog.get("pcm", drift_compensation="yes"), "drift_compensation"),
        (lambda: tl.analog.get("hermes", devices=3), "devices"),
        (lambda: tl.analog.get("reram_cmo", acceptance_range=0.2), "acceptance_range"),
        (lambda: tl.analog.get("reram_cmo", g_min=90.0), "g_min"),
        (lambda: tl.analog.get("pcm", sigma=0.1), "sigma"),  # not an argument of the preset
        (lambda: tl.analog.get(tl.analog.get("pcm"), devices=1), "devices"),
    ],
)
def test_bad_input_raises_a_value_error_naming_the_argument(call, argument):
    with pytest.raises(ValueError, match=argument):
        call()


def test_eager_tensors_are_checked_and_symbolic_ones_are_not():
    device = tl.analog.get("reram_wan2022")
    with pytest.raises(ValueError, match="`g`"):
        device.sample(keras.ops.convert_to_tensor([0.5, 1.5]))
    # Symbolic: inside a compiled function the values are unknown, so the check is skipped.
    if keras.backend.backend() == "jax":
        import jax

        compiled = jax.jit(lambda g: device.sample(g, 86400.0, seed=1))
    else:
        import tensorflow as tf

        compiled = tf.function(lambda g: device.sample(g, 86400.0, seed=1))
    g = np.array([0.0, 0.3, 1.0], "float32")
    out = np.asarray(compiled(g))
    assert out.shape == (3,) and np.all(np.isfinite(out)) and np.all(out >= 0)


def test_perturb_weights_runs_inside_a_compiled_step():
    device = tl.analog.get("pcm", drift_compensation=True, levels=64)
    w = np.linspace(-1, 1, 24, dtype="float32").reshape(4, 6)
    if keras.backend.backend() == "jax":
        import jax

        step = jax.jit(lambda w: tl.analog.perturb_weights(device, w, 3600.0, seed=2))
    else:
        import tensorflow as tf

        step = tf.function(lambda w: tl.analog.perturb_weights(device, w, 3600.0, seed=2))
    np.testing.assert_allclose(
        np.asarray(step(w)),
        np.asarray(tl.analog.perturb_weights(device, w, 3600.0, seed=2)),
        rtol=1e-5,
        atol=1e-6,
    )


def test_seed_generators_advance_and_ints_repeat():
    device = tl.analog.get("multiplicative")
    g = np.full(8, 0.5, "float32")
    generator = keras.random.SeedGenerator(0)
    first, second = (np.asarray(device.sample(g, seed=generator)) for _ in range(2))
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(
        np.asarray(device.sample(g, seed=4)), np.asarray(device.sample(g, seed=4))
    )


def test_levels_quantise_targets_to_the_nearest_of_k_over_levels_minus_one():
    device = tl.analog.get("multiplicative", sigma=0.0, levels=5)
    g = np.array([0.0, 0.1, 0.13, 0.2, 0.49, 0.51, 0.9, 1.0], "float32")
    mean, var = (np.asarray(x) for x in device.moments(g))
    np.testing.assert_allclose(mean, [0.0, 0.0, 0.25, 0.25, 0.5, 0.5, 1.0, 1.0], atol=1e-7)
    np.testing.assert_array_equal(var, 0.0)
    np.testing.assert_allclose(np.asarray(device.sample(g, seed=0)), mean, atol=1e-7)


def _gradient(fn, x):
    # d fn / dx, compiled on JAX (eager JAX compiles every op of the backward pass apart).
    if keras.backend.backend() == "jax":
        import jax

        return np.asarray(jax.jit(jax.grad(fn))(x))
    return gradient(fn, x)


@pytest.mark.parametrize("name", NAMES)
def test_moments_are_differentiable_in_g(name):
    device = tl.analog.get(name, levels=None)
    g = np.array([0.05, 0.3, 0.7], "float32")
    t = 3600.0

    def per_device(x):
        mean, var = device.moments(x, t)
        return mean + 10.0 * var

    grad = _gradient(lambda x: keras.ops.sum(per_device(x)), g)
    assert np.all(np.isfinite(grad))
    # Devices are independent, so the gradient of the sum is the elementwise derivative.
    step = 1e-3
    numeric = (np.asarray(per_device(g + step)) - np.asarray(per_device(g - step))) / (2 * step)
    np.testing.assert_allclose(grad, numeric, rtol=2e-2, atol=2e-3)


@pytest.mark.parametrize("name", NAMES)
def test_outputs_keep_the_shape_and_readouts_are_normalised(name):
    device = tl.analog.get(name)
    g = np.random.default_rng(0).uniform(size=(3, 2, 5)).astype("float32")
    out = device.sample(g, 3600.0, seed=0)
    mean, var = device.moments(g, 3600.0)
    for x in (out, mean, var):
        assert tuple(x.shape) == g.shape and keras.backend.standardize_dtype(x.dtype) == "float32"
    if name not in ("multiplicative", "additive"):  # unclipped models may read below 0
        assert float(keras.ops.min(out)) >= 0.0
    assert float(keras.ops.min(var)) >= 0.0
