"""Matplotlib figures of the package's results, written atomically as PNG."""

import os

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tf_lanmax._io import atomic_path  # noqa: E402


def save_figure(figure, path):
    """Saves `figure` as PNG to `path` through a temp file in the same folder, then closes it."""
    try:
        with atomic_path(path, suffix=".png") as tmp:
            figure.savefig(tmp, dpi=120, bbox_inches="tight")
    finally:
        plt.close(figure)
    return os.fspath(path)


def plot_sensitivity(result, path):
    """Bar chart of `tl.sensitivity`'s table: accuracy with each layer at the test rate."""
    names = list(result["layers"])
    acc = np.array([result["layers"][n]["accuracy"] for n in names])
    ci = np.array([result["layers"][n]["ci"] for n in names])
    fig, ax = plt.subplots(figsize=(max(5, 0.8 * len(names) + 2), 3.5))
    ax.bar(names, acc, yerr=np.abs(ci.T - acc), capsize=3, color="tab:orange")
    ax.axhline(result["baseline"]["accuracy"], color="k", ls="--", label="all layers at their p")
    ax.set_ylabel("accuracy under faults")
    ax.set_title(f"One layer at a time at p = {result['test_rate']:g}")
    ax.tick_params(axis="x", rotation=45)
    ax.legend()
    return save_figure(fig, path)


def plot_rate_trajectories(trajectory, path, title="LaNMax: fault rate per layer"):
    """Learned p per layer over epochs, from `LaNMax.trajectory`."""
    if not trajectory:
        raise ValueError("`trajectory` must hold at least one epoch. Received: trajectory=[]")
    epochs = [entry["epoch"] for entry in trajectory]
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in trajectory[0]["rates"]:
        ax.plot(epochs, [entry["rates"][name] for entry in trajectory], marker="o", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("fault rate p")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_rates_vs_size(rows, path, title="Learned p against layer size"):
    """Scatter of learned p against stored bits; `rows` are `memory_energy` layer dicts."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for row in rows:
        ax.scatter(row["stored_bits"], row["fault_rate"])
        ax.annotate(row["name"], (row["stored_bits"], row["fault_rate"]), fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("stored bits of the layer")
    ax.set_ylabel("learned fault rate p")
    ax.set_title(title)
    return save_figure(fig, path)


def plot_energy_accuracy(families, path, reference=None, title="Accuracy vs memory energy"):
    """Accuracy (with CI) against memory energy for several families of runs.

    Args:
        families: {label: list of dicts with "energy", "accuracy", "ci"}.
        path: PNG path.
        reference: optional accuracy drawn as a horizontal line (the iso-accuracy target).
        title: figure title.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for label, points in families.items():
        points = sorted(points, key=lambda p: p["energy"])
        e = np.array([p["energy"] for p in points])
        a = np.array([p["accuracy"] for p in points])
        err = np.abs(np.array([p["ci"] for p in points]).T - a)
        ax.errorbar(e, a, yerr=err, marker="o", capsize=3, label=label)
    if reference is not None:
        ax.axhline(reference, color="k", ls=":", label="iso-accuracy target")
    ax.set_xscale("log")
    ax.set_xlabel("memory energy (bit-units, reliable bit = 1)")
    ax.set_ylabel("test accuracy under faults")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def _noise_points(data):
    # `NoiseEvaluation.to_dict()`: its points; older reports (sigmas only): one point per sigma.
    if "points" in data:
        return data["points"]
    return [
        {"sigma": s, "time": 1.0, "accuracy": a}
        for s, a in zip(data["sigmas"], data["accuracy"], strict=True)
    ]


def plot_noise_robustness(results, path, title="Accuracy under conductance noise"):
    """Accuracy vs sigma with confidence bands, one curve per trained model (at its first time).

    Args:
        results: {label: `NoiseEvaluation` or its `to_dict()`}.
        path: PNG path.
        title: figure title.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for label, result in results.items():
        data = result.to_dict() if hasattr(result, "to_dict") else result
        points = _noise_points(data)
        points = [p for p in points if p["time"] == points[0]["time"]]
        sigmas = np.array([p["sigma"] for p in points])
        mean = np.array([p["accuracy"]["mean"] for p in points])
        low = np.array([p["accuracy"]["low"] for p in points])
        high = np.array([p["accuracy"]["high"] for p in points])
        ax.plot(sigmas, mean, marker="o", label=label)
        ax.fill_between(sigmas, low, high, alpha=0.2)
    ax.set_xlabel("conductance noise sigma (relative)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.legend(loc="best")
    return save_figure(fig, path)


def plot_drift(results, path, title="Accuracy against time after programming"):
    """Accuracy vs inference time (log axis) with confidence bands, one curve per model and
    noise level, from `evaluate_under_noise(..., times=[...])`.

    Times of 0 s cannot sit on a log axis and are left out (with a note in the title).

    Args:
        results: {label: `NoiseEvaluation` or its `to_dict()`}.
        path: PNG path.
        title: figure title.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    dropped = False
    for label, result in results.items():
        data = result.to_dict() if hasattr(result, "to_dict") else result
        points = _noise_points(data)
        for sigma in dict.fromkeys(p["sigma"] for p in points):
            row = [p for p in points if p["sigma"] == sigma and p["time"] > 0]
            dropped |= len(row) < sum(p["sigma"] == sigma for p in points)
            times = np.array([p["time"] for p in row])
            mean = np.array([p["accuracy"]["mean"] for p in row])
            low = np.array([p["accuracy"]["low"] for p in row])
            high = np.array([p["accuracy"]["high"] for p in row])
            name = label if sigma is None else f"{label}, sigma {sigma:g}"
            ax.plot(times, mean, marker="o", label=name)
            ax.fill_between(times, low, high, alpha=0.2)
    ax.set_xscale("log")
    ax.set_xlabel("time after programming (s)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title + (" (t = 0 not shown)" if dropped else ""))
    ax.legend(loc="best")
    return save_figure(fig, path)
