"""Faulty layers: exactness at p -> 0, straight-through gradients, no retrace, saving, errors."""

import inspect

import keras
import numpy as np
import pytest
from helpers import assert_config_covers_init, trainable_gradients
from keras import ops

import tf_lanmax as tl
from tf_lanmax import faults, formats

# One factory per faulty layer of the family (`tl.layers.TWINS`, checked below); each Keras
# twin is derived from the same declaration.
LAYER_FACTORIES = {
    "dense": lambda **kw: tl.FaultyDense(5, **kw),
    "conv2d": lambda **kw: tl.FaultyConv2D(4, 3, padding="same", **kw),
    "conv1d": lambda **kw: tl.FaultyConv1D(4, 3, padding="causal", **kw),
}
INPUT_SHAPES = {"dense": (7,), "conv2d": (6, 6, 2), "conv1d": (9, 2)}
_MEMORY = tl.layers.FaultyKernelMixin.memory_arguments()


def _keras_twin(kind):
    faulty = LAYER_FACTORIES[kind]()
    config = {k: v for k, v in faulty.get_config().items() if k not in _MEMORY}
    return tl.layers.TWINS[type(faulty)].from_config({**config, "kernel_constraint": None})


KERAS_TWINS = {kind: (lambda kind=kind: _keras_twin(kind)) for kind in LAYER_FACTORIES}


def test_the_factories_cover_the_declared_family_once():
    covered = [type(factory()) for factory in LAYER_FACTORIES.values()]
    assert sorted(c.__name__ for c in covered) == sorted(c.__name__ for c in tl.layers.TWINS)
    assert {v: k for k, v in tl.layers.TWINS.items()} == tl.layers.FAULTY


def _x(kind, batch=3, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, *INPUT_SHAPES[kind])).astype("float32")


@pytest.mark.parametrize("kind", sorted(LAYER_FACTORIES))
@pytest.mark.parametrize("weight_format", ["binary", formats.FixedPoint(8, 5)])
def test_tiny_rate_reads_exactly_the_stored_weights(kind, weight_format):
    layer = LAYER_FACTORIES[kind](weight_format=weight_format, fault_rate=1e-9, seed=3)
    x = _x(kind)
    layer(x)
    twin = KERAS_TWINS[kind]()
    twin(x)
    twin.set_weights(
        [ops.convert_to_numpy(layer.stored_kernel()), ops.convert_to_numpy(layer.bias)]
    )
    for _ in range(3):  # fresh draws every call, none faulty at p = 1e-9 with this seed
        np.testing.assert_array_equal(ops.convert_to_numpy(layer(x)), ops.convert_to_numpy(twin(x)))


@pytest.mark.parametrize("kind", sorted(LAYER_FACTORIES))
def test_high_precision_fixed_point_matches_the_keras_layer(kind):
    layer = LAYER_FACTORIES[kind](weight_format=formats.FixedPoint(16, 13), fault_rate=1e-9)
    twin = KERAS_TWINS[kind]()
    x = _x(kind)
    layer(x)
    twin(x)
    layer.set_weights([*twin.get_weights(), ops.convert_to_numpy(layer.fault_rate)])
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer(x)), ops.convert_to_numpy(twin(x)), atol=2e-3
    )


def test_faults_are_redrawn_at_every_forward_pass_and_reproducible_with_a_seed():
    x = _x("dense", batch=4)
    a = tl.FaultyDense(64, fault_rate=0.2, seed=11)
    b = tl.FaultyDense(64, fault_rate=0.2, seed=11)
    a.build(x.shape)
    b.build(x.shape)
    b.set_weights(a.get_weights())
    first, second = ops.convert_to_numpy(a(x)), ops.convert_to_numpy(a(x))
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, ops.convert_to_numpy(b(x)))
    np.testing.assert_array_equal(second, ops.convert_to_numpy(b(x)))


