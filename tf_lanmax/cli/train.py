"""`lanmax train`: train a binary network with faults, optionally LaNMax and sharpness-aware.

Trains `--model` on `--dataset` with every kernel stored in `--weight_format` and read through
`--fault_model` at `--fault_rate` (the initial p with `--lanmax`, which then learns p per layer
with energy weight `--alpha`). `--sam` wraps the model in `tl.SharpnessAwareModel` (radius
`--rho`). Then evaluates on `--split` with faults off and under `--draws` fault draws (with a
confidence interval), prints the memory-energy summary (energy and voltages of `--technology`,
whose energy model LaNMax also uses) and writes to `--run_dir`:

- `model.keras`: the trained network (the inner model for `--sam`), loadable in safe mode;
- `report.json`: flags, history, accuracies, energy, learned rates and trajectory;
- `lanmax_rates.png`, `lanmax_rates_vs_size.png` with `--lanmax`.

Example:
  lanmax train --epochs 5 --lanmax --alpha 1 --sam samson --run_dir runs/samson
"""

import os
import time

import keras
from absl import flags

import tf_lanmax as tl
from tf_lanmax.cli import flags_common as common

MODELS = ("binary_cnn", "binary_wrn")
SAM_RULES = ("none", "sam", "asam", "samson")
WEIGHT_FORMATS = tuple(tl.formats.ALIASES)
FAULT_MODELS = tuple(tl.faults.ALIASES)

flags.DEFINE_enum("model", "binary_cnn", MODELS, "Network to train.")
flags.DEFINE_integer("depth", 16, "Depth of binary_wrn (6n + 4).")
flags.DEFINE_enum("weight_format", "binary", WEIGHT_FORMATS, "How kernels are stored.")
flags.DEFINE_enum("fault_model", "bit_flip", FAULT_MODELS, "What the memory does to stored bits.")
flags.DEFINE_bool("lanmax", False, "Learn each layer's fault rate with tl.LaNMax.")
flags.DEFINE_enum("sam", "none", SAM_RULES, "Sharpness-aware rule (tl.SharpnessAwareModel).")
flags.DEFINE_float("rho", None, "Sharpness-aware radius. Defaults to the rule's.")

SHARED_FLAGS = (
    "run_dir",
    "dataset",
    "epochs",
    "batch_size",
    "fault_rate",
    "draws",
    "confidence",
    "seed",
    "alpha",
    "split",
    "train_split",
    "width",
    "learning_rate",
    "lanmax_warmup_epochs",
    "technology",
)


def validate(flag_values):
    """Raises `UsageError` for a bad flag value, before any work."""
    common.check_common(flag_values, SHARED_FLAGS)
    if flag_values.model == "binary_wrn" and (
        flag_values.depth < 10 or (flag_values.depth - 4) % 6
    ):
        raise common.UsageError(
            f"--depth must be 6n + 4 (10, 16, 22, ...). Received: --depth={flag_values.depth}"
        )
    if flag_values.lanmax and flag_values.fault_model == "none":
        raise common.UsageError(
            "--lanmax needs a fault model to learn p for; --fault_model must be one of "
            f"{[m for m in FAULT_MODELS if m != 'none']}. Received: --fault_model=none"
        )
    if flag_values.rho is not None:
        if flag_values.sam == "none":
            raise common.UsageError("--rho needs --sam=sam|asam|samson. Received: --sam=none")
        common.check_positive_flag("rho", flag_values.rho)


def build_model(name, input_shape, num_classes, width, depth, weight_format, fault_model, p, seed):
    """The network of `--model` with every kernel faulty."""
    faults = {"weight_format": weight_format, "fault_model": fault_model, "fault_rate": p}
    if name == "binary_cnn":
        return tl.models.binary_cnn(
            input_shape, num_classes, width_multiplier=width or 1.0, seed=seed, **faults
        )
    width = width or 4
    if float(width).is_integer():  # --width parses as a float; WRN-16-4, not WRN-16-4.0
        width = int(width)
    return tl.models.binary_wide_resnet(
        depth, width, input_shape=input_shape, num_classes=num_classes, seed=seed, **faults
    )


