"""The `lanmax` subcommands: train, tune, evaluate, sensitivity, memse, export, summary.

Each command runs as a real subprocess (`python -m tf_lanmax ...`) on tiny settings: one `train`
run (module fixture), whose model the other commands then use, all started at once because
TensorFlow's start-up dominates on 2 busy cores; `tune` needs no model and starts before `train`.
Flag validation (exit 2, one line) is checked in this process through the same parse code
(`cli.parse` builds each command's settings), which is cheap, plus once for real.
"""

import dataclasses
import importlib
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from helpers import finish

import tf_lanmax as tl
from tf_lanmax.cli import common, options
from tf_lanmax.cli import main as cli

# The subprocess runs include `export`, a TensorFlow SavedModel: this file runs on the TF leg.
pytestmark = pytest.mark.tensorflow_only

TIMEOUT = 300
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
TINY = ["--split=test[:256]", "--draws=2", "--seed=0"]
TRAIN = [
    "train",
    "--train_split=train[:256]",
    "--epochs=1",
    "--batch_size=32",  # 8 batches: enough points for LaNMax's fit with 4 faulty layers
    "--width=0.25",
    "--lanmax",
    "--alpha=1",
    *TINY,
]
TUNE = [
    "tune",
    "--alphas=0.1,10",
    "--epochs=1",
    "--train_split=train[:256]",
    "--batch_size=32",
    "--width=0.25",
    "--lanmax_warmup_epochs=0",  # one epoch: LaNMax must update p at its end
    *TINY,
]
MEMSE = [
    "memse",
    "--split=test[:256]",
    "--samples=32",
    "--draws=20",
    "--seed=0",
    "--sigma=0.02",
    "--power_budget=1",
    "--curve=0.5,1",
    "--gmax_steps=0",  # the first-order optimum: no Keras fit to trace
    "--train_split=train[:8]",
    "--calibration_samples=8",
]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COMMAND_MODULES = ("train", "tune", "evaluate", "sensitivity", "memse", "export", "summary")


def _start(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "tf_lanmax", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def _finish(process):
    return finish(process, TIMEOUT)


def _lanmax(*args):
    return _finish(_start(*args))


def _ok(result):
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "Traceback" not in result.stderr
    return result


def _own_lines(stderr):
    # TensorFlow's C++ start-up logs ignore TF_CPP_MIN_LOG_LEVEL: keep the CLI's own lines.
    return [line for line in stderr.splitlines() if line.startswith("lanmax:")]


def _one_line_error(code, stderr):
    assert code == 2, stderr
    assert "Traceback" not in stderr
    lines = _own_lines(stderr)
    assert len(lines) == 1, stderr
    return lines[0]


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def _is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == PNG_MAGIC


def _no_temp_files(folder):
    return [name for name in os.listdir(folder) if name.startswith(".tmp")] == []


# ---------------------------------------------------------------------------------------------
# One tiny `lanmax train`, then every other command on its model, concurrently
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tune_started(tmp_path_factory):
    """`lanmax tune` needs no trained model: it runs while `train` does."""
    run_dir = tmp_path_factory.mktemp("tune")
    process = _start(*TUNE, f"--run_dir={run_dir}")
    yield process, run_dir
    if process.poll() is None:  # a test failed before `tuned` collected it
        process.kill()
        process.communicate()


@pytest.fixture(scope="module")
def tuned(tune_started):
    process, run_dir = tune_started
    result = _ok(_finish(process))
    return run_dir, result, _read_json(run_dir / "report.json")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tune_started):
    del tune_started  # started first, so that it overlaps with this run
    run_dir = tmp_path_factory.mktemp("train")
    result = _ok(_lanmax(*TRAIN, f"--run_dir={run_dir}"))
    return run_dir, result, _read_json(run_dir / "report.json")


@pytest.fixture(scope="module")
def commands(trained, tmp_path_factory):
    run_dir, _, _ = trained
    model = str(run_dir / "model.keras")
    root = tmp_path_factory.mktemp("commands")
    dirs = {name: root / name for name in ("evaluate", "sensitivity", "memse", "export")}
    processes = {
        "evaluate": _start(
            "evaluate", f"--model_path={model}", *TINY, f"--run_dir={dirs['evaluate']}"
        ),
        "sensitivity": _start(
            "sensitivity",
            f"--model_path={model}",
            *TINY,
            "--test_rate=0.5",
            f"--run_dir={dirs['sensitivity']}",
        ),
        "memse": _start(*MEMSE, f"--model_path={model}", f"--run_dir={dirs['memse']}"),
        "export": _start("export", f"--model_path={model}", f"--base_path={dirs['export']}"),
        "summary": _start("summary", f"--model_path={model}", "--technology=yang_murmann_28nm"),
    }
    results = {name: _finish(process) for name, process in processes.items()}
    return {"dirs": dirs, "results": results, "model_path": model}


