"""MemSE mirror: graph walking, per-layer oracles against Monte-Carlo, the jacobian mode against
TensorFlow autodiff, a reduced whole-network check on real data, the penalty, and errors."""

import keras
import numpy as np
import pytest
from helpers import (
    assert_config_covers_init,
    randomise_batchnorm,
    variable_gradients,
    variable_jacobian,
)
from keras import layers, ops

import tf_lanmax as tl
from tf_lanmax import memse as ms
from tf_lanmax.memse import moments as rules


def np_(x):
    return np.asarray(ops.convert_to_numpy(x), dtype=np.float64)


def small_cnn(head="gap", seed=0, size=10, softmax=False, classes=3):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 1))
    h = layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv2d")(inp)
    h = layers.BatchNormalization(name="batch_normalization")(h)
    h = layers.ReLU(name="re_lu")(h)
    h = layers.MaxPooling2D(name="max_pooling2d")(h)
    r = layers.Conv2D(4, 3, padding="same", name="conv2d_1")(h)
    r = layers.BatchNormalization(name="batch_normalization_1")(r)
    r = layers.Activation("relu", name="activation")(r)
    r = layers.Conv2D(4, 3, padding="same", name="conv2d_2")(r)
    h = layers.ReLU(name="re_lu_1")(layers.Add(name="add")([h, r]))
    if head == "gap":
        h = layers.GlobalAveragePooling2D(name="pool")(h)
    else:
        h = layers.Flatten(name="flatten")(h)
    h = layers.Dropout(0.3, name="dropout")(h)
    out = layers.Dense(classes, activation="softmax" if softmax else None, name="dense")(h)
    model = keras.Model(inp, out)
    randomise_batchnorm(model, seed)
    return model


@pytest.fixture(scope="module")
def images():
    x, _ = tl.data.load_numpy("fashion_mnist_subset", "test", take=64)
    return x


# -- graph walking ----------------------------------------------------------------------------


def test_noise_free_mirror_reproduces_the_model_exactly():
    model = small_cnn(softmax=True)
    x = np.random.default_rng(0).random((5, 10, 10, 1), dtype=np.float32)
    mirror = ms.MemSE(model, ms.Crossbar(sigma=0.0, levels=None))
    mean, var = mirror(x)
    np.testing.assert_array_equal(np_(var), 0.0)
    # The softmax is skipped: MemSE works on logits, and they give the model's output back.
    assert mirror.skipped_output_activation == "dense.activation=softmax"
    np.testing.assert_allclose(np_(ops.softmax(mean)), np_(model(x)), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np_(mean), np_(mirror.clean(x)))


def test_batchnorm_folding_and_affine_mode_agree_without_noise():
    model = small_cnn()
    x = np.random.default_rng(1).random((3, 10, 10, 1), dtype=np.float32)
    folded = ms.MemSE(model, ms.Crossbar(sigma=0.0, levels=None))
    affine = ms.MemSE(model, ms.Crossbar(sigma=0.0, levels=None, fold_batchnorm=False))
    kinds = {n.key: type(n.rule).__name__ for n in folded.graph.nodes}
    assert kinds["batch_normalization"] == "IdentityRule"  # folded into conv2d
    kinds = {n.key: type(n.rule).__name__ for n in affine.graph.nodes}
    assert kinds["batch_normalization"] == "BatchNormRule"
    np.testing.assert_allclose(np_(folded(x)[0]), np_(affine(x)[0]), rtol=1e-5, atol=1e-6)


def _relu_of(state):
    return [np_(t) for t in rules.relu_moments(state.mean, state.var)[:2]]


def _pool_then_relu(state):
    pooled = rules.max_pool_moments(state.mean, state.var, (2, 2), (2, 2))
    return [np_(t) for t in rules.relu_moments(*pooled)[:2]]


def _assert_state(state, expected):
    for got, want in zip((state.mean, state.var), expected, strict=True):
        np.testing.assert_allclose(np_(got), want, rtol=1e-5, atol=1e-7)


