"""`evaluate_under_faults`: accuracy and loss over K fault draws or K chips, with a CI."""

import dataclasses
import random
import warnings

import keras
import numpy as np
from keras import ops

from tf_lanmax._validation import check_int, check_probability
from tf_lanmax.evaluation.batched import DrawPasses, check_method
from tf_lanmax.evaluation.chips import ChipEvaluation, chip_runner, is_persistent
from tf_lanmax.evaluation.seeds import chip_index, draw_seed
from tf_lanmax.evaluation.statistics import Interval, draws_for_half_width, t_interval
from tf_lanmax.layers import faulty_layers


@dataclasses.dataclass(frozen=True)
class FaultEvaluation:
    """Result of `evaluate_under_faults`: per-draw values and their intervals."""

    accuracy: Interval
    loss: Interval
    per_draw_accuracy: tuple
    per_draw_loss: tuple
    metric: str

    @property
    def mean(self):
        """Mean accuracy over the draws."""
        return self.accuracy.mean

    @property
    def ci(self):
        """(low, high) confidence interval of the mean accuracy."""
        return (self.accuracy.low, self.accuracy.high)

    @property
    def draws(self):
        return self.accuracy.n

    @property
    def non_finite_draws(self):
        """Draws whose loss is NaN or inf: a non-finite output (an IEEE exponent fault, say)
        reached the loss. Counted, not hidden: the loss interval is then NaN too."""
        return int(np.sum(~np.isfinite(np.asarray(self.per_draw_loss, dtype=np.float64))))

    def to_dict(self):
        return {
            "metric": self.metric,
            "accuracy": self.accuracy.to_dict(),
            "loss": self.loss.to_dict(),
            "per_draw_accuracy": list(self.per_draw_accuracy),
            "per_draw_loss": list(self.per_draw_loss),
            "non_finite_draws": self.non_finite_draws,
        }

    def __str__(self):
        a = self.accuracy
        text = (
            f"{self.metric} {a.mean:.4f} +- {a.half_width:.4f} "
            f"({a.confidence:.0%} CI over {a.n} fault draws; loss {self.loss.mean:.4f})"
        )
        if self.non_finite_draws:
            text += f"; {self.non_finite_draws} of {a.n} draws gave non-finite outputs"
        return text


def _accuracy_key(results):
    keys = [k for k in results if "acc" in k]
    if not keys:
        raise ValueError(
            "evaluate_under_faults needs an accuracy metric: compile the model with "
            f"metrics=['accuracy']. The model reports: {sorted(results)}"
        )
    return keys[0]


