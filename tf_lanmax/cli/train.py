"""`lanmax train`: train a binary network with faults, optionally LaNMax and sharpness-aware.

Trains `--model` on `--dataset` with every kernel stored in `--weight_format` and read through
`--fault_model` at `--fault_rate` (the initial p with `--lanmax`, which then learns p per layer
with energy weight `--alpha`). `--sam` wraps the model in `tl.SharpnessAwareModel` (radius
`--rho`). Then evaluates on `--split` with faults off and under `--draws` fault draws (with a
confidence interval), prints the memory-energy summary (energy and voltages of `--technology`,
whose energy model LaNMax also uses) and writes to `--run_dir`:

- `model.keras`: the trained network (the inner model for `--sam`), loadable in safe mode;
- `report.json`: settings, history, accuracies, energy, learned rates and trajectory;
- `lanmax_rates.png`, `lanmax_rates_vs_size.png` with `--lanmax`.

Example:
  lanmax train --epochs 5 --lanmax --alpha 1 --sam samson --run_dir runs/samson
"""

import dataclasses
import os
import time

import tf_lanmax as tl
from tf_lanmax._validation import check_name
from tf_lanmax.cli import common, shared
from tf_lanmax.cli.options import InvalidOption, check_fields, option, positive

MODELS = ("binary_cnn", "binary_wrn")


def _weight_format_check(name, value):
    tl.formats.get(value)


def _fault_model_check(name, value):
    tl.faults.get(value)


def _sam_check(name, value):
    check_name(name, value, ["none", *tl.sam.RULES])


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """`lanmax train`'s settings; see the module docstring."""

    model: str = option("binary_cnn", "Network to train.", choices=MODELS)
    depth: int = option(16, "Depth of binary_wrn (6n + 4).")
    width: float | None = shared.width()
    dataset: str = shared.dataset()
    train_split: str = shared.train_split()
    split: str = shared.split()
    epochs: int = shared.epochs()
    batch_size: int = shared.batch_size()
    learning_rate: float = shared.learning_rate()
    weight_format: str = option(
        "binary", "How kernels are stored (a tl.formats name).", check=_weight_format_check
    )
    fault_model: str = option(
        "bit_flip",
        "What the memory does to stored bits (a tl.faults name).",
        check=_fault_model_check,
    )
    fault_rate: float = shared.fault_rate()
    lanmax: bool = option(False, "Learn each layer's fault rate with tl.LaNMax.")
    alpha: float = shared.alpha()
    lanmax_warmup_epochs: int = shared.lanmax_warmup_epochs()
    technology: str | None = shared.technology()
    sam: str = option(
        "none", "Sharpness-aware rule of tl.SharpnessAwareModel, or none.", check=_sam_check
    )
    rho: float | None = option(
        None, "Sharpness-aware radius. Defaults to the rule's.", check=positive()
    )
    draws: int = shared.draws()
    confidence: float = shared.confidence()
    seed: int = shared.seed()

    def __post_init__(self):
        check_fields(self)
        if self.model == "binary_wrn" and (self.depth < 10 or (self.depth - 4) % 6):
            raise InvalidOption("depth", self.depth, "must be 6n + 4 (10, 16, 22, ...)")
        if self.lanmax and self.fault_model == "none":
            raise InvalidOption(
                "fault_model", "none", "--lanmax needs a fault model to learn p for, e.g. bit_flip"
            )
        if self.rho is not None and self.sam == "none":
            raise InvalidOption("rho", self.rho, "needs --sam=sam|asam|samson; --sam=none")


def build_model(settings, input_shape, num_classes):
    """The network of `settings.model` with every kernel faulty."""
    faults = {
        "weight_format": settings.weight_format,
        "fault_model": settings.fault_model,
        "fault_rate": settings.fault_rate,
    }
    if settings.model == "binary_cnn":
        return tl.models.binary_cnn(
            input_shape,
            num_classes,
            width_multiplier=settings.width or 1.0,
            seed=settings.seed,
            **faults,
        )
    width = settings.width or 4
    if float(width).is_integer():  # --width parses as a float; WRN-16-4, not WRN-16-4.0
        width = int(width)
    return tl.models.binary_wide_resnet(
        settings.depth,
        width,
        input_shape=input_shape,
        num_classes=num_classes,
        seed=settings.seed,
        **faults,
    )


