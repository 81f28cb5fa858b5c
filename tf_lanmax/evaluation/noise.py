"""`evaluate_under_noise`: accuracy on an analog device, per noise level and inference time.

The noise acts on what the array holds: the deployed weights. A faulty layer deploys its stored
values (+-1 for binary weights, the fixed-point values), not its float latent kernel, so the
model is evaluated through `tl.layers.deployment_model` (plain Keras twins holding the stored
kernels; an analog array has no digital read faults). A plain Keras layer deploys its kernel.
"""

import dataclasses
import warnings

import keras
import numpy as np
from keras import ops

from tf_lanmax import analog
from tf_lanmax._draw_runner import chunks
from tf_lanmax._validation import check_int, check_positive, check_probability
from tf_lanmax.evaluation.batched import DrawPasses, check_method
from tf_lanmax.evaluation.monte_carlo import _accuracy_key
from tf_lanmax.evaluation.seeds import draw_seed
from tf_lanmax.evaluation.statistics import t_interval
from tf_lanmax.layers import deployment_model, faulty_layers
from tf_lanmax.noise import noisy_variables


@dataclasses.dataclass(frozen=True)
class NoisePoint:
    """One setting of `evaluate_under_noise`: a noise level (or the device's own) at a time."""

    sigma: object  # a float, or None for the device's own noise
    time: float
    accuracy: object  # `Interval` over the draws
    loss: object
    per_draw_accuracy: tuple

    def to_dict(self):
        return {
            "sigma": self.sigma,
            "time": self.time,
            "accuracy": self.accuracy.to_dict(),
            "loss": self.loss.to_dict(),
            "per_draw_accuracy": list(self.per_draw_accuracy),
        }


@dataclasses.dataclass(frozen=True)
class NoiseEvaluation:
    """Accuracy and loss intervals per (sigma, time) from `evaluate_under_noise`.

    `points` is sigma-major: every time of the first sigma, then the second sigma, ... With one
    time (drift-free devices) `accuracy`, `loss` and `per_draw_accuracy` are therefore indexed
    like `sigmas`.
    """

    device: dict
    sigmas: tuple
    times: tuple
    points: tuple
    metric: str
    clean_accuracy: float

    @property
    def accuracy(self):
        """The accuracy `Interval` of every point, in `points` order."""
        return tuple(p.accuracy for p in self.points)

    @property
    def loss(self):
        return tuple(p.loss for p in self.points)

    @property
    def per_draw_accuracy(self):
        return tuple(p.per_draw_accuracy for p in self.points)

    def at(self, sigma=None, time=None):
        """The accuracy `Interval` at `sigma` and `time` (either may be left out when the
        evaluation has only one)."""
        return self.point(sigma, time).accuracy

    def point(self, sigma=None, time=None):
        """The `NoisePoint` at `sigma` and `time`."""
        sigma = _pick("sigma", sigma, self.sigmas)
        time = _pick("time", time, self.times)
        return next(p for p in self.points if p.sigma == sigma and p.time == time)

    def to_dict(self):
        return {
            "device": self.device,
            "metric": self.metric,
            "clean_accuracy": self.clean_accuracy,
            "sigmas": list(self.sigmas),
            "times": list(self.times),
            "accuracy": [a.to_dict() for a in self.accuracy],
            "loss": [a.to_dict() for a in self.loss],
            "per_draw_accuracy": [list(a) for a in self.per_draw_accuracy],
            "points": [p.to_dict() for p in self.points],
        }


def _pick(name, value, allowed):
    if value is None:
        if len(allowed) != 1:
            raise ValueError(f"`{name}` is needed: this evaluation has {name}s {list(allowed)}.")
        return allowed[0]
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {list(allowed)}. Received: {name}={value!r}")
    return value