def evaluate_under_faults(
    model,
    data,
    draws=None,
    confidence=0.95,
    target_half_width=None,
    max_draws=200,
    seed=0,
    verbose="auto",
    batch_size=None,
    method="batched",
    batch_draws=None,
    chips=None,
):
    """Evaluates a compiled model under K independent fault draws, or on K chips.

    Draw k seeds every faulty layer from ``hash(seed, k, layer)`` and evaluates `data` with
    faults redrawn at every forward pass (one pattern per data batch), as in training: the scope
    of a draw is one pass over `data`. Reports the mean accuracy and loss with a Student-t
    interval across draws. With `target_half_width`, `draws` is the pilot and
    K is raised until the interval's half-width is at most the target (sequential stopping, which
    slightly under-covers) or `max_draws` is reached.

    With `chips=K`, for a model with persistent faulty layers (`fault_persistence=
    "persistent"`), chip k sets every persistent layer to chip ``chip_index(seed, k)`` (a hash
    of (seed, k); `tl.layers.set_chip`), whose fixed fault map is read on every batch; the
    transient layers of a mixed model draw as in draw k. The result is a `ChipEvaluation`: the
    accuracy and loss of each chip, their mean with a t-interval over chips, and the quantiles
    of the per-chip accuracy (numpy's default estimator) with distribution-free lower confidence
    bounds from order statistics, e.g. the accuracy that 95 % of chips reach (the 5 % quantile).
    The model's chips and seed states are restored afterwards. Plain draws on a model whose
    faulty layers are all persistent read one chip K times: a warning points to `chips`.

    With `method="batched"` (the default) each data batch is read once per chunk of
    `batch_draws` draws and one compiled pass runs all of them (Keras' test step per draw, on
    per-draw seed states and metric states); `"vectorized"` maps the draws on a draw axis
    (`keras.ops.vectorized_map`, for accelerators; not on torch, whose generator `torch.vmap`
    cannot trace); `"sequential"` calls `model.evaluate` once
    per draw. All three draw the same fault patterns (and chips) for the same seed, so they
    agree draw by draw (chip by chip) up to float rounding.

    Args:
        model: a compiled Keras model with faulty layers and an accuracy metric.
        data: a `tf.data.Dataset` of (x, y) batches, or a tuple `(x, y)` of arrays.
        draws: number of draws K (the pilot with `target_half_width`), >= 2, or None for 10
            draws; not with `chips`. Defaults to `None`.
        confidence: coverage of the interval (and of the chip quantiles' bounds).
            Defaults to `0.95`.
        target_half_width: wanted half-width of the accuracy interval, or None; not with
            `chips`. Defaults to `None`.
        max_draws: upper bound on K with `target_half_width`. Defaults to `200`.
        seed: int base seed (reproducible draws and chips) or None (fresh draws: the sequential
            method continues the layers' streams, the batched ones take a base seed from the
            first faulty layer's stream; with `chips`, a random base seed, kept in the result).
            Defaults to `0`.
        verbose: `"auto"`, 0 or 1; shows a progress bar over draws. Defaults to `"auto"`.
        batch_size: batch size when `data` is arrays. Defaults to `None` (Keras' 32).
        method: `"batched"`, `"vectorized"` or `"sequential"`. Defaults to `"batched"`.
        batch_draws: draws (or chips) per compiled pass with the batched methods (memory grows
            with it under `"vectorized"`), >= 1, or None for all of them. Defaults to `None`.
        chips: number of chips K >= 2 to evaluate, or None for fault draws. Defaults to `None`.

    Returns:
        A `FaultEvaluation` (`.mean`, `.ci`, `.accuracy`, `.loss`, `.to_dict()`), or with
        `chips` a `ChipEvaluation` (`.per_chip`, `.mean`, `.ci`, `.quantiles`, `.to_dict()`).

    Raises:
        ValueError: for a bad argument (`chips` with `draws` or `target_half_width`, `chips` on
            a model without persistent faulty layers, `"vectorized"` on torch), a model
            without faulty layers or accuracy metric, or data the batched methods cannot read
            twice (use `method="sequential"`).

    Example:
    >>> model = keras.Sequential([
    ...     keras.Input((8,)),
    ...     tl.FaultyDense(3, fault_rate=0.1, fault_persistence="persistent", seed=0),
    ...     keras.layers.Softmax(),
    ... ])
    >>> model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    >>> x, y = np.random.rand(64, 8).astype("float32"), np.arange(64) % 3
    >>> result = tl.evaluate_under_faults(model, (x, y), chips=20, verbose=0)
    >>> len(result.per_chip), sorted(result.quantiles)
    (20, [0.05, 0.1, 0.5])
    >>> print(result)  # accuracy 0.3422 +- 0.0171 (95% CI over 20 chips; ...); 95% of chips ...
    """
    if chips is not None:
        if draws is not None:
            raise ValueError(
                "`chips` and `draws` exclude each other: `chips=K` evaluates K chips (one "
                "persistent fault map each), `draws=K` K transient fault draws. Pass one. "
                f"Received: chips={chips!r}, draws={draws!r}"
            )
        chips = check_int("chips", chips, low=2)
        if target_half_width is not None:
            raise ValueError(
                "`target_half_width` does not apply with `chips`: the chip quantiles and their "
                "bounds need a number of chips fixed in advance. Received: "
                f"chips={chips}, target_half_width={target_half_width!r}"
            )
    else:
        draws = check_int("draws", 10 if draws is None else draws, low=2)
        max_draws = check_int("max_draws", max_draws, low=draws)
    check_probability("confidence", confidence, high=1.0 - 1e-12)
    if target_half_width is not None and not target_half_width > 0:
        raise ValueError(
            f"`target_half_width` must be > 0 or None. Received: target_half_width="
            f"{target_half_width!r}"
        )
    method, batch_draws = check_method(method, batch_draws)
    if method == "vectorized" and keras.backend.backend() == "torch":
        # Keras' torch generator is seeded through a host integer (`.item()`), which `torch.vmap`
        # cannot trace: the fault draws cannot be mapped on a draw axis.
        raise ValueError(
            "`method='vectorized'` cannot draw faults on the torch backend (its random "
            "generator is seeded on the host, which torch.vmap cannot trace). Use "
            "method='batched' (the default, same draws) or 'sequential'. Received: "
            "method='vectorized'"
        )
    layers = faulty_layers(model)
    if not layers:
        raise ValueError(f"Model '{model.name}' has no faulty layer to draw faults for.")
    persistent = [layer for layer in layers if is_persistent(layer)]
    if chips is not None and not persistent:
        raise ValueError(
            f"`chips` needs faulty layers with fault_persistence='persistent'; those of model "
            f"'{model.name}' are all transient, so every fault draw is a new chip already: pass "
            f"`draws` instead. Received: chips={chips}"
        )
    if chips is None and len(persistent) == len(layers):
        warnings.warn(
            f"Every faulty layer of model '{model.name}' has fault_persistence='persistent': all "
            f"{draws} draws read the chip the layers are set to and give the same result. Pass "
            f"`chips={draws}` to evaluate {draws} chips, or choose the chip with "
            "`tl.layers.set_chip`.",
            stacklevel=2,
        )
    count = draws if chips is None else chips
    accuracies, losses, metric = [], [], None
    bar = None
    if verbose == 1 or (verbose == "auto" and target_half_width is None and count >= 5):
        bar = keras.utils.Progbar(
            count if target_half_width is None else None,
            unit_name="draw" if chips is None else "chip",
        )

    def run_draws(run, first, count):
        nonlocal metric
        for results in run(range(first, first + count)):
            metric = metric or _accuracy_key(results)
            accuracies.append(float(results[metric]))
            losses.append(float(results["loss"]))
        if bar is not None:
            bar.add(count, [(metric, accuracies[-1])])

    if chips is not None:
        seed = random.SystemRandom().randrange(2**31) if seed is None else seed
        states = [layer.chip_seed.state for layer in persistent]
        states += [layer.seed_generator.state for layer in layers]
        saved = [ops.convert_to_numpy(state.value) for state in states]
        try:
            run = chip_runner(model, data, layers, seed, batch_size, method, batch_draws or chips)
            run_draws(run, 0, chips)
        finally:
            for state, value in zip(states, saved, strict=True):
                state.assign(value)
        return ChipEvaluation.from_chips(
            accuracies,
            losses,
            [chip_index(seed, k) for k in range(chips)],
            metric,
            seed,
            confidence,
        )
    if method == "sequential":
        run = _sequential_runner(model, data, layers, seed, batch_size)
    else:
        run = _batched_runner(model, data, layers, seed, batch_size, method, batch_draws or draws)
    run_draws(run, 0, draws)
    if target_half_width is not None:
        k = draws
        while k < max_draws and t_interval(accuracies, confidence).half_width > target_half_width:
            std = float(np.std(accuracies, ddof=1))
            goal = draws_for_half_width(std, target_half_width, confidence)
            count = min(goal, max_draws) - k if goal > k else 1
            run_draws(run, k, count)
            k += count
    return FaultEvaluation(
        accuracy=t_interval(accuracies, confidence),
        loss=t_interval(losses, confidence),
        per_draw_accuracy=tuple(accuracies),
        per_draw_loss=tuple(losses),
        metric=metric,
    )


