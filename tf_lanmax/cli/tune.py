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

import dataclasses
import os
import time

import tf_lanmax as tl
from tf_lanmax.cli import common, shared
from tf_lanmax.cli.options import InvalidOption, at_least, check_fields, each, option, positive

TUNERS = ("grid", "random", "bayesian", "hyperband")
PROJECT = "tuner"  # Keras Tuner's project folder inside --run_dir
HYPERBAND_FACTOR = 3


def _hypermodel_check(name, value):
    """Constructs a `tl.tuning.LaNMaxHyperModel` with this one argument."""
    tl.tuning.LaNMaxHyperModel(lambda hp: None, **{name: value})


def _max_step_check(name, value):
    tl.LaNMax(max_step=value)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """`lanmax tune`'s settings; see the module docstring."""

    tuner: str = option("grid", "Keras Tuner search over alpha.", choices=TUNERS)
    alphas: tuple[float, ...] = option(
        (),
        "Alphas the search may take (>= 2 distinct, > 0). Defaults to the range: a geometric "
        "grid of --trials alphas for grid, log-uniform for the other tuners.",
        check=each(positive()),
    )
    alpha_min: float = option(0.01, "Smallest alpha of the search range (> 0).", check=positive())
    alpha_max: float = option(
        30.0, "Largest alpha of the search range (> --alpha_min).", check=positive()
    )
    trials: int = option(
        6,
        "Trials of random / bayesian search; alphas of grid search without --alphas.",
        check=at_least(1),
    )
    objective: str = option(
        "score",
        "Metric the tuner ranks trials by (a tl.tuning objective); score = accuracy - "
        "energy_weight * E-bar.",
        check=_hypermodel_check,
    )
    energy_weight: float = option(
        0.1, "Weight of E-bar in the score objective (>= 0).", check=_hypermodel_check
    )
    max_step: float = option(
        1.0, "LaNMax: largest change of ln p per epoch (> 0).", check=_max_step_check
    )
    resume: bool = option(False, "Continue the search in <run_dir>/tuner, not start over.")
    dataset: str = shared.dataset()
    train_split: str = shared.train_split()
    split: str = shared.split()
    epochs: int = shared.epochs()
    batch_size: int = shared.batch_size()
    learning_rate: float = shared.learning_rate()
    width: float | None = shared.width()
    fault_rate: float = shared.fault_rate()
    lanmax_warmup_epochs: int = shared.lanmax_warmup_epochs()
    technology: str | None = shared.technology()
    draws: int = shared.draws()
    confidence: float = shared.confidence()
    seed: int = shared.seed()

    def __post_init__(self):
        check_fields(self)
        if self.alphas:
            if len(set(self.alphas)) < 2:
                raise InvalidOption(
                    "alphas",
                    self.alphas,
                    "must list at least 2 distinct alphas (a front needs several trials)",
                )
        else:
            try:
                tl.tuning.LaNMaxHyperModel(
                    lambda hp: None, alpha_range=(self.alpha_min, self.alpha_max)
                )
            except ValueError as error:
                raise InvalidOption("alpha_max", self.alpha_max, error) from None
            if self.tuner == "grid" and self.trials < 2:
                raise InvalidOption("trials", self.trials, "a grid over the range needs >= 2")
        if self.tuner == "hyperband" and self.epochs < HYPERBAND_FACTOR:
            raise InvalidOption(
                "epochs",
                self.epochs,
                f"must be >= {HYPERBAND_FACTOR} with --tuner=hyperband: its successive halving "
                f"(factor {HYPERBAND_FACTOR}) first trains for --epochs/{HYPERBAND_FACTOR} epochs",
            )


def search_alphas(settings):
    """The alphas a search may take: `alphas`, a geometric grid for `grid`, or None (the range).

    Example:
    >>> [round(a, 6) for a in search_alphas(Settings(alpha_min=0.01, alpha_max=10.0, trials=4))]
    [0.01, 0.1, 1.0, 10.0]
    """
    if settings.alphas:
        return sorted(set(settings.alphas))
    if settings.tuner == "grid":
        return tl.tuning.geometric_alphas((settings.alpha_min, settings.alpha_max), settings.trials)
    return None


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
    import keras_tuner

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

    import keras

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


