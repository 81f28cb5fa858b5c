"""Sharpness-aware training: the rules against numpy, the step against closed forms."""

import math
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import tf_lanmax as tl
from tf_lanmax.sam import (
    asam_perturbation,
    asam_scales,
    perturbation,
    sam_perturbation,
    samson_perturbation,
    samson_scales,
)

# ---------------------------------------------------------------------------------------------
# Rules: numpy oracle, norms, rho = 0
# ---------------------------------------------------------------------------------------------


def _random_tensors(seed):
    rng = np.random.default_rng(seed)
    shapes = [(3, 4), (4,), (2, 2, 3, 5), (5,)]
    weights = [rng.normal(size=s).astype("float32") for s in shapes]
    grads = [rng.normal(size=s).astype("float32") for s in shapes]
    flags = [True, False, True, False]
    return weights, grads, flags


def _numpy_rule(rule, weights, grads, rho, eta, p, flags):
    w = [x.astype(np.float64) for x in weights]
    g = [x.astype(np.float64) for x in grads]
    if rule == "sam":
        t = [np.ones_like(x) for x in w]
    elif rule == "asam":
        t = [np.abs(x) + eta if f else np.ones_like(x) for x, f in zip(w, flags, strict=True)]
    else:
        t = []
        for x, f in zip(w, flags, strict=True):
            norm = np.abs(x).max() if p == math.inf else np.sum(np.abs(x) ** p) ** (1 / p)
            t.append((np.abs(x) + eta) / norm if f else np.ones_like(x))
    denom = math.sqrt(sum(np.sum((ti * gi) ** 2) for ti, gi in zip(t, g, strict=True)))
    return [rho * ti**2 * gi / (denom + 1e-12) for ti, gi in zip(t, g, strict=True)]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(
    ("rule", "p"), [("sam", 2), ("asam", 2), ("samson", math.inf), ("samson", 2)]
)
def test_rules_match_an_independent_numpy_implementation(rule, p, seed):
    weights, grads, flags = _random_tensors(seed)
    rho = [0.05, 0.5, 0.2, 1.3, 0.01][seed]
    ours = perturbation(rule, weights, grads, rho, eta=0.01, p=p, is_weight=flags)
    ref = _numpy_rule(rule, weights, grads, rho, 0.01, p, flags)
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_allclose(np.asarray(a), b, rtol=2e-5, atol=1e-8)


@pytest.mark.parametrize("seed", range(8))
def test_each_perturbation_has_norm_rho_in_its_own_norm(seed):
    weights, grads, flags = _random_tensors(seed)
    rho = 0.1 + seed

    def norm(tensors):
        return math.sqrt(sum(float(np.sum(np.asarray(t, np.float64) ** 2)) for t in tensors))

    assert norm(sam_perturbation(grads, rho)) == pytest.approx(rho, rel=1e-5)
    t = asam_scales(weights, 0.01, flags)
    eps = asam_perturbation(weights, grads, rho, 0.01, flags)
    assert norm([np.asarray(e) / np.asarray(s) for e, s in zip(eps, t, strict=True)]) == (
        pytest.approx(rho, rel=1e-5)
    )
    t = samson_scales(weights, 0.01, math.inf, flags)
    eps = samson_perturbation(weights, grads, rho, 0.01, math.inf, flags)
    assert norm([np.asarray(e) / np.asarray(s) for e, s in zip(eps, t, strict=True)]) == (
        pytest.approx(rho, rel=1e-5)
    )


@pytest.mark.parametrize("rule", ["sam", "asam", "samson"])
def test_rho_zero_and_zero_or_overflowed_gradients_give_zero_perturbation(rule):
    weights, grads, flags = _random_tensors(0)
    for g, rho in [(grads, 0.0), ([np.zeros_like(x) for x in grads], 0.5)]:
        eps = perturbation(rule, weights, g, rho, is_weight=flags)
        assert all(np.all(np.asarray(e) == 0.0) for e in eps)
    inf_grads = [grads[0] * np.inf, *grads[1:]]
    eps = perturbation(rule, weights, inf_grads, 0.5, is_weight=flags)
    assert all(np.all(np.asarray(e) == 0.0) for e in eps)