def _sequential_runner(model, data, layers, seed, batch_size):
    if isinstance(data, tuple) and len(data) == 2:
        kwargs = {"x": data[0], "y": data[1], "batch_size": batch_size}
    else:
        kwargs = {"x": data}

    def run(ks):
        for k in ks:
            if seed is not None:
                for i, layer in enumerate(layers):
                    layer.reseed(draw_seed(seed, k, i))
            yield model.evaluate(**kwargs, verbose=0, return_dict=True)

    return run


def _batched_runner(model, data, layers, seed, batch_size, method, batch_draws):
    states = [layer.seed_generator.state for layer in layers]
    passes = DrawPasses(model, data, states, batch_draws, batch_size=batch_size, method=method)
    if seed is None:
        seed = int(
            ops.convert_to_numpy(
                keras.random.randint((), 0, 2**31 - 1, seed=layers[0].seed_generator)
            )
        )
    dtypes = [keras.backend.standardize_dtype(s.dtype) for s in states]

    def run(ks):
        # Draw k starts each layer's stream where `layer.reseed(draw_seed(seed, k, i))` puts it.
        values = [
            np.array([[draw_seed(seed, k, i), 0] for k in ks], dtype=dtype)
            for i, dtype in enumerate(dtypes)
        ]
        return passes.evaluate(values)

    return run
