"""`LaNMaxHyperModel`: a Keras Tuner hypermodel whose trials train with LaNMax at a tuned alpha."""

import hashlib
import math

import keras
import keras_tuner

from tf_lanmax import energy
from tf_lanmax._validation import check_int, check_one_of, check_positive, check_probability
from tf_lanmax.energy import memory_energy
from tf_lanmax.evaluation import evaluate_under_faults
from tf_lanmax.lanmax import LaNMax

#: The metrics a trial reports, with the direction Keras Tuner should rank them in.
OBJECTIVES = {"score": "max", "accuracy": "max", "energy": "min", "mean_energy": "min"}


def check_alpha_range(alpha_range):
    """Checks ``(min, max)`` with ``0 < min < max`` (both finite) and returns it as floats."""
    ok = isinstance(alpha_range, (tuple, list)) and len(alpha_range) == 2
    if ok:
        try:
            low, high = (float(v) for v in alpha_range)
        except (TypeError, ValueError):
            ok = False
        else:
            ok = math.isfinite(low) and math.isfinite(high) and 0 < low < high
    if not ok:
        raise ValueError(
            "`alpha_range` must be a pair (min, max) of finite numbers with 0 < min < max "
            f"(alpha is sampled on a log scale). Received: alpha_range={alpha_range!r}"
        )
    return low, high


def check_alphas(alphas):
    """Checks a list of two or more distinct finite alphas > 0; returns them sorted, as floats."""
    try:
        values = sorted({float(a) for a in alphas})
    except (TypeError, ValueError):
        values = []
    if len(values) < 2 or not all(math.isfinite(a) and a > 0 for a in values):
        raise ValueError(
            "`alphas` must be a list of at least 2 distinct finite numbers > 0. "
            f"Received: alphas={alphas!r}"
        )
    return values