def test_train_writes_model_report_and_lanmax_plots(trained):
    run_dir, result, report = trained
    assert sorted(os.listdir(run_dir)) == [
        "lanmax_rates.png",
        "lanmax_rates_vs_size.png",
        "model.keras",
        "report.json",
    ]  # no .tmp-* left behind
    assert all(_is_png(run_dir / name) for name in report["plots"])
    assert report["command"] == "train"
    assert report["dataset"] == "fashion_mnist_subset"
    assert (report["epochs"], report["split"], report["train_split"]) == (
        1,
        "test[:256]",
        "train[:256]",
    )
    assert report["package_version"] == tl.__version__
    assert report["sam"] is None
    assert report["technology"] == "exponential_law"  # the default --technology
    assert report["energy"]["technology"]["name"] == "exponential_law"
    assert len(report["history"]["loss"]) == 1
    faulty = report["faulty_test"]
    assert faulty["accuracy"]["n"] == 2
    assert faulty["accuracy"]["mean"] == pytest.approx(np.mean(faulty["per_draw_accuracy"]))
    lanmax = report["lanmax"]
    assert [entry["epoch"] for entry in lanmax["trajectory"]] == [0]
    assert list(lanmax["learned_rates"]) == [row["name"] for row in report["energy"]["layers"]]
    assert "Report:" in result.stdout and "Memory energy" in result.stdout


def test_train_model_loads_in_safe_mode_with_the_reported_accuracy(trained):
    run_dir, _, report = trained
    model = keras.saving.load_model(str(run_dir / "model.keras"), safe_mode=True, compile=False)
    layers = tl.faulty_layers(model)
    assert [layer.name for layer in layers] == list(report["lanmax"]["learned_rates"])
    for layer, row in zip(layers, report["energy"]["layers"], strict=True):
        assert float(layer.fault_rate.numpy()) == pytest.approx(row["fault_rate"], rel=1e-6)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    test = tl.data.load("fashion_mnist_subset", "test[:256]", batch_size=512)
    with tl.faults_disabled(model):
        _, accuracy = model.evaluate(test, verbose=0)
    assert accuracy == pytest.approx(report["clean_test_accuracy"], abs=1e-6)


def test_evaluate_faults_report(commands, trained):
    _, _, trained_report = trained
    result = _ok(commands["results"]["evaluate"])
    run_dir = commands["dirs"]["evaluate"]
    report = _read_json(run_dir / "report.json")
    assert _no_temp_files(run_dir)
    assert (report["command"], report["mode"], report["split"]) == (
        "evaluate",
        "faults",
        "test[:256]",
    )
    assert report["clean_accuracy"] == pytest.approx(
        trained_report["clean_test_accuracy"], abs=1e-6
    )
    assert report["rates"] == pytest.approx(trained_report["lanmax"]["learned_rates"], rel=1e-6)
    faults = report["faults"]
    assert faults["accuracy"]["n"] == 2 and len(faults["per_draw_accuracy"]) == 2
    low, high = faults["accuracy"]["low"], faults["accuracy"]["high"]
    assert low <= faults["accuracy"]["mean"] <= high
    assert "fault draws" in result.stdout


def test_sensitivity_report_and_plot(commands, trained):
    _ok(commands["results"]["sensitivity"])
    run_dir = commands["dirs"]["sensitivity"]
    report = _read_json(run_dir / "report.json")
    assert sorted(os.listdir(run_dir)) == ["report.json", "sensitivity.png"]
    assert _is_png(run_dir / "sensitivity.png")
    layers = [row["name"] for row in trained[2]["energy"]["layers"]]
    assert list(report["layers"]) == layers
    assert report["test_rate"] == 0.5
    for row in report["layers"].values():
        assert row["rate"] == 0.5
        assert row["drop"] == pytest.approx(report["baseline"]["accuracy"] - row["accuracy"])
    assert list(report["baseline"]["rates"]) == layers


def test_export_prints_the_version_folder(commands):
    result = _ok(commands["results"]["export"])
    base = commands["dirs"]["export"]
    path = result.stdout.strip().splitlines()[-1]
    assert path == str(base / "1")
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))
    assert tl.export.load_metadata(path)["model_name"] == "export"  # the --base_path folder
    assert sorted(os.listdir(base)) == ["1", "models.config"]


def test_export_to_an_existing_version_is_a_usage_error(commands):
    _ok(commands["results"]["export"])
    export = importlib.import_module("tf_lanmax.cli.export")
    settings = export.Settings(
        model_path=commands["model_path"], base_path=str(commands["dirs"]["export"]), version=1
    )
    with pytest.raises(common.UsageError, match="--version=1"):
        export.run(settings)


def test_summary_prints_the_energy_table(commands, trained):
    result = _ok(commands["results"]["summary"])
    for row in trained[2]["energy"]["layers"]:
        assert row["name"] in result.stdout
    assert "Memory energy" in result.stdout and "Saving vs reliable memory" in result.stdout
    # Priced by --technology: its voltage per layer, the float parameters it leaves out.
    assert "technology yang_murmann_28nm" in result.stdout and " V " in result.stdout
    assert "reliable float parameters:" in result.stdout


