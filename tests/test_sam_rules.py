"""The sharpness-aware family beyond plain SAM: RWP and the one-pass step, Lookbehind, the
weight-tensor flags of ASAM/SAMSON and Embedding (IndexedSlices) gradients."""

import math

import keras
import numpy as np
import pytest
from helpers import variable_gradients
from keras import ops
from scipy import stats

import tf_lanmax as tl
from tf_lanmax.sam import RULES, layer_rms, one_pass_train_step, perturbation, rwp_perturbation


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


def _grad(x, y, v):  # d/dv mean((xv - y)^2), in float64
    x, y = x.astype(np.float64), y.astype(np.float64)
    return 2.0 * x.T @ (x @ v - y) / x.shape[0]


def _cnn(seed=0, faulty=False, dropout=True):
    """A small faulty conv net built from `seed`.

    On torch the unseeded Dropout draws from the process's global generator (Keras' fast path),
    which every model shares: tests comparing two models run each model's steps in turn, each
    after building it from the seed, rather than interleaving them.
    """
    keras.utils.set_random_seed(seed)
    dense = (
        tl.FaultyDense(3, fault_rate=0.3, seed=7, weight_format="fixed_point")
        if faulty
        else keras.layers.Dense(3)
    )
    layers = [
        keras.Input((6, 6, 1)),
        keras.layers.Conv2D(4, 3, use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
    ]
    if dropout:
        layers.append(keras.layers.Dropout(0.3))
    return keras.Sequential(
        [*layers, keras.layers.Flatten(), dense, keras.layers.Activation("softmax")]
    )


def _batch(seed=0, n=8):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6, 6, 1)).astype("float32"), rng.integers(0, 3, n)


def _seed_value(model):
    """The seed tensor the model's next perturbation draw will use (a copy of the state)."""
    return ops.convert_to_tensor(
        np.asarray(model.seed_generator.state), model.seed_generator.state.dtype
    )


# ---------------------------------------------------------------------------------------------
# RWP: the perturbation
# ---------------------------------------------------------------------------------------------


def _rwp_weights():
    rng = np.random.default_rng(0)
    return [
        rng.normal(0.0, 0.2, size=(40, 50)).astype("float32"),  # Dense kernel, n = 2000
        rng.normal(0.0, 0.05, size=(64,)).astype("float32"),  # bias: eps = 0
        rng.normal(0.0, 3.0, size=(3, 3, 8, 16)).astype("float32"),  # Conv kernel, n = 1152
        (1.0 + rng.normal(0.0, 0.1, size=(300,))).astype("float32"),  # BN gamma, n = 300
    ], [True, False, True, True]


def _sd_interval(n, confidence=0.999):
    """Two-sided chi-square interval of the sample sd of n i.i.d. N(0, 1) draws."""
    tail = (1.0 - confidence) / 2.0
    low, high = stats.chi2.ppf([tail, 1.0 - tail], n - 1)
    return math.sqrt(low / (n - 1)), math.sqrt(high / (n - 1))


def test_rwp_eps_has_the_stated_per_layer_scale_and_a_wrong_scale_fails():
    weights, flags = _rwp_weights()
    rho = 0.03
    eps = rwp_perturbation(weights, rho, 1234, flags)
    for w, e, flag in zip(weights, eps, flags, strict=True):
        e = np.asarray(e, np.float64)
        assert e.shape == w.shape
        if not flag:
            assert np.all(e == 0.0)
            continue
        rms = math.sqrt(np.mean(w.astype(np.float64) ** 2))
        np.testing.assert_allclose(float(layer_rms(w)), rms, rtol=1e-6)
        z = e / (rho * rms)
        low, high = _sd_interval(z.size)
        assert low < z.std(ddof=1) < high, (w.shape, z.std(ddof=1), (low, high))
        assert abs(z.mean()) * math.sqrt(z.size) < stats.norm.ppf(0.9995)
    # The same test refuses the scales a wrong rule would use (on the 2000-entry kernel).
    w, e = weights[0].astype(np.float64), np.asarray(eps[0], np.float64)
    rms = math.sqrt(np.mean(w**2))
    low, high = _sd_interval(w.size)
    for wrong in (np.linalg.norm(w), np.abs(w).max(), 1.1 * rms, rms / 1.1):
        sd = (e / (rho * wrong)).std(ddof=1)
        assert not low < sd < high, wrong


