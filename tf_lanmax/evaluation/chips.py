"""Chip-to-chip evaluation: accuracy over K chips' persistent fault maps, and its quantiles.

A model whose faulty layers have `fault_persistence="persistent"` reads one fixed fault map
per chip. `tl.evaluate_under_faults(model, data, chips=K)` evaluates K chips and reports what a
fabrication run of such chips yields: the per-chip accuracies, their mean with a t-interval,
and quantiles such as the accuracy that 95 % of chips reach. This module holds the result and
the runners; `evaluate_under_faults` validates the arguments and runs them.
"""

import dataclasses

import keras
import numpy as np
from keras import ops

from tf_lanmax.evaluation.batched import DrawPasses
from tf_lanmax.evaluation.seeds import chip_index, draw_seed
from tf_lanmax.evaluation.statistics import Interval, quantile_lower_bound, t_interval
from tf_lanmax.layers import set_chip

#: The quantile levels a `ChipEvaluation` reports: q = 0.05 is the accuracy 95 % of chips reach.
QUANTILES = (0.05, 0.1, 0.5)


def is_persistent(layer):
    return getattr(layer, "fault_persistence", None) == "persistent"


@dataclasses.dataclass(frozen=True)
class ChipEvaluation:
    """Result of `evaluate_under_faults(..., chips=K)`: per-chip values and their statistics.

    `quantiles[q]` is numpy's default quantile estimator (`np.quantile`, linear interpolation
    between order statistics) of the per-chip accuracies: the accuracy a fraction ``1 - q`` of
    the evaluated chips reach. `quantile_bounds[q]` is a distribution-free lower confidence
    bound of that quantile over all chips (an order statistic, `quantile_lower_bound`, at the
    interval's confidence), or None with too few chips (59 for q = 0.05 at 95 %).

    Attributes:
        accuracy: the `Interval` (mean, t-interval) of the per-chip accuracies.
        loss: the `Interval` of the per-chip losses.
        per_chip: the accuracy of each chip, in evaluation order.
        per_chip_loss: the loss of each chip.
        chips: the chip index of each (`tl.layers.set_chip(model, chips[k])` reproduces it).
        quantiles: ``{q: accuracy}`` for each level of `QUANTILES`.
        quantile_bounds: ``{q: lower confidence bound or None}`` for the same levels.
        metric: the accuracy metric's name.
        seed: the base seed of the chip indices (and of transient layers' draws).
    """

    accuracy: Interval
    loss: Interval
    per_chip: tuple
    per_chip_loss: tuple
    chips: tuple
    quantiles: dict
    quantile_bounds: dict
    metric: str
    seed: int

    @classmethod
    def from_chips(cls, accuracies, losses, chips, metric, seed, confidence=0.95):
        """Builds the result from the per-chip values (float64 statistics).

        Args:
            accuracies: the per-chip accuracies, at least 2.
            losses: the per-chip losses.
            chips: the chip index of each.
            metric: the accuracy metric's name.
            seed: the base seed.
            confidence: coverage of the interval and of the quantile bounds.
                Defaults to `0.95`.

        Returns:
            A `ChipEvaluation`.
        """
        accuracies = tuple(float(a) for a in accuracies)
        return cls(
            accuracy=t_interval(accuracies, confidence),
            loss=t_interval(losses, confidence),
            per_chip=accuracies,
            per_chip_loss=tuple(float(v) for v in losses),
            chips=tuple(int(c) for c in chips),
            quantiles={q: float(np.quantile(np.asarray(accuracies), q)) for q in QUANTILES},
            quantile_bounds={q: quantile_lower_bound(accuracies, q, confidence) for q in QUANTILES},
            metric=metric,
            seed=int(seed),
        )

    @property
    def mean(self):
        """Mean accuracy over the chips."""
        return self.accuracy.mean

    @property
    def ci(self):
        """(low, high) confidence interval of the mean accuracy over chips."""
        return (self.accuracy.low, self.accuracy.high)

    @property
    def n_chips(self):
        return self.accuracy.n

    def quantile(self, q):
        """The `q`-quantile of the per-chip accuracies (`np.quantile`'s default estimator)."""
        return float(np.quantile(np.asarray(self.per_chip), q))

    def to_dict(self):
        """A JSON-serialisable dict (quantiles as a list of records: JSON keys are strings)."""
        return {
            "metric": self.metric,
            "chips": list(self.chips),
            "seed": self.seed,
            "accuracy": self.accuracy.to_dict(),
            "loss": self.loss.to_dict(),
            "per_chip_accuracy": list(self.per_chip),
            "per_chip_loss": list(self.per_chip_loss),
            "quantiles": [
                {
                    "q": q,
                    "accuracy": self.quantiles[q],
                    "lower_bound": self.quantile_bounds[q],
                    "confidence": self.accuracy.confidence,
                }
                for q in sorted(self.quantiles)
            ],
        }

    def __str__(self):
        a, q = self.accuracy, min(self.quantiles)
        text = (
            f"{self.metric} {a.mean:.4f} +- {a.half_width:.4f} ({a.confidence:.0%} CI over "
            f"{a.n} chips; loss {self.loss.mean:.4f}); {1 - q:.0%} of chips reach >= "
            f"{self.quantiles[q]:.4f}"
        )
        bound = self.quantile_bounds[q]
        if bound is not None:
            text += f" (>= {bound:.4f} at {a.confidence:.0%} confidence)"
        return text


def chip_runner(model, data, layers, seed, batch_size, method, batch_draws):
    """A function mapping chip positions ks to one `model.evaluate`-like dict per chip.

    Chip k sets every persistent layer to chip ``chip_index(seed, k)`` and reseeds the transient
    layer i (in `layers`' order) from ``draw_seed(seed, k, i)``, as draw k does.
    `"sequential"` does so on the model and calls `model.evaluate`; the batched methods give
    the same starting states to `DrawPasses` (the chip state ``[map_key, chip]`` of each
    persistent layer, the seed state of each transient one) and leave the model untouched.
    """
    transient = [(i, layer) for i, layer in enumerate(layers) if not is_persistent(layer)]
    if method == "sequential":
        if isinstance(data, tuple) and len(data) == 2:
            kwargs = {"x": data[0], "y": data[1], "batch_size": batch_size}
        else:
            kwargs = {"x": data}

        def run_sequential(ks):
            for k in ks:
                set_chip(model, chip_index(seed, k))
                for i, layer in transient:
                    layer.reseed(draw_seed(seed, k, i))
                yield model.evaluate(**kwargs, verbose=0, return_dict=True)

        return run_sequential

    persistent = [layer for layer in layers if is_persistent(layer)]
    states = [layer.chip_seed.state for layer in persistent]
    states += [layer.seed_generator.state for _, layer in transient]
    passes = DrawPasses(model, data, states, batch_draws, batch_size=batch_size, method=method)
    keys = [int(ops.convert_to_numpy(layer.chip_seed.state.value)[0]) for layer in persistent]
    dtypes = [keras.backend.standardize_dtype(state.dtype) for state in states]

    def run_batched(ks):
        chips = [chip_index(seed, k) for k in ks]
        values = [[[key, chip] for chip in chips] for key in keys]
        values += [[[draw_seed(seed, k, i), 0] for k in ks] for i, _ in transient]
        return passes.evaluate(
            [np.array(v, dtype=dtype) for v, dtype in zip(values, dtypes, strict=True)]
        )

    return run_batched