def trial_seed(seed, alpha):
    """The seed of the trial at `alpha`: a hash of (seed, alpha), the same in every process."""
    digest = hashlib.blake2b(f"{seed}/{float(alpha)!r}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF


class LaNMaxHyperModel(keras_tuner.HyperModel):
    """Searches LaNMax's energy weight alpha with any Keras Tuner tuner.

    `build(hp)` draws ``alpha = hp.Float("alpha", *alpha_range, sampling="log")`` (or
    ``hp.Choice("alpha", alphas)`` for a fixed list), seeds Keras
    from (seed, alpha) and calls `build_model(hp)` (which may tune more hyperparameters).
    `fit(hp, model, x, validation_data=...)` trains with `tl.LaNMax(alpha)` (learning one fault
    rate per layer), then measures the accuracy under faults on `validation_data` with
    `tl.evaluate_under_faults` (a t-interval over `draws` fault draws, the same draws for every
    trial) and the memory energy at the learned rates with `tl.memory_energy`. It returns the
    metrics as a dict: ``accuracy`` (mean under faults), ``accuracy_ci_low``/``high``,
    ``loss`` (under faults), ``energy`` (total memory energy in bit-units, reliable bit = 1),
    ``mean_energy`` (E-bar, 1 = all reliable), ``energy_ratio`` (1 / E-bar), ``total_bits``,
    ``train_loss`` and ``score``.

    Keras Tuner ranks trials by one scalar only (its multi-objective mode sums the
    metrics). The default ranking ``score = accuracy - energy_weight * mean_energy``
    (an engineering choice) steers Bayesian optimisation and Hyperband; the deliverable is the
    whole trade-off: `tl.tuning.pareto_front(tuner)` computes the true non-dominated set from
    every trial's (energy, accuracy). Pass ``objective=hypermodel.objective`` to the tuner.

    Trials are deterministic: Keras' global seed (weights, shuffling, and the layers' fault
    streams unless `build_model` fixes them), LaNMax's perturbations and the evaluation draws
    depend only on (seed, alpha), so a distributed search and a serial one measure the same
    point at the same alpha. A trial whose training loss or metrics
    are not finite raises `keras_tuner.errors.FailedTrialError`: Keras Tuner records it FAILED
    (with the message) and goes on; an exception from `build_model` is recorded likewise.

    Args:
        build_model: a function ``hp -> keras.Model`` with faulty layers. An uncompiled model
            is compiled with Adam, sparse categorical cross-entropy and accuracy.
        alpha_range: ``(min, max)`` of alpha, ``0 < min < max``, sampled log-uniformly.
            Defaults to `None`: `(0.01, 10.0)`, or the extremes of `alphas`.
        alpha_step: optional ratio between consecutive alphas (> 1), which makes the
            hyperparameter a geometric grid (for `GridSearch`). Defaults to `None`.
        alphas: optional list of two or more distinct alphas > 0, instead of a range:
            ``hp.Choice``, so `GridSearch` tries each value exactly once (no floating-point
            drift of a stepped log grid) and the other tuners sample among them. Not with
            `alpha_range` or `alpha_step`. Defaults to `None`.
        epochs: training epochs per trial (Hyperband sets its own). Defaults to `3`.
        draws: fault draws of the evaluation, >= 2. Defaults to `5`.
        confidence: coverage of the accuracy interval. Defaults to `0.95`.
        energy_model: the energy model of LaNMax and of the reported energy: anything
            `tl.energy.get` resolves (an energy model, a `tl.memory` technology name, a config
            dict). Defaults to `None` (`EnergyModel()`, a = 12.8).
        energy_weight: lambda of the ``score``, >= 0 (0 ranks by accuracy alone). Defaults to
            `0.1`.
        objective: the metric `objective` names for the tuner: `"score"`, `"accuracy"`,
            `"energy"` or `"mean_energy"`. Defaults to `"score"`.
        lanmax_kwargs: other `tl.LaNMax` arguments (`learning_rate`, `max_step`,
            `warmup_epochs`...; not `alpha`, `seed`, `energy_model`). Defaults to `None`.
        seed: base seed of every trial and of the evaluation draws. Defaults to `0`.
        name: optional name of the hypermodel. Defaults to `None`.
        tunable: whether hyperparameters it defines join the search space. Defaults to `True`.

    Example:
    >>> hypermodel = tl.tuning.LaNMaxHyperModel(
    ...     lambda hp: tl.models.binary_cnn(fault_rate=1e-2, seed=0), alpha_range=(0.01, 30))
    >>> tuner = keras_tuner.RandomSearch(
    ...     hypermodel, objective=hypermodel.objective, max_trials=8, seed=1)  # 0 means no seed
    >>> tuner.search(train_ds, validation_data=test_ds)
    >>> tl.tuning.pareto_front(tuner)  # the non-dominated trials, energy ascending

    Reference: Henwood, Leduc-Primeau, Savaria, arXiv:1912.10764.
    """

    def __init__(
        self,
        build_model,
        alpha_range=None,
        alpha_step=None,
        alphas=None,
        epochs=3,
        draws=5,
        confidence=0.95,
        energy_model=None,
        energy_weight=0.1,
        objective="score",
        lanmax_kwargs=None,
        seed=0,
        name=None,
        tunable=True,
    ):
        super().__init__(name=name, tunable=tunable)
        if not callable(build_model):
            raise ValueError(
                "`build_model` must be a function hp -> keras.Model. "
                f"Received: build_model={build_model!r}"
            )
        self.build_model = build_model
        self.alphas = None
        if alphas is not None:
            if alpha_range is not None or alpha_step is not None:
                raise ValueError(
                    "Pass either `alphas` (a list) or `alpha_range`/`alpha_step`, not both. "
                    f"Received: alphas={alphas!r}, alpha_range={alpha_range!r}, "
                    f"alpha_step={alpha_step!r}"
                )
            self.alphas = check_alphas(alphas)
            alpha_range = (self.alphas[0], self.alphas[-1])
        self.alpha_range = check_alpha_range((0.01, 10.0) if alpha_range is None else alpha_range)
        if alpha_step is not None and not (
            isinstance(alpha_step, (int, float)) and math.isfinite(alpha_step) and alpha_step > 1
        ):
            raise ValueError(
                "`alpha_step` must be None or a finite ratio > 1 between consecutive alphas. "
                f"Received: alpha_step={alpha_step!r}"
            )
        self.alpha_step = None if alpha_step is None else float(alpha_step)
        self.epochs = check_int("epochs", epochs, low=1)
        self.draws = check_int("draws", draws, low=2)
        self.confidence = check_probability("confidence", confidence, high=1.0 - 1e-12)
        self.energy_model = energy.get(energy_model)
        self.energy_weight = check_positive("energy_weight", energy_weight, allow_zero=True)
        self.objective_name = check_one_of("objective", objective, tuple(OBJECTIVES))
        self.lanmax_kwargs = dict(lanmax_kwargs or {})
        reserved = {"alpha", "seed", "energy_model"} & set(self.lanmax_kwargs)
        if reserved:
            raise ValueError(
                f"`lanmax_kwargs` must not set {sorted(reserved)}: the hypermodel sets them per "
                f"trial. Received: lanmax_kwargs={lanmax_kwargs!r}"
            )
        self.seed = check_int("seed", seed, low=0)

    @property
    def objective(self):
        """The `keras_tuner.Objective` to pass to the tuner (name and direction)."""
        return keras_tuner.Objective(self.objective_name, OBJECTIVES[self.objective_name])

    def alpha(self, hp):
        """Registers (or reads) the trial's alpha in `hp`."""
        if self.alphas is not None:
            return hp.Choice("alpha", self.alphas)
        low, high = self.alpha_range
        return hp.Float("alpha", low, high, step=self.alpha_step, sampling="log")

    def build(self, hp):
        alpha = self.alpha(hp)
        keras.utils.set_random_seed(trial_seed(self.seed, alpha))
        model = self.build_model(hp)
        if not isinstance(model, keras.Model):
            raise keras_tuner.errors.FatalTypeError(
                f"`build_model` must return a keras.Model. Received: {model!r}"
            )
        if not model.compiled:
            model.compile(
                optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
            )
        return model

    def fit(self, hp, model, *args, validation_data=None, callbacks=None, **kwargs):
        """Trains `model` with LaNMax at the trial's alpha and returns the trial's metrics.

        Args:
            hp: the trial's `HyperParameters`.
            model: the model `build` returned.
            *args: positional arguments of `model.fit` (the training data).
            validation_data: data of the evaluation under faults (a `tf.data.Dataset` or an
                `(x, y)` tuple). It is not passed to `model.fit`. Required.
            callbacks: the tuner's callbacks, run after LaNMax. Defaults to `None`.
            **kwargs: other `model.fit` arguments (`epochs` defaults to `self.epochs`).

        Returns:
            A dict of floats (see the class docstring).

        Raises:
            keras_tuner.errors.FatalValueError: without `validation_data` (stops the search).
            keras_tuner.errors.FailedTrialError: on a non-finite loss or metric.
        """
        if validation_data is None:
            raise keras_tuner.errors.FatalValueError(
                "LaNMaxHyperModel.fit needs `validation_data` (passed to `tuner.search`): the "
                "accuracy under faults is measured on it. Received: validation_data=None"
            )
        alpha = self.alpha(hp)
        seed = trial_seed(self.seed, alpha)
        keras.utils.set_random_seed(seed)
        lanmax = LaNMax(
            alpha=alpha, energy_model=self.energy_model, seed=seed, **self.lanmax_kwargs
        )
        kwargs.setdefault("epochs", self.epochs)
        kwargs.setdefault("verbose", 0)
        all_callbacks = [lanmax, keras.callbacks.TerminateOnNaN(), *(callbacks or [])]
        history = model.fit(*args, callbacks=all_callbacks, **kwargs)
        losses = history.history.get("loss", [])
        if not losses or not all(math.isfinite(v) for v in losses):
            raise keras_tuner.errors.FailedTrialError(
                f"Trial at alpha={alpha:g} failed: the training loss is not finite "
                f"(per epoch: {losses}). Try a smaller learning rate or another alpha."
            )
        result = evaluate_under_faults(
            model,
            validation_data,
            draws=self.draws,
            confidence=self.confidence,
            seed=self.seed,
            verbose=0,
        )
        energy = memory_energy(model, self.energy_model)
        metrics = {
            "accuracy": result.mean,
            "accuracy_ci_low": result.ci[0],
            "accuracy_ci_high": result.ci[1],
            "loss": result.loss.mean,
            "energy": energy["total_energy"],
            "mean_energy": energy["mean_energy"],
            "energy_ratio": energy["ratio_vs_reliable"],
            "total_bits": float(energy["total_bits"]),
            "train_loss": float(losses[-1]),
        }
        metrics["score"] = metrics["accuracy"] - self.energy_weight * metrics["mean_energy"]
        metrics = {name: float(value) for name, value in metrics.items()}
        bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
        if bad:
            raise keras_tuner.errors.FailedTrialError(
                f"Trial at alpha={alpha:g} failed: non-finite metrics {bad}."
            )
        return metrics
