"""`evaluate_under_noise`: accuracy against conductance-noise sigma, with CIs over draws."""

import dataclasses

import keras

from tf_lanmax._validation import check_int, check_positive, check_probability
from tf_lanmax.evaluation.monte_carlo import _accuracy_key, draw_seed
from tf_lanmax.evaluation.statistics import t_interval
from tf_lanmax.noise import ConductanceNoise


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
    model, data, sigmas, draws=10, confidence=0.95, seed=0, verbose="auto", batch_size=None
):
    """Accuracy of a trained model under memristor conductance noise, per sigma.

    For each sigma, `draws` independent noise draws ``w' = w delta``, ``delta ~ N(1, sigma^2)``
    are applied to every Conv/Dense kernel (`tl.noise.ConductanceNoise`), the model is evaluated
    on `data`, and the clean weights are restored exactly. Returns Student-t intervals across
    draws (ALGORITHMS.md §6.1, §9). sigma = 0 is the clean model (one evaluation, zero width).

    Args:
        model: a compiled Keras model with an accuracy metric.
        data: a `tf.data.Dataset` of (x, y) batches or an `(x, y)` tuple.
        sigmas: iterable of sigma >= 0.
        draws: noise draws per sigma, >= 2. Defaults to `10`.
        confidence: interval coverage. Defaults to `0.95`.
        seed: base seed (draw k of sigma i uses hash(seed, k, i)). Defaults to `0`.
        verbose: `"auto"`, 0 or 1 (a progress bar over all draws). Defaults to `"auto"`.
        batch_size: batch size when `data` is arrays. Defaults to `None`.

    Returns:
        A `NoiseEvaluation`; `.at(sigma)` gives the accuracy interval at one sigma.

    Example:
    >>> result = tl.evaluate_under_noise(model, test_ds, sigmas=[0, 0.05, 0.1], draws=20)
    >>> result.at(0.1).mean, result.at(0.1).half_width
    """
    sigmas = [check_positive("sigmas", s, allow_zero=True) for s in sigmas]
    if not sigmas:
        raise ValueError("`sigmas` must hold at least one sigma >= 0. Received: sigmas=[]")
    draws = check_int("draws", draws, low=2)
    check_probability("confidence", confidence, high=1.0 - 1e-12)
    kwargs = {"x": data}
    if isinstance(data, tuple) and len(data) == 2:
        kwargs = {"x": data[0], "y": data[1], "batch_size": batch_size}
    bar = None
    if verbose == 1 or (verbose == "auto" and len(sigmas) * draws >= 20):
        bar = keras.utils.Progbar(len(sigmas) * draws, unit_name="draw")
    accuracy, loss, per_draw, metric = [], [], [], None
    for i, sigma in enumerate(sigmas):
        noise = ConductanceNoise(sigma)
        acc, los = [], []
        for k in range(1 if sigma == 0 else draws):
            with noise.applied(model, seed=draw_seed(seed, k, i)):
                results = model.evaluate(**kwargs, verbose=0, return_dict=True)
            metric = metric or _accuracy_key(results)
            acc.append(float(results[metric]))
            los.append(float(results["loss"]))
            if bar is not None:
                bar.add(draws if sigma == 0 else 1)
        if sigma == 0:  # deterministic: every draw is the clean model
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
