"""`lanmax tune`: search LaNMax's energy weight alpha with Keras Tuner; report the Pareto front.

Each trial trains the binary CNN (`--width`) on `--train_split` with bit flips from p =
`--fault_rate` and `tl.LaNMax(alpha)` learning one p per layer, then measures the accuracy under
faults on `--split` (`--draws` fault draws, `--confidence` interval) and the memory energy at the
learned rates (`tl.tuning.LaNMaxHyperModel`); `--technology`'s energy model prices p, for LaNMax
and for that energy. `--tuner grid` tries each of `--alphas` once (or `--trials` alphas spaced
geometrically over [`--alpha_min`, `--alpha_max`]); `random`, `bayesian` and `hyperband` sample
alpha among `--alphas`, or log-uniformly over the range.

The deliverable is the trade-off, not one best trial: the Pareto front of every completed trial
(energy down, accuracy up) and its hypervolume against (all-reliable energy, chance accuracy).
Prints the front as a table and writes to `--run_dir`:

- `report.json`: the front (per point alpha, energy, E-bar, accuracy with its CI), every trial
  (failed ones with their message), the hypervolume and its reference, the settings;
- `front.png`: every trial with its CI, the front highlighted;
- `tuner/`: Keras Tuner's project folder (`--resume` continues an interrupted search).

Example:
  lanmax tune --tuner grid --alphas 0.1,1,10 --epochs 3 --train_split 'train[:2000]'
"""

import os
import time

import keras
import keras_tuner
from absl import flags

import tf_lanmax as tl
from tf_lanmax import tuning
from tf_lanmax.cli import flags_common as common
from tf_lanmax.tuning.hypermodel import OBJECTIVES

TUNERS = ("grid", "random", "bayesian", "hyperband")
PROJECT = "tuner"  # Keras Tuner's project folder inside --run_dir
HYPERBAND_FACTOR = 3

flags.DEFINE_enum("tuner", "grid", TUNERS, "Keras Tuner search over alpha.")
flags.DEFINE_list(
    "alphas",
    [],
    "Alphas the search may take (>= 2 distinct, > 0). Defaults to the range: a geometric grid "
    "of --trials alphas for grid, log-uniform for the other tuners.",
)
flags.DEFINE_float("alpha_min", 0.01, "Smallest alpha of the search range (> 0).")
flags.DEFINE_float("alpha_max", 30.0, "Largest alpha of the search range (> --alpha_min).")
flags.DEFINE_integer(
    "trials", 6, "Trials of random / bayesian search; alphas of grid search without --alphas."
)
flags.DEFINE_enum(
    "objective",
    "score",
    tuple(OBJECTIVES),
    "Metric the tuner ranks trials by; score = accuracy - energy_weight * E-bar.",
)
flags.DEFINE_float("energy_weight", 0.1, "Weight of E-bar in the score objective (>= 0).")
flags.DEFINE_float("max_step", 1.0, "LaNMax: largest change of ln p per epoch (> 0).")
flags.DEFINE_bool("resume", False, "Continue the search in <run_dir>/tuner, not start over.")

SHARED_FLAGS = (
    "run_dir",
    "dataset",
    "train_split",
    "split",
    "epochs",
    "batch_size",
    "fault_rate",
    "draws",
    "confidence",
    "seed",
    "width",
    "learning_rate",
    "lanmax_warmup_epochs",
    "technology",
)


def search_alphas(tuner="grid", alphas=(), alpha_min=0.01, alpha_max=30.0, trials=6):
    """The alphas a search may take: `alphas`, a geometric grid for `grid`, or None (the range).

    Args:
        tuner: one of `TUNERS`. Defaults to `"grid"`.
        alphas: explicit alphas, each > 0 (duplicates are dropped). Defaults to `()`.
        alpha_min: lower end of the range. Defaults to `0.01`.
        alpha_max: upper end of the range. Defaults to `30.0`.
        trials: number of grid alphas when `alphas` is empty. Defaults to `6`.

    Returns:
        A sorted list of floats, or None for a continuous log-uniform range.

    Example:
    >>> search_alphas("grid", alpha_min=0.01, alpha_max=10.0, trials=4)  # [0.01, 0.1, 1, 10]
    """
    if alphas:
        return sorted({float(a) for a in alphas})
    if tuner == "grid":
        return tuning.geometric_alphas((alpha_min, alpha_max), trials)
    return None


