"""Matplotlib figures of the package's results, written atomically as PNG.

The figures are bare `matplotlib.figure.Figure`s drawn on the Agg canvas: importing or calling
this module never picks a matplotlib backend, so notebooks keep their inline plots and servers
need no display. Every figure labels its axes with units, labels points that stand for settings
(which p, alpha or width), draws confidence intervals where the data has them, and
`save_figure` hides numeric tick labels that would overlap (dense log-axis minor labels).
"""

import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedFormatter, MaxNLocator

from tf_lanmax._io import atomic_path

#: Accuracy axis label (accuracies are fractions of the test images classified right).
ACCURACY = "accuracy (fraction of test images)"
#: Memory energy axis label (see docs/maths/energy.md).
ENERGY = "memory energy (bit-units: a reliable bit read = 1)"
#: Gap in pixels that two tick labels must keep.
TICK_GAP = 2.0


def new_figure(width, height):
    """A bare `Figure` of `width` x `height` inches on the Agg canvas, with one Axes.

    Returns:
        `(figure, axes)`.
    """
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure, figure.subplots()


def _renderer(figure):
    canvas = figure.canvas
    if not isinstance(canvas, FigureCanvasAgg):  # a figure of another backend: draw on Agg
        canvas = FigureCanvasAgg(figure)
    figure.draw(canvas.get_renderer())
    return canvas.get_renderer()


def _overlaps(box, boxes):
    return any(
        box.x0 < other.x1 + TICK_GAP
        and other.x0 < box.x1 + TICK_GAP
        and box.y0 < other.y1 + TICK_GAP
        and other.y0 < box.y1 + TICK_GAP
        for other in boxes
    )


def visible_tick_labels(axis, renderer, minor):
    """(location, text, window box) of each tick label `axis` draws inside its view."""
    low, high = sorted(axis.get_view_interval())
    locations = axis.get_minorticklocs() if minor else axis.get_majorticklocs()
    out = []
    for location, label in zip(locations, axis.get_ticklabels(minor=minor), strict=False):
        if low <= location <= high and label.get_visible() and label.get_text():
            out.append((location, label.get_text(), label.get_window_extent(renderer)))
    return out


def declutter_tick_labels(figure):
    """Blanks the numeric tick labels that would overlap a kept one (majors win over minors).

    Categorical axes (fixed string labels) are left alone: a figure must give them room.

    Args:
        figure: a matplotlib `Figure`, fully drawn (its limits final).
    """
    renderer = _renderer(figure)
    for axes in figure.axes:
        for axis in (axes.xaxis, axes.yaxis):
            if isinstance(axis.get_major_formatter(), FixedFormatter):
                continue
            kept, labels = [], {}
            for minor in (False, True):
                rows = visible_tick_labels(axis, renderer, minor)
                keep = []
                for location, text, box in sorted(rows, key=lambda row: row[0]):
                    if not _overlaps(box, kept):
                        kept.append(box)
                        keep.append((location, text))
                labels[minor] = (rows, keep)
            if all(len(rows) == len(keep) for rows, keep in labels.values()):
                continue
            for minor, (rows, keep) in labels.items():
                if rows:
                    shown = dict(keep)
                    locations = [location for location, _, _ in rows]
                    axis.set_ticks(
                        locations, [shown.get(loc, "") for loc in locations], minor=minor
                    )


def save_figure(figure, path):
    """Saves `figure` as PNG to `path` through a temp file in the same folder, then closes it.

    Overlapping numeric tick labels are thinned first (`declutter_tick_labels`) and point labels
    moved apart (`place_point_labels`). A figure made
    with pyplot is closed there too; a bare `Figure` needs no closing.

    Returns:
        `path` as a string.
    """
    try:
        declutter_tick_labels(figure)
        place_point_labels(figure)
        with atomic_path(path, suffix=".png") as tmp:
            figure.savefig(tmp, dpi=120, bbox_inches="tight")
    finally:
        if getattr(figure.canvas, "manager", None) is not None:
            import matplotlib.pyplot as plt  # only for figures pyplot made (and so manages)

            plt.close(figure)
    return os.fspath(path)


def setting_label(point):
    """The setting a result point stands for, as a short label ("α=0.3", "p=0.01", "×0.5").

    Args:
        point: a dict with an optional `label`, else `alpha`, `p` / `fault_rate`, `sigma` or
            `width`.

    Returns:
        The label, or `None` when the point names no setting.
    """
    if "label" in point:
        return str(point["label"])
    for key, fmt in (
        ("alpha", "α={:.3g}"),
        ("p", "p={:.2g}"),
        ("fault_rate", "p={:.2g}"),
        ("sigma", "σ={:.3g}"),
        ("width", "width ×{:.3g}"),
    ):
        if point.get(key) is not None:
            return fmt.format(point[key])
    return None