def test_relu_feeding_a_max_pool_runs_after_it_and_is_still_recorded():
    x = np.random.default_rng(3).random((4, 10, 10, 1), dtype=np.float32)
    cb = ms.Crossbar(sigma=0.05, gmax=1.0)
    # A ReLU layer: BN is folded into conv2d, so batch_normalization holds the pre-activation.
    model = small_cnn(head="flat")
    mirror = ms.MemSE(model, cb, cov_mode="diagonal")  # the pooled-first ReLU: forward only
    moved = {n.key: n.relu_moved_to for n in mirror.graph.nodes if n.relu_moved_to}
    assert moved == {"re_lu": "max_pooling2d"}
    record = {}
    out = mirror.moments(x, record=record)
    pre = record["batch_normalization"]
    _assert_state(record["re_lu"], _relu_of(pre))  # the recorded ReLU output is the true one
    _assert_state(record["max_pooling2d"], _pool_then_relu(pre))
    _assert_state(out, [np_(t) for t in mirror(x)])  # recording changes nothing
    # A convolution's own relu activation: its pre-activation comes from a linear twin.
    keras.utils.set_random_seed(4)
    conv = layers.Conv2D(3, 3, activation="relu", name="conv")
    seq = keras.Sequential([keras.Input((10, 10, 1)), conv, layers.MaxPooling2D(name="pool")])
    seq.add(layers.Flatten())
    seq.add(layers.Dense(2))
    twin_conv = layers.Conv2D(3, 3, name="conv")
    twin = keras.Sequential([keras.Input((10, 10, 1)), twin_conv])
    twin_conv.set_weights(conv.get_weights())
    record, twin_record = {}, {}
    ms.MemSE(seq, cb, cov_mode="diagonal").moments(x, record=record)
    ms.MemSE(twin, cb, cov_mode="diagonal").moments(x, record=twin_record)
    pre = twin_record["conv"]
    _assert_state(record["conv"], _relu_of(pre))
    _assert_state(record["pool"], _pool_then_relu(pre))
    # The reverse-pass modes pool first too (the reverse pass applies the slope before routing).
    for mode in ("jacobian", "probe"):
        record = {}
        ms.MemSE(seq, cb, cov_mode=mode).moments(x, record=record)
        _assert_state(record["pool"], _pool_then_relu(pre))


def test_sequential_nested_and_operator_graphs_are_walked():
    keras.utils.set_random_seed(2)
    block = keras.Sequential([keras.Input((6,)), layers.Dense(6), layers.ReLU()], name="block")
    inp = keras.Input((6,))
    h = block(inp)
    h = ops.relu(h + inp)  # functional operators, not layers
    out = layers.Dense(2)(h)
    model = keras.Model(inp, out)
    seq = keras.Sequential([keras.Input((6,)), layers.Dense(4, activation="relu"), layers.Dense(2)])
    x = np.random.default_rng(2).normal(size=(4, 6)).astype("float32")
    for m in (model, seq):
        mirror = ms.MemSE(m, ms.Crossbar(sigma=0.0, levels=None))
        np.testing.assert_allclose(np_(mirror(x)[0]), np_(m(x)), rtol=1e-5, atol=1e-6)
    assert len(ms.MemSE(model).gmax) == 2


def test_unsupported_layer_is_named_with_the_supported_list():
    inp = keras.Input((4, 3))
    out = layers.Dense(2)(layers.LayerNormalization()(inp))
    with pytest.raises(ms.UnsupportedLayerError, match=r"layer_normalization.*LayerNorm.*Dense"):
        ms.MemSE(keras.Model(inp, out))
    assert ms.UnsupportedLayerError is tl.errors.UnsupportedLayerError
    assert issubclass(ms.UnsupportedLayerError, ValueError)
    assert "Conv2D" in ms.supported_layers() and "Add" in ms.supported_layers()


