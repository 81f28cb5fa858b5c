"""LaNMax inside a real `fit`: rates, domains, energy accounting, exact resume."""

import math

import keras
import numpy as np
import pytest
from helpers import assert_config_covers_init
from keras import ops

import tf_lanmax as tl
from tf_lanmax.energy.accounting import mean_memory_energy


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


def _rates_of(model):
    _ = model  # the caller passed `self.model`, which syncs the JAX state
    return [
        float(ops.convert_to_numpy(layer.fault_rate.value)) for layer in tl.faulty_layers(model)
    ]


# ---------------------------------------------------------------------------------------------
# Learning p
# ---------------------------------------------------------------------------------------------


def test_large_alpha_raises_every_rate_by_the_step_bound():
    x, y = _data(n=320)
    model = _model(fault_rate=1e-3)
    lanmax = tl.LaNMax(alpha=1000.0, warmup_epochs=0, seed=0)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[lanmax])
    for p in lanmax.rates.values():
        assert p == pytest.approx(1e-3 * math.exp(2 * 0.25), rel=1e-6)
    for layer in tl.faulty_layers(model):  # the layers are left at the new p
        assert float(np.asarray(layer.fault_rate)) == pytest.approx(1e-3 * math.exp(0.5), rel=1e-6)


def test_alpha_zero_lowers_the_rates_when_faults_hurt_the_loss():
    """alpha = 0: the step follows the loss slope alone, which faults make positive.

    Power by construction, not by a lucky seed. Every step sees the same 64 examples, so the
    batch-to-batch spread of J is the fault draws' (sd 0.15-0.18 measured) plus the training
    drift the time column absorbs. With N = 200 batches and r = 1 nat, the OLS standard error
    of a slope is SE ~ sd sqrt(3 / N) / r ~ 0.02 (the fits report 0.011-0.015), and the loss
    slope of this model at p = 0.1 is 0.13-0.19 per nat of ln p: t = slope / SE is 10-16 over
    seeds 0-7 (model, data and LaNMax seed), so the sign is wrong with probability < Phi(-10)
    per domain. The test checks that premise on the fit's own standard errors (t > 4: fails with
    probability < Phi(-6) ~ 1e-9 even at the weakest seed measured; the former design, 80
    batches of fresh data at r = 0.5, had t ~ 0-2), then the consequence: both p move down by
    the full step (lr * slope >= 0.6 > max_step).
    """
    rng = np.random.default_rng(0)
    x_batch = rng.normal(size=(64, 8)).astype("float32")
    y_batch = (x_batch[:, 0] > 0).astype("int64") + (x_batch[:, 1] > 0.5).astype("int64")
    x, y = np.tile(x_batch, (200, 1)), np.tile(y_batch, 200)
    model = _model(fault_rate=0.1, hidden=64)
    model.fit(x[: 64 * 60], y[: 64 * 60], batch_size=64, verbose=0)  # learn the batch first
    lanmax = tl.LaNMax(alpha=0.0, radius=1.0, warmup_epochs=0, seed=0, learning_rate=5.0)
    model.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0, callbacks=[lanmax])
    (fit,) = lanmax.fits
    t = np.array(fit["slopes"]) / np.array(fit["stderr"])
    assert np.all(t > 4), t
    for p in lanmax.rates.values():
        assert p == pytest.approx(0.1 * math.exp(-0.25), rel=1e-6)


def test_rates_stay_in_bounds_and_warmup_records_without_updating():
    x, y = _data(n=320)
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
    recorded = np.array([point.loss for point in lanmax.last_points])
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
    dx = np.array([point.offsets[0] for point in lanmax.last_points])
    losses = np.array([point.loss for point in lanmax.last_points])
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
    model = _model(fault_rate=0.02)
    model.compile(
        keras.optimizers.Adam(0.02), "sparse_categorical_crossentropy", metrics=[LastBatchLoss()]
    )
    own = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            own.append(float(logs["own_loss"]))

    lanmax = tl.LaNMax(alpha=1.0, seed=0)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[lanmax, Record()])
    recovered = np.array([point.loss for point in lanmax.last_points])
    np.testing.assert_allclose(recovered, own[: len(recovered)], rtol=2e-5, atol=1e-6)
    assert np.std(own) > 0.01  # the batches really differ: a running mean would not match


def test_custom_train_step_batch_loss_key_is_used_as_is():
    lanmax = tl.LaNMax()
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
    x, y = _data(n=320)
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
    assert "domain_0_p" not in history.history  # per-domain logs only with `domains`
    header = csv.read_text().splitlines()[0]
    assert "hidden_p" in header and "energy_ratio" in header
    assert len(lanmax.trajectory) == 2