def test_asam_with_constant_magnitude_and_no_eta_is_c_times_sam():
    rng = np.random.default_rng(0)
    c = 0.7
    weights = [c * np.sign(rng.normal(size=(4, 3))).astype("float32")]
    grads = [rng.normal(size=(4, 3)).astype("float32")]
    asam = asam_perturbation(weights, grads, 0.3, eta=0.0)
    sam = sam_perturbation(grads, 0.3)
    np.testing.assert_allclose(np.asarray(asam[0]), c * np.asarray(sam[0]), rtol=1e-5)


def test_samson_on_one_tensor_is_asam_over_the_layer_norm():
    weights, grads, _ = _random_tensors(3)
    w, g = [weights[0]], [grads[0]]
    norm = np.abs(w[0]).max()
    samson = samson_perturbation(w, g, 0.2, eta=0.0, p=math.inf)
    asam = asam_perturbation(w, g, 0.2, eta=0.0)
    np.testing.assert_allclose(np.asarray(samson[0]), np.asarray(asam[0]) / norm, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# The train step
# ---------------------------------------------------------------------------------------------


def _quadratic_problem(seed=0, n=16, d=5):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = rng.normal(size=(n, 1)).astype("float32")
    w0 = rng.normal(size=(d, 1)).astype("float32")
    return x, y, w0


def _linear(w0):
    model = keras.Sequential([keras.Input((w0.shape[0],)), keras.layers.Dense(1, use_bias=False)])
    model.layers[0].kernel.assign(w0)
    return model


def _numpy_sam_gradient(x, y, w, rho):
    x, y, w = (a.astype(np.float64) for a in (x, y, w))
    n = x.shape[0]

    def grad(v):  # d/dv mean((xv - y)^2)
        return 2.0 * x.T @ (x @ v - y) / n

    g = grad(w)
    eps = rho * g / np.linalg.norm(g)
    return grad(w + eps), w + eps


def test_sam_step_matches_the_closed_form_and_finite_differences_on_a_quadratic():
    x, y, w0 = _quadratic_problem()
    sam = tl.SharpnessAwareModel(_linear(w0), rule="sam", rho=0.3)
    sam.compile(keras.optimizers.SGD(1.0), "mse")
    sam.train_on_batch(x, y)
    expected_grad, w_adv = _numpy_sam_gradient(x, y, w0, 0.3)
    np.testing.assert_allclose(
        np.asarray(sam.inner.layers[0].kernel), w0 - expected_grad, rtol=1e-4
    )

    def loss(v):
        return float(np.mean((x.astype(np.float64) @ v - y) ** 2))

    h = 1e-6
    fd = np.array(
        [
            [(loss(w_adv + h * e) - loss(w_adv - h * e)) / (2 * h)]
            for e in np.eye(len(w0))[:, :, None]
        ]
    ).reshape(-1, 1)
    np.testing.assert_allclose(expected_grad, fd, rtol=1e-5)


def test_batch_splits_average_the_per_split_gradients():
    x, y, w0 = _quadratic_problem(n=12)
    split = tl.SharpnessAwareModel(_linear(w0), rule="sam", rho=0.3, num_batch_splits=3)
    split.compile(keras.optimizers.SGD(1.0), "mse")
    split.train_on_batch(x, y)
    grads = [_numpy_sam_gradient(x[i : i + 4], y[i : i + 4], w0, 0.3)[0] for i in (0, 4, 8)]
    np.testing.assert_allclose(
        np.asarray(split.inner.layers[0].kernel), w0 - np.mean(grads, axis=0), rtol=1e-4
    )


def _cnn(seed=0, faulty=False):
    keras.utils.set_random_seed(seed)
    dense = (
        tl.FaultyDense(3, fault_rate=0.3, seed=7, weight_format="fixed_point")
        if faulty
        else keras.layers.Dense(3)
    )
    return keras.Sequential(
        [
            keras.Input((6, 6, 1)),
            keras.layers.Conv2D(4, 3, use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Dropout(0.3),
            keras.layers.Flatten(),
            dense,
            keras.layers.Activation("softmax"),
        ]
    )


def _batch(seed=0, n=8):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6, 6, 1)).astype("float32"), rng.integers(0, 3, n)


