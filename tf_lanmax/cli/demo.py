"""`lanmax demo`: the main job on the bundled real data (the README's `make demo`).

1. Trains the binary CNN with bit flips at a fixed p, prints the memory-energy summary and the
   test accuracy under faults with its CI.
2. Trains it again from p = 1e-2 with LaNMax and prints the summary at the learned per-layer p
   (skipped with `--alpha=0`).
Writes <run_dir>/report.json, <run_dir>/model.keras and <run_dir>/summary.png (energy per layer
and accuracy under faults).

Example:
  lanmax demo --epochs 1 --lanmax_epochs 1 --draws 2
"""

import dataclasses
import os
import time

import tf_lanmax as tl
from tf_lanmax.cli import common, shared
from tf_lanmax.cli.options import at_least, check_fields, option

LANMAX_START_RATE = 1e-2  # LaNMax's run starts every layer here and learns p from it


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """The demo's settings; see the module docstring."""

    dataset: str = shared.dataset()
    epochs: int = shared.epochs()
    lanmax_epochs: int = option(6, "Training epochs of the demo's LaNMax run.", check=at_least(1))
    batch_size: int = shared.batch_size()
    fault_rate: float = shared.fault_rate()
    alpha: float = shared.alpha()
    draws: int = shared.draws()
    seed: int = shared.seed()

    def __post_init__(self):
        check_fields(self)


def _compiled_cnn(train, epochs, fault_rate, seed):
    import keras

    keras.utils.set_random_seed(seed)
    model = tl.models.binary_cnn(fault_model="bit_flip", fault_rate=fault_rate, seed=seed)
    steps = max(1, epochs * int(train.cardinality()))
    schedule = keras.optimizers.schedules.CosineDecay(3e-3, decay_steps=steps)
    model.compile(
        keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


def _fixed_rate_run(settings, train, test, verbose):
    """Trains at a fixed p; returns (model, its part of the report)."""
    model = _compiled_cnn(train, settings.epochs, settings.fault_rate, settings.seed)
    common.progress(f"training {model.name} at p={settings.fault_rate:g}")
    start = time.perf_counter()
    history = model.fit(train, epochs=settings.epochs, verbose=verbose)
    seconds = time.perf_counter() - start
    with tl.faults_disabled(model):
        clean_loss, clean_accuracy = model.evaluate(test, verbose=0)
    common.progress(f"evaluating under faults ({settings.draws} draws)")
    faulty = tl.evaluate_under_faults(
        model, test, draws=settings.draws, seed=settings.seed, verbose=common.bar(verbose)
    )
    return model, {
        "fault_model": "bit_flip",
        "fault_rate": settings.fault_rate,
        "epochs": settings.epochs,
        "train_seconds": seconds,
        "history": common.history(history),
        "clean_test_accuracy": float(clean_accuracy),
        "clean_test_loss": float(clean_loss),
        "faulty_test": faulty.to_dict(),
        "accuracy_drop_points": 100.0 * (float(clean_accuracy) - faulty.mean),
        "energy": tl.memory_energy(model),
    }


def _lanmax_run(settings, train, test, verbose):
    """Trains from p = 1e-2 with LaNMax; its part of the report."""
    model = _compiled_cnn(train, settings.lanmax_epochs, LANMAX_START_RATE, settings.seed)
    lanmax = tl.LaNMax(alpha=settings.alpha, seed=settings.seed)
    common.progress(f"training with LaNMax (alpha = {settings.alpha:g})")
    start = time.perf_counter()
    model.fit(train, epochs=settings.lanmax_epochs, verbose=verbose, callbacks=[lanmax])
    seconds = time.perf_counter() - start
    common.progress(f"evaluating at the learned rates ({settings.draws} draws)")
    faulty = tl.evaluate_under_faults(model, test, draws=settings.draws, seed=settings.seed)
    return {
        "alpha": settings.alpha,
        "epochs": settings.lanmax_epochs,
        "train_seconds": seconds,
        "learned_rates": lanmax.rates,
        "trajectory": lanmax.trajectory,
        "faulty_test": faulty.to_dict(),
        "energy": tl.memory_energy(model),
    }


def run(settings, run_dir, verbose=None):
    """Runs both parts of the demo; writes `run_dir/model.keras`.

    Args:
        settings: a `Settings`.
        run_dir: output folder.
        verbose: Keras' verbosity. Defaults to `None` (bars in a terminal, lines else).

    Returns:
        The report dict.
    """
    verbose = common.keras_verbose() if verbose is None else verbose
    train = common.load_data(settings.dataset, "train", settings.batch_size, seed=settings.seed)
    test = common.load_data(settings.dataset, "test", settings.batch_size)
    model, fixed = _fixed_rate_run(settings, train, test, verbose)
    report = {"command": "demo", "dataset": settings.dataset, "model": model.name, **fixed}
    if settings.alpha > 0:
        report["lanmax"] = _lanmax_run(settings, train, test, verbose)
    report["package_version"] = tl.__version__
    os.makedirs(run_dir, exist_ok=True)
    model.save(os.path.join(run_dir, "model.keras"))
    return report


def plot(report, run_dir):
    """The demo's figure: energy per layer and test accuracy under faults (summary.png)."""
    return [tl.reports.plot_demo_summary(report, os.path.join(run_dir, "summary.png"))]


def show(report):
    """Prints the demo's results from its report."""
    print(common.energy_table(report["model"], report["energy"]))
    print(f"Clean test accuracy (faults off): {report['clean_test_accuracy']:.4f}")
    faulty = common.faults_text(report["faulty_test"])
    print(f"Test accuracy under bit flips at p={report['fault_rate']:g}: {faulty}")
    print(f"Accuracy drop: {report['accuracy_drop_points']:.2f} points")
    if "lanmax" in report:
        lanmax = report["lanmax"]
        print(f"\nLaNMax (alpha = {lanmax['alpha']:g}) learned a fault rate per layer:")
        print(common.energy_table(report["model"], lanmax["energy"]))
        print(f"Test accuracy at the learned rates: {common.faults_text(lanmax['faulty_test'])}")
