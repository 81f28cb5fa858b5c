"""Figures of the MemSE analysis: per-layer predicted MSE, and MSE against the power budget."""

import numpy as np

from tf_lanmax.reports.plots import save_figure


def plot_memse_layers(summary, path, monte_carlo=None):
    """Bar chart of the predicted MSE of every layer's output (graph order, log scale).

    Args:
        summary: `MemSE.summary()`-style dict with ``layers: {name: {"mse": ...}}``.
        path: PNG path (written atomically).
        monte_carlo: the output's Monte-Carlo result dict (`mse`, `ci`, `confidence`, `draws`),
            drawn as a line and band. Defaults to `None`.

    Returns:
        `path`.
    """
    from matplotlib.figure import Figure  # a bare Figure: no pyplot state, no GUI backend

    names = list(summary["layers"])
    mse = np.array([summary["layers"][n]["mse"] for n in names], dtype=np.float64)
    fig = Figure(figsize=(max(6.0, 0.55 * len(names) + 2.0), 4.0))
    ax = fig.subplots()
    xs = np.arange(len(names))
    ax.bar(xs, mse, color="tab:blue", label="MemSE predicted")
    if monte_carlo is not None:
        low, high = monte_carlo["ci"]
        ax.axhspan(low, high, color="0.5", alpha=0.3)
        ax.axhline(
            monte_carlo["mse"],
            color="k",
            lw=1,
            label=f"Monte-Carlo, output ({monte_carlo['confidence']:.0%} CI, "
            f"{monte_carlo['draws']} draws)",
        )
    positive = mse[mse > 0]
    if positive.size:  # layers before any noisy one have MSE 0: keep them off a log axis
        ax.set_yscale("log")
        ax.set_ylim(bottom=positive.min() / 2)
    ax.set_xticks(xs, names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("MSE vs the clean network")
    ax.set_title("MemSE: MSE of each layer's output", fontsize=10)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_mse_vs_power(power, path):
    """Predicted MSE against the power budget: best single Gmax vs per-layer Gmax (log-log).

    At the budget, both optima predicted on the measured images (red) and, when sampled, their
    Monte-Carlo MSE with its interval (black).

    Args:
        power: the `power` section of `lanmax memse`'s report (`curve`, `power_budget`,
            `best_single`, `optimized`, `reference_gmax`, `steps`).
        path: PNG path (written atomically).

    Returns:
        `path`.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 4.0))
    ax = fig.subplots()
    curve = sorted(power["curve"], key=lambda row: row["relative_budget"])
    if curve:
        xs = [row["relative_budget"] for row in curve]
        for key, style, label in (
            ("single", "o-", "best single"),
            ("per_layer", "s-", "per-layer"),
        ):
            mse = [row[key]["predicted_mse"] for row in curve]
            ax.plot(xs, mse, style, label=f"MemSE, {label} Gmax, calibration images")
    budget = power["power_budget"]
    for key, marker, label in (("best_single", "o", "single"), ("optimized", "s", "per-layer")):
        row = power[key]
        ax.plot(
            [budget],
            [row["samples_predicted_mse"]],
            marker,
            color="tab:red",
            mfc="none",
            ms=9,
            label=f"MemSE, {label}, measured images",
        )
        if "monte_carlo" in row:
            mc = row["monte_carlo"]
            ax.errorbar(
                [budget],
                [mc["mse"]],
                yerr=[[mc["half_width"]], [mc["half_width"]]],
                fmt=marker,
                color="k",
                mfc="none",
                capsize=3,
                label=f"Monte-Carlo, {label} ({mc['confidence']:.0%} CI)",
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"power budget (x the power at Gmax = {power['reference_gmax']:g})")
    ax.set_ylabel("MSE of the logits")
    ax.set_title(f"MSE vs power; --power_budget {budget:g}, {power['steps']} gradient steps")
    ax.legend(fontsize=8)
    return save_figure(fig, path)