def test_softmax_inside_the_network_and_unsupported_settings_are_refused():
    inp = keras.Input((4,))
    h = layers.Dense(4, activation="softmax")(inp)
    with pytest.raises(ValueError, match="softmax"):
        ms.MemSE(keras.Model(inp, layers.Dense(2)(h)))
    with pytest.raises(ValueError, match="tanh"):
        ms.MemSE(keras.Sequential([keras.Input((4,)), layers.Dense(2, activation="tanh")]))
    with pytest.raises(ValueError, match="max_value"):
        ms.MemSE(keras.Sequential([keras.Input((4,)), layers.Dense(2), layers.ReLU(6.0)]))

    def relu(x):  # a custom function is not Keras' relu, whatever its name
        return ops.relu(x) + 0.1

    with pytest.raises(ValueError, match=r"activation '.*\.relu'"):
        ms.MemSE(keras.Sequential([keras.Input((4,)), layers.Dense(2, activation=relu)]))
    built_in = keras.Sequential([keras.Input((4,)), layers.Dense(2, activation=ops.relu)])
    assert type(ms.MemSE(built_in).graph.nodes[0].rule).__name__ == "DenseRule"


# -- per-layer oracles against the closed form and Monte-Carlo ----------------------------------


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_single_layer_moments_match_closed_form_and_monte_carlo(kind):
    keras.utils.set_random_seed(3)
    if kind == "dense":
        model = keras.Sequential([keras.Input((12,)), layers.Dense(5)])
        x = np.random.default_rng(3).random((6, 12), dtype=np.float32)
    else:
        model = keras.Sequential([keras.Input((6, 6, 2)), layers.Conv2D(3, 3, strides=2)])
        x = np.random.default_rng(3).random((4, 6, 6, 2), dtype=np.float32)
    cb = ms.Crossbar(sigma=0.05, levels=32, gmax=0.8)
    mean, var = ms.MemSE(model, cb, cov_mode="diagonal")(x)  # per-unit values
    # Closed form: quantised weights for the mean, S^2 = 2 sigma^2 Wmax^2 / Gmax^2 per weight.
    kernel = np_(model.layers[0].kernel)
    wmax = np.abs(kernel).max()
    wq = np.sign(kernel) * np.round(32 * np.abs(kernel) / wmax) * wmax / 32
    s2 = 2 * 0.05**2 * (wmax / 0.8) ** 2
    if kind == "dense":
        ref_mean, ref_var = x @ wq, s2 * np.sum(x**2, axis=1, keepdims=True) * np.ones((1, 5))
    else:
        ref_mean = np_(ops.conv(x, wq.astype("float32"), strides=2))
        ones = np.ones(kernel.shape[:-1] + (1,), "float32")
        ref_var = s2 * np_(ops.conv(x**2, ones, strides=2)) * np.ones((1, 1, 1, 3))
    ref_mean = ref_mean + np_(model.layers[0].bias)
    np.testing.assert_allclose(np_(mean), ref_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np_(var), ref_var, rtol=1e-4)
    result = ms.monte_carlo(model, cb, x, draws=1500, seed=1)
    k = result.draws
    mean, var = np_(mean).reshape(len(x), -1), np_(var).reshape(len(x), -1)
    mc_mean = result.output_mean.reshape(len(x), -1)
    mc_var = result.output_var.reshape(len(x), -1)
    assert np.all(np.abs(mc_mean - mean) < 5 * np.sqrt(var / k))
    assert np.all(np.abs(mc_var - var) < 5 * var * np.sqrt(2 / (k - 1)))


def test_jacobian_mode_is_the_exact_first_order_variance():
    """At tiny noise, var = sum_l S_l^2 ||d z / d W_l||^2 (the backend's autodiff, per sample)."""
    model = small_cnn(head="flat", seed=4)
    x = np.random.default_rng(4).random((2, 10, 10, 1), dtype=np.float32)
    cb = ms.Crossbar(sigma=1e-4, levels=None, gmax=1.0)
    mirror = ms.MemSE(model, cb, cov_mode="jacobian")
    var = np_(mirror(x)[1])
    # Folded kernels: conv2d and conv2d_1 carry their BN scale a, so dz/dW_folded = dz/dW / a.
    scale = {}
    for conv, bn in (("conv2d", "batch_normalization"), ("conv2d_1", "batch_normalization_1")):
        layer = model.get_layer(bn)
        scale[conv] = np_(layer.gamma) / np.sqrt(np_(layer.moving_variance) + layer.epsilon)
    expected = np.zeros_like(var)
    mapped = [layer for layer in model.layers if isinstance(layer, (layers.Conv2D, layers.Dense))]
    for b in range(len(x)):
        for layer in mapped:
            jac = variable_jacobian(lambda b=b: model(x[b : b + 1])[0], layer.kernel)
            jac = jac.reshape(-1, *layer.kernel.shape)
            a = scale.get(layer.name, 1.0)
            folded = np_(layer.kernel) * a
            s2 = 2 * 1e-8 * np.abs(folded).max() ** 2
            expected[b] += s2 * np.sum((jac / a) ** 2, axis=tuple(range(1, jac.ndim)))
    np.testing.assert_allclose(var, expected, rtol=2e-3)