def run(settings, run_dir, verbose=None):
    """Trains and evaluates; writes `run_dir/model.keras`.

    Args:
        settings: a `Settings`.
        run_dir: output folder.
        verbose: Keras' verbosity. Defaults to `None` (bars in a terminal, lines else).

    Returns:
        The report dict.
    """
    import keras

    verbose = common.keras_verbose() if verbose is None else verbose
    tech = tl.memory.get(settings.technology)
    train, test, info = common.load_train_and_test(settings)

    keras.utils.set_random_seed(settings.seed)
    network = build_model(settings, info["input_shape"], info["num_classes"])
    trainer = network
    if settings.sam != "none":
        trainer = tl.SharpnessAwareModel(network, rule=settings.sam, rho=settings.rho)
    steps = max(1, settings.epochs * int(train.cardinality()))
    schedule = keras.optimizers.schedules.CosineDecay(settings.learning_rate, decay_steps=steps)
    trainer.compile(
        keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    callbacks = []
    if settings.lanmax:
        callbacks.append(
            tl.LaNMax(
                alpha=settings.alpha,
                energy_model=tech.energy_model(),
                p_max=tech.ber_range[1],  # no saving is known past the last measured BER
                warmup_epochs=settings.lanmax_warmup_epochs,
                seed=settings.seed,
            )
        )
    common.progress(f"training {network.name} for {settings.epochs} epochs")
    start = time.perf_counter()
    history = trainer.fit(train, epochs=settings.epochs, verbose=verbose, callbacks=callbacks)
    seconds = time.perf_counter() - start

    os.makedirs(run_dir, exist_ok=True)
    model_path = os.path.join(run_dir, "model.keras")
    network.save(model_path)  # with its optimizer state; the inner network alone for --sam
    if trainer is not network:
        network.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    with tl.faults_disabled(network):
        clean_loss, clean_accuracy = network.evaluate(test, verbose=0)
    common.progress(f"evaluating under faults ({settings.draws} draws)")
    faulty = tl.evaluate_under_faults(
        network,
        test,
        draws=settings.draws,
        confidence=settings.confidence,
        seed=settings.seed,
        verbose=common.bar(verbose),
    )
    report = {
        "command": "train",
        "settings": dataclasses.asdict(settings),
        "dataset": settings.dataset,
        "train_split": settings.train_split,
        "split": settings.split,
        "model": network.name,
        "weight_format": settings.weight_format,
        "fault_model": settings.fault_model,
        "fault_rate": settings.fault_rate,
        "technology": tech.name,
        "epochs": settings.epochs,
        "batch_size": settings.batch_size,
        "seed": settings.seed,
        "sam": None if trainer is network else {"rule": settings.sam, "rho": trainer.rho},
        "train_seconds": seconds,
        "history": common.history(history),
        "clean_test_accuracy": float(clean_accuracy),
        "clean_test_loss": float(clean_loss),
        "faulty_test": faulty.to_dict(),
        "energy": tl.summary(network, technology=tech, print_fn=None),
        "model_path": os.path.abspath(model_path),
        "package_version": tl.__version__,
    }
    if settings.lanmax:
        callback = callbacks[0]
        report["lanmax"] = {
            "alpha": settings.alpha,
            "warmup_epochs": settings.lanmax_warmup_epochs,
            "learned_rates": callback.rates,
            "trajectory": callback.trajectory,
            "fits": callback.fits,
        }
    return report


def plot(report, run_dir):
    """The LaNMax plots of a report with `lanmax`; returns their paths."""
    if "lanmax" not in report:
        return []
    return [
        tl.reports.plot_rate_trajectories(
            report["lanmax"]["trajectory"], os.path.join(run_dir, "lanmax_rates.png")
        ),
        tl.reports.plot_rates_vs_size(
            report["energy"]["layers"], os.path.join(run_dir, "lanmax_rates_vs_size.png")
        ),
    ]


def show(report):
    """Prints the energy table and the accuracies from the report."""
    print(common.energy_table(report["model"], report["energy"]))
    split = report["split"]
    print(f"Clean {split} accuracy (faults off): {report['clean_test_accuracy']:.4f}")
    print(f"{split} accuracy under faults: {common.faults_text(report['faulty_test'])}")
