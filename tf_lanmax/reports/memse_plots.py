"""Figures of the MemSE analysis: per-layer predicted MSE, and MSE against the power budget."""

import numpy as np

from tf_lanmax.reports.plots import new_figure, save_figure


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
    names = list(summary["layers"])
    mse = np.array([summary["layers"][n]["mse"] for n in names], dtype=np.float64)
    fig, ax = new_figure(6.5, max(2.5, 0.3 * len(names) + 1.5))
    ys = np.arange(len(names))
    ax.barh(ys, mse, color="tab:blue", label="MemSE predicted")
    if monte_carlo is not None:
        low, high = monte_carlo["ci"]
        ax.axvspan(low, high, color="0.5", alpha=0.3)
        ax.axvline(
            monte_carlo["mse"],
            color="k",
            lw=1,
            label=f"Monte-Carlo, output ({monte_carlo['confidence']:.0%} CI, "
            f"{monte_carlo['draws']} draws)",
        )
    positive = mse[mse > 0]
    if positive.size:  # layers before any noisy one have MSE 0: keep them off a log axis
        ax.set_xscale("log")
        ax.set_xlim(left=positive.min() / 2)
    ax.set_yticks(ys, names, fontsize=7)
    ax.invert_yaxis()  # graph order, top to bottom
    ax.set_xlabel("MSE of the layer's output vs the clean network (squared activation units)")
    ax.set_ylabel("layer (graph order)")
    ax.set_title("MemSE: MSE of each layer's output", fontsize=10)
    # Below the axes: never over a bar.
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
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
    fig, ax = new_figure(6.5, 4.5)
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
    ax.set_ylabel("MSE of the logits (squared logit units)")
    ax.set_title(
        f"MSE vs power; --power_budget {budget:g}, {power['steps']} gradient steps", fontsize=10
    )
    ax.legend(fontsize=8)
    return save_figure(fig, path)