def test_one_draw_is_shared_by_the_whole_batch():
    layer = tl.FaultyDense(32, fault_rate=0.3, seed=0)
    x = np.repeat(_x("dense", batch=1), 5, axis=0)
    out = ops.convert_to_numpy(layer(x))
    # Up to float rounding (torch's CPU matmul rounds rows differently); another draw for a
    # row would move its outputs by whole weights (p = 0.3).
    np.testing.assert_allclose(out, np.repeat(out[:1], 5, axis=0), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("weight_format", ["binary", formats.FixedPoint(6, 3)])
def test_straight_through_gradient_equals_the_gradient_at_the_faulty_weights(weight_format):
    layer = tl.FaultyDense(6, weight_format=weight_format, fault_rate=0.2, seed=5, use_bias=False)
    x = _x("dense", batch=4)
    layer.build(x.shape)
    layer.reseed(42)
    (grad,) = trainable_gradients(layer, lambda y: ops.sum(y**2), x)
    layer.reseed(42)
    faulty = ops.convert_to_numpy(
        layer.fault_model.corrupt(
            layer.weight_format, layer.kernel, layer.fault_rate, layer.seed_generator
        )
    )
    assert not np.array_equal(
        faulty, ops.convert_to_numpy(layer.stored_kernel())
    )  # faults really drawn
    xn = ops.convert_to_numpy(x)
    expected = 2.0 * xn.T @ (xn @ faulty)  # d/dW sum((xW)^2), mask not multiplied in
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-5)


def test_latent_binary_weights_stay_in_minus_one_one():
    model = keras.Sequential([keras.Input((7,)), tl.FaultyDense(3, fault_rate=0.01, seed=0)])
    model.compile(keras.optimizers.SGD(50.0), "mse")
    x, y = _x("dense", batch=32), np.random.default_rng(1).normal(size=(32, 3)) * 100
    model.fit(x, y, epochs=2, verbose=0)
    kernel = np.asarray(model.layers[0].kernel)
    assert np.abs(kernel).max() <= 1.0
    assert np.isclose(np.abs(kernel).max(), 1.0)  # the clip was active, not vacuous


class _TraceCounter(keras.layers.Layer):
    """Counts Python executions of `call`: each one is a trace of a compiled function."""

    traces = 0

    def call(self, x):
        type(self).traces += 1
        return x


def test_assigning_fault_rate_inside_a_compiled_fit_changes_the_loss_without_retracing():
    _TraceCounter.traces = 0
    model = keras.Sequential(
        [
            keras.Input((7,)),
            _TraceCounter(),
            tl.FaultyDense(32, fault_rate=1e-9, seed=0, activation="relu"),
            tl.FaultyDense(4, fault_rate=1e-9, seed=1),
        ]
    )
    # The compiled step: tf.function on TensorFlow; on JAX only jit_compile=True compiles.
    jit = keras.backend.backend() == "jax"
    model.compile(keras.optimizers.SGD(0.0), "mse", jit_compile=jit)
    model.optimizer.build(model.trainable_variables)
    x = np.tile(_x("dense", batch=16), (8, 1))
    y = np.ones((128, 4), "float32")
    rates = [1e-9, 0.5] * 4
    seen = {"traces": [], "running": []}

    class Alternate(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            tl.set_fault_rates(self.model, rates[batch])

        def on_train_batch_end(self, batch, logs=None):
            seen["traces"].append(_TraceCounter.traces)
            seen["running"].append(logs["loss"])

    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[Alternate()])
    if keras.backend.backend() != "torch":  # torch runs `call` eagerly: every batch counts
        assert len(set(seen["traces"])) == 1, seen["traces"]  # no retrace after the first batch
    running = np.array(seen["running"], dtype=np.float64)
    steps = np.arange(1, len(running) + 1)
    batch_loss = steps * running - np.concatenate([[0.0], (steps[:-1]) * running[:-1]])
    clean, faulty = batch_loss[0::2], batch_loss[1::2]
    np.testing.assert_allclose(clean, clean[0], rtol=1e-4)  # lr = 0: same weights, no faults
    assert np.all(np.abs(faulty - clean[0]) > 1e-3 * clean[0])


