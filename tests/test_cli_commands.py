"""The `lanmax` subcommands: train, evaluate, sensitivity, export, summary.

Each command runs as a real subprocess (`python -m tf_lanmax ...`) on tiny settings: one `train`
run (module fixture), whose model the other commands then use, all started at once because
TensorFlow's start-up dominates on 2 busy cores. Flag validation (exit 2, one line) is checked in
this process through the same parse-and-validate code, which is cheap, plus once for real.
"""

import importlib
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from absl import flags

import tf_lanmax as tl
from tf_lanmax.cli import flags_common
from tf_lanmax.cli import main as cli

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
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COMMAND_MODULES = ("train", "evaluate", "sensitivity", "export", "summary")


def _start(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "tf_lanmax", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def _finish(process):
    try:
        out, err = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


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
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("train")
    result = _ok(_lanmax(*TRAIN, f"--run_dir={run_dir}"))
    return run_dir, result, _read_json(run_dir / "report.json")


@pytest.fixture(scope="module")
def commands(trained, tmp_path_factory):
    run_dir, _, _ = trained
    model = str(run_dir / "model.keras")
    root = tmp_path_factory.mktemp("commands")
    dirs = {name: root / name for name in ("evaluate", "sensitivity", "export")}
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
        "export": _start("export", f"--model_path={model}", f"--base_path={dirs['export']}"),
        "summary": _start("summary", f"--model_path={model}"),
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
    assert tl.export.load_metadata(path)["model_name"] == "binary_cnn"
    assert sorted(os.listdir(base)) == ["1", "models.config"]


def test_export_to_an_existing_version_is_a_usage_error(commands):
    _ok(commands["results"]["export"])
    export = importlib.import_module("tf_lanmax.cli.export")
    with pytest.raises(flags_common.UsageError, match="version"):
        export.export(commands["model_path"], str(commands["dirs"]["export"]), version=1)


def test_summary_prints_the_energy_table(commands, trained):
    result = _ok(commands["results"]["summary"])
    for row in trained[2]["energy"]["layers"]:
        assert row["name"] in result.stdout
    assert "Memory energy" in result.stdout and "Saving vs reliable memory" in result.stdout


# ---------------------------------------------------------------------------------------------
# Flag validation in this process: the same parse + validate code the subprocesses run
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def parsed_flags():
    """Imports every command (as `lanmax` would one at a time) and resets the flags after."""
    for name in COMMAND_MODULES:
        importlib.import_module(f"tf_lanmax.cli.{name}")
    yield flags.FLAGS
    flags.FLAGS.unparse_flags()


def _exit_code(argv, capsys):
    """Parses and validates `lanmax <argv>` as `cli.run` does, but never runs the command."""
    try:
        remaining = cli._parse_flags(["lanmax", *argv])
    except SystemExit as error:
        return error.code, capsys.readouterr().err
    try:
        cli.validate(remaining)
    except flags_common.UsageError as error:
        return cli._fail(str(error)), capsys.readouterr().err
    return 0, capsys.readouterr().err


@pytest.fixture
def fake_model(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"")  # validation only checks that the file exists
    return str(path)


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
    (["evaluate", "MODEL", "--split=test[:10"], "--split", ["test[:500]"]),
    (["sensitivity", "MODEL", "--test_rate=0.9"], "--test_rate", ["(0, 0.5]"]),
    (["sensitivity", "MODEL", "--seed=-1"], "--seed", ["[0, inf]"]),
    (["export", "MODEL"], "--base_path", ["required"]),
    (["export", "MODEL", "--base_path=out", "--version=0"], "--version", ["[1, inf]"]),
    (["export", "MODEL", "--base_path=out", "--model_name=a b"], "--model_name", ["A-Za-z"]),
    (["summary"], "--model_path", ["required"]),
    (["summary", "MODEL", "extra"], "unexpected arguments", ["extra"]),
    (["summary", "--no_such_flag"], "no_such_flag", []),
]


@pytest.mark.parametrize(("argv", "names", "mentions"), BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_flags_exit_2_with_one_line(argv, names, mentions, parsed_flags, fake_model, capsys):
    argv = [f"--model_path={fake_model}" if arg == "MODEL" else arg for arg in argv]
    code, stderr = _exit_code(argv, capsys)
    line = _one_line_error(code, stderr)
    assert names in line, line
    for mention in mentions:
        assert mention in line, line


def test_valid_flags_pass_validation(parsed_flags, fake_model, capsys):
    for argv in [
        TRAIN,
        ["train", "--sam=samson", "--rho=0.1", "--model=binary_wrn", "--depth=10", "--width=1"],
        ["evaluate", f"--model_path={fake_model}", "--mode=noise", "--sigmas=0,0.05", *TINY],
        ["sensitivity", f"--model_path={fake_model}", "--test_rate=0.25"],
        ["export", f"--model_path={fake_model}", "--base_path=out", "--version=3"],
        ["summary", f"--model_path={fake_model}"],
    ]:
        flags.FLAGS.unparse_flags()
        assert _exit_code(argv, capsys) == (0, ""), argv


def test_command_help_lists_the_commands_flags_and_exits_0(parsed_flags, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.run(["lanmax", "sensitivity", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(importlib.import_module("tf_lanmax.cli.sensitivity").__doc__.rstrip())
    for flag in ("--test_rate", "--model_path", "--draws", "--split", "--run_dir"):
        assert flag in out
    assert "--epochs" not in out  # a flag this command does not use


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
        cli.run(["lanmax", "tune"])
    line = _one_line_error(exit_info.value.code, capsys.readouterr().err)
    assert "'tune'" in line
    for command in cli.COMMANDS:
        assert command in line


def test_commands_and_demo_share_flags_without_clashing(parsed_flags, capsys):
    # absl flags are global: every command module and `demo` import into one process, in either
    # order (`lanmax` itself imports one command), and the commands still validate.
    for name in ("demo", *COMMAND_MODULES):
        importlib.import_module(f"tf_lanmax.cli.{name}")
    assert cli.COMMANDS == ("demo", *COMMAND_MODULES)
    line = _one_line_error(*_exit_code(["train", "--dataset=imagenet"], capsys))
    assert "--dataset" in line and "fashion_mnist_subset" in line


# ---------------------------------------------------------------------------------------------
# The command functions in this process (cheap paths the subprocess runs do not cover)
# ---------------------------------------------------------------------------------------------


def test_evaluate_noise_mode_writes_report_and_plot(trained, tmp_path):
    evaluate = importlib.import_module("tf_lanmax.cli.evaluate")
    run_dir, _, trained_report = trained
    report = evaluate.evaluate_and_report(
        str(run_dir / "model.keras"),
        str(tmp_path),
        split="test[:128]",
        mode="noise",
        sigmas=[0.0, 0.2],
        draws=2,
        verbose=0,
    )
    assert sorted(os.listdir(tmp_path)) == ["noise_robustness.png", "report.json"]
    assert _is_png(tmp_path / "noise_robustness.png")
    saved = _read_json(tmp_path / "report.json")
    assert saved["noise"]["sigmas"] == [0.0, 0.2]
    assert saved == json.loads(json.dumps(report, default=lambda o: o.tolist()))
    # sigma = 0 is the clean model: zero width, equal to the faults-off accuracy.
    zero = saved["noise"]["accuracy"][0]
    assert zero["mean"] == pytest.approx(saved["clean_accuracy"], abs=1e-6)
    assert zero["low"] == zero["high"] == zero["mean"]


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