def test_rwp_eps_is_a_pure_function_of_the_seed_and_tensors_do_not_share_draws():
    weights = [np.ones((30, 30), "float32"), np.ones((30, 30), "float32")]
    seed = ops.convert_to_tensor(np.array([7, 3]), keras.random.SeedGenerator(0).state.dtype)
    a = rwp_perturbation(weights, 0.1, seed)
    b = rwp_perturbation(weights, 0.1, seed)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    assert not np.allclose(np.asarray(a[0]), np.asarray(a[1]))  # two tensors, two draws
    other = rwp_perturbation(weights, 0.1, 8)
    assert not np.allclose(np.asarray(a[0]), np.asarray(other[0]))
    assert all(np.all(np.asarray(e) == 0.0) for e in rwp_perturbation(weights, 0.0, 1))


def test_rwp_is_not_a_gradient_rule():
    weights, flags = _rwp_weights()
    with pytest.raises(ValueError, match="rwp_perturbation"):
        perturbation("rwp", weights, weights, 0.1, is_weight=flags)


# ---------------------------------------------------------------------------------------------
# RWP: the one-pass step
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("splits", [1, 2])
def test_rwp_step_is_the_gradient_at_w_plus_eps_applied_at_w(splits):
    x, y, w0 = _quadratic_problem()
    rwp = tl.SharpnessAwareModel(_linear(w0), rule="rwp", rho=0.3, seed=11, num_batch_splits=splits)
    rwp.compile(keras.optimizers.SGD(1.0), "mse")
    grads, size = [], x.shape[0] // splits
    for j in range(splits):
        seed = _seed_value(rwp)  # the draw of sub-batch j: the state advances by [0, 1] each
        seed = seed + ops.convert_to_tensor(np.array([0, j]), seed.dtype)
        eps = np.asarray(rwp_perturbation([w0], 0.3, seed, [True])[0], np.float64)
        part = slice(j * size, (j + 1) * size)
        grads.append(_grad(x[part], y[part], w0.astype(np.float64) + eps))
    state = np.asarray(rwp.seed_generator.state).copy()
    rwp.train_on_batch(x, y)
    np.testing.assert_allclose(
        np.asarray(rwp.inner.layers[0].kernel), w0 - np.mean(grads, axis=0), rtol=1e-4
    )
    np.testing.assert_array_equal(np.asarray(rwp.seed_generator.state), state + [0, splits])