def _dominated(point, others):
    return any(
        o["energy"] <= point["energy"]
        and o["accuracy"] >= point["accuracy"]
        and (o["energy"], o["accuracy"]) != (point["energy"], point["accuracy"])
        for o in others
    )


def test_tune_writes_the_front_report_plot_and_tuner_folder(tuned):
    run_dir, result, report = tuned
    assert sorted(os.listdir(run_dir)) == ["front.png", "report.json", "tuner"]
    assert _is_png(run_dir / "front.png")
    assert report["plots"] == [str(run_dir / "front.png")]
    tuner_dir = run_dir / "tuner"
    assert report["tuner_dir"] == str(tuner_dir)
    assert sorted(n for n in os.listdir(tuner_dir) if n.startswith("trial_")) == [
        "trial_0",
        "trial_1",
    ]
    assert (report["command"], report["tuner"], report["split"], report["train_split"]) == (
        "tune",
        "grid",
        "test[:256]",
        "train[:256]",
    )
    assert report["search_space"] == {"alphas": [0.1, 10.0]}
    assert report["technology"] == "exponential_law"
    assert (report["num_trials"], report["num_completed"], report["num_failed"]) == (2, 2, 0)
    points = report["points"]
    assert sorted(p["alpha"] for p in points) == [0.1, 10.0]
    # The folder Keras Tuner kept reads back as the same trials.
    assert tl.tuning.trial_points(str(tuner_dir)) == points
    for point in points:
        assert point["status"] == "COMPLETED"
        assert point["ci"][0] <= point["accuracy"] <= point["ci"][1]
        assert point["energy"] == pytest.approx(point["mean_energy"] * point["total_bits"])
        # LaNMax moved p from 1e-3 (warm-up 0): the energy is no longer E-bar(1e-3).
        assert point["mean_energy"] != pytest.approx(-np.log(1e-3) / 12.8, rel=1e-4)
    assert report["package_version"] == tl.__version__
    assert "Report:" in result.stdout and "alpha" in result.stdout


def test_tune_front_is_the_non_dominated_set_with_its_hypervolume(tuned):
    _, result, report = tuned
    points, front = report["points"], report["front"]
    # Brute force: a point is on the front iff no other point dominates it.
    expected = [p for p in points if not _dominated(p, points)]
    key = lambda p: (p["energy"], p["accuracy"])  # noqa: E731
    assert sorted(map(key, front)) == sorted(map(key, expected))
    assert [p["energy"] for p in front] == sorted(p["energy"] for p in front)
    energy_ref, accuracy_ref = report["reference"]
    assert (energy_ref, accuracy_ref) == (points[0]["total_bits"], 0.1)  # 10 classes
    # Area dominated inside the box, strip by strip in accuracy (float64, by hand).
    area, previous = 0.0, accuracy_ref
    for point in sorted(front, key=lambda p: p["accuracy"]):
        area += (energy_ref - point["energy"]) * (point["accuracy"] - previous)
        previous = point["accuracy"]
    assert report["hypervolume"] == pytest.approx(area, rel=1e-12)
    for point in front:  # the printed table holds every front point
        assert f"{point['alpha']:9.4g} {point['energy']:10.0f}" in result.stdout


def test_memse_report_predicted_vs_monte_carlo_and_plots(commands, trained):
    _ok(commands["results"]["memse"])
    run_dir = commands["dirs"]["memse"]
    assert sorted(os.listdir(run_dir)) == ["memse_layers.png", "mse_vs_power.png", "report.json"]
    report = _read_json(run_dir / "report.json")
    assert report["plots"] == [str(run_dir / "memse_layers.png"), str(run_dir / "mse_vs_power.png")]
    assert all(_is_png(path) for path in report["plots"])
    names = [row["name"] for row in trained[2]["energy"]["layers"]]
    assert (report["command"], report["mapping"], report["samples"]) == ("memse", "crossbar", 32)
    assert report["crossbar"]["sigma"] == 0.02 and report["crossbar"]["levels"] == 128
    # The crossbar view: the faulty layers' stored weights on the crossbar, no digital layer.
    assert report["crossbar_layers"] == names and report["digital_layers"] == []
    predicted = report["predicted"]
    assert predicted["mse"] == pytest.approx(predicted["variance"] + predicted["bias2"])
    assert predicted["mse"] == pytest.approx(np.mean(predicted["per_output_mse"]), rel=1e-5)
    assert set(names) <= set(predicted["layers"])
    assert sorted(predicted["noise_contributions"]) == sorted(names)
    # Oracle: the sampled MSE of the very same noise model. 2 half-widths of the 95% t-interval
    # over 20 draws is 4.2 standard errors.
    mc = report["monte_carlo"]
    assert mc["draws"] == 20 and mc["ci"][0] <= mc["mse"] <= mc["ci"][1]
    assert abs(predicted["mse"] - mc["mse"]) <= 2 * mc["half_width"]


