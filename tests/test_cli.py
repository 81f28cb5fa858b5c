"""Tests of the `lanmax` command line: usage errors (exit 2, one line) and the demo's outputs."""

import json
import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import tf_lanmax as tl
from tf_lanmax.cli import demo
from tf_lanmax.cli import main as cli

DEMO_LAYERS = 4  # binary_cnn: two faulty Conv2D and two faulty Dense layers


def _lanmax(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-m", "tf_lanmax", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _own_lines(stderr):
    # TensorFlow's C++ start-up logs (absl "WARNING: All log messages before ...", oneDNN "I0000
    # ...") ignore TF_CPP_MIN_LOG_LEVEL and are not the CLI's: keep the lines the CLI writes.
    return [line for line in stderr.splitlines() if line.startswith("lanmax:")]


def _assert_one_line_error(result):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = _own_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_unknown_command_exits_2_naming_it_and_the_allowed_ones():
    line = _assert_one_line_error(_lanmax("nope"))
    assert "'nope'" in line
    for command in ("demo",):
        assert command in line.split("allowed")[-1]


def test_no_command_exits_2_with_the_allowed_ones():
    line = _assert_one_line_error(_lanmax())
    assert "demo" in line


def test_unknown_flag_exits_2_with_one_line():
    line = _assert_one_line_error(_lanmax("demo", "--no_such_flag"))
    assert "--no_such_flag" in line


def test_a_flag_of_another_command_exits_2_naming_it():
    line = _assert_one_line_error(_lanmax("summary", "--epochs", "3", "--model_path=m.keras"))
    assert "--epochs" in line and "summary" in line


HEAVY = ("keras", "tensorflow", "jax", "torch")
PROBE = """
import sys
from tf_lanmax.cli import main
try:
    main.run(["lanmax", *sys.argv[1:]])
except SystemExit as exit:
    assert exit.code == 0, exit.code
print("LOADED", *sorted(m for m in {heavy} if m in sys.modules))
"""


@pytest.mark.parametrize(
    "command",
    [
        [],
        *[
            [c]
            for c in (
                "demo",
                "train",
                "tune",
                "evaluate",
                "sensitivity",
                "memse",
                "export",
                "summary",
            )
        ],
    ],
)
def test_help_imports_no_backend_and_logs_nothing(command):
    # `--help` answers from the settings dataclasses and docstrings alone: no Keras, no
    # TensorFlow / JAX / torch, hence none of their start-up log lines.
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *command, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines()[-1] == "LOADED"
    assert "Flags:" in result.stdout if command else "Commands:" in result.stdout


# ---------------------------------------------------------------------------------------------
# demo: one small end-to-end run shared by the tests below (slow: enable with --run-slow)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("demo")
    start = time.perf_counter()
    settings = demo.Settings(epochs=1, batch_size=256, draws=2, lanmax_epochs=2)
    assert cli.execute(demo, settings, str(run_dir)) == 0
    seconds = time.perf_counter() - start
    print(f"\ndemo took {seconds:.1f} s")
    with open(run_dir / "report.json") as f:
        return run_dir, json.load(f)


@pytest.mark.slow  # the shared run takes ~40-50 s on 2 busy cores
@pytest.mark.xdist_group("demo_run")  # one worker runs the shared demo (make test-slow)
def test_demo_writes_valid_report_json(demo_run):
    run_dir, report = demo_run
    assert sorted(os.listdir(run_dir)) == ["model.keras", "report.json", "summary.png"]  # no .tmp-*
    assert (run_dir / "summary.png").read_bytes()[:4] == b"\x89PNG"  # energy, accuracy figure
    assert report["plots"] == [str(run_dir / "summary.png")]
    with open(run_dir / "report.json") as f:
        loaded = json.load(f)
    assert loaded["clean_test_accuracy"] == report["clean_test_accuracy"]
    assert loaded["dataset"] == "fashion_mnist_subset"
    assert loaded["epochs"] == 1
    assert loaded["fault_rate"] == 1e-3
    assert loaded["package_version"] == tl.__version__
    # One epoch on the real subset is well above chance (10 classes).
    assert 0.3 < loaded["clean_test_accuracy"] <= 1.0

    faulty = loaded["faulty_test"]
    assert faulty["metric"] == "accuracy"
    assert faulty["accuracy"]["n"] == 2
    assert len(faulty["per_draw_accuracy"]) == 2
    assert faulty["accuracy"]["mean"] == pytest.approx(np.mean(faulty["per_draw_accuracy"]))
    assert loaded["accuracy_drop_points"] == pytest.approx(
        100 * (loaded["clean_test_accuracy"] - faulty["accuracy"]["mean"])
    )

    energy = loaded["energy"]
    assert len(energy["layers"]) == DEMO_LAYERS
    assert energy["total_bits"] == sum(row["stored_bits"] for row in energy["layers"])
    for row in energy["layers"]:
        assert row["fault_rate"] == pytest.approx(1e-3, rel=1e-6)


@pytest.mark.slow  # the shared run takes ~40-50 s on 2 busy cores
@pytest.mark.xdist_group("demo_run")  # one worker runs the shared demo (make test-slow)
def test_demo_report_has_lanmax_rates_and_trajectory(demo_run):
    run_dir, _ = demo_run
    with open(run_dir / "report.json") as f:
        lanmax = json.load(f)["lanmax"]
    assert lanmax["alpha"] == 1.0
    assert lanmax["epochs"] == 2
    rates = lanmax["learned_rates"]
    assert len(rates) == DEMO_LAYERS
    assert all(0 < p <= 0.5 for p in rates.values())
    trajectory = lanmax["trajectory"]
    assert [entry["epoch"] for entry in trajectory] == [0, 1]
    for entry in trajectory:
        assert list(entry["rates"]) == list(rates)
    assert trajectory[-1]["rates"] == pytest.approx(rates)
    assert [row["name"] for row in lanmax["energy"]["layers"]] == list(rates)
    assert lanmax["faulty_test"]["accuracy"]["n"] == 2


@pytest.mark.slow  # the shared run takes ~40-50 s on 2 busy cores
@pytest.mark.xdist_group("demo_run")  # one worker runs the shared demo (make test-slow)
def test_demo_model_loads_in_safe_mode_with_its_clean_accuracy(demo_run):
    run_dir, report = demo_run
    model = keras.saving.load_model(str(run_dir / "model.keras"), safe_mode=True)
    layers = tl.faulty_layers(model)
    assert [layer.name for layer in layers] == [row["name"] for row in report["energy"]["layers"]]
    for layer in layers:
        assert layer.fault_rate.numpy() == np.float32(1e-3)
    if not model.compiled:
        model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    test = tl.data.load("fashion_mnist_subset", "test", batch_size=512)
    with tl.faults_disabled(model):
        _, accuracy = model.evaluate(test, verbose=0)
    assert accuracy == pytest.approx(report["clean_test_accuracy"], abs=1e-6)