@pytest.mark.parametrize("faulty", [False, True])
def test_rwp_with_rho_zero_is_exactly_the_plain_step_batchnorm_and_loss_included(faulty):
    x, y = _batch()
    plain = _cnn(faulty=faulty)
    plain.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    for _ in range(2):  # each model's steps in turn: see _cnn on torch's Dropout
        plain_loss = plain.train_on_batch(x, y)
    rwp = tl.SharpnessAwareModel(_cnn(faulty=faulty), rule="rwp", seed=0)
    rwp.rho = 0.0  # the constructor refuses rho <= 0; the step itself must reduce to plain
    rwp.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    for _ in range(2):
        logs = rwp.train_on_batch(x, y, return_dict=True)
    assert logs["loss"] == pytest.approx(plain_loss, rel=1e-6)
    assert logs["batch_loss"] == pytest.approx(plain_loss, rel=1e-6)
    # get_weights covers BatchNorm's moving statistics: the one pass is the training pass.
    for a, b in zip(plain.get_weights(), rwp.inner.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_rwp_batchnorm_statistics_come_from_the_perturbed_pass_and_w_is_untouched():
    x, y = _batch()
    plain = _cnn()
    plain.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    rwp = tl.SharpnessAwareModel(_cnn(), rule="rwp", rho=0.5, seed=0)
    rwp.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    before = [np.asarray(v).copy() for v in rwp.inner.trainable_variables]
    plain.train_on_batch(x, y)
    rwp.train_on_batch(x, y)
    for b, v in zip(before, rwp.inner.trainable_variables, strict=True):
        np.testing.assert_array_equal(b, np.asarray(v))
    bn_plain, bn_rwp = plain.layers[1], rwp.inner.layers[1]
    assert not np.allclose(np.asarray(bn_plain.moving_mean), np.asarray(bn_rwp.moving_mean))
    start = np.zeros_like(np.asarray(bn_rwp.moving_mean))
    assert not np.array_equal(np.asarray(bn_rwp.moving_mean), start)  # updated once, at w + eps


def test_rwp_seeded_runs_reproduce_and_draw_fresh_eps_every_step():
    x, y = _batch(n=16)

    def run(seed):
        rwp = tl.SharpnessAwareModel(_cnn(dropout=False), rule="rwp", seed=seed)
        rwp.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
        rwp.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
        return rwp

    a, b, c = run(3), run(3), run(4)
    for u, v in zip(a.inner.get_weights(), b.inner.get_weights(), strict=True):
        np.testing.assert_array_equal(u, v)
    assert any(
        not np.allclose(u, v)
        for u, v in zip(a.inner.get_weights(), c.inner.get_weights(), strict=True)
    )
    np.testing.assert_array_equal(np.asarray(a.seed_generator.state), [3, 4])  # 4 steps


def test_a_subclass_supplies_eps_through_random_perturbation():
    x, y, w0 = _quadratic_problem()
    shift = np.full_like(w0, 0.25)
    seen = []

    class Shifted(tl.SharpnessAwareModel):
        def random_perturbation(self, weights, seed):
            seen.append(tuple(seed.shape))
            return [ops.convert_to_tensor(shift)]

    model = Shifted(_linear(w0), rule="rwp", seed=0)
    model.compile(keras.optimizers.SGD(1.0), "mse")
    model.train_on_batch(x, y)
    expected = w0 - _grad(x, y, w0.astype(np.float64) + shift)
    np.testing.assert_allclose(np.asarray(model.inner.layers[0].kernel), expected, rtol=1e-4)
    assert seen and seen[0] == (2,)


def test_one_pass_train_step_serves_any_model_without_a_seed_generator():
    x, y, w0 = _quadratic_problem()
    shift = np.full_like(w0, -0.1)

    class Noisy(keras.Sequential):
        def train_step(self, *args):
            return one_pass_train_step(self, *args, perturb=self.perturb, num_batch_splits=2)

        def perturb(self, weights, seed):
            assert seed is None
            return [None if len(w.shape) < 2 else ops.convert_to_tensor(shift) for w in weights]

    model = Noisy([keras.Input((5,)), keras.layers.Dense(1, use_bias=False)])
    model.layers[0].kernel.assign(w0)
    model.compile(keras.optimizers.SGD(1.0), "mse")
    logs = model.train_on_batch(x, y, return_dict=True)
    grads = [_grad(x[i : i + 8], y[i : i + 8], w0 + shift.astype(np.float64)) for i in (0, 8)]
    np.testing.assert_allclose(
        np.asarray(model.layers[0].kernel), w0 - np.mean(grads, axis=0), rtol=1e-4
    )
    assert math.isfinite(logs["batch_loss"])


# ---------------------------------------------------------------------------------------------
# Lookbehind
# ---------------------------------------------------------------------------------------------


def _numpy_lookbehind(x, y, w, rule, rho, eta, lr, k, alpha):
    """Algorithm 1 of Lookbehind-SAM with SGD, in float64."""
    slow = fast = point = w.astype(np.float64)
    g, first = _grad(x, y, point), None
    for i in range(k):
        t = np.ones_like(point) if rule == "sam" else np.abs(point) + eta
        point = point + rho * t**2 * g / (np.linalg.norm(t * g) + 1e-12)
        g = _grad(x, y, point)
        fast = fast - lr * g
        first = fast if i == 0 else first
    if alpha == "adaptive":
        a, b = (first - slow).ravel(), (fast - slow).ravel()
        alpha = (a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) + 1.0) / 2.0
    return slow + alpha * (fast - slow)


@pytest.mark.parametrize(
    ("rule", "k", "alpha"),
    [("sam", 2, 0.5), ("sam", 3, 0.8), ("asam", 2, 0.2), ("sam", 3, "adaptive")],
)
def test_lookbehind_matches_algorithm_1_on_a_quadratic(rule, k, alpha):
    x, y, w0 = _quadratic_problem()
    model = tl.SharpnessAwareModel(
        _linear(w0), rule=rule, rho=0.3, lookbehind_steps=k, lookbehind_alpha=alpha
    )
    model.compile(keras.optimizers.SGD(0.1), "mse")
    model.train_on_batch(x, y)
    expected = _numpy_lookbehind(x, y, w0, rule, 0.3, 0.01, 0.1, k, alpha)
    np.testing.assert_allclose(np.asarray(model.inner.layers[0].kernel), expected, rtol=1e-4)
    assert int(model.optimizer.iterations) == k  # the optimizer steps the fast weights k times


