"""The demo's one-page figure: memory energy per layer and accuracy under faults, per run."""

import numpy as np

from tf_lanmax.reports.plots import ACCURACY, annotate_points, new_figure, save_figure


def _runs(report):
    """(label, energy summary, faulty-test dict) of each run in a `lanmax demo` report."""
    runs = [(f"fixed p = {report['fault_rate']:g}", report["energy"], report["faulty_test"])]
    if "lanmax" in report:
        lanmax = report["lanmax"]
        runs.append((f"LaNMax, α = {lanmax['alpha']:g}", lanmax["energy"], lanmax["faulty_test"]))
    return runs


def plot_demo_summary(report, path):
    """Energy per layer (bit-units, log axis) and accuracy under faults (95% CI) of each run.

    Args:
        report: the report dict of `lanmax demo` (`fault_rate`, `energy`, `faulty_test`,
            `clean_test_accuracy`, optional `lanmax` with its `alpha`, `energy`, `faulty_test`).
        path: PNG path (written atomically).

    Returns:
        `path`.
    """
    runs = _runs(report)
    names = [row["name"] for row in runs[0][1]["layers"]]
    figure, _ = new_figure(11.0, max(3.5, 0.4 * len(names) + 1.8))
    figure.clear()
    energy_axes, accuracy_axes = figure.subplots(1, 2, width_ratios=(3, 2))
    height = 0.8 / len(runs)
    ys = np.arange(len(names))
    for i, (label, energy, _) in enumerate(runs):
        rows = {row["name"]: row for row in energy["layers"]}
        values = [rows[name]["energy"] if name in rows else 0.0 for name in names]
        rates = [rows[name]["fault_rate"] if name in rows else 0.0 for name in names]
        bars = energy_axes.barh(ys + i * height, values, height, label=label)
        labels = [f"p={r:.2g}" if v > 0 and r > 0 else None for v, r in zip(values, rates)]
        annotate_points(energy_axes, values, ys + i * height, labels, bars[0].get_facecolor(), 6)
    energy_axes.set_yticks(ys + height * (len(runs) - 1) / 2, names, fontsize=8)
    energy_axes.invert_yaxis()
    energy_axes.set_xscale("log")
    energy_axes.margins(x=0.25)
    energy_axes.set_xlabel("memory energy of the layer (bit-units: a reliable bit read = 1)")
    energy_axes.set_ylabel("layer")
    energy_axes.set_title("Memory energy per layer (label: its fault rate)", fontsize=10)
    energy_axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)

    labels = ["clean (faults off)"] + [label for label, _, _ in runs]
    means = [report["clean_test_accuracy"]]
    errors = [[0.0], [0.0]]
    for _, _, faulty in runs:
        accuracy = faulty["accuracy"]
        means.append(accuracy["mean"])
        errors[0].append(accuracy["mean"] - accuracy["low"])
        errors[1].append(accuracy["high"] - accuracy["mean"])
    xs = np.arange(len(labels))
    accuracy_axes.bar(
        xs, means, yerr=errors, capsize=4, color=["0.6"] + [f"C{i}" for i in range(len(runs))]
    )
    for x, mean in zip(xs, means, strict=True):
        accuracy_axes.annotate(f"{mean:.3f}", (x, mean), xytext=(0, 6), ha="center",
                               textcoords="offset points", fontsize=8)  # fmt: skip
    accuracy_axes.set_xticks(xs, labels, fontsize=8, rotation=15, ha="right")
    low = min(means) - 0.1
    accuracy_axes.set_ylim(max(0.0, low), min(1.0, max(means) + 0.05))
    accuracy_axes.set_ylabel(ACCURACY)
    accuracy_axes.set_xlabel("run (error bars: 95% CI over fault draws)")
    accuracy_axes.set_title("Test accuracy under faults", fontsize=10)
    figure.tight_layout()
    return save_figure(figure, path)