def test_jit_compiled_fit_step():
    model = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            tl.FaultyConv2D(4, 3, fault_rate=0.01, seed=0),
            keras.layers.Flatten(),
            tl.FaultyDense(3, weight_format="fixed_point", fault_model="bit_mask", seed=1),
        ]
    )
    model.compile("adam", "mse", jit_compile=True)
    history = model.fit(_x("conv2d", batch=8), np.zeros((8, 3)), epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


def _functional():
    inputs = keras.Input((7,))
    hidden = tl.FaultyDense(8, fault_rate=0.01, seed=0, activation="relu")(inputs)
    return keras.Model(inputs, tl.FaultyDense(2, seed=1)(hidden))


class SubclassedNet(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = tl.FaultyDense(8, fault_rate=0.01, seed=0, activation="relu")
        self.out = tl.FaultyDense(2, seed=1)

    def call(self, x):
        return self.out(self.hidden(x))


@pytest.mark.parametrize(
    "build",
    [
        lambda: keras.Sequential(
            [keras.Input((7,)), tl.FaultyDense(8, seed=0, fault_rate=0.01), tl.FaultyDense(2)]
        ),
        _functional,
        SubclassedNet,
    ],
    ids=["sequential", "functional", "subclassed"],
)
def test_model_kinds_fit_and_expose_their_faulty_layers(build):
    model = build()
    model.compile("adam", "mse")
    model.fit(_x("dense", batch=16), np.zeros((16, 2)), epochs=1, verbose=0)
    layers = tl.faulty_layers(model)
    assert len(layers) == 2
    x = _x("dense", batch=4)
    with tl.faults_disabled(model):
        np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))
        assert all(float(np.asarray(layer.fault_rate)) == 0.0 for layer in layers)
    assert float(np.asarray(layers[0].fault_rate)) == pytest.approx(0.01)


def test_faults_disabled_switches_an_already_compiled_predict_and_restores_on_error():
    model = _functional()
    x = _x("dense", batch=64)
    tl.set_fault_rates(model, 0.3)
    noisy = [model.predict(x, verbose=0) for _ in range(2)]
    assert not np.array_equal(*noisy)
    with tl.faults_disabled(model):
        clean = model.predict(x, verbose=0)
        np.testing.assert_array_equal(clean, model.predict(x, verbose=0))
    with pytest.raises(RuntimeError), tl.faults_disabled(model):
        raise RuntimeError("boom")
    assert all(
        float(np.asarray(layer.fault_rate)) == pytest.approx(0.3)
        for layer in tl.faulty_layers(model)
    )


@pytest.mark.parametrize("kind", sorted(LAYER_FACTORIES))
def test_keras_round_trip_is_exact_with_safe_mode(kind, tmp_path):
    layer = LAYER_FACTORIES[kind](
        weight_format=formats.FixedPoint(6, 4),
        fault_model=faults.StuckAt(1),
        fault_rate=0.02,
        seed=9,
    )
    model = keras.Sequential([keras.Input(INPUT_SHAPES[kind]), layer])
    model.compile("adam", "mse")
    layer.fault_rate.assign(0.037)  # a "learned" p must win over the constructor's 0.02
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    new = loaded.layers[0]
    assert type(new) is type(layer)
    assert new.get_config() == layer.get_config()
    assert float(np.asarray(new.fault_rate)) == pytest.approx(0.037)
    for a, b in zip(layer.get_weights(), new.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    x = _x(kind)
    with tl.faults_disabled(model), tl.faults_disabled(loaded):
        np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


@pytest.mark.parametrize("kind", sorted(LAYER_FACTORIES))
def test_get_config_covers_every_init_argument_and_from_config_rebuilds(kind):
    layer = LAYER_FACTORIES[kind](fault_model="bit_mask", fault_rate=0.05, seed=4)
    assert_config_covers_init(layer)
    clone = type(layer).from_config(layer.get_config())
    assert clone.fault_model == layer.fault_model
    assert clone.weight_format == layer.weight_format
    assert float(np.asarray(clone.fault_rate)) == pytest.approx(0.05)


@pytest.mark.parametrize("kind", sorted(LAYER_FACTORIES))
def test_signature_extends_the_keras_layer(kind):
    ours = inspect.signature(type(LAYER_FACTORIES[kind]()).__init__).parameters
    theirs = inspect.signature(type(KERAS_TWINS[kind]()).__init__).parameters
    explicit = {n for n, p in theirs.items() if p.kind is not p.VAR_KEYWORD}
    accepted = set(ours) | explicit  # the rest travels through **kwargs to the Keras layer
    layer = LAYER_FACTORIES[kind](kernel_initializer="zeros", use_bias=False, name="x")
    assert layer.use_bias is False and layer.name == "x"
    assert {"weight_format", "fault_model", "fault_rate", "seed"} <= accepted


@pytest.mark.parametrize("bad", [0.0, -0.1, 0.51, 1.0, float("nan"), float("inf"), "0.1", True])
def test_bad_fault_rate_names_the_argument_the_value_and_the_range(bad):
    with pytest.raises(ValueError, match=r"`fault_rate` must be a number in \(0, 0.5\]") as err:
        tl.FaultyDense(3, fault_rate=bad, name="my_dense")
    assert "my_dense" in str(err.value) and repr(bad) in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"weight_format": "ternary"}, "weight_format"),
        ({"fault_model": "cosmic_ray"}, "fault_model"),
        ({"weight_format": {"class_name": "Nope", "config": {}}}, None),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_bad_layer_arguments_raise_value_error(kwargs, argument):
    with pytest.raises((ValueError, TypeError), match=argument):
        tl.FaultyConv2D(2, 3, **kwargs)


