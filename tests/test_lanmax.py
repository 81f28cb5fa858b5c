"""LaNMax: the least-squares gradient against oracles, and the callback inside a real `fit`."""

import math

import keras
import numpy as np
import pytest
from keras import ops

import tf_lanmax as tl
from tf_lanmax.lanmax import fit_rate_gradient, ols

# ---------------------------------------------------------------------------------------------
# The pure least-squares step
# ---------------------------------------------------------------------------------------------


def test_ols_matches_numpy_lstsq_and_its_standard_errors():
    rng = np.random.default_rng(0)
    x = np.c_[np.ones(200), rng.normal(size=(200, 3))]
    y = x @ np.array([1.0, -2.0, 0.5, 3.0]) + rng.normal(scale=0.3, size=200)
    result = ols(x, y)
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    np.testing.assert_allclose(result.coef, coef, rtol=1e-12)
    resid = y - x @ coef
    cov = resid @ resid / (200 - 4) * np.linalg.inv(x.T @ x)  # textbook formula as oracle
    np.testing.assert_allclose(result.stderr, np.sqrt(np.diag(cov)), rtol=1e-10)


def test_noise_free_objective_gives_the_exact_slopes():
    rng = np.random.default_rng(1)
    g = np.array([0.3, -1.2, 0.05])
    dx = rng.uniform(-0.5, 0.5, size=(40, 3))
    t = np.arange(40) / 40
    objective = 2.0 + dx @ g + 0.7 * t
    slopes, _, _ = fit_rate_gradient(dx, objective, t)
    np.testing.assert_allclose(slopes, g, atol=1e-10)


def test_noisy_slopes_are_recovered_within_their_standard_errors():
    rng = np.random.default_rng(2)
    g = np.array([0.4, -0.2, 0.1, 0.0])
    r, sigma, n, reps = 0.5, 0.05, 120, 300
    z_scores, stderrs = [], []
    for _ in range(reps):
        dx = rng.uniform(-r, r, size=(n, 4))
        t = np.arange(n) / n
        objective = 1.0 + dx @ g - 0.3 * t + rng.normal(scale=sigma, size=n)
        slopes, stderr, _ = fit_rate_gradient(dx, objective, t)
        z_scores.append((slopes - g) / stderr)
        stderrs.append(stderr)
    z = np.array(z_scores)
    # Unbiased: the mean z of 300 repetitions is within 4/sqrt(300) of 0 for every layer.
    assert np.all(np.abs(z.mean(axis=0)) < 4 / math.sqrt(reps))
    # Calibrated: ~95% of |z| below 1.97 (binomial 99.9% band for 1200 trials is about +-2%).
    coverage = np.mean(np.abs(z) < 1.97)
    assert 0.93 < coverage < 0.97
    # ALGORITHMS.md §4.2: SE ~ sigma sqrt(3/N) / r within 20 %.
    np.testing.assert_allclose(np.mean(stderrs), sigma * math.sqrt(3 / n) / r, rtol=0.2)


def test_energy_term_is_exactly_linear_in_log_rate():
    """OLS(alpha E + loss) = OLS(loss) + (-alpha B_l / (a B))_l inside the clip box."""
    rng = np.random.default_rng(3)
    energy = tl.EnergyModel(a=12.8)
    bits = np.array([1000.0, 30000.0, 500.0])
    x = np.log([1e-3, 1e-2, 5e-2])
    dx = rng.uniform(-0.5, 0.5, size=(60, 3))
    t = np.arange(60) / 60
    loss = 0.5 + dx @ np.array([0.1, 0.02, 0.3]) + rng.normal(scale=0.05, size=60)
    alpha = 2.0
    objective = loss + alpha * np.array(
        [energy.mean_energy(bits, np.exp(x + d)) for d in dx], dtype=np.float64
    )
    with_energy, _, _ = fit_rate_gradient(dx, objective, t)
    loss_only, _, _ = fit_rate_gradient(dx, loss, t)
    np.testing.assert_allclose(
        with_energy, loss_only - alpha * bits / (energy.a * bits.sum()), atol=1e-10
    )