@pytest.mark.parametrize(("rule", "alpha"), [("sam", None), ("asam", 1.0), ("samson", "adaptive")])
def test_lookbehind_with_one_step_is_exactly_the_plain_rule(rule, alpha):
    x, y = _batch()
    ref = tl.SharpnessAwareModel(_cnn(faulty=True), rule=rule)
    ref.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    for _ in range(2):  # each model's steps in turn: see _cnn on torch's Dropout
        ref.train_on_batch(x, y)
    one = tl.SharpnessAwareModel(
        _cnn(faulty=True), rule=rule, lookbehind_steps=1, lookbehind_alpha=alpha
    )
    one.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    assert one.lookbehind_alpha == (alpha or 1.0)
    for _ in range(2):
        one.train_on_batch(x, y)
    for a, b in zip(ref.inner.get_weights(), one.inner.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("k", "alpha"), [(2, 0.5), (4, 0.25)])
def test_lookbehind_with_rho_zero_and_k_alpha_one_is_the_plain_sgd_step(k, alpha):
    x, y = _batch()
    plain = _cnn()
    plain.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
    for _ in range(2):  # each model's steps in turn: see _cnn on torch's Dropout
        plain.train_on_batch(x, y)
    lookbehind = tl.SharpnessAwareModel(
        _cnn(), rule="sam", lookbehind_steps=k, lookbehind_alpha=alpha
    )
    lookbehind.rho = 0.0
    lookbehind.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
    for _ in range(2):
        lookbehind.train_on_batch(x, y)
    for a, b in zip(plain.get_weights(), lookbehind.inner.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_lookbehind_default_alpha_and_sub_batches():
    x, y = _batch()
    model = tl.SharpnessAwareModel(_cnn(), rule="samson", lookbehind_steps=2, num_batch_splits=2)
    assert model.lookbehind_alpha == 0.5
    model.compile("adam", "sparse_categorical_crossentropy")
    logs = model.train_on_batch(x, y, return_dict=True)
    assert math.isfinite(logs["loss"]) and int(model.optimizer.iterations) == 2


# ---------------------------------------------------------------------------------------------
# ASAM / SAMSON weight flags
# ---------------------------------------------------------------------------------------------


def _flags(layer, input_shape, dtype="float32"):
    model = keras.Sequential([keras.Input(input_shape, dtype=dtype), layer])
    sam = tl.SharpnessAwareModel(model, rule="asam")
    return {v.path.split("/")[-1]: f for v, f in zip(sam.trainable_variables, sam.weight_flags())}


@pytest.mark.parametrize(
    ("make", "input_shape", "dtype", "expected"),
    [
        (lambda: keras.layers.Embedding(10, 4), (3,), "int32", {"embeddings": True}),
        (
            lambda: keras.layers.LSTM(3),
            (4, 2),
            "float32",
            {"kernel": True, "recurrent_kernel": True, "bias": False},
        ),
        (
            lambda: keras.layers.GRU(3),
            (4, 2),
            "float32",
            {"kernel": True, "recurrent_kernel": True, "bias": False},
        ),
        (
            lambda: keras.layers.SimpleRNN(3),
            (4, 2),
            "float32",
            {"kernel": True, "recurrent_kernel": True, "bias": False},
        ),
        (
            lambda: keras.layers.SeparableConv2D(4, 3),
            (6, 6, 2),
            "float32",
            {"depthwise_kernel": True, "pointwise_kernel": True, "bias": False},
        ),
        (
            lambda: keras.layers.BatchNormalization(),
            (5,),
            "float32",
            {"gamma": True, "beta": False},
        ),
    ],
    ids=["Embedding", "LSTM", "GRU", "SimpleRNN", "SeparableConv2D", "BatchNormalization"],
)
def test_weight_flags_cover_every_weight_tensor(make, input_shape, dtype, expected):
    assert _flags(make(), input_shape, dtype) == expected


def test_weight_flags_cover_any_tensor_of_rank_two_or_more():
    class Custom(keras.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], 3), name="w")
            self.offset = self.add_weight(shape=(3,), name="offset")

        def call(self, x):
            return x @ self.w + self.offset

    assert _flags(Custom(), (4,)) == {"w": True, "offset": False}


# ---------------------------------------------------------------------------------------------
# Embedding gradients (tf.IndexedSlices with repeated indices)
# ---------------------------------------------------------------------------------------------

IDS = np.array([[1, 1, 1, 2], [2, 2, 3, 1]], "int32")


def _embedding_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((4,), dtype="int32"),
            keras.layers.Embedding(10, 3),
            keras.layers.Flatten(),
            keras.layers.Dense(1, use_bias=False),
        ]
    )


