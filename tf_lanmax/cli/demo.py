"""`lanmax demo`: the main job on the bundled real data (the README's `make demo`)."""

import os
import sys
import time

import keras
from absl import flags

import tf_lanmax as tl
from tf_lanmax._io import write_json_atomic

flags.DEFINE_string("run_dir", "runs/demo", "Folder for report.json and the trained model.")
flags.DEFINE_string("dataset", "fashion_mnist_subset", "Dataset name for tf_lanmax.data.load.")
flags.DEFINE_integer("epochs", 8, "Training epochs.")
flags.DEFINE_integer("batch_size", 128, "Batch size.")
flags.DEFINE_float("fault_rate", 1e-3, "Bit-flip rate p of every faulty layer (train and test).")
flags.DEFINE_integer("draws", 20, "Monte-Carlo fault draws for the accuracy interval.")
flags.DEFINE_integer("seed", 0, "Seed of weights, data order and fault draws.")


def train_and_report(run_dir, dataset, epochs, batch_size, fault_rate, draws, seed, verbose="auto"):
    """Trains the binary CNN with bit flips at `fault_rate` and writes `run_dir/report.json`.

    Returns:
        The report dict.
    """
    if verbose is None:  # one line per epoch in logs and CI, live bars in a terminal
        verbose = 1 if sys.stdout.isatty() else 2
    keras.utils.set_random_seed(seed)
    train = tl.data.load(dataset, "train", batch_size=batch_size, seed=seed)
    test = tl.data.load(dataset, "test", batch_size=512)
    model = tl.models.binary_cnn(fault_model="bit_flip", fault_rate=fault_rate, seed=seed)
    steps = epochs * int(train.cardinality())
    schedule = keras.optimizers.schedules.CosineDecay(3e-3, decay_steps=max(steps, 1))
    model.compile(
        keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    start = time.perf_counter()
    history = model.fit(train, epochs=epochs, verbose=verbose)
    train_seconds = time.perf_counter() - start
    with tl.faults_disabled(model):
        clean_loss, clean_accuracy = model.evaluate(test, verbose=0)
    faulty = tl.evaluate_under_faults(
        model, test, draws=draws, seed=seed, verbose=1 if verbose == 1 else 0
    )
    energy = tl.summary(model)
    report = {
        "dataset": dataset,
        "model": model.name,
        "fault_model": "bit_flip",
        "fault_rate": fault_rate,
        "epochs": epochs,
        "train_seconds": train_seconds,
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
        "clean_test_accuracy": float(clean_accuracy),
        "clean_test_loss": float(clean_loss),
        "faulty_test": faulty.to_dict(),
        "accuracy_drop_points": 100.0 * (float(clean_accuracy) - faulty.mean),
        "energy": energy,
        "package_version": tl.__version__,
    }
    os.makedirs(run_dir, exist_ok=True)
    model.save(os.path.join(run_dir, "model.keras"))
    write_json_atomic(os.path.join(run_dir, "report.json"), report)
    print(f"Clean test accuracy (faults off): {clean_accuracy:.4f}")
    print(f"Test accuracy under bit flips at p={fault_rate:g}: {faulty}")
    print(f"Accuracy drop: {report['accuracy_drop_points']:.2f} points")
    print(f"Report: {os.path.join(run_dir, 'report.json')}")
    return report


def run(flag_values, args):
    del args
    train_and_report(
        flag_values.run_dir,
        flag_values.dataset,
        flag_values.epochs,
        flag_values.batch_size,
        flag_values.fault_rate,
        flag_values.draws,
        flag_values.seed,
    )
    return 0