def test_validation_runs_at_the_unperturbed_rates():
    x, y = _data(n=320)
    model = _model()
    lanmax = tl.LaNMax(alpha=1.0, radius=1.0, seed=0)
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_test_batch_begin(self, batch, logs=None):
            rates = _rates_of(self.model)
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


# ---------------------------------------------------------------------------------------------
# Voltage domains
# ---------------------------------------------------------------------------------------------


def _three_layer_model(seed=0, rates=(0.05, 0.05, 0.05)):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            tl.FaultyDense(16, fault_rate=rates[0], seed=seed, activation="relu", name="a"),
            tl.FaultyDense(16, fault_rate=rates[1], seed=seed + 1, activation="relu", name="b"),
            tl.FaultyDense(3, fault_rate=rates[2], seed=seed + 2, name="c"),
            keras.layers.Activation("softmax"),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    return model


def test_layers_of_one_domain_hold_the_same_p_every_batch():
    x, y = _data(n=320)
    model = _three_layer_model()
    lanmax = tl.LaNMax(alpha=1.0, radius=1.0, warmup_epochs=0, seed=0, domains=[["a", "c"], ["b"]])
    seen = {"perturbed": [], "unperturbed": []}

    class Spy(keras.callbacks.Callback):  # listed after LaNMax: sees what the step will use
        def on_train_batch_begin(self, batch, logs=None):
            seen["perturbed"].append(_rates_of(self.model))

        def on_train_batch_end(self, batch, logs=None):
            seen["unperturbed"].append(_rates_of(self.model) + lanmax.domain_rates)

    history = model.fit(
        x, y, batch_size=32, epochs=2, shuffle=False, verbose=0, callbacks=[lanmax, Spy()]
    )
    perturbed, unperturbed = np.array(seen["perturbed"]), np.array(seen["unperturbed"])
    assert len(perturbed) == 20
    np.testing.assert_array_equal(perturbed[:, 0], perturbed[:, 2])  # a and c: one supply
    assert np.std(np.log(perturbed[:, 0] / perturbed[:, 1])) > 0.2  # b has its own
    np.testing.assert_array_equal(unperturbed[:, 0], unperturbed[:, 2])
    np.testing.assert_allclose(unperturbed[:, [0, 1]], unperturbed[:, [3, 4]], rtol=1e-6)
    # One regressor per domain: each point has two offsets, matching the p the layers ran at.
    offsets = np.array([point.offsets for point in lanmax.last_points])
    assert offsets.shape == (9, 2)
    x_epoch = np.log(lanmax.trajectory[0]["domain_rates"])
    np.testing.assert_allclose(x_epoch + offsets, np.log(perturbed[10:19, :2]), atol=1e-6)
    assert lanmax.rates["a"] == lanmax.rates["c"] == lanmax.domain_rates[0]
    assert history.history["domain_0_p"][-1] == lanmax.domain_rates[0]
    assert history.history["a_slope"] == history.history["c_slope"]
    assert history.history["domain_1_slope"] == history.history["b_slope"]