def test_ols_rejects_bad_designs():
    with pytest.raises(ValueError, match="at least as many points"):
        ols(np.ones((2, 3)), np.ones(2))
    with pytest.raises(ValueError, match="rank deficient"):
        ols(np.ones((10, 2)), np.arange(10.0))
    with pytest.raises(ValueError, match="non-finite"):
        ols(np.c_[np.ones(5), [1, 2, np.nan, 4, 5]], np.ones(5))


# ---------------------------------------------------------------------------------------------
# The callback in a real fit
# ---------------------------------------------------------------------------------------------


def _model(fault_rate=0.05, seed=0, hidden=16):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            tl.FaultyDense(
                hidden, fault_rate=fault_rate, seed=seed, activation="relu", name="hidden"
            ),
            tl.FaultyDense(3, fault_rate=fault_rate, seed=seed + 1, name="out"),
            keras.layers.Activation("softmax"),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    return model


def _data(n=640, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0.5).astype("int64")
    return x, y


def test_large_alpha_raises_every_rate_by_the_step_bound():
    x, y = _data()
    model = _model(fault_rate=1e-3)
    lanmax = tl.LaNMax(alpha=1000.0, warmup_epochs=0, seed=0)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[lanmax])
    for p in lanmax.rates.values():
        assert p == pytest.approx(1e-3 * math.exp(2 * 0.25), rel=1e-6)
    for layer in tl.faulty_layers(model):  # the layers are left at the new p
        assert float(np.asarray(layer.fault_rate)) == pytest.approx(1e-3 * math.exp(0.5), rel=1e-6)


def test_alpha_zero_lowers_the_rates_when_faults_hurt_the_loss():
    x, y = _data()
    model = _model(fault_rate=0.1)
    model.fit(x, y, batch_size=32, epochs=5, verbose=0)  # learn the task first
    lanmax = tl.LaNMax(alpha=0.0, warmup_epochs=0, seed=1, learning_rate=5.0)
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[lanmax])
    assert all(p < 0.1 for p in lanmax.rates.values()), lanmax.rates
    assert all(record["updated"] for record in lanmax.fits)


def test_rates_stay_in_bounds_and_warmup_records_without_updating():
    x, y = _data()
    model = _model(fault_rate=0.4)
    lanmax = tl.LaNMax(alpha=1000.0, warmup_epochs=1, p_max=0.45, seed=0)
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[lanmax])
    assert history.history["hidden_p"][0] == pytest.approx(0.4, rel=1e-6)  # warm-up
    assert max(lanmax.rates.values()) <= 0.45
    assert history.history["hidden_p"][-1] == pytest.approx(0.45, rel=1e-6)


def test_recorded_loss_is_the_batch_loss_not_the_running_mean():
    x, y = _data(n=320)
    model = _model(fault_rate=1e-6)
    model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    lanmax = tl.LaNMax(alpha=0.0, radius=0.2, p_min=1e-7, seed=0)
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0, callbacks=[lanmax])
    recorded = np.array([point[3] for point in lanmax.last_points])
    assert len(recorded) == 9  # 10 batches; the last (possibly smaller) one is left out
    with tl.faults_disabled(model):
        direct = [
            model.evaluate(x[i : i + 32], y[i : i + 32], verbose=0, batch_size=32)
            for i in range(0, 288, 32)
        ]
    np.testing.assert_allclose(recorded, direct, rtol=1e-4)
    running = np.cumsum(direct) / np.arange(1, 10)
    assert not np.allclose(recorded, running, rtol=1e-3)  # the test tells the two apart


class ReadsRate(keras.layers.Layer):
    """Outputs its source layer's fault rate as read inside the compiled train step."""

    def __init__(self, source, **kwargs):
        super().__init__(**kwargs)
        self.source = source

    def call(self, x):
        return x * 0.0 + ops.cast(self.source.fault_rate, x.dtype)