def validate(flag_values):
    """Raises `UsageError` for a bad flag value, before any work."""
    common.check_common(flag_values, SHARED_FLAGS)
    if flag_values.alphas:
        alphas = common.parse_floats("alphas", flag_values.alphas)
        if len(set(alphas)) < 2:
            raise common.UsageError(
                "--alphas must list at least 2 distinct alphas > 0 (a front needs several "
                f"trials). Received: --alphas={','.join(flag_values.alphas)}"
            )
    else:
        low = common.check_positive_flag("alpha_min", flag_values.alpha_min)
        high = common.check_positive_flag("alpha_max", flag_values.alpha_max)
        if not high > low:
            raise common.UsageError(
                f"--alpha_max must be greater than --alpha_min={low:g}. "
                f"Received: --alpha_max={high:g}"
            )
    low_trials = 2 if flag_values.tuner == "grid" and not flag_values.alphas else 1
    common.check_int_flag("trials", flag_values.trials, low=low_trials)
    common.check_positive_flag("energy_weight", flag_values.energy_weight, allow_zero=True)
    common.check_positive_flag("max_step", flag_values.max_step)
    if flag_values.tuner == "hyperband" and flag_values.epochs < HYPERBAND_FACTOR:
        raise common.UsageError(
            f"--epochs must be >= {HYPERBAND_FACTOR} with --tuner=hyperband: its successive "
            f"halving (factor {HYPERBAND_FACTOR}) first trains for --epochs/{HYPERBAND_FACTOR} "
            f"epochs. Received: --epochs={flag_values.epochs}"
        )


def make_tuner(kind, hypermodel, directory, max_trials, epochs, seed=0, overwrite=True):
    """The Keras Tuner tuner of `--tuner`, its project at `directory/tuner`.

    Args:
        kind: one of `TUNERS`.
        hypermodel: the `LaNMaxHyperModel`.
        directory: folder of the project (`--run_dir`).
        max_trials: trials of grid, random and bayesian search (Hyperband sets its own).
        epochs: Hyperband's largest number of epochs.
        seed: the tuner's seed. Defaults to `0`.
        overwrite: start over (`True`) or reload the saved project. Defaults to `True`.

    Returns:
        A `keras_tuner.Tuner`.
    """
    kwargs = {
        "objective": hypermodel.objective,
        "directory": directory,
        "project_name": PROJECT,
        "overwrite": overwrite,
    }
    if kind == "grid":
        return keras_tuner.GridSearch(hypermodel, max_trials=max_trials, **kwargs)
    if kind == "random":
        return keras_tuner.RandomSearch(hypermodel, max_trials=max_trials, seed=seed, **kwargs)
    if kind == "bayesian":
        return keras_tuner.BayesianOptimization(
            hypermodel, max_trials=max_trials, seed=seed, **kwargs
        )
    return keras_tuner.Hyperband(
        hypermodel, max_epochs=epochs, factor=HYPERBAND_FACTOR, seed=seed, **kwargs
    )


def _builder(info, width, fault_rate, learning_rate, decay_steps, seed):
    """``hp -> compiled binary CNN``: the network `lanmax train` trains by default."""

    def build_model(hp):
        del hp  # alpha is LaNMax's, not the network's
        model = tl.models.binary_cnn(
            info["input_shape"],
            info["num_classes"],
            width_multiplier=width or 1.0,
            fault_rate=fault_rate,
            seed=seed,
        )
        schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=decay_steps)
        model.compile(
            keras.optimizers.Adam(schedule),
            "sparse_categorical_crossentropy",
            metrics=["accuracy"],
            jit_compile=False,
        )
        return model

    return build_model


