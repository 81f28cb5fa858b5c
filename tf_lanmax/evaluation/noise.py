"""`evaluate_under_noise`: accuracy against conductance-noise sigma, with CIs over draws."""

import dataclasses

import keras
import numpy as np
from keras import ops

from tf_lanmax._validation import check_int, check_positive, check_probability
from tf_lanmax.evaluation.batched import DrawPasses, check_method
from tf_lanmax.evaluation.monte_carlo import _accuracy_key, draw_seed
from tf_lanmax.evaluation.statistics import t_interval
from tf_lanmax.layers import faulty_layers
from tf_lanmax.noise import noisy_variables
from tf_lanmax.noise.conductance import _MultiplicativeNoise  # ConductanceNoise, unwarned


@dataclasses.dataclass(frozen=True)
class NoiseEvaluation:
    """Accuracy and loss intervals per sigma from `evaluate_under_noise`."""

    sigmas: tuple
    accuracy: tuple
    loss: tuple
    per_draw_accuracy: tuple
    metric: str

    def to_dict(self):
        return {
            "metric": self.metric,
            "sigmas": list(self.sigmas),
            "accuracy": [a.to_dict() for a in self.accuracy],
            "loss": [a.to_dict() for a in self.loss],
            "per_draw_accuracy": [list(a) for a in self.per_draw_accuracy],
        }

    def at(self, sigma):
        """The accuracy `Interval` at `sigma`."""
        return self.accuracy[list(self.sigmas).index(sigma)]


def evaluate_under_noise(
    model,
    data,
    sigmas,
    draws=10,
    confidence=0.95,
    seed=0,
    verbose="auto",
    batch_size=None,
    method="batched",
    batch_draws=None,
):
    """Accuracy of a trained model under memristor conductance noise, per sigma.

    For each sigma, `draws` independent noise draws ``w' = w delta``, ``delta ~ N(1, sigma^2)``
    are applied to every Conv/Dense kernel (`tl.noise.ConductanceNoise`; one draw is one
    programmed chip, fixed over the whole of `data`) and the model is evaluated on `data`.
    Returns Student-t intervals across draws (ALGORITHMS.md §6.1, §9). sigma = 0 is the clean
    model (one evaluation, zero width). Faulty layers, if any, draw their faults from per-draw
    seeds as well, so the result is reproducible.

    With `method="batched"` (the default) the noisy kernels of `batch_draws` (sigma, draw) pairs
    at a time are passed to one compiled pass per data batch; `"vectorized"` maps them on a
    draw axis (`keras.ops.vectorized_map`); `"sequential"` assigns each draw to the weights, calls
    `model.evaluate` and restores the clean weights exactly. The three draw the same noise for
    the same seed.

    Args:
        model: a compiled Keras model with an accuracy metric.
        data: a `tf.data.Dataset` of (x, y) batches or an `(x, y)` tuple.
        sigmas: iterable of sigma >= 0.
        draws: noise draws per sigma, >= 2. Defaults to `10`.
        confidence: interval coverage. Defaults to `0.95`.
        seed: base seed (draw k of sigma i uses hash(seed, k, i)). Defaults to `0`.
        verbose: `"auto"`, 0 or 1 (a progress bar over all draws). Defaults to `"auto"`.
        batch_size: batch size when `data` is arrays. Defaults to `None`.
        method: `"batched"`, `"vectorized"` or `"sequential"`. Defaults to `"batched"`.
        batch_draws: (sigma, draw) pairs per compiled pass with the batched methods, >= 1, or
            None for `draws`. Defaults to `None`.

    Returns:
        A `NoiseEvaluation`; `.at(sigma)` gives the accuracy interval at one sigma.

    Raises:
        ValueError: for a bad argument, a model without accuracy metric or kernels, or data the
            batched methods cannot read twice (use `method="sequential"`).

    Example:
    >>> result = tl.evaluate_under_noise(model, test_ds, sigmas=[0, 0.05, 0.1], draws=20)
    >>> result.at(0.1).mean, result.at(0.1).half_width
    """
    sigmas = [check_positive("sigmas", s, allow_zero=True) for s in sigmas]
    if not sigmas:
        raise ValueError("`sigmas` must hold at least one sigma >= 0. Received: sigmas=[]")
    draws = check_int("draws", draws, low=2)
    check_probability("confidence", confidence, high=1.0 - 1e-12)
    method, batch_draws = check_method(method, batch_draws)
    # One evaluation at sigma = 0: every draw is the clean model.
    jobs = [(i, k) for i, sigma in enumerate(sigmas) for k in range(1 if sigma == 0 else draws)]
    bar = None
    if verbose == 1 or (verbose == "auto" and len(sigmas) * draws >= 20):
        bar = keras.utils.Progbar(len(jobs), unit_name="draw")
    if method == "sequential":
        results = _sequential(model, data, sigmas, jobs, seed, batch_size, bar)
    else:
        results = _batched(
            model, data, sigmas, jobs, seed, batch_size, method, batch_draws or draws, bar
        )
    metric = _accuracy_key(results[0])
    accuracy, loss, per_draw = [], [], []
    for i, sigma in enumerate(sigmas):
        rows = [r for (j, _), r in zip(jobs, results, strict=True) if j == i]
        acc = [float(r[metric]) for r in rows]
        los = [float(r["loss"]) for r in rows]
        if sigma == 0:
            acc, los = acc * draws, los * draws
        accuracy.append(t_interval(acc, confidence))
        loss.append(t_interval(los, confidence))
        per_draw.append(tuple(acc))
    return NoiseEvaluation(
        sigmas=tuple(sigmas),
        accuracy=tuple(accuracy),
        loss=tuple(loss),
        per_draw_accuracy=tuple(per_draw),
        metric=metric,
    )