def train_and_report(
    run_dir,
    dataset="fashion_mnist_subset",
    model="binary_cnn",
    epochs=8,
    batch_size=128,
    weight_format="binary",
    fault_model="bit_flip",
    fault_rate=1e-3,
    lanmax=False,
    alpha=1.0,
    lanmax_warmup_epochs=1,
    sam="none",
    rho=None,
    seed=0,
    draws=10,
    confidence=0.95,
    split="test",
    train_split="train",
    width=None,
    depth=16,
    learning_rate=3e-3,
    technology="exponential_law",
    verbose=None,
):
    """Trains, evaluates and writes `run_dir/{model.keras, report.json, *.png}`.

    `technology` (a `tl.memory` name) prices the fault rates: LaNMax's energy term and the
    summary use its energy model, LaNMax keeps p inside its measured BER range, and the summary
    shows its voltages.

    Returns:
        The report dict (as written to report.json).
    """
    verbose = common.keras_verbose() if verbose is None else verbose
    tech = tl.memory.get(technology)
    train = common.load_data(dataset, train_split, batch_size, flag="train_split", seed=seed)
    test = common.load_data(dataset, split, 512)
    info = tl.data.info(dataset)

    keras.utils.set_random_seed(seed)
    network = build_model(
        model,
        info["input_shape"],
        info["num_classes"],
        width,
        depth,
        weight_format,
        fault_model,
        fault_rate,
        seed,
    )
    trainer = network
    if sam != "none":
        trainer = tl.SharpnessAwareModel(network, rule=sam, rho=rho)
    steps = max(1, epochs * int(train.cardinality()))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps)
    trainer.compile(
        keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    callbacks = []
    if lanmax:
        callbacks.append(
            tl.LaNMax(
                alpha=alpha,
                energy_model=tech.energy_model(),
                p_max=tech.ber_range[1],  # no saving is known past the last measured BER
                warmup_epochs=lanmax_warmup_epochs,
                seed=seed,
            )
        )
    start = time.perf_counter()
    history = trainer.fit(train, epochs=epochs, verbose=verbose, callbacks=callbacks)
    seconds = time.perf_counter() - start

    os.makedirs(run_dir, exist_ok=True)
    model_path = os.path.join(run_dir, "model.keras")
    network.save(model_path)  # with its optimizer state; the inner network alone for --sam
    if trainer is not network:
        network.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    with tl.faults_disabled(network):
        clean_loss, clean_accuracy = network.evaluate(test, verbose=0)
    bar = 1 if verbose == 1 else 0
    faulty = tl.evaluate_under_faults(
        network, test, draws=draws, confidence=confidence, seed=seed, verbose=bar
    )
    energy = tl.summary(network, technology=tech)
    print(f"Clean {split} accuracy (faults off): {clean_accuracy:.4f}")
    print(f"{split} accuracy under faults: {faulty}")

    report = {
        "command": "train",
        "dataset": dataset,
        "train_split": train_split,
        "split": split,
        "model": network.name,
        "weight_format": weight_format,
        "fault_model": fault_model,
        "fault_rate": fault_rate,
        "technology": tech.name,
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "sam": None if sam == "none" else {"rule": sam, "rho": trainer.rho},
        "train_seconds": seconds,
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
        "clean_test_accuracy": float(clean_accuracy),
        "clean_test_loss": float(clean_loss),
        "faulty_test": faulty.to_dict(),
        "energy": energy,
        "model_path": os.path.abspath(model_path),
        "plots": [],
        "package_version": tl.__version__,
    }
    if lanmax:
        callback = callbacks[0]
        report["lanmax"] = {
            "alpha": alpha,
            "warmup_epochs": lanmax_warmup_epochs,
            "learned_rates": callback.rates,
            "trajectory": callback.trajectory,
            "fits": callback.fits,
        }
        report["plots"] = [
            tl.reports.plot_rate_trajectories(
                callback.trajectory, os.path.join(run_dir, "lanmax_rates.png")
            ),
            tl.reports.plot_rates_vs_size(
                energy["layers"], os.path.join(run_dir, "lanmax_rates_vs_size.png")
            ),
        ]
    common.write_report(run_dir, report)
    return report


def run(flag_values, args):
    del args
    train_and_report(
        common.run_dir(flag_values, "train"),
        dataset=flag_values.dataset,
        model=flag_values.model,
        epochs=flag_values.epochs,
        batch_size=flag_values.batch_size,
        weight_format=flag_values.weight_format,
        fault_model=flag_values.fault_model,
        fault_rate=flag_values.fault_rate,
        lanmax=flag_values.lanmax,
        alpha=flag_values.alpha,
        lanmax_warmup_epochs=flag_values.lanmax_warmup_epochs,
        sam=flag_values.sam,
        rho=flag_values.rho,
        seed=flag_values.seed,
        draws=flag_values.draws,
        confidence=flag_values.confidence,
        split=flag_values.split,
        train_split=flag_values.train_split,
        width=flag_values.width,
        depth=flag_values.depth,
        learning_rate=flag_values.learning_rate,
        technology=flag_values.technology,
    )
    return 0