def test_memse_power_budget_optimum_and_curve(commands):
    _ok(commands["results"]["memse"])
    power = _read_json(commands["dirs"]["memse"] / "report.json")["power"]
    budget = power["power_budget_absolute"]
    assert budget == pytest.approx(power["reference_power"])  # --power_budget=1
    optimized, single = power["optimized"], power["best_single"]
    # Both spend the budget; the per-layer Gmax is never worse than the best single one.
    assert optimized["power"] == pytest.approx(budget, rel=1e-3)
    assert single["power"] == pytest.approx(budget, rel=1e-3)
    assert optimized["predicted_mse"] <= single["predicted_mse"]
    assert single["gmax"] == pytest.approx(1.0, rel=1e-2)  # the power at --gmax=1 is the budget
    for row in (optimized, single):
        mc = row["monte_carlo"]
        assert abs(row["samples_predicted_mse"] - mc["mse"]) <= 2 * mc["half_width"]
    curve = power["curve"]
    assert [row["relative_budget"] for row in curve] == [0.5, 1.0]
    for row in curve:
        assert row["per_layer"]["predicted_mse"] <= row["single"]["predicted_mse"]
    assert curve[0]["single"]["predicted_mse"] > curve[1]["single"]["predicted_mse"]
    # --gmax_steps=0 and the curve's steps=0: the same optimum at the same budget.
    assert curve[1]["per_layer"]["predicted_mse"] == pytest.approx(optimized["predicted_mse"])


# ---------------------------------------------------------------------------------------------
# Flag validation in this process: the same parse + validate code the subprocesses run
# ---------------------------------------------------------------------------------------------


def _exit_code(argv, capsys):
    """Parses `lanmax <argv>` (flags, then settings and their checks) as `cli.main` does, but
    never runs the command."""
    try:
        cli.parse(["lanmax", *argv])
    except options.UsageError as error:
        return cli._fail(str(error)), capsys.readouterr().err
    return 0, capsys.readouterr().err


def _execute(module, run_dir, **settings):
    """Runs a command in this process as `lanmax` does (run, plot, show, report.json)."""
    assert cli.execute(module, module.Settings(**settings), str(run_dir)) == 0
    return _read_json(os.path.join(run_dir, "report.json"))


@pytest.fixture
def fake_model(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"")  # validation only checks that the file exists
    return str(path)


TECHNOLOGIES = ["exponential_law", "profiled_sram", "yang_murmann_28nm", "salami_fpga_bram"]