def test_each_batch_trains_at_the_rate_the_callback_sampled_for_it():
    # The loss is p^2 where p is the rate the compiled step read: on JAX, whose `fit` keeps
    # variables in its own state during an epoch, this shows the per-batch p reaches the step.
    x, y = _data(n=320)
    keras.utils.set_random_seed(0)
    faulty = tl.FaultyDense(1, fault_rate=0.05, seed=0, name="only")
    model = keras.Sequential([keras.Input((8,)), faulty, ReadsRate(faulty)])
    model.compile(keras.optimizers.SGD(0.0), "mse")
    lanmax = tl.LaNMax(alpha=0.0, radius=1.0, warmup_epochs=0, seed=0)
    model.fit(x, np.zeros(len(x)), batch_size=32, epochs=2, verbose=0, callbacks=[lanmax])
    dx = np.array([point[0][0] for point in lanmax.last_points])
    losses = np.array([point[3] for point in lanmax.last_points])
    rate = lanmax.trajectory[0]["rates"]["only"]  # epoch 1 perturbs around epoch 0's result
    assert len(losses) == 9 and np.std(dx) > 0.2
    np.testing.assert_allclose(losses, (rate * np.exp(dx)) ** 2, rtol=1e-4)
    assert float(np.asarray(faulty.fault_rate)) == pytest.approx(lanmax.rates["only"], rel=1e-6)


class LastBatchLoss(keras.metrics.Metric):
    """This batch's own loss, computed from the step's own predictions (the reference).

    A metric sees the y_pred of the very forward pass the loss was computed on (same faults),
    on every backend; unlike Keras' loss tracker it keeps the last value, not the mean.
    """

    def __init__(self, name="own_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.value = self.add_variable((), initializer="zeros", name="value")

    def update_state(self, y_true, y_pred, sample_weight=None):
        loss = keras.losses.sparse_categorical_crossentropy(y_true, y_pred)
        self.value.assign(ops.mean(loss))

    def result(self):
        return ops.convert_to_tensor(self.value)


def test_recovered_batch_loss_equals_a_model_logging_its_own_while_training():
    x, y = _data(n=640)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            tl.FaultyDense(16, fault_rate=0.02, seed=0, activation="relu", name="hidden"),
            tl.FaultyDense(3, fault_rate=0.02, seed=1, name="out"),
            keras.layers.Activation("softmax"),
        ]
    )
    model.compile(
        keras.optimizers.Adam(0.02), "sparse_categorical_crossentropy", metrics=[LastBatchLoss()]
    )
    own = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            own.append(float(logs["own_loss"]))

    lanmax = tl.LaNMax(alpha=1.0, seed=0)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[lanmax, Record()])
    recovered = np.array([point[3] for point in lanmax.last_points])
    np.testing.assert_allclose(recovered, own[: len(recovered)], rtol=2e-5, atol=1e-6)
    assert np.std(own) > 0.01  # the batches really differ: a running mean would not match


def test_custom_train_step_batch_loss_key_is_used_as_is():
    lanmax = tl.LaNMax()
    lanmax._previous_mean = 0.0
    lanmax._steps = 10
    assert lanmax._batch_loss(9, {"batch_loss": 1.25, "loss": 9.0}) == (1.25, True)


def test_non_finite_batches_are_skipped_counted_and_never_reach_p():
    x, _ = _data(n=320)
    y = np.zeros((320, 3), "float32")
    y[100] = np.nan  # batch 3 of 10 has a NaN loss, and so has the running mean after it
    model = _model(fault_rate=0.01)
    model.compile(keras.optimizers.SGD(0.0), "mse")
    lanmax = tl.LaNMax(alpha=1.0, warmup_epochs=0, seed=0)
    history = model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0, callbacks=[lanmax])
    assert lanmax.skipped_batches == 7
    assert history.history["lanmax_skipped"] == [7.0]
    assert len(lanmax.last_points) == 3
    assert all(math.isfinite(p) and p > 0 for p in lanmax.rates.values())


def test_logs_reach_history_and_csv_logger(tmp_path):
    x, y = _data()
    model = _model()
    csv = tmp_path / "log.csv"
    lanmax = tl.LaNMax(alpha=1.0, seed=0)
    history = model.fit(
        x,
        y,
        batch_size=16,
        epochs=2,
        verbose=0,
        callbacks=[lanmax, keras.callbacks.CSVLogger(str(csv))],
    )
    for key in ("hidden_p", "out_eta", "hidden_energy", "memory_energy"):
        assert len(history.history[key]) == 2
    header = csv.read_text().splitlines()[0]
    assert "hidden_p" in header and "energy_ratio" in header
    assert len(lanmax.trajectory) == 2