def _fault_seed(seed, draw, sigma_index, layer_index):
    """Seed of a faulty layer's stream in one noise draw (faulty models under noise)."""
    return draw_seed(seed, draw, f"{sigma_index}/faults/{layer_index}")


def _sequential(model, data, sigmas, jobs, seed, batch_size, bar):
    kwargs = {"x": data}
    if isinstance(data, tuple) and len(data) == 2:
        kwargs = {"x": data[0], "y": data[1], "batch_size": batch_size}
    layers = faulty_layers(model)
    results = []
    for i, k in jobs:
        for j, layer in enumerate(layers):
            layer.reseed(_fault_seed(seed, k, i, j))
        with _MultiplicativeNoise(sigmas[i]).applied(model, seed=draw_seed(seed, k, i)):
            results.append(model.evaluate(**kwargs, verbose=0, return_dict=True))
        if bar is not None:
            bar.add(1)
    return results


def _batched(model, data, sigmas, jobs, seed, batch_size, method, batch_draws, bar):
    variables = noisy_variables(model)
    states = [layer.seed_generator.state for layer in faulty_layers(model)]
    passes = DrawPasses(
        model, data, variables + states, batch_draws, batch_size=batch_size, method=method
    )
    clean = [np.array(ops.convert_to_numpy(v.value)) for v in variables]
    dtypes = [keras.backend.standardize_dtype(s.dtype) for s in states]
    results = []
    for start in range(0, len(jobs), batch_draws):
        chunk = jobs[start : start + batch_draws]
        # The same noisy values `_MultiplicativeNoise.applied` assigns for this (sigma, draw),
        # and the same fault streams the sequential path reseeds.
        values = [[] for _ in variables + states]
        for i, k in chunk:
            noise = _MultiplicativeNoise(sigmas[i])
            generator = keras.random.SeedGenerator(draw_seed(seed, k, i))
            for column, w in zip(values[: len(clean)], clean, strict=True):
                column.append(ops.convert_to_numpy(noise(w, seed=generator)))
            for j, dtype in enumerate(dtypes):
                values[len(variables) + j].append(
                    np.array([_fault_seed(seed, k, i, j), 0], dtype=dtype)
                )
        results += passes.evaluate([np.stack(column) for column in values])
        if bar is not None:
            bar.add(len(chunk))
    return results
