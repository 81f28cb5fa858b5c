"""Tests of the reference networks `binary_cnn` and `binary_wide_resnet`."""

import keras
import numpy as np
import pytest

import tf_lanmax as tl
from tf_lanmax._seeds import derived_seed
from tf_lanmax.models import binary_cnn, binary_wide_resnet


def _faulty(model):
    return tl.faulty_layers(model)


def _expected_cnn_bits(w, input_shape=(28, 28, 1), classes=10):
    """Stored bits of binary_cnn from its documented architecture (1 bit per binary weight)."""
    c1, c2, d1 = round(32 * w), round(64 * w), round(128 * w)
    h, wd = input_shape[0] // 4, input_shape[1] // 4  # two 2x2 max-pools, "same" convs
    return [
        3 * 3 * input_shape[2] * c1,
        3 * 3 * c1 * c2,
        h * wd * c2 * d1,
        d1 * classes,
    ]


def test_binary_cnn_structure():
    model = binary_cnn(fault_rate=0.02, seed=5)
    assert isinstance(model, keras.Sequential)
    assert model.name == "binary_cnn"
    assert model.output_shape == (None, 10)
    layers = _faulty(model)
    assert [type(layer) for layer in layers] == [
        tl.FaultyConv2D,
        tl.FaultyConv2D,
        tl.FaultyDense,
        tl.FaultyDense,
    ]
    # Hashed per-layer seeds (not 5, 6, 7, 8: consecutive seeds collide on torch).
    assert [layer.seed for layer in layers] == [derived_seed(5, i) for i in range(4)]
    for layer in layers:
        assert float(np.asarray(layer.fault_rate)) == pytest.approx(0.02)
        assert isinstance(layer.weight_format, tl.formats.Binary)
        assert isinstance(layer.fault_model, tl.faults.BitFlip)
        assert not layer.use_bias
    assert [layer.stored_bits for layer in layers] == _expected_cnn_bits(1.0)
    assert tl.memory_energy(model)["total_bits"] == sum(_expected_cnn_bits(1.0))


def test_binary_cnn_width_multiplier_halves_every_layer():
    full = binary_cnn()
    half = binary_cnn(width_multiplier=0.5)
    full_units = [getattr(la, "filters", None) or la.units for la in _faulty(full)]
    half_units = [getattr(la, "filters", None) or la.units for la in _faulty(half)]
    assert full_units == [32, 64, 128, 10]
    assert half_units == [16, 32, 64, 10]  # the class count is not scaled
    half_bits = [layer.stored_bits for layer in _faulty(half)]
    assert half_bits == _expected_cnn_bits(0.5)
    assert sum(half_bits) < sum(layer.stored_bits for layer in _faulty(full))
    assert half.output_shape == (None, 10)


def test_binary_cnn_format_fault_model_and_shape_options():
    fmt = tl.formats.FixedPoint(bits=4, fraction_bits=2)
    model = binary_cnn(
        input_shape=(12, 12, 3),
        num_classes=4,
        weight_format=fmt,
        fault_model="bit_mask",
        fault_rate=0.1,
        name="custom",
    )
    assert model.name == "custom"
    assert model.output_shape == (None, 4)
    layers = _faulty(model)
    assert len(layers) == 4
    for layer in layers:
        assert layer.weight_format == fmt
        assert isinstance(layer.fault_model, tl.faults.BitMask)
        assert float(np.asarray(layer.fault_rate)) == pytest.approx(0.1)
        assert layer.seed is None
    assert [layer.stored_bits for layer in layers] == [
        4 * b for b in _expected_cnn_bits(1.0, (12, 12, 3), 4)
    ]


def test_binary_cnn_forward_sums_to_one_and_fits():
    model = binary_cnn(width_multiplier=0.25, fault_rate=0.01, seed=0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, size=8)
    probs = keras.ops.convert_to_numpy(model(x, training=False))
    assert probs.shape == (8, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    before = [np.asarray(v) for v in model.trainable_weights]
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = [np.asarray(v) for v in model.trainable_weights]
    assert any(not np.array_equal(b, a) for b, a in zip(before, after, strict=True))
    # Latent binary weights stay clipped to [-1, 1].
    for layer in _faulty(model):
        kernel = np.asarray(layer.kernel)
        assert kernel.min() >= -1.0 and kernel.max() <= 1.0


def test_binary_cnn_keras_round_trip(tmp_path):
    model = binary_cnn(width_multiplier=0.25, fault_rate=0.03, seed=1)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, size=4)
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)  # non-trivial BN statistics
    tl.set_fault_rates(model, {_faulty(model)[1].name: 0.2})  # learned p must survive
    path = tmp_path / "cnn.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert [float(np.asarray(la.fault_rate)) for la in _faulty(loaded)] == pytest.approx(
        [0.03, 0.2, 0.03, 0.03]
    )
    with tl.faults_disabled(model), tl.faults_disabled(loaded):
        expected = keras.ops.convert_to_numpy(model(x, training=False))
        got = keras.ops.convert_to_numpy(loaded(x, training=False))
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("width_multiplier", [0, -1.0, float("nan")])
def test_binary_cnn_bad_width_multiplier(width_multiplier):
    with pytest.raises(ValueError, match="width_multiplier"):
        binary_cnn(width_multiplier=width_multiplier)


def test_binary_cnn_bad_fault_rate():
    with pytest.raises(ValueError, match="fault_rate"):
        binary_cnn(fault_rate=0.7)