def test_domains_none_is_one_domain_per_layer_on_the_per_epoch_stream():
    x, y = _data(n=320)
    runs = []
    for domains in (None, [["hidden"], ["out"]]):
        model = _model(fault_rate=0.05)
        lanmax = tl.LaNMax(alpha=1.0, warmup_epochs=0, seed=3, learning_rate=2.0, domains=domains)
        model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0, callbacks=[lanmax])
        runs.append((lanmax, _weights(model)))
    (default, weights), (explicit, explicit_weights) = runs
    assert default.rates == explicit.rates and default.last_points == explicit.last_points
    for a, b in zip(weights, explicit_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    # The perturbations are the per-epoch stream default_rng([seed, epoch]), one per layer.
    x_epoch = np.log(list(default.trajectory[0]["rates"].values()))
    u = np.random.default_rng([3, 1]).uniform(-1.0, 1.0, size=(9, 2))
    expected = np.clip(x_epoch + 0.5 * u, math.log(default.p_min), math.log(0.5)) - x_epoch
    np.testing.assert_allclose([p.offsets for p in default.last_points], expected, atol=1e-12)


@pytest.mark.parametrize(
    ("domains", "message"),
    [
        ([["a", "b"], ["c", "dense_9"]], "names layer 'dense_9'"),
        ([["a", "b"], ["b", "c"]], "puts layer 'b' in two domains"),
        ([["a", "b"]], "leaves layer 'c' in no domain"),
    ],
)
def test_domains_naming_wrong_layers_fail_at_train_begin(domains, message):
    model = _three_layer_model()
    lanmax = tl.LaNMax(domains=domains)  # the structure is fine: names are checked by `fit`
    with pytest.raises(ValueError, match=message) as info:
        model.fit(*_data(n=64), epochs=1, verbose=0, callbacks=[lanmax])
    assert "`domains`" in str(info.value)


def test_a_domain_starts_at_the_smallest_p_of_its_layers():
    model = _three_layer_model(rates=(0.02, 0.05, 0.01))
    lanmax = tl.LaNMax(warmup_epochs=5, seed=0, domains=[["a", "c"], ["b"]])
    with pytest.warns(UserWarning, match="start at different p"):
        model.fit(*_data(n=320), batch_size=32, epochs=1, verbose=0, callbacks=[lanmax])
    assert lanmax.rates == pytest.approx({"a": 0.01, "b": 0.05, "c": 0.01}, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# Energy accounting
# ---------------------------------------------------------------------------------------------


class SquareRootEnergy:
    """A duck-typed energy model with no `a`: eta(p) = sqrt(p0 / p)."""

    p0 = 1e-6

    def eta(self, p):
        return np.sqrt(self.p0 / np.clip(np.asarray(p, dtype=np.float64), self.p0, 0.5))

    def rate(self, eta):
        return self.p0 / np.asarray(eta, dtype=np.float64) ** 2

    def get_config(self):
        return {"p0": self.p0}


def test_energy_counts_protected_bits_with_any_energy_model():
    x, y = _data(n=320)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            tl.FaultyDense(
                16,
                weight_format=tl.formats.FixedPoint(4, 2),
                protected_msbs=2,  # half the bits of every weight in robust cells
                protected_bit_energy=1.5,
                seed=0,
                name="prot",
            ),
            tl.FaultyDense(3, fault_rate=0.05, seed=1, name="plain"),
            keras.layers.Activation("softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    energy = SquareRootEnergy()
    lanmax = tl.LaNMax(alpha=1.0, energy_model=energy, seed=0)
    history = model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[lanmax])
    prot, plain = model.layers[0], model.layers[1]
    p = lanmax.rates
    expected_prot = prot.stored_bits / 2 * energy.eta(p["prot"]) + prot.stored_bits / 2 * 1.5
    assert history.history["prot_energy"][0] == pytest.approx(expected_prot, rel=1e-12)
    stored = [prot.stored_bits, plain.stored_bits]
    rated = [prot.stored_bits // 2, plain.stored_bits]
    fixed = [prot.stored_bits // 2 * 1.5, 0.0]
    expected = mean_memory_energy(energy, stored, rated, fixed, [p["prot"], p["plain"]])
    assert history.history["memory_energy"][0] == pytest.approx(expected, rel=1e-12)
    # J holds the same energy: the recorded objective minus the loss, at the perturbed p.
    point = lanmax.last_points[0]
    p_tilde = np.exp(np.log([p["prot"], p["plain"]]) + point.offsets)
    energy_term = mean_memory_energy(energy, stored, rated, fixed, p_tilde)
    assert point.objective - point.loss == pytest.approx(energy_term, rel=1e-9)


# ---------------------------------------------------------------------------------------------
# Exact resume with BackupAndRestore
# ---------------------------------------------------------------------------------------------


class Interrupt(keras.callbacks.Callback):
    """Raises at the start of batch `batch` of epoch `epoch` (`batch=None`: epoch start)."""

    def __init__(self, epoch, batch=None):
        super().__init__()
        self.at, self.epoch = (epoch, batch), None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        if self.at == (epoch, None):
            raise RuntimeError("interrupted")

    def on_train_batch_begin(self, batch, logs=None):
        if self.at == (self.epoch, batch):
            raise RuntimeError("interrupted")


EPOCHS = 2  # of 10 batches: the optimizer ends at step 20


def _lanmax_run(folder, callbacks=(), backup_dir=True, backup_first=False):
    x, y = _data(n=320)  # 10 batches of 32 per epoch
    model = _model(fault_rate=0.05)  # a fresh process: same architecture, initial p again
    lanmax = tl.LaNMax(
        alpha=0.5,
        warmup_epochs=0,
        seed=0,
        learning_rate=0.5,
        backup_dir=str(folder / "lanmax") if backup_dir else None,
    )
    callbacks = [*callbacks[:1], lanmax, *callbacks[1:]] if backup_first else [lanmax, *callbacks]
    model.fit(x, y, batch_size=32, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=callbacks)
    return lanmax, model


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    lanmax, model = _lanmax_run(tmp_path_factory.mktemp("reference"))
    steps = np.abs(0.5 * np.array([fit["slopes"] for fit in lanmax.fits]))
    assert np.any(steps < 0.25)  # some steps unclipped: p depends on every recorded J
    return lanmax, _weights(model)


def _weights(model):
    return [ops.convert_to_numpy(v.value) for v in [*model.weights, model.optimizer.iterations]]


def _interrupted_and_resumed(folder, save_freq, epoch, batch=None, **kwargs):
    backup = str(folder / "backup")
    interrupted = [keras.callbacks.BackupAndRestore(backup, save_freq=save_freq)]
    with pytest.raises(RuntimeError, match="interrupted"):
        _lanmax_run(folder, [*interrupted, Interrupt(epoch, batch)], **kwargs)
    resumed = [keras.callbacks.BackupAndRestore(backup, save_freq=save_freq)]
    return _lanmax_run(folder, resumed, **kwargs)


def _assert_same_run(lanmax, model, uninterrupted):
    reference, reference_weights = uninterrupted
    assert lanmax.rates == reference.rates  # exactly: same float64 ln p
    weights = _weights(model)  # with the fault rates and the optimizer's step count
    assert int(weights[-1]) == int(reference_weights[-1]) == 10 * EPOCHS
    for a, b in zip(weights, reference_weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_resume_at_an_epoch_boundary_ends_with_the_same_p_and_weights(tmp_path, uninterrupted):
    lanmax, model = _interrupted_and_resumed(tmp_path, "epoch", epoch=1)
    assert [entry["epoch"] for entry in lanmax.trajectory] == [1]  # epoch 0 was restored
    _assert_same_run(lanmax, model, uninterrupted)
    assert not (tmp_path / "lanmax" / "lanmax_state.jsonl").exists()  # deleted at the end


def test_resume_mid_epoch_ends_with_the_same_p_and_weights(tmp_path, uninterrupted):
    # Backups every 4 batches: the last before the interruption is epoch 1, batch 5. Keras
    # replays epoch 1 from batch 0; LaNMax puts the state of batch 5 back after its replay.
    lanmax, model = _interrupted_and_resumed(tmp_path, 4, epoch=1, batch=8)
    _assert_same_run(lanmax, model, uninterrupted)
    assert lanmax.last_points == uninterrupted[0].last_points
    # The test can fail: without LaNMax's log, Keras' replay trains batches 0-5 twice.
    approximate, approximate_model = _interrupted_and_resumed(
        tmp_path / "approximate", 4, epoch=1, batch=8, backup_dir=False
    )
    assert approximate.rates != uninterrupted[0].rates
    assert int(_weights(approximate_model)[-1]) == 10 * EPOCHS + 6


def test_resume_from_a_backup_at_an_epochs_last_batch_listed_before_lanmax(tmp_path, uninterrupted):
    # save_freq=10 saves at batch 9 of epoch 0, before the epoch ends: Keras resumes epoch 0
    # and replays it whole. BackupAndRestore first: it saves before LaNMax's batch-end hook.
    lanmax, model = _interrupted_and_resumed(tmp_path, 10, epoch=1, batch=3, backup_first=True)
    _assert_same_run(lanmax, model, uninterrupted)


# ---------------------------------------------------------------------------------------------
# Arguments and refusals
# ---------------------------------------------------------------------------------------------


def test_get_config_covers_every_init_argument():
    lanmax = tl.LaNMax(alpha=2.0, seed=3, domains=[["a"], ["b", "c"]], backup_dir="run/lanmax")
    assert_config_covers_init(lanmax)
    config = lanmax.get_config()
    assert config["domains"] == [["a"], ["b", "c"]]
    assert config["energy_model"] == {
        "class_name": "EnergyModel",
        "config": tl.EnergyModel().get_config(),
    }
    config["energy_model"] = tl.EnergyModel(**config["energy_model"]["config"])
    assert tl.LaNMax(**config).get_config() == lanmax.get_config()


def test_steps_per_execution_above_one_is_refused():
    x, y = _data(n=64)
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
        ({"domains": [["a"], []]}, "domains"),
        ({"domains": "a"}, "domains"),
        ({"backup_dir": ""}, "backup_dir"),
        ({"backup_dir": 3}, "backup_dir"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        tl.LaNMax(**kwargs)


def test_tensorboard_receives_the_per_layer_rates_as_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    x, y = _data(n=320)
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