def test_set_fault_rates_validates_names_and_values():
    model = _functional()
    with pytest.raises(ValueError, match="not faulty layers"):
        tl.set_fault_rates(model, {"nope": 0.1})
    with pytest.raises(ValueError, match="fault_rate"):
        tl.set_fault_rates(model, 0.9)
    name = tl.faulty_layers(model)[1].name
    tl.set_fault_rates(model, {name: 0.125})
    assert float(np.asarray(tl.faulty_layers(model)[1].fault_rate)) == 0.125


def test_stored_bits_and_moments():
    layer = tl.FaultyConv2D(4, 3, weight_format=formats.FixedPoint(8, 6), fault_rate=0.1)
    layer.build((None, 6, 6, 2))
    assert layer.stored_bits == 3 * 3 * 2 * 4 * 8
    mean, var = layer.kernel_moments()
    assert mean.shape == layer.kernel.shape and np.all(np.asarray(var) > 0)


def test_mixed_precision_keeps_the_fault_rate_in_float32():
    layer = tl.FaultyDense(4, fault_rate=3e-5, seed=0, dtype="mixed_float16")
    y = layer(_x("dense"))
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    assert layer.fault_rate.dtype == "float32"
    assert float(np.asarray(layer.fault_rate)) == pytest.approx(3e-5, rel=1e-6)


def _np(x):
    return keras.ops.convert_to_numpy(x)  # torch tensors that require grad included


@pytest.mark.parametrize("kind", sorted(LAYER_FACTORIES))
def test_to_faulty_and_to_deployment_are_inverse_on_the_stored_weights(kind):
    x = _x(kind)
    twin = KERAS_TWINS[kind]()
    expected = _np(twin(x))
    fmt = formats.FixedPoint(16, 12)
    faulty = tl.layers.to_faulty(twin, weight_format=fmt, fault_rate=1e-9, seed=1)
    assert type(faulty) is tl.layers.FAULTY[type(twin)]
    np.testing.assert_array_equal(_np(faulty.kernel), _np(twin.kernel))
    deployed = tl.layers.to_deployment(faulty)
    assert type(deployed) is type(twin)
    np.testing.assert_array_equal(_np(deployed.kernel), _np(faulty.stored_kernel()))
    np.testing.assert_allclose(_np(deployed(x)), expected, atol=5e-3)
    with pytest.raises(ValueError, match="Allowed: .*FaultyDense"):
        tl.layers.to_deployment(twin)
    with pytest.raises(ValueError, match="Allowed: .*Conv1D.*Dense"):
        tl.layers.to_faulty(keras.layers.ReLU())


@pytest.mark.parametrize(
    "policy", ["int8_from_float32", "int4_from_float32", "float8_from_float32"]
)
def test_a_quantized_dtype_policy_is_refused_not_silently_fault_free(policy):
    # Keras' quantized layers replace `call`: the faults would silently be off.
    with pytest.raises(ValueError, match=f"dtype.*{policy}"):
        tl.FaultyDense(4, dtype=policy)
    layer = tl.FaultyDense(4, fault_rate=0.1, seed=0)
    layer.build((None, 3))
    with pytest.raises(ValueError, match=f"dtype.*{policy}"):
        layer.dtype_policy = policy
    assert layer.dtype_policy.quantization_mode is None
    with pytest.raises(ValueError, match="dtype"):
        tl.FaultyConv2D(2, 3, dtype=keras.dtype_policies.get(policy))