def test_jacobian_mode_sees_weight_sharing_that_the_diagonal_rules_miss():
    """Linear conv + global pooling: one kernel entry's noise is shared by all positions."""
    keras.utils.set_random_seed(5)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            layers.Conv2D(3, 3, padding="same", name="conv2d"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(2, name="dense"),
        ]
    )
    x = 0.5 + np.random.default_rng(5).random((4, 8, 8, 1), dtype=np.float32)
    cb = ms.Crossbar(sigma=0.05, levels=None, gmax={"conv2d": 0.5, "dense": 1e6})
    mc = ms.monte_carlo(model, cb, x, draws=1000, seed=2)
    jac = float(np.mean(np_(ms.MemSE(model, cb, cov_mode="jacobian").mse(x))))
    diag = float(np.mean(np_(ms.MemSE(model, cb, cov_mode="diagonal").mse(x))))
    assert abs(jac - mc.mse) < 4 * mc.half_width / 1.96 + 1e-3 * mc.mse
    assert diag < 0.2 * mc.mse  # the diagonal rules drop the shared-noise correlation


def test_compiled_monte_carlo_draws_what_the_eager_one_draws_and_sees_new_weights():
    model = small_cnn(head="flat", seed=5)
    x = np.random.default_rng(5).random((6, 10, 10, 1), dtype=np.float32)
    mirror = ms.MemSE(model, ms.Crossbar(sigma=0.05, levels=32, gmax=1.0))

    def both():
        compiled = ms.monte_carlo(mirror, None, x, draws=12, batch_draws=5, seed=3)
        eager = ms.monte_carlo(mirror, None, x, draws=12, batch_draws=5, seed=3, compiled=False)
        np.testing.assert_allclose(compiled.per_draw, eager.per_draw, rtol=1e-4)
        np.testing.assert_allclose(compiled.output_mean, eager.output_mean, rtol=1e-4, atol=1e-6)
        return compiled

    before = both()
    # The compiled pass is cached per mirror: it must read the weights, not a copy of them.
    bn = model.get_layer("batch_normalization_1")
    bn.moving_mean.assign(np_(bn.moving_mean) + 0.5)
    model.get_layer("dense").kernel.assign(2.0 * np_(model.get_layer("dense").kernel))
    after = both()
    assert not np.allclose(after.per_draw, before.per_draw)


def test_full_covariance_mode_matches_monte_carlo_on_a_dense_network():
    keras.utils.set_random_seed(6)
    model = keras.Sequential(
        [keras.Input((10,)), layers.Dense(8, activation="relu"), layers.Dense(8), layers.Dense(3)]
    )
    x = np.random.default_rng(6).normal(size=(8, 10)).astype("float32")
    cb = ms.Crossbar(sigma=0.02, levels=None, gmax=1.0)
    mirror = ms.MemSE(model, cb, cov_mode="full")
    cov = np_(mirror.covariance(x))
    assert cov.shape == (8, 3, 3)
    mc = ms.monte_carlo(model, cb, x, draws=3000, seed=3)
    predicted = float(np.mean(np_(mirror.mse(x))))
    assert abs(predicted - mc.mse) < 0.05 * mc.mse + 3 * mc.half_width


# -- whole network, reduced size, real data --------------------------------------------------