def print_front(front, confidence):
    """Prints the front as a table, energy ascending."""
    print(f"{'alpha':>9} {'energy':>10} {'E-bar':>7} {'accuracy':>9}  {confidence:.0%} CI")
    for p in front:
        print(
            f"{p['alpha']:9.4g} {p['energy']:10.0f} {p['mean_energy']:7.4f} "
            f"{p['accuracy']:9.4f}  [{p['ci'][0]:.4f}, {p['ci'][1]:.4f}]"
        )


def tune_and_report(
    run_dir,
    dataset="fashion_mnist_subset",
    tuner="grid",
    alphas=(),
    alpha_min=0.01,
    alpha_max=30.0,
    trials=6,
    train_split="train",
    split="test",
    epochs=8,
    batch_size=128,
    fault_rate=1e-3,
    draws=10,
    confidence=0.95,
    seed=0,
    width=None,
    learning_rate=3e-3,
    lanmax_warmup_epochs=1,
    max_step=1.0,
    objective="score",
    energy_weight=0.1,
    resume=False,
    technology="exponential_law",
    verbose=None,
):
    """Runs the alpha search and writes `run_dir/{report.json, front.png, tuner/}`.

    Args:
        run_dir: output folder; Keras Tuner's project is `run_dir/tuner`.
        dataset: a `tl.data` dataset. Defaults to `"fashion_mnist_subset"`.
        tuner: one of `TUNERS`. Defaults to `"grid"`.
        alphas: explicit alphas (see `search_alphas`). Defaults to `()`.
        alpha_min: lower end of the alpha range. Defaults to `0.01`.
        alpha_max: upper end of the alpha range. Defaults to `30.0`.
        trials: trials (random, bayesian) or grid alphas without `alphas`. Defaults to `6`.
        train_split: split each trial trains on. Defaults to `"train"`.
        split: split of the evaluation under faults. Defaults to `"test"`.
        epochs: training epochs per trial (Hyperband's maximum). Defaults to `8`.
        batch_size: training batch size. Defaults to `128`.
        fault_rate: initial p of every faulty layer. Defaults to `1e-3`.
        draws: fault draws of each trial's evaluation. Defaults to `10`.
        confidence: coverage of the accuracy intervals. Defaults to `0.95`.
        seed: base seed of the trials, the data order and the tuner. Defaults to `0`.
        width: binary CNN width multiplier (None: 1). Defaults to `None`.
        learning_rate: peak Adam learning rate (cosine decay). Defaults to `3e-3`.
        lanmax_warmup_epochs: LaNMax epochs that do not update p. Defaults to `1`.
        max_step: LaNMax's largest change of ln p per epoch. Defaults to `1.0`.
        objective: the metric the tuner ranks by (see `LaNMaxHyperModel`). Defaults to
            `"score"`.
        energy_weight: weight of E-bar in the score. Defaults to `0.1`.
        resume: continue the saved search instead of starting over. Defaults to `False`.
        technology: the `tl.memory` technology whose energy model LaNMax and the trials'
            energy use. Defaults to `"exponential_law"`.
        verbose: Keras Tuner's verbosity. Defaults to `None` (bars in a terminal, lines else).

    Returns:
        The report dict (as written to report.json). Its ``front`` is empty, and
        ``num_completed`` 0, when every trial failed.
    """
    verbose = common.keras_verbose() if verbose is None else verbose
    tech = tl.memory.get(technology)
    train = common.load_data(dataset, train_split, batch_size, flag="train_split", seed=seed)
    test = common.load_data(dataset, split, 512)
    info = tl.data.info(dataset)
    space = search_alphas(tuner, alphas, alpha_min, alpha_max, trials)
    build_model = _builder(
        info,
        width,
        fault_rate,
        learning_rate,
        max(1, epochs * int(train.cardinality())),
        seed,
    )
    settings = {
        "epochs": epochs,
        "draws": draws,
        "confidence": confidence,
        "energy_weight": energy_weight,
        "objective": objective,
        "lanmax_kwargs": {
            "max_step": max_step,
            "warmup_epochs": lanmax_warmup_epochs,
            "p_max": tech.ber_range[1],  # no saving is known past the last measured BER
        },
        "energy_model": tech.energy_model(),
        "seed": seed,
    }
    if space is None:
        hypermodel = tuning.LaNMaxHyperModel(
            build_model, alpha_range=(alpha_min, alpha_max), **settings
        )
    else:
        hypermodel = tuning.LaNMaxHyperModel(build_model, alphas=space, **settings)
    max_trials = len(space) if tuner == "grid" else trials
    search = make_tuner(tuner, hypermodel, run_dir, max_trials, epochs, seed, not resume)

    start = time.perf_counter()
    search.search(train, validation_data=test, verbose=verbose)
    seconds = time.perf_counter() - start

    points = tuning.trial_points(search)
    completed = [p for p in points if p["status"] == "COMPLETED"]
    metadata = {
        "command": "tune",
        "dataset": dataset,
        "train_split": train_split,
        "split": split,
        "model": "binary_cnn",
        "width": width or 1.0,
        "fault_rate": fault_rate,
        "tuner": tuner,
        "search_space": (
            {"alphas": space}
            if space is not None
            else {"alpha_range": [alpha_min, alpha_max], "sampling": "log"}
        ),
        "max_trials": max_trials,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "lanmax": settings["lanmax_kwargs"],
        "technology": tech.name,
        "draws": draws,
        "confidence": confidence,
        "objective": objective,
        "energy_weight": energy_weight,
        "seed": seed,
        "search_seconds": seconds,
        "tuner_dir": os.path.abspath(search.project_dir),
        "energy_unit": (
            f"bit-units (a reliable bit read costs 1; eta(p) of technology {tech.name})"
        ),
        "plots": [],
        "package_version": tl.__version__,
    }
    report_path = os.path.join(run_dir, "report.json")
    if not completed:
        report = {
            **metadata,
            "num_trials": len(points),
            "num_completed": 0,
            "num_failed": len(points),
            "front": [],
            "hypervolume": None,
            "reference": None,
            "points": points,
        }
        messages = sorted({p.get("message", p["status"]) for p in points})
        print(f"No trial completed ({len(points)} tried): {'; '.join(messages)}")
        common.write_report(run_dir, report)
        return report

    # Hypervolume box: the all-reliable memory (eta = 1 per bit) and chance accuracy.
    reference = (completed[0]["total_bits"], 1.0 / info["num_classes"])
    title = f"LaNMax alpha search ({tuner}, {len(points)} trials), {dataset}"
    metadata["plots"] = [tuning.plot_front(points, os.path.join(run_dir, "front.png"), title)]
    report = tuning.export_json(points, report_path, reference=reference, metadata=metadata)
    front = report["front"]
    print(
        f"{len(completed)}/{len(points)} trials completed in {seconds:.0f} s; Pareto front of "
        f"{len(front)} points, hypervolume {report['hypervolume']:.4g} (reference: energy "
        f"{reference[0]:g}, accuracy {reference[1]:g})"
    )
    print_front(front, confidence)
    print(f"Report: {report_path}")
    return report


def run(flag_values, args):
    del args
    report = tune_and_report(
        common.run_dir(flag_values, "tune"),
        dataset=flag_values.dataset,
        tuner=flag_values.tuner,
        alphas=common.parse_floats("alphas", flag_values.alphas, allow_empty=True),
        alpha_min=flag_values.alpha_min,
        alpha_max=flag_values.alpha_max,
        trials=flag_values.trials,
        train_split=flag_values.train_split,
        split=flag_values.split,
        epochs=flag_values.epochs,
        batch_size=flag_values.batch_size,
        fault_rate=flag_values.fault_rate,
        draws=flag_values.draws,
        confidence=flag_values.confidence,
        seed=flag_values.seed,
        width=flag_values.width,
        learning_rate=flag_values.learning_rate,
        lanmax_warmup_epochs=flag_values.lanmax_warmup_epochs,
        max_step=flag_values.max_step,
        objective=flag_values.objective,
        energy_weight=flag_values.energy_weight,
        resume=flag_values.resume,
        technology=flag_values.technology,
    )
    return 0 if report["num_completed"] else 1
