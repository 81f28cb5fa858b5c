"""LaNMaxHyperModel inside real Keras Tuner searches on a tiny slice of the bundled real data."""

import json

import keras
import keras_tuner
import numpy as np
import pytest
from helpers import tiny_faulty_classifier as tiny_build

import tf_lanmax as tl
from tf_lanmax import tuning

ALPHA_RANGE = (0.01, 30.0)
LANMAX = {"warmup_epochs": 0, "max_step": 2.0}  # one epoch moves p visibly


@pytest.fixture(scope="module")
def data():
    x, y = tl.data.load_numpy("fashion_mnist_subset", "train", take=1000)
    x_test, y_test = tl.data.load_numpy("fashion_mnist_subset", "test", take=500)
    return (x, y), (x_test, y_test)


def hypermodel(build=tiny_build, **kwargs):
    kwargs = {
        "alpha_range": ALPHA_RANGE,
        "epochs": 1,
        "draws": 2,
        "lanmax_kwargs": LANMAX,
        **kwargs,
    }
    return tuning.LaNMaxHyperModel(build, **kwargs)


def search(tuner, data):
    (x, y), validation = data
    tuner.search(x, y, batch_size=50, validation_data=validation, verbose=0)
    return tuner


def statuses(tuner):
    return {t.trial_id: t.status for t in tuner.oracle.trials.values()}


METRICS = {"score", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "energy", "mean_energy"}


def make_tuner(kind, model, directory):
    common = {"objective": model.objective, "directory": str(directory), "project_name": kind}
    if kind == "random":
        return keras_tuner.RandomSearch(model, max_trials=2, seed=1, **common)
    if kind == "bayesian":
        return keras_tuner.BayesianOptimization(
            model, max_trials=2, num_initial_points=1, seed=1, **common
        )
    if kind == "hyperband":  # 2 brackets; one trial continues from a 1-epoch checkpoint
        return keras_tuner.Hyperband(model, max_epochs=2, factor=2, seed=1, **common)
    return keras_tuner.GridSearch(model, max_trials=2, **common)


@pytest.mark.parametrize("kind", ["random", "bayesian", "hyperband", "grid"])
def test_every_tuner_runs_lanmax_trials_and_gives_a_front(kind, data, tmp_path):
    step = 3000.0 if kind == "grid" else None  # grid: alpha in {0.01, 30}
    model = hypermodel(alpha_step=step)
    tuner = search(make_tuner(kind, model, tmp_path), data)
    trials = list(tuner.oracle.trials.values())
    assert trials and all(t.status == "COMPLETED" for t in trials), statuses(tuner)
    points = tuning.trial_points(tuner)
    for point in points:
        assert METRICS <= set(point)
        assert ALPHA_RANGE[0] <= point["alpha"] <= ALPHA_RANGE[1]
        assert point["ci"][0] <= point["accuracy"] <= point["ci"][1]
        assert point["score"] == pytest.approx(point["accuracy"] - 0.1 * point["mean_energy"])
        assert 0.05 < point["mean_energy"] <= 1.0
        assert point["energy"] == pytest.approx(point["mean_energy"] * point["total_bits"])
    front = tuning.pareto_front(tuner)
    pairs = np.array([(p["energy"], p["accuracy"]) for p in points])
    np.testing.assert_array_equal(
        np.array([(p["energy"], p["accuracy"]) for p in front]), tuning.pareto_front(pairs)
    )
    assert tuning.trial_points(tuner.project_dir) == points  # the folder reads the same
    if kind == "hyperband":
        assert len(trials) > 2
        assert any("tuner/trial_id" in t.hyperparameters.values for t in trials)
    if kind == "grid":
        np.testing.assert_allclose(sorted(p["alpha"] for p in points), ALPHA_RANGE, rtol=1e-12)
        # The largest alpha learns higher fault rates, so less memory energy, than the smallest
        # and than the start (p_init = 1e-2 has E-bar = 0.36).
        low, high = sorted(points, key=lambda p: p["alpha"])
        assert high["mean_energy"] < min(0.36, low["mean_energy"])
        # The sweep helper runs the same deterministic trial: the very same point.
        (x, y), validation = data
        (again,) = tuning.alpha_sweep(
            model, [high["alpha"]], x, y, batch_size=50, validation_data=validation
        )
        assert again["status"] == "COMPLETED"
        for name in ("accuracy", "accuracy_ci_low", "energy", "loss", "mean_energy"):
            assert again[name] == pytest.approx(high[name], rel=1e-6, abs=1e-9), name