@pytest.mark.parametrize(
    ("rule", "faulty"), [("sam", False), ("asam", True), ("samson", False), ("samson", True)]
)
def test_rho_zero_gives_exactly_the_plain_optimizer_step(rule, faulty):
    # One model after the other, each from the seed: on torch the unseeded Dropout draws from
    # the process's global generator, which interleaved steps would share.
    x, y = _batch()
    plain = _cnn(faulty=faulty)
    plain.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    for _ in range(2):
        plain.train_on_batch(x, y)
    sam = tl.SharpnessAwareModel(_cnn(faulty=faulty), rule=rule)
    sam.rho = 0.0  # the constructor refuses rho <= 0; the step itself must reduce to plain
    sam.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    for _ in range(2):
        sam.train_on_batch(x, y)
    for a, b in zip(plain.get_weights(), sam.inner.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_second_pass_reuses_fault_masks_unless_resampling_is_asked():
    x, y = _batch()
    plain = _cnn(faulty=True)
    plain.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    resampled = tl.SharpnessAwareModel(_cnn(faulty=True), rule="sam", resample_faults=True)
    resampled.rho = 0.0
    resampled.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    plain.train_on_batch(x, y)
    resampled.train_on_batch(x, y)
    differs = [
        not np.array_equal(a, b)
        for a, b in zip(plain.get_weights(), resampled.inner.get_weights(), strict=True)
    ]
    assert any(differs)


@pytest.mark.parametrize("rule", ["sam", "asam", "samson"])
def test_weights_are_restored_to_the_bit_and_batchnorm_updates_once(rule):
    x, y = _batch()
    plain = _cnn()
    plain.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    sam = tl.SharpnessAwareModel(_cnn(), rule=rule, rho=0.5)
    sam.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    before = [np.asarray(v).copy() for v in sam.inner.trainable_variables]
    plain.train_on_batch(x, y)
    logs = sam.train_on_batch(x, y, return_dict=True)
    for b, v in zip(before, sam.inner.trainable_variables, strict=True):
        np.testing.assert_array_equal(b, np.asarray(v))
    bn_plain, bn_sam = plain.layers[1], sam.inner.layers[1]
    np.testing.assert_array_equal(np.asarray(bn_plain.moving_mean), np.asarray(bn_sam.moving_mean))
    np.testing.assert_array_equal(
        np.asarray(bn_plain.moving_variance), np.asarray(bn_sam.moving_variance)
    )
    assert "batch_loss" in logs and math.isfinite(logs["batch_loss"])


def test_fit_with_metrics_callbacks_and_lanmax_on_faulty_layers():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 6, 6, 1)).astype("float32")
    y = (x[:, 0, 0, 0] > 0).astype("int64")
    sam = tl.SharpnessAwareModel(_cnn(faulty=True), rule="samson")
    sam.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    lanmax = tl.LaNMax(alpha=1.0, warmup_epochs=0, seed=0)
    history = sam.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[lanmax])
    assert {"accuracy", "loss"} <= set(history.history)
    # batch_loss is reported, so every batch (the last one included) is a regression point.
    assert len(lanmax.last_points) == 16