def evaluate_under_noise(
    model,
    data,
    sigmas=None,
    draws=10,
    confidence=0.95,
    seed=0,
    verbose="auto",
    batch_size=None,
    method="batched",
    batch_draws=None,
    *,
    device="multiplicative",
    times=None,
):
    """Accuracy of a trained model on an analog (memristor) device, per noise level and time.

    Each draw programs one chip: every Conv/Dense kernel the array holds is mapped to
    conductances and read through `device` (`tl.analog.perturb_weights`: programming noise,
    drift at the inference time, read noise), fixed over the whole of `data`. Draw k of a noise
    level is the same chip at every time, so the curve over `times` follows the same chips as
    they drift. Returns Student-t intervals across draws per (sigma, time).

    Noise acts on the deployed weights: +-1 for binary faulty layers, the stored fixed-point
    values, the float kernel of a plain Keras layer (see `tl.layers.deployment_model`). A
    setting that cannot change the result says so with a warning: `times` on a device without
    drift, or a noise level that changed no prediction and no loss.

    With `method="batched"` (the default) the noisy kernels of `batch_draws` draws at a time
    are passed to one compiled pass per data batch; `"vectorized"` maps them on a draw axis;
    `"sequential"` assigns each draw to the weights, calls `model.evaluate` and restores the
    clean weights exactly. The three give the same result for the same seed.

    Args:
        model: a compiled Keras model with an accuracy metric (Sequential or Functional when it
            has faulty layers).
        data: a `tf.data.Dataset` of (x, y) batches or an `(x, y)` tuple.
        sigmas: noise levels >= 0 that replace the device's `sigma` (devices with one sigma:
            `"multiplicative"`, `"additive"`), or None for the device as given. sigma = 0 is
            the clean model (one evaluation, zero width). Defaults to `None`.
        draws: chips per noise level, >= 2. Defaults to `10`.
        confidence: interval coverage. Defaults to `0.95`.
        seed: base seed (draw k of sigma i uses hash(seed, k, i)). Defaults to `0`.
        verbose: `"auto"`, 0 or 1 (a progress bar over all draws). Defaults to `"auto"`.
        batch_size: batch size when `data` is arrays. Defaults to `None`.
        method: `"batched"`, `"vectorized"` or `"sequential"`. Defaults to `"batched"`.
        batch_draws: draws per compiled pass with the batched methods, >= 1, or None for
            `draws`. Defaults to `None`.
        device: a `tl.analog` preset name or `tl.analog.Device`. Defaults to
            `"multiplicative"`.
        times: inference times in seconds after programming (>= 0), or None for 1 s.
            Defaults to `None`.

    Returns:
        A `NoiseEvaluation`; `.at(sigma, time)` gives one accuracy interval.

    Raises:
        ValueError: for a bad argument, a model without accuracy metric or kernels, `sigmas`
            with a device that has no single sigma, or data the batched methods cannot read
            twice (use `method="sequential"`).

    Example:
    >>> result = tl.evaluate_under_noise(model, test_ds, device="pcm", times=[1, 3600, 86400])
    >>> result.at(time=86400).mean, result.at(time=86400).half_width
    """
    device = analog.get(device)
    sigmas = _check_sigmas(sigmas, device)
    times = _check_times(times, device)
    draws = check_int("draws", draws, low=2)
    check_probability("confidence", confidence, high=1.0 - 1e-12)
    method, batch_draws = check_method(method, batch_draws)
    target = _deployed(model)
    variables = noisy_variables(target)
    # Drift-free devices read the same at every time: evaluate one time, report it for all.
    read_times = times if device.has_drift else times[:1]
    devices = [device if s is None else _with_sigma(device, s) for s in sigmas]
    clean = [np.array(ops.convert_to_numpy(ops.convert_to_tensor(v.value))) for v in variables]
    jobs = [("clean", None, None)]
    jobs += [
        (i, j, k)
        for i, sigma in enumerate(sigmas)
        if sigma != 0
        for j in range(len(read_times))
        for k in range(draws)
    ]
    bar = None
    if verbose == 1 or (verbose == "auto" and len(jobs) >= 20):
        bar = keras.utils.Progbar(len(jobs), unit_name="draw")

    def values_of(job):
        i, j, k = job
        if i == "clean":
            return clean
        generator = keras.random.SeedGenerator(draw_seed(seed, k, i))
        return [
            ops.convert_to_numpy(
                analog.perturb_weights(devices[i], w, t_inference=read_times[j], seed=generator)
            )
            for w in clean
        ]

    if method == "sequential":
        results = _sequential(target, data, variables, jobs, values_of, batch_size, bar)
    else:
        passes = DrawPasses(
            target, data, variables, batch_draws or draws, batch_size=batch_size, method=method
        )
        results = []
        # A chunk of jobs at a time, so that only one chunk's noisy kernels are held at once.
        for chunk in chunks(len(jobs), batch_draws or draws):
            columns = list(zip(*[values_of(job) for job in jobs[chunk.slice]], strict=True))
            results += passes.evaluate([np.stack(column) for column in columns])
            if bar is not None:
                bar.add(chunk.count)
    metric = _accuracy_key(results[0])
    clean_row = results[0]
    points = []
    for i, sigma in enumerate(sigmas):
        for j, time in enumerate(times):
            if sigma == 0:
                rows = [clean_row] * draws
            else:
                j_read = j if device.has_drift else 0
                rows = [r for job, r in zip(jobs, results, strict=True) if job[:2] == (i, j_read)]
                _warn_if_unchanged(rows, clean_row, metric, device, sigma, time)
            accuracy = [float(r[metric]) for r in rows]
            loss = [float(r["loss"]) for r in rows]
            points.append(
                NoisePoint(
                    sigma=sigma,
                    time=time,
                    accuracy=t_interval(accuracy, confidence),
                    loss=t_interval(loss, confidence),
                    per_draw_accuracy=tuple(accuracy),
                )
            )
    return NoiseEvaluation(
        device=keras.saving.serialize_keras_object(device),
        sigmas=tuple(sigmas),
        times=tuple(times),
        points=tuple(points),
        metric=metric,
        clean_accuracy=float(clean_row[metric]),
    )