def test_validation_runs_at_the_unperturbed_rates():
    x, y = _data()
    model = _model()
    lanmax = tl.LaNMax(alpha=1.0, radius=1.0, seed=0)
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_test_batch_begin(self, batch, logs=None):
            rates = [float(np.asarray(layer.fault_rate)) for layer in tl.faulty_layers(self.model)]
            seen.append(np.allclose(rates, list(lanmax.rates.values()), rtol=1e-6))

    model.fit(
        x,
        y,
        batch_size=16,
        epochs=2,
        validation_data=(x[:64], y[:64]),
        verbose=0,
        callbacks=[lanmax, Spy()],
    )
    assert seen and all(seen)


def test_resume_with_backup_and_restore_continues_the_learned_rates(tmp_path):
    x, y = _data()
    backup = str(tmp_path / "backup")

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise RuntimeError("interrupted")

    model = _model(fault_rate=1e-3)
    first = tl.LaNMax(alpha=1000.0, warmup_epochs=0, seed=0)
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(
            x,
            y,
            batch_size=16,
            epochs=4,
            verbose=0,
            callbacks=[first, keras.callbacks.BackupAndRestore(backup), Interrupt()],
        )
    learned = first.rates
    model = _model(fault_rate=1e-3)  # a fresh process: same architecture, initial p again
    second = tl.LaNMax(alpha=1000.0, warmup_epochs=0, seed=0)
    history = model.fit(
        x,
        y,
        batch_size=16,
        epochs=4,
        verbose=0,
        callbacks=[second, keras.callbacks.BackupAndRestore(backup)],
    )
    assert len(history.history["hidden_p"]) == 2  # epochs 2 and 3 only
    for name, p in second.rates.items():
        assert p == pytest.approx(learned[name] * math.exp(2 * 0.25), rel=1e-6)


def test_steps_per_execution_above_one_is_refused():
    x, y = _data()
    model = _model()
    model.compile("adam", "sparse_categorical_crossentropy", steps_per_execution=2)
    with pytest.raises(ValueError, match="steps_per_execution"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[tl.LaNMax()])


def test_a_model_without_faulty_layers_is_refused_at_train_begin():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(ValueError, match="no faulty layer"):
        model.fit(*_data(n=32), epochs=1, verbose=0, callbacks=[tl.LaNMax()])


def test_too_few_batches_warn_and_keep_p():
    x, y = _data(n=64)
    model = _model(fault_rate=0.01)
    lanmax = tl.LaNMax(alpha=1.0, warmup_epochs=0)
    with pytest.warns(UserWarning, match="usable batches"):
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[lanmax])
    assert all(p == pytest.approx(0.01, rel=1e-6) for p in lanmax.rates.values())


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"alpha": -1.0}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"radius": 0.0}, "radius"),
        ({"perturbation": "gaussian"}, "perturbation"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"max_step": -0.1}, "max_step"),
        ({"p_max": 0.7}, "p_max"),
        ({"p_min": 0.3, "p_max": 0.2}, "p_min"),
        ({"p_min": 0.2, "p_max": 0.2}, "p_min"),
        ({"p_min": 0.0}, "p_min"),
        ({"p_min": float("nan")}, "p_min"),
        ({"warmup_epochs": -1}, "warmup_epochs"),
        ({"seed": -5}, "seed"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        tl.LaNMax(**kwargs)


def test_tensorboard_receives_the_per_layer_rates_as_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    x, y = _data()
    model = _model()
    log_dir = tmp_path / "tb"
    model.fit(
        x,
        y,
        batch_size=16,
        epochs=2,
        verbose=0,
        callbacks=[tl.LaNMax(alpha=1.0, seed=0), keras.callbacks.TensorBoard(str(log_dir))],
    )
    events = EventAccumulator(str(log_dir / "train"))
    events.Reload()
    tags = set(events.Tags()["scalars"]) | set(events.Tags().get("tensors", []))
    assert {"epoch_hidden_p", "epoch_out_eta", "epoch_memory_energy"} <= tags, tags