#: gid of the point labels `annotate_points` writes; `save_figure` moves them apart.
POINT_LABEL = "tf_lanmax-point-label"
#: Offsets (points) tried in turn for a point label: right, below, left, above, further out.
LABEL_OFFSETS = ((5, 4), (5, -11), (-5, 4), (-5, -11), (5, 13), (-5, 13), (5, -20), (-5, -20))


def annotate_points(axes, xs, ys, labels, color=None, fontsize=7):
    """Writes each label next to its point; `save_figure` then moves labels that would overlap.

    Args:
        axes: the matplotlib Axes.
        xs, ys: the points' data coordinates.
        labels: one string (or None: no label) per point.
        color: text colour. Defaults to `None` (the theme's).
        fontsize: text size in points. Defaults to `7`.
    """
    for x, y, label in zip(xs, ys, labels, strict=True):
        if label:
            axes.annotate(label, (x, y), textcoords="offset points", xytext=LABEL_OFFSETS[0],
                          fontsize=fontsize, color=color, gid=POINT_LABEL)  # fmt: skip


def place_point_labels(figure):
    """Moves each point label to the first offset in `LABEL_OFFSETS` where it stays inside its
    Axes and clear of the labels placed before it (first offset if none is free)."""
    renderer = _renderer(figure)
    for axes in figure.axes:
        frame = axes.get_window_extent(renderer)
        placed = []
        for label in [text for text in axes.texts if text.get_gid() == POINT_LABEL]:
            for dx, dy in LABEL_OFFSETS + (LABEL_OFFSETS[0],):
                label.xyann = (dx, dy)
                label.set_horizontalalignment("left" if dx >= 0 else "right")
                box = label.get_window_extent(renderer)
                inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0
                if inside and box.y1 <= frame.y1 and not _overlaps(box, placed):
                    break
            placed.append(box)


def _ci_errors(points, means):
    """Asymmetric error bars from each point's `ci` ([low, high]); None when a point has none."""
    if not points or not all(point.get("ci") is not None for point in points):
        return None
    return np.abs(np.array([point["ci"] for point in points], dtype=np.float64).T - means)


def plot_sensitivity(result, path):
    """Accuracy with each layer alone at the test rate (`tl.sensitivity`'s table), with CIs.

    One horizontal bar per layer (names never overlap), the all-layers baseline as a line with
    its interval as a band.

    Args:
        result: `tl.sensitivity`'s dict (`layers`, `baseline`, `test_rate`).
        path: PNG path (written atomically).

    Returns:
        `path`.
    """
    names = list(result["layers"])
    rows = [result["layers"][n] for n in names]
    acc = np.array([row["accuracy"] for row in rows], dtype=np.float64)
    fig, ax = new_figure(6.5, max(2.5, 0.35 * len(names) + 1.5))
    ys = np.arange(len(names))
    ax.barh(ys, acc, xerr=_ci_errors(rows, acc), capsize=3, color="tab:orange",
            label=f"this layer at p = {result['test_rate']:g} (95% CI)")  # fmt: skip
    ax.set_yticks(ys, names, fontsize=8)
    ax.invert_yaxis()  # model order, top to bottom
    baseline = result["baseline"]
    ax.axvline(baseline["accuracy"], color="k", ls="--", label="every layer at its own p")
    if baseline.get("ci") is not None:
        ax.axvspan(*baseline["ci"], color="0.5", alpha=0.2)
    ax.set_xlabel(ACCURACY + " under faults")
    ax.set_ylabel("layer at the test rate")
    ax.set_title(f"One layer at a time at p = {result['test_rate']:g}", fontsize=10)
    # Below the axes: never over a bar.
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    return save_figure(fig, path)


