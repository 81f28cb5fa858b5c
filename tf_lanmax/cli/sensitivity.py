"""`lanmax sensitivity`: the layerwise analysis, one faulty layer at a time at `--test_rate`.

Evaluates the model saved at `--model_path` on `--split` at its stored rates, then once per
faulty layer with only that layer at `--test_rate` (`--draws` fault draws each, with confidence
intervals), prints the table and writes `<run_dir>/report.json` and `<run_dir>/sensitivity.png`.

Example:
  lanmax sensitivity --model_path runs/train/model.keras --test_rate 0.5 --draws 5
"""

import dataclasses
import os

import tf_lanmax as tl
from tf_lanmax.cli import common, shared
from tf_lanmax.cli.options import check_fields, option, probability


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """`lanmax sensitivity`'s settings."""

    model_path: str | None = shared.model_path()
    dataset: str = shared.dataset()
    split: str = shared.split()
    batch_size: int = shared.batch_size()
    test_rate: float = option(
        0.5, "Fault rate of the layer under test, in (0, 0.5].", check=probability()
    )
    draws: int = shared.draws()
    confidence: float = shared.confidence()
    seed: int = shared.seed()

    def __post_init__(self):
        check_fields(self)
        shared.required_model_path(self)


def run(settings, run_dir):
    """Runs `tl.sensitivity` on the saved model; returns the report."""
    data = common.load_data(settings.dataset, settings.split, settings.batch_size)
    model = common.load_model(settings.model_path)
    common.progress(f"one faulty layer at a time at p={settings.test_rate:g}")
    table = tl.sensitivity(
        model,
        data,
        test_rate=settings.test_rate,
        draws=settings.draws,
        confidence=settings.confidence,
        seed=settings.seed,
    )
    return {
        "command": "sensitivity",
        "model_path": os.path.abspath(settings.model_path),
        "model": model.name,
        "dataset": settings.dataset,
        "split": settings.split,
        "draws": settings.draws,
        "confidence": settings.confidence,
        "seed": settings.seed,
        **table,
        "package_version": tl.__version__,
    }


def plot(report, run_dir):
    return [tl.reports.plot_sensitivity(report, os.path.join(run_dir, "sensitivity.png"))]


def show(report):
    print(f"All layers at their stored p: accuracy {report['baseline']['accuracy']:.4f}")
    width = max(len(name) for name in report["layers"])
    for name, row in report["layers"].items():
        print(
            f"{name:<{width}}  accuracy {row['accuracy']:.4f} at p={report['test_rate']:g} "
            f"(drop {100 * row['drop']:+.2f} points, {row['stored_bits']} bits)"
        )
