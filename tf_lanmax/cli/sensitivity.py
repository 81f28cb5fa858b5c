"""`lanmax sensitivity`: the layerwise analysis, one faulty layer at a time at `--test_rate`.

Evaluates the model saved at `--model_path` on `--split` at its stored rates, then once per
faulty layer with only that layer at `--test_rate` (`--draws` fault draws each, with confidence
intervals), prints the table and writes `<run_dir>/report.json` and `<run_dir>/sensitivity.png`.

Example:
  lanmax sensitivity --model_path runs/train/model.keras --test_rate 0.5 --draws 5
"""

import os

from absl import flags

import tf_lanmax as tl
from tf_lanmax.cli import flags_common as common

flags.DEFINE_float("test_rate", 0.5, "Fault rate of the layer under test, in (0, 0.5].")

SHARED_FLAGS = (
    "run_dir",
    "dataset",
    "model_path",
    "split",
    "batch_size",
    "draws",
    "confidence",
    "seed",
)


def validate(flag_values):
    """Raises `UsageError` for a bad flag value, before any work."""
    common.check_common(flag_values, SHARED_FLAGS)
    common.check_probability_flag("test_rate", flag_values.test_rate)


def sensitivity_and_report(
    model_path,
    run_dir,
    dataset="fashion_mnist_subset",
    split="test",
    test_rate=0.5,
    draws=5,
    confidence=0.95,
    batch_size=512,
    seed=0,
):
    """Runs `tl.sensitivity` on the saved model and writes report.json and sensitivity.png.

    Returns:
        The report dict.
    """
    data = common.load_data(dataset, split, batch_size)
    model = common.load_model(model_path)
    table = tl.sensitivity(
        model, data, test_rate=test_rate, draws=draws, confidence=confidence, seed=seed
    )
    base = table["baseline"]
    print(f"All layers at their stored p: accuracy {base['accuracy']:.4f}")
    width = max(len(name) for name in table["layers"])
    for name, row in table["layers"].items():
        print(
            f"{name:<{width}}  accuracy {row['accuracy']:.4f} at p={test_rate:g} "
            f"(drop {100 * row['drop']:+.2f} points, {row['stored_bits']} bits)"
        )
    plot = tl.reports.plot_sensitivity(table, os.path.join(run_dir, "sensitivity.png"))
    report = {
        "command": "sensitivity",
        "model_path": os.path.abspath(model_path),
        "model": model.name,
        "dataset": dataset,
        "split": split,
        "draws": draws,
        "confidence": confidence,
        "seed": seed,
        **table,
        "plots": [plot],
        "package_version": tl.__version__,
    }
    common.write_report(run_dir, report)
    return report


def run(flag_values, args):
    del args
    sensitivity_and_report(
        flag_values.model_path,
        common.run_dir(flag_values, "sensitivity"),
        dataset=flag_values.dataset,
        split=flag_values.split,
        test_rate=flag_values.test_rate,
        draws=flag_values.draws,
        confidence=flag_values.confidence,
        batch_size=flag_values.batch_size,
        seed=flag_values.seed,
    )
    return 0