def run(settings, run_dir, verbose=None):
    """Runs the alpha search; returns the report (its `front` empty when every trial failed).

    Keras Tuner's project is `run_dir/tuner`.
    """
    verbose = common.keras_verbose() if verbose is None else verbose
    tech = tl.memory.get(settings.technology)
    train, test, info = common.load_train_and_test(settings)
    space = search_alphas(settings)
    build_model = _builder(
        info,
        settings.width,
        settings.fault_rate,
        settings.learning_rate,
        max(1, settings.epochs * int(train.cardinality())),
        settings.seed,
    )
    hyper = {
        "epochs": settings.epochs,
        "draws": settings.draws,
        "confidence": settings.confidence,
        "energy_weight": settings.energy_weight,
        "objective": settings.objective,
        "lanmax_kwargs": {
            "max_step": settings.max_step,
            "warmup_epochs": settings.lanmax_warmup_epochs,
            "p_max": tech.ber_range[1],  # no saving is known past the last measured BER
        },
        "energy_model": tech.energy_model(),
        "seed": settings.seed,
    }
    if space is None:
        alphas = {"alpha_range": (settings.alpha_min, settings.alpha_max)}
    else:
        alphas = {"alphas": space}
    hypermodel = tl.tuning.LaNMaxHyperModel(build_model, **alphas, **hyper)
    max_trials = len(space) if settings.tuner == "grid" else settings.trials
    search = make_tuner(
        settings.tuner,
        hypermodel,
        run_dir,
        max_trials,
        settings.epochs,
        settings.seed,
        not settings.resume,
    )
    common.progress(f"{settings.tuner} search over alpha, {max_trials} trials")
    start = time.perf_counter()
    search.search(train, validation_data=test, verbose=verbose)
    seconds = time.perf_counter() - start

    points = tl.tuning.trial_points(search)
    completed = [p for p in points if p["status"] == "COMPLETED"]
    metadata = {
        "command": "tune",
        "dataset": settings.dataset,
        "train_split": settings.train_split,
        "split": settings.split,
        "model": "binary_cnn",
        "width": settings.width or 1.0,
        "fault_rate": settings.fault_rate,
        "tuner": settings.tuner,
        "search_space": (
            {"alphas": space}
            if space is not None
            else {"alpha_range": [settings.alpha_min, settings.alpha_max], "sampling": "log"}
        ),
        "max_trials": max_trials,
        "epochs": settings.epochs,
        "batch_size": settings.batch_size,
        "learning_rate": settings.learning_rate,
        "lanmax": hyper["lanmax_kwargs"],
        "technology": tech.name,
        "draws": settings.draws,
        "confidence": settings.confidence,
        "objective": settings.objective,
        "energy_weight": settings.energy_weight,
        "seed": settings.seed,
        "search_seconds": seconds,
        "tuner_dir": os.path.abspath(search.project_dir),
        "energy_unit": (
            f"bit-units (a reliable bit read costs 1; eta(p) of technology {tech.name})"
        ),
        "package_version": tl.__version__,
    }
    if not completed:
        return {
            **metadata,
            "num_trials": len(points),
            "num_completed": 0,
            "num_failed": len(points),
            "front": [],
            "hypervolume": None,
            "reference": None,
            "points": points,
        }
    # Hypervolume box: the all-reliable memory (eta = 1 per bit) and chance accuracy.
    reference = (completed[0]["total_bits"], 1.0 / info["num_classes"])
    return tl.tuning.front_report(points, reference=reference, metadata=metadata)


def plot(report, run_dir):
    if not report["num_completed"]:
        return []
    title = (
        f"LaNMax alpha search ({report['tuner']}, {report['num_trials']} trials), "
        f"{report['dataset']}"
    )
    return [tl.tuning.plot_front(report["points"], os.path.join(run_dir, "front.png"), title)]


def show(report):
    points = report["points"]
    if not report["num_completed"]:
        messages = sorted({p.get("message", p["status"]) for p in points})
        print(f"No trial completed ({len(points)} tried): {'; '.join(messages)}")
        return
    energy, accuracy = report["reference"]
    print(
        f"{report['num_completed']}/{len(points)} trials completed in "
        f"{report['search_seconds']:.0f} s; Pareto front of {len(report['front'])} points, "
        f"hypervolume {report['hypervolume']:.4g} (reference: energy {energy:g}, accuracy "
        f"{accuracy:g})"
    )
    print_front(report["front"], report["confidence"])


def exit_status(report):
    """1 when no trial completed."""
    return 0 if report["num_completed"] else 1
