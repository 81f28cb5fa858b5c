"""`alpha_sweep`: the same LaNMax trials over a fixed alpha grid, without a tuner."""

import math

import keras
import keras_tuner
import numpy as np


def geometric_alphas(alpha_range, num):
    """`num` alphas evenly spaced on a log scale over `alpha_range`, both ends included.

    Example:
    >>> geometric_alphas((0.01, 10.0), 4)  # [0.01, 0.1, 1.0, 10.0]
    """
    from tf_lanmax.tuning.hypermodel import check_alpha_range

    low, high = check_alpha_range(alpha_range)
    if not isinstance(num, int) or isinstance(num, bool) or num < 1:
        raise ValueError(f"`num` must be an integer >= 1. Received: num={num!r}")
    if num == 1:
        return [float(math.sqrt(low * high))]
    return [float(v) for v in np.geomspace(low, high, num)]


def alpha_sweep(hypermodel, alphas, *fit_args, **fit_kwargs):
    """Runs `hypermodel`'s trial (build, LaNMax fit, evaluation) at each alpha of a fixed grid.

    A deterministic alternative to a tuner for reproducible fronts: each trial runs exactly as
    in a search (`keras.backend.clear_session`, `hypermodel.build`, `hypermodel.fit`, seeded
    from (seed, alpha)), so the points equal a tuner's at the same alphas. Feed the result to
    `pareto_front`, `hypervolume`, `plot_front` or `export_json`.

    Args:
        hypermodel: a `LaNMaxHyperModel`.
        alphas: the alphas, each inside `hypermodel.alpha_range` (see `geometric_alphas`).
        *fit_args: passed to `hypermodel.fit` (the training data).
        **fit_kwargs: passed to `hypermodel.fit`; `validation_data` is required.

    Returns:
        A list of dicts, one per alpha in the given order: ``trial_id`` ("sweep_<i>"),
        ``status``, ``alpha``, ``hyperparameters`` and the trial's metrics (``energy``,
        ``accuracy``, ``ci``...). A trial that raises (except a fatal error) gets
        ``status="FAILED"`` and ``message`` instead of metrics, and the sweep goes on.

    Raises:
        ValueError: if `alphas` is empty or an alpha lies outside `hypermodel.alpha_range`.

    Example:
    >>> points = alpha_sweep(hypermodel, geometric_alphas((0.01, 30), 6), train_ds,
    ...                      validation_data=test_ds)
    >>> pareto_front(points)
    """
    alphas = [float(a) for a in alphas]
    if not alphas:
        raise ValueError("`alphas` must hold at least one alpha. Received: []")
    low, high = hypermodel.alpha_range
    outside = [a for a in alphas if not (math.isfinite(a) and low <= a <= high)]
    if outside:
        raise ValueError(
            f"Every alpha must lie in alpha_range=[{low:g}, {high:g}]. Received: {outside}"
        )
    points = []
    for i, alpha in enumerate(alphas):
        hp = keras_tuner.HyperParameters()
        hypermodel.alpha(hp)  # register the same hyperparameter as a search would
        hp.values["alpha"] = alpha
        point = {"trial_id": f"sweep_{i}", "alpha": alpha}
        try:
            keras.backend.clear_session()
            model = hypermodel.build(hp)
            metrics = hypermodel.fit(hp, model, *fit_args, **fit_kwargs)
        except keras_tuner.errors.FatalError:
            raise
        except Exception as error:  # a failed trial is recorded, as Keras Tuner does
            point.update(status="FAILED", message=f"{type(error).__name__}: {error}")
        else:
            point["status"] = "COMPLETED"
            point.update(metrics)
            point["ci"] = [metrics["accuracy_ci_low"], metrics["accuracy_ci_high"]]
        point["hyperparameters"] = dict(hp.values)
        points.append(point)
    return points