def test_mixed_precision_with_loss_scaling():
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        sam = tl.SharpnessAwareModel(_cnn(), rule="samson")
        sam.compile("adam", "sparse_categorical_crossentropy")
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    assert isinstance(sam.optimizer, keras.optimizers.LossScaleOptimizer)
    x, y = _batch(n=32)
    before = [np.asarray(v).copy() for v in sam.inner.trainable_variables]
    history = sam.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert all(math.isfinite(v) for v in history.history["loss"])
    assert any(
        not np.array_equal(b, np.asarray(v))
        for b, v in zip(before, sam.inner.trainable_variables, strict=True)
    )


def test_keras_round_trip_keeps_every_argument(tmp_path):
    sam = tl.SharpnessAwareModel(
        _cnn(), rule="asam", rho=0.7, eta=0.02, p=2, num_batch_splits=2, resample_faults=True
    )
    sam.compile("adam", "sparse_categorical_crossentropy")
    x, y = _batch()
    sam.train_on_batch(x, y)
    path = tmp_path / "sam.keras"
    sam.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded, tl.SharpnessAwareModel)
    for key in ("rule", "rho", "eta", "p", "num_batch_splits", "resample_faults"):
        assert getattr(loaded, key) == getattr(sam, key), key
    for a, b in zip(sam.inner.get_weights(), loaded.inner.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    loaded.train_on_batch(x, y)  # training continues


def test_get_config_covers_every_init_argument():
    import inspect

    sam = tl.SharpnessAwareModel(_cnn())
    config = sam.get_config()
    params = inspect.signature(tl.SharpnessAwareModel.__init__).parameters
    missing = [n for n in params if n not in ("self", "kwargs") and n not in config]
    assert missing == ["model"] or not missing or "model" in config
    assert "model" in config


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"rho": 0.0}, "rho"),
        ({"rho": -0.1}, "rho"),
        ({"rho": float("nan")}, "rho"),
        ({"rule": "adam"}, "rule"),
        ({"num_batch_splits": 0}, "num_batch_splits"),
        ({"p": 3}, "p"),
        ({"eta": -1.0}, "eta"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        tl.SharpnessAwareModel(_cnn(), **kwargs)


def test_batch_splits_that_do_not_divide_the_batch_are_refused():
    sam = tl.SharpnessAwareModel(_cnn(), num_batch_splits=3)
    sam.compile("adam", "sparse_categorical_crossentropy")
    x, y = _batch(n=8)
    with pytest.raises(ValueError, match="num_batch_splits"):
        sam.train_on_batch(x, y)


@pytest.mark.tensorflow_only
def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    script = textwrap.dedent(
        """
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        logical = [tf.config.LogicalDeviceConfiguration()] * 2
        tf.config.set_logical_device_configuration(cpu, logical)
        import keras, tf_lanmax as tl
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        assert strategy.num_replicas_in_sync == 2
        rng = np.random.default_rng(0)
        x = rng.normal(size=(128, 8)).astype("float32"); y = (x[:, 0] > 0).astype("int64")
        keras.utils.set_random_seed(0)
        for kwargs in [{"rule": "samson"}, {"rule": "rwp", "seed": 0},
                       {"rule": "sam", "lookbehind_steps": 2}]:
            with strategy.scope():
                inner = keras.Sequential([keras.Input((8,)),
                                          keras.layers.Dense(16, activation="relu"),
                                          keras.layers.BatchNormalization(),
                                          keras.layers.Dense(2)])
                sam = tl.SharpnessAwareModel(inner, **kwargs)
                sam.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                            metrics=["accuracy"])
            h = sam.fit(x, y, batch_size=32, epochs=3, verbose=0)
            losses = h.history["loss"]
            assert all(np.isfinite(losses)) and losses[-1] < losses[0], (kwargs, losses)
            weights = [v.value.values for v in inner.trainable_variables]  # replicas agree
            assert all(np.array_equal(w[0], w[1]) for w in weights), kwargs
            print("OK", kwargs, losses)
        """
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=240, env=env
    )
    assert result.returncode == 0 and "OK" in result.stdout, result.stdout + result.stderr[-3000:]