@pytest.mark.parametrize("head", ["flat", pytest.param("gap", marks=pytest.mark.slow)])
def test_whole_cnn_prediction_is_within_10_percent_of_monte_carlo(images, head):
    model = small_cnn(head=head, seed=7, size=28, classes=10)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x_train, y_train = tl.data.load_numpy("fashion_mnist_subset", "train", take=512)
    model.fit(x_train, y_train, epochs=1, batch_size=64, verbose=0)
    x = images[:24]
    cb = ms.Crossbar(sigma=0.02, levels=64, gmax=1.0)
    mirror = ms.MemSE(model, cb, cov_mode="jacobian")
    predicted = mirror.summary(x)["mse"]
    mc = ms.monte_carlo(mirror, None, x, draws=400, seed=4)
    assert mc.relative_half_width < 0.1
    assert abs(predicted - mc.mse) <= 0.1 * mc.mse + mc.half_width


# -- penalty ----------------------------------------------------------------------------------


def test_penalty_is_differentiable_in_the_weights_and_trains_in_fit():
    model = small_cnn(head="flat", seed=8)
    x = np.random.default_rng(8).random((16, 10, 10, 1), dtype=np.float32)
    y = np.random.default_rng(8).integers(0, 3, 16)
    mirror = ms.MemSE(model, ms.Crossbar(sigma=0.05, gmax=1.0))
    grads = variable_gradients(lambda: mirror.penalty(x), model.trainable_variables)
    assert all(np.all(np.isfinite(g)) for g in grads)
    assert sum(float(np.sum(np.abs(g))) for g in grads) > 0

    def trained(weight):  # the same start and data; only the penalty's weight differs
        net = small_cnn(head="flat", seed=8)
        robust = ms.MemSEPenaltyModel(net, ms.Crossbar(sigma=0.05, gmax=1.0), weight=weight)
        robust.compile(
            keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(True)
        )
        history = robust.fit(x, y, epochs=2, batch_size=8, verbose=0)
        assert np.all(np.isfinite(history.history["loss"]))
        return robust, net

    robust, net = trained(10.0)
    unpenalised, _ = trained(1e-9)
    assert float(robust.mirror.penalty(x)) < 0.95 * float(unpenalised.mirror.penalty(x))
    np.testing.assert_allclose(np_(robust.predict(x, verbose=0)), np_(net(x)), rtol=1e-5)
    assert_config_covers_init(robust)


def test_penalty_model_round_trips_through_keras_files(tmp_path):
    model = keras.Sequential(
        [keras.Input((4,)), layers.Dense(3, activation="relu"), layers.Dense(2)]
    )
    robust = ms.MemSEPenaltyModel(model, ms.Crossbar(sigma=0.03, gmax=2.0), weight=0.5)
    x = np.random.default_rng(9).normal(size=(5, 4)).astype("float32")
    robust.save(tmp_path / "robust.keras")
    loaded = keras.models.load_model(tmp_path / "robust.keras")
    assert loaded.crossbar == robust.crossbar and loaded.weight == 0.5
    np.testing.assert_allclose(np_(loaded.predict(x, verbose=0)), np_(robust(x)), rtol=1e-6)


# -- argument checks -----------------------------------------------------------------------------


def test_bad_arguments_raise_value_errors_naming_them():
    model = keras.Sequential([keras.Input((4,)), layers.Dense(2)])
    with pytest.raises(ValueError, match="cov_mode"):
        ms.MemSE(model, cov_mode="dense")
    with pytest.raises(ValueError, match="maxpool"):
        ms.MemSE(model, maxpool="mean")
    with pytest.raises(ValueError, match="crossbar"):
        ms.MemSE(model, crossbar={"sigma": 0.1})
    with pytest.raises(ValueError, match="reduction"):
        ms.MemSE(model).penalty(np.ones((1, 4), "float32"), reduction="sum")
    with pytest.raises(ValueError, match="gmax"):
        ms.MemSE(model, ms.Crossbar(gmax={"other": 1.0}))
    with pytest.raises(ValueError, match="gmax"):
        ms.MemSE(model).set_gmax({"nope": 1.0})
    with pytest.raises(ValueError, match="Sequential or Functional"):
        ms.MemSE(layers.Dense(2))
    with pytest.raises(ValueError, match="built"):
        ms.MemSE(keras.Sequential([layers.Dense(2)]))
    with pytest.raises(ValueError, match="weight"):
        ms.MemSEPenaltyModel(model, weight=0.0)