@pytest.mark.tensorflow_only
def test_indexed_slices_gradient_norm_is_the_norm_of_the_dense_gradient():
    import tensorflow as tf

    from tf_lanmax.sam import global_norm, sam_perturbation
    from tf_lanmax.sam.tensorflow_step import dense

    model = _embedding_model()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(IDS) ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    assert isinstance(grads[0], tf.IndexedSlices)
    truth = math.sqrt(sum(float(tf.reduce_sum(tf.convert_to_tensor(g) ** 2)) for g in grads))
    fixed = dense(grads, model.trainable_variables)
    assert float(global_norm(fixed)) == pytest.approx(truth, rel=1e-6)
    eps = sam_perturbation(fixed, 0.1)
    for e, g in zip(eps, grads, strict=True):
        np.testing.assert_allclose(
            np.asarray(e), 0.1 * np.asarray(tf.convert_to_tensor(g)) / truth, rtol=1e-5
        )
    # The old path (the raw slices) counted each repeated row separately: a different norm.
    assert abs(float(global_norm(grads)) - truth) > 0.05 * truth


def test_sam_step_on_an_embedding_with_repeated_ids_uses_the_dense_gradient():
    y = np.array([[0.5], [-1.0]], "float32")
    sam = tl.SharpnessAwareModel(_embedding_model(), rule="sam", rho=0.2)
    sam.compile(keras.optimizers.SGD(1.0), "mse")
    ref = _embedding_model()
    w = [ops.convert_to_numpy(v).astype(np.float64) for v in ref.trainable_variables]

    def loss():
        return ops.mean((ref(IDS) - ops.convert_to_tensor(y)) ** 2)

    g = [np.asarray(a, np.float64) for a in variable_gradients(loss, ref.trainable_variables)]
    norm = math.sqrt(sum(float(np.sum(a**2)) for a in g))
    for v, wi, gi in zip(ref.trainable_variables, w, g, strict=True):
        v.assign((wi + 0.2 * gi / norm).astype("float32"))
    g2 = variable_gradients(loss, ref.trainable_variables)
    sam.train_on_batch(IDS, y)
    for v, wi, gi in zip(sam.inner.trainable_variables, w, g2, strict=True):
        np.testing.assert_allclose(ops.convert_to_numpy(v), wi - gi, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rule": "rwp", "rho": 0.02, "seed": 5, "num_batch_splits": 2},
        {"rule": "asam", "lookbehind_steps": 3, "lookbehind_alpha": "adaptive", "seed": 1},
        {"rule": "sam", "lookbehind_steps": 2, "lookbehind_alpha": 0.8},
    ],
)
def test_keras_round_trip_keeps_the_new_arguments_and_the_seed_state(tmp_path, kwargs):
    x, y = _batch()
    sam = tl.SharpnessAwareModel(_cnn(dropout=False), **kwargs)
    sam.compile("adam", "sparse_categorical_crossentropy")
    sam.train_on_batch(x, y)
    path = tmp_path / "sam.keras"
    sam.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded, tl.SharpnessAwareModel)
    for key in ("rule", "rho", "seed", "num_batch_splits", "lookbehind_steps", "lookbehind_alpha"):
        assert getattr(loaded, key) == getattr(sam, key), key
    np.testing.assert_array_equal(
        np.asarray(loaded.seed_generator.state), np.asarray(sam.seed_generator.state)
    )
    # Training continues where it stopped: the same next step (and, for RWP, the same eps).
    sam.train_on_batch(x, y)
    loaded.train_on_batch(x, y)
    for a, b in zip(sam.inner.get_weights(), loaded.inner.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_unknown_rule_names_rule_and_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="rule") as info:
        tl.SharpnessAwareModel(_cnn(), rule="lookahead")
    assert all(rule in str(info.value) for rule in RULES)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"lookbehind_steps": 0}, "lookbehind_steps"),
        ({"lookbehind_steps": 1.5}, "lookbehind_steps"),
        ({"lookbehind_steps": 2, "lookbehind_alpha": 0.0}, "lookbehind_alpha"),
        ({"lookbehind_steps": 2, "lookbehind_alpha": 1.5}, "lookbehind_alpha"),
        ({"lookbehind_steps": 2, "lookbehind_alpha": "slow"}, "lookbehind_alpha"),
        ({"lookbehind_alpha": float("nan")}, "lookbehind_alpha"),
        ({"rule": "rwp", "lookbehind_steps": 2}, "lookbehind_steps"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_bad_new_arguments_raise_value_error(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        tl.SharpnessAwareModel(_cnn(), **kwargs)
