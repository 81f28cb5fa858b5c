"""`lanmax demo`: the main job on the bundled real data (the README's `make demo`).

1. Trains the binary CNN with bit flips at a fixed p, prints the memory-energy summary and the
   test accuracy under faults with its CI.
2. Trains it again from p = 1e-2 with LaNMax and prints the summary at the learned per-layer p.
Writes <run_dir>/report.json, <run_dir>/model.keras and <run_dir>/summary.png.
"""

import os
import sys
import time

import keras
from absl import flags

import tf_lanmax as tl
from tf_lanmax.cli import flags_common

flags.DEFINE_integer("lanmax_epochs", 6, "Training epochs of the demo's LaNMax run.")


def _compiled_cnn(train, epochs, fault_rate, seed):
    keras.utils.set_random_seed(seed)
    model = tl.models.binary_cnn(fault_model="bit_flip", fault_rate=fault_rate, seed=seed)
    steps = max(1, epochs * int(train.cardinality()))
    schedule = keras.optimizers.schedules.CosineDecay(3e-3, decay_steps=steps)
    model.compile(
        keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


def fixed_rate_run(train, test, epochs, fault_rate, draws, seed, verbose):
    """Trains at a fixed p; returns (model, report dict)."""
    model = _compiled_cnn(train, epochs, fault_rate, seed)
    start = time.perf_counter()
    history = model.fit(train, epochs=epochs, verbose=verbose)
    seconds = time.perf_counter() - start
    with tl.faults_disabled(model):
        clean_loss, clean_accuracy = model.evaluate(test, verbose=0)
    faulty = tl.evaluate_under_faults(
        model, test, draws=draws, seed=seed, verbose=1 if verbose == 1 else 0
    )
    energy = tl.summary(model)
    drop = 100.0 * (float(clean_accuracy) - faulty.mean)
    print(f"Clean test accuracy (faults off): {clean_accuracy:.4f}")
    print(f"Test accuracy under bit flips at p={fault_rate:g}: {faulty}")
    print(f"Accuracy drop: {drop:.2f} points")
    return model, {
        "fault_model": "bit_flip",
        "fault_rate": fault_rate,
        "epochs": epochs,
        "train_seconds": seconds,
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
        "clean_test_accuracy": float(clean_accuracy),
        "clean_test_loss": float(clean_loss),
        "faulty_test": faulty.to_dict(),
        "accuracy_drop_points": drop,
        "energy": energy,
    }


def lanmax_run(train, test, epochs, alpha, draws, seed, verbose):
    """Trains from p = 1e-2 with LaNMax; prints the summary at the learned per-layer p."""
    model = _compiled_cnn(train, epochs, 1e-2, seed)
    lanmax = tl.LaNMax(alpha=alpha, seed=seed)
    start = time.perf_counter()
    model.fit(train, epochs=epochs, verbose=verbose, callbacks=[lanmax])
    seconds = time.perf_counter() - start
    print(f"\nLaNMax (alpha = {alpha:g}) learned a fault rate per layer:")
    energy = tl.summary(model)
    faulty = tl.evaluate_under_faults(model, test, draws=draws, seed=seed, verbose=0)
    print(f"Test accuracy at the learned rates: {faulty}")
    return {
        "alpha": alpha,
        "epochs": epochs,
        "train_seconds": seconds,
        "learned_rates": lanmax.rates,
        "trajectory": lanmax.trajectory,
        "faulty_test": faulty.to_dict(),
        "energy": energy,
    }


def train_and_report(
    run_dir,
    dataset="fashion_mnist_subset",
    epochs=8,
    batch_size=128,
    fault_rate=1e-3,
    draws=20,
    seed=0,
    alpha=1.0,
    lanmax_epochs=6,
    verbose=None,
):
    """Runs both parts of the demo and writes `run_dir/report.json`.

    Returns:
        The report dict.
    """
    if verbose is None:  # one line per epoch in logs and CI, live bars in a terminal
        verbose = 1 if sys.stdout.isatty() else 2
    train = tl.data.load(dataset, "train", batch_size=batch_size, seed=seed)
    test = tl.data.load(dataset, "test", batch_size=512)
    model, fixed = fixed_rate_run(train, test, epochs, fault_rate, draws, seed, verbose)
    report = {"dataset": dataset, "model": model.name, **fixed}
    if alpha > 0:
        report["lanmax"] = lanmax_run(train, test, lanmax_epochs, alpha, draws, seed, verbose)
    report["package_version"] = tl.__version__
    os.makedirs(run_dir, exist_ok=True)
    model.save(os.path.join(run_dir, "model.keras"))
    flags_common.write_report(run_dir, report)
    tl.reports.plot_demo_summary(report, os.path.join(run_dir, "summary.png"))
    return report


def validate(flag_values):
    flags_common.check_common(
        flag_values, ["dataset", "epochs", "batch_size", "fault_rate", "draws", "seed", "alpha"]
    )
    flags_common.check_int_flag("lanmax_epochs", flag_values.lanmax_epochs, low=1)


def run(flag_values, args):
    del args
    train_and_report(
        flags_common.run_dir(flag_values, "demo"),
        flag_values.dataset,
        flag_values.epochs,
        flag_values.batch_size,
        flag_values.fault_rate,
        flag_values.draws,
        flag_values.seed,
        alpha=flag_values.alpha,
        lanmax_epochs=flag_values.lanmax_epochs,
    )
    return 0