# ---------------------------------------------------------------------------------------------
# binary_wide_resnet
# ---------------------------------------------------------------------------------------------


def _expected_wrn_layers(depth, width, channels=3, classes=10):
    """(kernel_size, in, out) of each faulty layer, from the documented WRN architecture."""
    n = (depth - 4) // 6
    layers = [(3, channels, 16)]  # stem
    current = 16
    for group, base in enumerate((16, 32, 64)):
        filters = max(1, round(base * width))
        for b in range(n):
            stride = 2 if group > 0 and b == 0 else 1
            if stride != 1 or current != filters:
                layers.append((1, current, filters))  # 1x1 projection shortcut
            layers += [(3, current, filters), (3, filters, filters)]
            current = filters
    layers.append((None, current, classes))  # final FaultyDense
    return layers


@pytest.mark.parametrize("depth, width", [(10, 1), (10, 2), (16, 1)])
def test_binary_wide_resnet_faulty_layers(depth, width):
    model = binary_wide_resnet(depth=depth, width=width, input_shape=(16, 16, 3), seed=0)
    expected = _expected_wrn_layers(depth, width)
    n = (depth - 4) // 6
    projections = 2 + (width != 1)
    assert len(expected) == 1 + 2 * 3 * n + projections + 1
    layers = _faulty(model)
    assert len(layers) == len(expected)
    assert sorted(layer.seed for layer in layers) == sorted(
        derived_seed(0, i) for i in range(len(expected))
    )
    convs = [la for la in layers if isinstance(la, tl.FaultyConv2D)]
    dense = [la for la in layers if isinstance(la, tl.FaultyDense)]
    assert len(dense) == 1 and len(convs) == len(expected) - 1
    # Every faulty kernel, compared as a multiset of shapes (the walk order may differ).
    shapes = sorted(tuple(la.kernel.shape) for la in layers)
    wanted = sorted((k, k, i, o) if k else (i, o) for k, i, o in expected)
    assert shapes == wanted
    bits = sum((k * k if k else 1) * i * o for k, i, o in expected)
    assert tl.memory_energy(model)["total_bits"] == bits


def test_binary_wide_resnet_depth_10_count_and_forward():
    model = binary_wide_resnet(depth=10, width=1, input_shape=(16, 16, 3), fault_rate=0.01)
    # stem + 2 per block x 3 blocks + 2 projection shortcuts (groups 2, 3) + final dense.
    assert len(_faulty(model)) == 1 + 2 * 3 + 2 + 1 == 10
    assert model.name == "binary_wrn_10_1"
    assert model.output_shape == (None, 10)
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype("float32")
    probs = keras.ops.convert_to_numpy(model(x, training=False))
    assert probs.shape == (2, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    for layer in _faulty(model):
        assert float(np.asarray(layer.fault_rate)) == pytest.approx(0.01)
        assert isinstance(layer.weight_format, tl.formats.Binary)
        assert isinstance(layer.fault_model, tl.faults.BitFlip)


@pytest.mark.parametrize("depth", [11, 12, 4, 9, 10.0, "16"])
def test_binary_wide_resnet_bad_depth(depth):
    with pytest.raises(ValueError, match="depth"):
        binary_wide_resnet(depth=depth, width=1, input_shape=(16, 16, 3))


@pytest.mark.parametrize("width", [0, -2, float("nan")])
def test_binary_wide_resnet_bad_width(width):
    with pytest.raises(ValueError, match="width"):
        binary_wide_resnet(depth=10, width=width, input_shape=(16, 16, 3))


def test_float_cnn_is_the_reference_float_network():
    model = tl.models.float_cnn()
    assert model.output_shape == (None, 10)
    assert [type(layer).__name__ for layer in model.layers].count("Conv2D") == 2
    # 3x3x1x32 + 3x3x32x64 kernels, 2 BN (4 x 32 + 4 x 64), Dense 3136x128+128, 128x10+10.
    assert model.count_params() == 288 + 18432 + 128 + 256 + 401536 + 1290
    assert not tl.faulty_layers(model)


@pytest.mark.parametrize(
    "build",
    [
        lambda **kw: binary_cnn(width_multiplier=0.25, **kw),
        lambda **kw: binary_wide_resnet(depth=10, width=1, input_shape=(16, 16, 3), **kw),
        lambda **kw: tl.models.float_cnn(**kw),
    ],
    ids=["binary_cnn", "binary_wide_resnet", "float_cnn"],
)
def test_synchronized_batchnorm_option_reaches_every_batchnorm_and_survives_saving(build, tmp_path):
    def flags(model):
        return [
            layer.synchronized
            for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization)
        ]

    assert not any(flags(build()))  # default: per-replica statistics, as Keras
    with pytest.raises(ValueError, match="must be True or False. Received: .*='yes'"):
        build(synchronized_batchnorm="yes")
    if keras.backend.backend() != "tensorflow":
        with pytest.raises(ValueError, match="synchronized_batchnorm=True` needs the TensorFlow"):
            build(synchronized_batchnorm=True)
        return
    model = build(synchronized_batchnorm=True)
    assert flags(model) and all(flags(model))
    x = np.random.default_rng(0).random((4, *model.input_shape[1:]), dtype=np.float32)
    path = str(tmp_path / "synced.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert flags(loaded) == flags(model)
    with tl.faults_disabled(model), tl.faults_disabled(loaded):
        expected, actual = model.predict(x, verbose=0), loaded.predict(x, verbose=0)
    np.testing.assert_allclose(actual, expected, atol=1e-6)