BAD = [
    (["train", "--sam=foo"], "--sam=foo", ["none", "sam", "asam", "samson"]),
    (["train", "--model=resnet"], "--model=resnet", ["binary_cnn", "binary_wrn"]),
    (["train", "--dataset=imagenet"], "--dataset", ["imagenet", "fashion_mnist_subset", "mnist"]),
    (["train", "--weight_format=float"], "--weight_format", ["binary", "fixed_point"]),
    (["train", "--fault_model=flip"], "--fault_model", ["bit_flip", "stuck_at_0", "none"]),
    (["train", "--fault_rate=0.7"], "--fault_rate", ["(0, 0.5]", "0.7"]),
    (["train", "--epochs=0"], "--epochs", ["[1, inf]"]),
    (["train", "--epochs=two"], "--epochs", ["two"]),
    (["train", "--batch_size=0"], "--batch_size", ["[1, inf]"]),
    (["train", "--alpha=-1"], "--alpha", [">= 0"]),
    (["train", "--rho=0.1"], "--rho", ["--sam"]),
    (["train", "--sam=sam", "--rho=0"], "--rho", ["> 0"]),
    (["train", "--model=binary_wrn", "--depth=12"], "--depth", ["6n + 4"]),
    (["train", "--lanmax", "--fault_model=none"], "--fault_model", ["bit_flip"]),
    (["train", "--train_split=train[:10"], "--train_split", ["test[:500]"]),
    (["train", "--width=0"], "--width", ["> 0"]),
    (["evaluate"], "--model_path", ["required"]),
    (["evaluate", "--model_path=nope.keras"], "--model_path", ["does not exist"]),
    (["evaluate", "--model_path=model.h5"], "--model_path", [".keras"]),
    (["evaluate", "--mode=both"], "--mode=both", ["faults", "noise"]),
    (["evaluate", "MODEL", "--draws=1"], "--draws", ["[2, inf]"]),
    (["evaluate", "MODEL", "--confidence=1.5"], "--confidence", ["1.5"]),
    (["evaluate", "MODEL", "--mode=noise", "--sigmas=0,-1"], "--sigmas", [">= 0", "-1"]),
    (["evaluate", "MODEL", "--mode=noise", "--sigmas=0,x"], "--sigmas", ["'x'"]),
    (["evaluate", "MODEL", "--mode=noise", "--device=pcm", "--sigmas=0.1"], "--sigmas", ["pcm"]),
    (["evaluate", "MODEL", "--mode=noise", "--device=flash"], "--device", ["pcm"]),
    (["evaluate", "MODEL", "--mode=noise", "--times=1,-1"], "--times", [">= 0", "-1"]),
    (["evaluate", "MODEL", "--device=pcm"], "--device", ["--mode=noise"]),
    (["evaluate", "MODEL", "--split=test[:10"], "--split", ["test[:500]"]),
    (["evaluate", "MODEL", "--chips=1"], "--chips", ["[2, inf]"]),
    (["evaluate", "MODEL", "--chips=3", "--draws=4"], "--chips", ["--draws"]),
    (["evaluate", "MODEL", "--chips=3", "--mode=noise"], "--chips", ["--mode=faults"]),
    (["sensitivity", "MODEL", "--test_rate=0.9"], "--test_rate", ["(0, 0.5]"]),
    (["sensitivity", "MODEL", "--seed=-1"], "--seed", ["[0, inf]"]),
    (["export", "MODEL"], "--base_path", ["required"]),
    (["export", "MODEL", "--base_path=out", "--version=0"], "--version", ["[1, inf]"]),
    (["export", "MODEL", "--base_path=out", "--model_name=a b"], "--model_name", ["A-Za-z"]),
    (["summary"], "--model_path", ["required"]),
    (["tune", "--tuner=smart"], "--tuner=smart", ["grid", "random", "bayesian", "hyperband"]),
    (["tune", "--alphas=1"], "--alphas", ["2 distinct"]),
    (["tune", "--alphas=1,1"], "--alphas", ["2 distinct", "1,1"]),
    (["tune", "--alphas=0.1,-1"], "--alphas", ["> 0", "-1"]),
    (["tune", "--alphas=0.1,x"], "--alphas", ["'x'"]),
    (["tune", "--alpha_min=0"], "--alpha_min", ["> 0"]),
    (["tune", "--alpha_min=1", "--alpha_max=0.5"], "--alpha_max", ["0 < min < max", "0.5"]),
    (["tune", "--trials=1"], "--trials", [">= 2"]),  # a grid over the range needs 2 ends
    (["tune", "--tuner=random", "--trials=0"], "--trials", ["[1, inf]"]),
    (["tune", "--tuner=hyperband", "--epochs=2"], "--epochs", ["hyperband", ">= 3"]),
    (["tune", "--objective=loss"], "--objective=loss", ["score", "energy"]),
    (["tune", "--energy_weight=-1"], "--energy_weight", [">= 0"]),
    (["tune", "--max_step=0"], "--max_step", ["> 0"]),
    (["tune", "--train_split=train[:1"], "--train_split", ["test[:500]"]),
    (["tune", "--lanmax_warmup_epochs=-1"], "--lanmax_warmup_epochs", ["[0, inf]"]),
    (["tune", "--width=0"], "--width", ["> 0"]),
    (["tune", "--draws=1"], "--draws", ["[2, inf]"]),
    (["memse"], "--model_path", ["required"]),
    (["memse", "--model_path=nope.keras"], "--model_path", ["does not exist"]),
    (["memse", "MODEL", "--mapping=analog"], "--mapping=analog", ["crossbar", "digital"]),
    (["memse", "MODEL", "--sigma=-0.1"], "--sigma", [">= 0"]),
    (["memse", "MODEL", "--gmax=0"], "--gmax", ["> 0"]),
    (["memse", "MODEL", "--levels=1"], "--levels", ["0 (analog devices)", "[2, inf]", "1"]),
    (["memse", "MODEL", "--quantization=round"], "--quantization=round", ["exact", "noise"]),
    (["memse", "MODEL", "--cov_mode=exact"], "--cov_mode=exact", ["jacobian", "diagonal"]),
    (["memse", "MODEL", "--tia_gain=0"], "--tia_gain", ["> 0"]),
    (["memse", "MODEL", "--samples=0"], "--samples", ["[1, inf]"]),
    (["memse", "MODEL", "--draws=1"], "--draws", ["[2, inf]"]),
    (["memse", "MODEL", "--power_budget=0"], "--power_budget", ["> 0"]),
    (["memse", "MODEL", "--power_budget=1", "--curve=1,-2"], "--curve", ["> 0", "-2"]),
    (["memse", "MODEL", "--gmax_steps=-1"], "--gmax_steps", ["[0, inf]"]),
    (["memse", "MODEL", "--calibration_samples=0"], "--calibration_samples", ["[1, inf]"]),
    (["memse", "MODEL", "--split=test[:"], "--split", ["test[:500]"]),
    (["train", "--technology=dram"], "--technology=dram", TECHNOLOGIES),
    (["tune", "--technology=sram"], "--technology=sram", TECHNOLOGIES),
    (["summary", "MODEL", "--technology=28nm"], "--technology=28nm", TECHNOLOGIES),
    (["summary", "MODEL", "extra"], "unexpected arguments", ["extra"]),
    (["summary", "--no_such_flag"], "no_such_flag", []),
]