def plot_rate_trajectories(trajectory, path, title="LaNMax: fault rate per layer"):
    """Learned p per layer over epochs, from `LaNMax.trajectory`.

    Args:
        trajectory: list of dicts with `epoch` and `rates` ({layer: p}).
        path: PNG path (written atomically).
        title: figure title. Defaults to a generic title.

    Returns:
        `path`.

    Raises:
        ValueError: for an empty `trajectory`.
    """
    if not trajectory:
        raise ValueError("`trajectory` must hold at least one epoch. Received: trajectory=[]")
    epochs = [entry["epoch"] for entry in trajectory]
    fig, ax = new_figure(6.5, 4.0)
    for name in trajectory[0]["rates"]:
        ax.plot(epochs, [entry["rates"][name] for entry in trajectory], marker="o", label=name)
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("fault rate p (per bit read)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), title="layer")
    return save_figure(fig, path)


def plot_rates_vs_size(rows, path, title="Learned p against layer size"):
    """Learned p against stored bits, one labelled point per layer.

    Args:
        rows: `memory_energy` layer dicts (`name`, `stored_bits`, `fault_rate`).
        path: PNG path (written atomically).
        title: figure title. Defaults to a generic title.

    Returns:
        `path`.
    """
    bits = np.array([row["stored_bits"] for row in rows], dtype=np.float64)
    rates = np.array([row["fault_rate"] for row in rows], dtype=np.float64)
    fig, ax = new_figure(6.0, 4.0)
    ax.scatter(bits, rates, color="tab:blue")
    annotate_points(ax, bits, rates, [row["name"] for row in rows])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.margins(0.15)
    ax.set_xlabel("stored bits of the layer (bits)")
    ax.set_ylabel("learned fault rate p (per bit read)")
    ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


def plot_energy_accuracy(families, path, reference=None, title="Accuracy vs memory energy"):
    """Accuracy (with CI) against memory energy for several families of runs.

    Each point is labelled with the setting it stands for (`setting_label`: its alpha, p or
    width).

    Args:
        families: {label: list of dicts with "energy", "accuracy", optional "ci" and the
            setting ("alpha", "p", "width" or "label")}.
        path: PNG path.
        reference: optional accuracy drawn as a horizontal line (the iso-accuracy target).
        title: figure title.

    Returns:
        `path`.
    """
    fig, ax = new_figure(7.0, 4.8)
    for label, points in families.items():
        points = sorted(points, key=lambda p: p["energy"])
        e = np.array([p["energy"] for p in points], dtype=np.float64)
        a = np.array([p["accuracy"] for p in points], dtype=np.float64)
        lines = ax.errorbar(e, a, yerr=_ci_errors(points, a), marker="o", capsize=3, label=label)
        annotate_points(ax, e, a, [setting_label(p) for p in points], lines[0].get_color())
    if reference is not None:
        ax.axhline(reference, color="k", ls=":", label="iso-accuracy target")
    ax.set_xscale("log")
    ax.set_xlabel(ENERGY)
    ax.set_ylabel(ACCURACY + " under faults")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, path)


def _noise_points(data):
    # `NoiseEvaluation.to_dict()`: its points; older reports (sigmas only): one point per sigma.
    if "points" in data:
        return data["points"]
    return [
        {"sigma": s, "time": 1.0, "accuracy": a}
        for s, a in zip(data["sigmas"], data["accuracy"], strict=True)
    ]


def _band(ax, xs, points, label):
    mean = np.array([p["accuracy"]["mean"] for p in points], dtype=np.float64)
    ax.plot(xs, mean, marker="o", label=label)
    if all("low" in p["accuracy"] for p in points):
        low = np.array([p["accuracy"]["low"] for p in points], dtype=np.float64)
        high = np.array([p["accuracy"]["high"] for p in points], dtype=np.float64)
        ax.fill_between(xs, low, high, alpha=0.2)


def plot_noise_robustness(results, path, title="Accuracy under conductance noise"):
    """Accuracy vs sigma with 95% confidence bands, one curve per model (at its first time).

    Args:
        results: {label: `NoiseEvaluation` or its `to_dict()`}.
        path: PNG path.
        title: figure title.

    Returns:
        `path`.
    """
    fig, ax = new_figure(6.5, 4.5)
    for label, result in results.items():
        data = result.to_dict() if hasattr(result, "to_dict") else result
        points = _noise_points(data)
        points = [p for p in points if p["time"] == points[0]["time"]]
        _band(ax, np.array([p["sigma"] for p in points], dtype=np.float64), points, label)
    ax.set_xlabel("noise level σ (relative sd of a conductance, w' = w·N(1, σ²))")
    ax.set_ylabel(ACCURACY)
    ax.set_title(title + " (bands: 95% CI over draws)", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    return save_figure(fig, path)


def plot_drift(results, path, title="Accuracy against time after programming"):
    """Accuracy vs inference time (log axis) with confidence bands, one curve per model and
    noise level, from `evaluate_under_noise(..., times=[...])`.

    Times of 0 s cannot sit on a log axis and are left out (with a note in the title).

    Args:
        results: {label: `NoiseEvaluation` or its `to_dict()`}.
        path: PNG path.
        title: figure title.

    Returns:
        `path`.
    """
    fig, ax = new_figure(6.5, 4.5)
    dropped = False
    for label, result in results.items():
        data = result.to_dict() if hasattr(result, "to_dict") else result
        points = _noise_points(data)
        for sigma in dict.fromkeys(p["sigma"] for p in points):
            row = [p for p in points if p["sigma"] == sigma and p["time"] > 0]
            dropped |= len(row) < sum(p["sigma"] == sigma for p in points)
            name = label if sigma is None else f"{label}, σ = {sigma:g}"
            _band(ax, np.array([p["time"] for p in row], dtype=np.float64), row, name)
    ax.set_xscale("log")
    ax.set_xlabel("time after programming t (s)")
    ax.set_ylabel(ACCURACY)
    ax.set_title(title + (" (t = 0 not shown)" if dropped else "") + "; bands: 95% CI",
                 fontsize=10)  # fmt: skip
    ax.legend(fontsize=8, loc="best")
    return save_figure(fig, path)