class BrokenBuild:
    """Raises in build_model for alpha in (0.5, 5); NaN loss for alpha > 5."""

    def __call__(self, hp):
        alpha = hp.get("alpha")
        if 0.5 < alpha < 5:
            raise RuntimeError(f"cannot build the model at alpha={alpha}")
        model = tiny_build(hp)
        if alpha > 5:

            def nan_loss(y_true, y_pred):
                return keras.ops.mean(y_pred) * float("nan")

            model.compile("adam", nan_loss, metrics=["accuracy"], jit_compile=False)
        return model


def test_failed_trials_are_recorded_and_the_search_goes_on(data, tmp_path):
    model = hypermodel(build=BrokenBuild(), alpha_range=(0.1, 10.0), alpha_step=10.0)
    tuner = keras_tuner.GridSearch(
        model, objective=model.objective, directory=str(tmp_path), project_name="fail"
    )
    with pytest.warns(UserWarning, match="LaNMax"):  # no usable batch in the NaN trial
        search(tuner, data)
    points = {round(p["alpha"], 6): p for p in tuning.trial_points(tuner)}
    assert sorted(points) == [0.1, 1.0, 10.0]
    assert points[0.1]["status"] == "COMPLETED"
    assert points[1.0]["status"] == "FAILED"
    assert "cannot build the model at alpha=1.0" in points[1.0]["message"]
    assert points[10.0]["status"] == "FAILED"
    assert "training loss is not finite" in points[10.0]["message"]
    assert "accuracy" not in points[10.0]
    front = tuning.pareto_front(tuner)
    assert [p["alpha"] for p in front] == [pytest.approx(0.1)]
    # The figure and the JSON list every trial; failures keep their message.
    tuning.plot_front(tuner, tmp_path / "front.png")
    payload = tuning.export_json(tuner, tmp_path / "front.json", reference=(1e6, 0.0))
    saved = json.loads((tmp_path / "front.json").read_text())
    assert saved["num_trials"] == 3 and saved["num_failed"] == 2 and saved["num_completed"] == 1
    assert saved["front_trial_ids"] == [front[0]["trial_id"]] == payload["front_trial_ids"]
    assert (tmp_path / "front.png").stat().st_size > 1000


class Interrupt(BaseException):
    """Stands for Ctrl-C / a killed job: not an `Exception`, so the search stops."""


class CountingHyperModel(tuning.LaNMaxHyperModel):
    def __init__(self, interrupt_at=None, **kwargs):
        super().__init__(tiny_build, **kwargs)
        self.fitted = []
        self.interrupt_at = interrupt_at

    def fit(self, hp, model, *args, **kwargs):
        self.fitted.append(hp.get("alpha"))
        if len(self.fitted) == self.interrupt_at:
            raise Interrupt()
        return super().fit(hp, model, *args, **kwargs)


def test_interrupted_search_resumes_with_overwrite_false(data, tmp_path):
    kwargs = {"alpha_range": ALPHA_RANGE, "epochs": 1, "draws": 2, "lanmax_kwargs": LANMAX}

    def tuner_for(model):
        return keras_tuner.RandomSearch(
            model,
            objective=model.objective,
            max_trials=3,
            seed=3,
            directory=str(tmp_path),
            project_name="resume",
            overwrite=False,
        )

    first = CountingHyperModel(interrupt_at=2, **kwargs)
    tuner = tuner_for(first)
    with pytest.raises(Interrupt):
        search(tuner, data)
    before = tuning.trial_points(tmp_path / "resume")
    assert [p["status"] for p in before] == ["COMPLETED", "RUNNING"]

    second = CountingHyperModel(**kwargs)
    resumed = search(tuner_for(second), data)
    after = tuning.trial_points(resumed)
    assert [p["trial_id"] for p in after] == ["0", "1", "2"]
    assert all(p["status"] == "COMPLETED" for p in after)
    assert after[0] == before[0]  # the completed trial is kept, not rerun
    # Only the interrupted trial (same alpha) and the one still missing ran again.
    assert second.fitted == [first.fitted[1], after[2]["alpha"]]
    assert after[1]["alpha"] == first.fitted[1]