@pytest.mark.parametrize(("argv", "names", "mentions"), BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_flags_exit_2_with_one_line(argv, names, mentions, fake_model, capsys):
    argv = [f"--model_path={fake_model}" if arg == "MODEL" else arg for arg in argv]
    code, stderr = _exit_code(argv, capsys)
    line = _one_line_error(code, stderr)
    assert names in line, line
    for mention in mentions:
        assert mention in line, line


def test_valid_flags_pass_validation(fake_model, capsys):
    for argv in [
        TRAIN,
        ["train", "--sam=samson", "--rho=0.1", "--model=binary_wrn", "--depth=10", "--width=1"],
        ["evaluate", f"--model_path={fake_model}", "--mode=noise", "--sigmas=0,0.05", *TINY],
        ["evaluate", f"--model_path={fake_model}", "--mode=noise", "--device=pcm", "--times=1,60"],
        ["evaluate", f"--model_path={fake_model}", "--chips=3", "--split=test[:256]"],
        ["sensitivity", f"--model_path={fake_model}", "--test_rate=0.25"],
        ["export", f"--model_path={fake_model}", "--base_path=out", "--version=3"],
        ["summary", f"--model_path={fake_model}"],
        ["summary", f"--model_path={fake_model}", "--technology=yang_murmann_28nm"],
        ["train", "--technology=salami_fpga_bram"],
        ["tune", "--technology=profiled_sram"],
        TUNE,
        ["tune", "--tuner=bayesian", "--trials=3", "--alpha_min=0.1", "--alpha_max=1"],
        ["tune", "--tuner=hyperband", "--epochs=3", "--objective=accuracy", "--resume"],
        [*MEMSE, f"--model_path={fake_model}"],
        ["memse", f"--model_path={fake_model}", "--mapping=digital", "--levels=0"],
        ["memse", f"--model_path={fake_model}", "--nomonte_carlo", "--cov_mode=diagonal"],
    ]:
        assert _exit_code(argv, capsys) == (0, ""), argv


HELP = [
    ("sensitivity", ["--test_rate", "--model_path", "--draws", "--split", "--run_dir"], "--epochs"),
    (
        "tune",
        ["--tuner", "--alphas", "--trials", "--train_split", "--width", "--epochs", "--technology"],
        "--sigma",
    ),
    ("summary", ["--model_path", "--technology"], "--epochs"),
    ("memse", ["--sigma", "--gmax", "--levels", "--power_budget", "--model_path"], "--epochs"),
]


@pytest.mark.parametrize(("command", "listed", "unused"), HELP, ids=[h[0] for h in HELP])
def test_command_help_lists_the_commands_flags_and_exits_0(command, listed, unused, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.run(["lanmax", command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(importlib.import_module(f"tf_lanmax.cli.{command}").__doc__.rstrip())
    for flag in listed:
        assert f"{flag}:" in out
    assert f"{unused}:" not in out  # a flag this command does not use


def test_help_prints_the_commands_and_exits_0(capsys):
    # `python -m tf_lanmax` reaches `cli.run` as every subprocess above shows.
    for flag in ("--help", "-h", "help"):
        with pytest.raises(SystemExit) as exit_info:
            cli.run(["lanmax", flag])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert out.strip() == cli.__doc__.strip()
        for command in cli.COMMANDS:
            assert f"\n  {command} " in out


def test_unknown_command_lists_all_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.run(["lanmax", "fit"])
    line = _one_line_error(exit_info.value.code, capsys.readouterr().err)
    assert "'fit'" in line
    for command in cli.COMMANDS:
        assert command in line


def test_an_option_shared_by_commands_has_one_default_and_help(capsys):
    # Each command builds its own flags from its settings: an option several commands use
    # (--batch_size, --draws ...) has the same default and help in each, declared once.
    seen = {}
    for name in cli.COMMANDS:
        for field in dataclasses.fields(cli.command_module(name).Settings):
            row = (field.default, field.metadata["help"])
            assert seen.setdefault(field.name, row) == row, (name, field.name)
    assert seen["batch_size"][0] == 128 and seen["draws"][0] == 10
    line = _one_line_error(*_exit_code(["train", "--dataset=imagenet"], capsys))
    assert "--dataset=imagenet" in line and "fashion_mnist_subset" in line


def test_a_flag_of_another_command_exits_2_naming_it(capsys):
    line = _one_line_error(*_exit_code(["summary", "--epochs=3"], capsys))
    assert "--epochs" in line and "train" in line


# ---------------------------------------------------------------------------------------------
# The command functions in this process (cheap paths the subprocess runs do not cover)
# ---------------------------------------------------------------------------------------------


def test_evaluate_noise_mode_writes_report_and_plot(trained, tmp_path):
    evaluate = importlib.import_module("tf_lanmax.cli.evaluate")
    run_dir, _, trained_report = trained
    saved = _execute(
        evaluate,
        tmp_path,
        model_path=str(run_dir / "model.keras"),
        split="test[:128]",
        mode="noise",
        sigmas=(0.0, 0.2),
        draws=2,
    )
    assert sorted(os.listdir(tmp_path)) == ["noise_robustness.png", "report.json"]
    assert _is_png(tmp_path / "noise_robustness.png")
    assert saved["plots"] == [str(tmp_path / "noise_robustness.png")]
    assert saved["noise"]["sigmas"] == [0.0, 0.2]
    # sigma = 0 is the clean model: zero width, equal to the faults-off accuracy.
    zero = saved["noise"]["accuracy"][0]
    assert zero["mean"] == pytest.approx(saved["clean_accuracy"], abs=1e-6)
    assert zero["low"] == zero["high"] == zero["mean"]


def test_evaluate_noise_mode_on_pcm_writes_the_drift_plot(trained, tmp_path):
    evaluate = importlib.import_module("tf_lanmax.cli.evaluate")
    run_dir, _, _ = trained
    report = _execute(
        evaluate,
        tmp_path,
        model_path=str(run_dir / "model.keras"),
        split="test[:128]",
        mode="noise",
        draws=2,
        device="pcm",
        times=(1.0, 86400.0),
    )
    assert sorted(os.listdir(tmp_path)) == ["drift.png", "report.json"]
    assert _is_png(tmp_path / "drift.png")
    assert report["device"] == "pcm" and report["noise"]["times"] == [1.0, 86400.0]
    assert [p["time"] for p in report["noise"]["points"]] == [1.0, 86400.0]


def _chip_model(path, persistence):
    """A tiny Fashion-MNIST classifier with one faulty layer, saved at `path`."""
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            tl.FaultyDense(10, fault_rate=0.1, fault_persistence=persistence, seed=0),
            keras.layers.Softmax(),
        ]
    )
    model.save(path)
    return str(path)


def test_evaluate_chips_writes_the_per_chip_summary(tmp_path, capsys):
    path = _chip_model(tmp_path / "persistent.keras", "persistent")
    out = tmp_path / "out"
    argv = ["lanmax", "evaluate", f"--model_path={path}", "--chips=3", "--split=test[:64]"]
    assert cli.main([*argv, "--seed=0", f"--run_dir={out}"]) == 0
    stdout = capsys.readouterr().out
    report = _read_json(out / "report.json")
    assert (report["chips"], report["draws"]) == (3, None) and "faults" not in report
    summary = report["chip_evaluation"]
    # The oracle: the library on the same model, split and seed.
    model = common.load_model(path)
    data = tl.data.load("fashion_mnist_subset", "test[:64]", batch_size=128)
    expected = tl.evaluate_under_faults(model, data, chips=3, seed=0, verbose=0)
    assert summary["chips"] == list(expected.chips)
    assert summary["per_chip_accuracy"] == pytest.approx(expected.per_chip, abs=1e-6)
    per_chip = np.array(summary["per_chip_accuracy"])
    assert summary["accuracy"]["mean"] == pytest.approx(per_chip.mean(), rel=1e-12)
    assert summary["accuracy"]["low"] < summary["accuracy"]["high"]  # p = 0.1: chips differ
    assert [row["q"] for row in summary["quantiles"]] == [0.05, 0.1, 0.5]
    for row in summary["quantiles"]:
        assert row["accuracy"] == pytest.approx(np.quantile(per_chip, row["q"]), rel=1e-12)
    assert "accuracy over chips" in stdout and "over 3 chips" in stdout

    transient = _chip_model(tmp_path / "transient.keras", "transient")
    argv = ["lanmax", "evaluate", f"--model_path={transient}", "--chips=3", f"--run_dir={out}2"]
    line = _one_line_error(cli.main(argv), capsys.readouterr().err)
    assert "--chips" in line and "persistent" in line and "--draws" in line
    assert not (tmp_path / "out2").exists()
    # Without --chips the same model gets fault draws, as before.
    evaluate = importlib.import_module("tf_lanmax.cli.evaluate")
    draws = _execute(evaluate, out, model_path=transient, split="test[:64]", draws=2)
    assert (draws["chips"], draws["draws"]) == (None, 2) and "chip_evaluation" not in draws
    assert len(draws["faults"]["per_draw_accuracy"]) == 2


def test_memse_digital_mapping_keeps_the_stored_fault_rates(trained, tmp_path):
    memse = importlib.import_module("tf_lanmax.cli.memse")
    run_dir, _, trained_report = trained
    path = str(run_dir / "model.keras")
    report = _execute(memse, tmp_path, model_path=path, samples=16, mapping="digital", draws=50)
    assert sorted(os.listdir(tmp_path)) == ["memse_layers.png", "report.json"]
    names = [row["name"] for row in trained_report["energy"]["layers"]]
    assert report["digital_layers"] == names and report["crossbar_layers"] == []
    assert report["fault_rates"] == pytest.approx(
        {row["name"]: row["fault_rate"] for row in trained_report["energy"]["layers"]}, rel=1e-6
    )
    assert report["predicted"]["power"]["total"] == 0  # no crossbar: no crossbar power
    # The command mirrors the saved model itself: the library on the same model and images
    # gives the same numbers (MemSE vs Monte-Carlo for digital faults: tests/test_memse_*.py;
    # bit flips of binary weights are heavy-tailed and need thousands of draws).
    model = common.load_model(path)
    x = tl.data.load_numpy("fashion_mnist_subset", "test", take=16)[0]
    mirror = tl.memse.MemSE(model, tl.memse.Crossbar(), mapping="digital")
    assert report["predicted"]["mse"] == pytest.approx(mirror.summary(x)["mse"], rel=1e-6)
    sampled = tl.memse.monte_carlo(mirror, None, x, draws=50, seed=0)
    assert report["monte_carlo"]["mse"] == pytest.approx(sampled.mse, rel=1e-6)


def test_memse_power_budget_without_crossbar_layers_exits_2_before_work(trained, tmp_path, capsys):
    # Only the loaded model tells that --mapping=digital leaves no Gmax: `main` reports it.
    model, out = trained[0] / "model.keras", tmp_path / "out"
    argv = ["lanmax", "memse", f"--model_path={model}", "--mapping=digital", "--power_budget=1"]
    line = _one_line_error(
        cli.main([*argv, f"--run_dir={out}", "--split=test[:16]"]), capsys.readouterr().err
    )
    assert "--power_budget" in line and "--mapping=crossbar" in line
    assert not out.exists()


def test_summary_command_prices_the_model_with_the_technology(tmp_path, capsys):
    model = keras.Sequential(
        [keras.Input((6,)), tl.FaultyDense(4, fault_rate=1e-3, seed=0, name="only")]
    )
    path = str(tmp_path / "tiny.keras")
    model.save(path)
    argv = ["lanmax", "summary", f"--model_path={path}", "--technology=yang_murmann_28nm"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    volts = tl.memory.get("yang_murmann_28nm").voltage(1e-3)
    line = next(line for line in out.splitlines() if "| only" in line)
    assert f"~{volts:.2f} V" in line
    assert "technology yang_murmann_28nm" in out and "reliable float parameters: 128 bits" in out
    # The default --technology is the library's.
    assert cli.main(["lanmax", "summary", f"--model_path={path}"]) == 0
    assert f"technology {tl.memory.DEFAULT}" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# Longer runs (enable with --run-slow)
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_train_samson_saves_the_inner_model(tmp_path):
    _ok(
        _lanmax(
            "train",
            "--train_split=train[:256]",
            "--epochs=1",
            "--batch_size=64",
            "--width=0.25",
            "--sam=samson",
            "--rho=0.1",
            *TINY,
            f"--run_dir={tmp_path}",
        )
    )
    report = _read_json(tmp_path / "report.json")
    assert report["sam"] == {"rule": "samson", "rho": 0.1}
    assert "lanmax" not in report and report["plots"] == []
    model = keras.saving.load_model(str(tmp_path / "model.keras"), safe_mode=True)
    assert model.name == "binary_cnn"  # the inner network, not the SharpnessAwareModel
    assert not isinstance(model, tl.SharpnessAwareModel)


@pytest.mark.slow
def test_train_binary_wrn_fixed_point(tmp_path):
    _ok(
        _lanmax(
            "train",
            "--model=binary_wrn",
            "--depth=10",
            "--width=1",
            "--weight_format=fixed_point",
            "--fault_model=stuck_at_0",
            "--train_split=train[:128]",
            "--epochs=1",
            "--batch_size=64",
            *TINY,
            f"--run_dir={tmp_path}",
        )
    )
    report = _read_json(tmp_path / "report.json")
    assert report["model"] == "binary_wrn_10_1"
    assert all(row["format"].startswith("FixedPoint") for row in report["energy"]["layers"])


@pytest.mark.slow
def test_evaluate_noise_mode_subprocess(trained, tmp_path):
    run_dir = trained[0]
    result = _ok(
        _lanmax(
            "evaluate",
            f"--model_path={run_dir / 'model.keras'}",
            "--mode=noise",
            "--sigmas=0,0.1",
            *TINY,
            f"--run_dir={tmp_path}",
        )
    )
    assert "sigma 0.1" in result.stdout
    assert _is_png(tmp_path / "noise_robustness.png")


@pytest.mark.slow  # the in-process tests below the fixture runs check the same code paths
def test_bad_flag_value_exits_2_with_one_line_before_work(tmp_path):
    result = _lanmax("evaluate", f"--model_path={tmp_path / 'missing.keras'}")
    line = _one_line_error(result.returncode, result.stderr)
    assert "--model_path" in line and "missing.keras" in line
    assert result.stdout == ""


@pytest.mark.slow
def test_another_commands_flag_is_unknown(trained):
    # `lanmax` imports only the command it runs, so sensitivity's flag is not evaluate's.
    result = _lanmax("evaluate", f"--model_path={trained[0] / 'model.keras'}", "--test_rate=0.5")
    line = _one_line_error(result.returncode, result.stderr)
    assert "test_rate" in line