def _check_sigmas(sigmas, device):
    if sigmas is None:
        return [None]
    sigmas = [check_positive("sigmas", s, allow_zero=True) for s in sigmas]
    if not sigmas:
        raise ValueError("`sigmas` must hold at least one sigma >= 0, or be None.")
    if "sigma" not in device.get_config():
        raise ValueError(
            f"`sigmas` sets the device's sigma, and device '{device.name}' has none (its noise "
            "is a published fit). Allowed: sigmas=None, or a device with a sigma: "
            f"{[n for n in analog.names() if 'sigma' in analog.get(n).get_config()]}. "
            f"Received: sigmas={sigmas}"
        )
    return sigmas


def _check_times(times, device):
    if times is None:
        return [1.0]
    times = [check_positive("times", t, allow_zero=True) for t in times]
    if not times:
        raise ValueError("`times` must hold at least one time >= 0 (seconds), or be None.")
    if len(set(times)) != len(times):
        raise ValueError(f"`times` must not repeat a time. Received: times={times}")
    if len(times) > 1 and not device.has_drift:
        warnings.warn(
            f"Device '{device.name}' does not drift: the {len(times)} `times` give the same "
            "accuracy (evaluated once).",
            stacklevel=3,
        )
    return times


def _with_sigma(device, sigma):
    return type(device).from_config({**device.get_config(), "sigma": sigma})


def _deployed(model):
    """The model whose kernels are the deployed weights: `model`, or its deployment twin."""
    if not faulty_layers(model):
        return model
    twin = deployment_model(model)
    if twin is None:
        raise ValueError(
            f"Model '{model.name}' has faulty layers and is subclassed: analog noise acts on the "
            "deployed (stored) weights, which needs a Sequential or Functional model "
            "(tl.layers.deployment_model)."
        )
    if not getattr(model, "compiled", False):
        raise ValueError(f"Model '{model.name}' must be compiled (with a loss and metrics) first.")
    twin.compile_from_config(model.get_compile_config())
    return twin


def _warn_if_unchanged(rows, clean_row, metric, device, sigma, time):
    same = all(r["loss"] == clean_row["loss"] and r[metric] == clean_row[metric] for r in rows)
    if same:
        level = "its own noise" if sigma is None else f"sigma={sigma:g}"
        warnings.warn(
            f"Device '{device.name}' at {level}, t={time:g} s changed no prediction and no loss "
            "in any draw: this setting cannot affect this model.",
            stacklevel=3,
        )


def _sequential(model, data, variables, jobs, values_of, batch_size, bar):
    kwargs = {"x": data}
    if isinstance(data, tuple) and len(data) == 2:
        kwargs = {"x": data[0], "y": data[1], "batch_size": batch_size}
    clean = [np.array(ops.convert_to_numpy(ops.convert_to_tensor(v.value))) for v in variables]
    results = []
    try:
        for job in jobs:
            for v, value in zip(variables, values_of(job), strict=True):
                v.assign(value)
            results.append(model.evaluate(**kwargs, verbose=0, return_dict=True))
            if bar is not None:
                bar.add(1)
    finally:
        for v, value in zip(variables, clean, strict=True):
            v.assign(value)
    return results
