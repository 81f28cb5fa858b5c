"""The power section of a MemSE report: Gmax per layer under a budget against one Gmax for all.

`power_report` runs `optimize_gmax` at a budget given relative to the power the mirror's
crossbar draws now, predicts both optima (per layer, best single Gmax) on the measured images,
optionally samples them by Monte-Carlo, and traces the MSE-vs-power curve: the data
`tl.reports.plot_mse_vs_power` draws and `lanmax memse --power_budget` reports.
"""

import time

from keras import ops

from tf_lanmax.memse.monte_carlo import monte_carlo as sample_mse
from tf_lanmax.memse.optimize import mse_power_curve, optimize_gmax


def monte_carlo_row(result, predicted=None):
    """A `MonteCarloResult` as a dict; with `predicted`, whether it lies in the interval and
    its relative error against the sampled MSE."""
    row = result.to_dict()
    if predicted is not None:
        row["predicted_in_ci"] = bool(result.ci[0] <= predicted <= result.ci[1])
        row["relative_error"] = (predicted - result.mse) / result.mse if result.mse else None
    return row


def _predicted_mse(mirror, x, gmax):
    values = gmax if isinstance(gmax, dict) else dict.fromkeys(mirror.gmax, gmax)
    tensors = {name: ops.convert_to_tensor(value, "float32") for name, value in values.items()}
    return float(ops.convert_to_numpy(ops.mean(mirror.mse(x, tensors))))


def power_report(mirror, model, x, x_calibration, budget, curve=(), steps=20, monte_carlo=None):
    """Optimises Gmax per layer at `budget` x the present power; compares one Gmax for all.

    Args:
        mirror: a `MemSE` mirror of `model` with crossbar-mapped layers.
        model: the Keras model the mirror maps (Monte-Carlo samples it).
        x: the measured images: both optima are predicted (and sampled) on them.
        x_calibration: the images `optimize_gmax` and the curve calibrate on.
        budget: the power budget in multiples of the power at the crossbar's Gmax, > 0.
        curve: budgets of the MSE-vs-power curve, same units; empty for none. Defaults to `()`.
        steps: gradient steps of `optimize_gmax` after its first-order start. Defaults to `20`.
        monte_carlo: optional `tl.memse.monte_carlo` keyword arguments (`draws`,
            `confidence`, `seed`) to sample both optima; `None` samples nothing. Defaults to
            `None`.

    Returns:
        A dict: `reference_gmax`, `reference_power`, `power_budget` (relative) and
        `power_budget_absolute`, `optimized` and `best_single` (Gmax, predicted MSE on the
        calibration images and `samples_predicted_mse` on `x`, power, and `monte_carlo`),
        `initial_gmax`, `history`, `curve` (rows with `relative_budget`), `steps`,
        `calibration_samples` and `optimize_seconds`.

    Raises:
        ValueError: for a mirror without crossbar-mapped layers, or a bad budget.

    Example:
    >>> mirror = tl.memse.MemSE(model, tl.memse.Crossbar(sigma=0.02))
    >>> power = tl.memse.power_report(mirror, model, x, x[:64], budget=1.0, curve=(0.5, 2))
    >>> power["optimized"]["predicted_mse"] <= power["best_single"]["predicted_mse"]
    True
    """
    if not mirror.gmax:
        raise ValueError(
            "power_report needs crossbar-mapped layers: every layer of the mirror keeps its "
            "digital faults, there is no Gmax to optimise."
        )
    reference = float(ops.convert_to_numpy(mirror.power(x_calibration)[0]))
    start = time.perf_counter()
    result = optimize_gmax(
        mirror,
        None,
        x_calibration,
        power_budget=budget * reference,
        steps=steps,
        max_samples=len(x_calibration),
    )
    seconds = time.perf_counter() - start
    optimized = {"gmax": result.gmax, "predicted_mse": result.predicted_mse, "power": result.power}
    single = {k: v for k, v in result.baseline.items() if k != "crossbar"}
    # The optimum is found on the calibration images; predict (and sample) it on the measured
    # images too, so that the prediction and Monte-Carlo compare on the same inputs.
    for row in (optimized, single):
        row["samples_predicted_mse"] = _predicted_mse(mirror, x, row["gmax"])
    if monte_carlo is not None:
        for row, crossbar in ((optimized, result.crossbar), (single, result.baseline["crossbar"])):
            row["monte_carlo"] = monte_carlo_row(sample_mse(model, crossbar, x, **monte_carlo))
    rows = []
    if curve:
        rows = mse_power_curve(
            mirror,
            None,
            x_calibration,
            budgets=[factor * reference for factor in curve],
            steps=0,
            max_samples=len(x_calibration),
        )
        for factor, row in zip(curve, rows, strict=True):
            row["relative_budget"] = factor
    return {
        "reference_gmax": mirror.crossbar.gmax,
        "reference_power": reference,
        "power_budget": budget,
        "power_budget_absolute": budget * reference,
        "steps": steps,
        "calibration_samples": len(x_calibration),
        "optimize_seconds": seconds,
        "optimized": optimized,
        "best_single": single,
        "initial_gmax": result.initial_gmax,
        "history": result.history,
        "curve": rows,
    }
