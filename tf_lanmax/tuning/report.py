"""The front as a figure (every trial, front highlighted) and as JSON, both written atomically."""

import numpy as np

from tf_lanmax._io import write_json_atomic
from tf_lanmax.reports.plots import ENERGY, annotate_points, new_figure, save_figure, setting_label
from tf_lanmax.tuning.pareto import _check_array, _is_dict_list, _is_trial_source, hypervolume
from tf_lanmax.tuning.pareto import pareto_front as _pareto_front


def all_points(source):
    """Every point of `source` as a list of dicts (tuner trials include the failed ones)."""
    if _is_trial_source(source):
        from tf_lanmax.tuning.trials import trial_points

        return trial_points(source)
    if _is_dict_list(source):
        return [dict(p) for p in source]
    array = _check_array(source)
    return [{"energy": float(e), "accuracy": float(a)} for e, a in array]


def _completed(points):
    return [p for p in points if p.get("status", "COMPLETED") == "COMPLETED"]


def plot_front(source, path, title="Energy/accuracy trade-off of the alpha search", log_x=True):
    """Draws every completed trial (with its CI) and highlights the Pareto front.

    Args:
        source: the points, in any form `pareto_front` accepts.
        path: the PNG path.
        title: figure title. Defaults to a generic title.
        log_x: log scale for the energy axis. Defaults to `True`.

    Returns:
        `path`.

    Raises:
        ValueError: on bad points (see `pareto_front`).

    Example:
    >>> tl.tuning.plot_front(tuner, "docs/results/tuning_alpha_front.png")
    """
    points = all_points(source)
    completed = _completed(points)
    front = _pareto_front(completed)
    failed = len(points) - len(completed)

    fig, ax = new_figure(7.0, 4.8)

    def draw(group, **style):
        e = np.array([p["energy"] for p in group], dtype=np.float64)
        a = np.array([p["accuracy"] for p in group], dtype=np.float64)
        err = None
        if all("ci" in p for p in group):
            err = np.abs(np.array([p["ci"] for p in group], dtype=np.float64).T - a)
        ax.errorbar(e, a, yerr=err, capsize=3, ls="none", **style)
        return e, a

    draw(completed, marker="o", color="0.6", label=f"trials ({len(completed)} completed)")
    e, a = draw(front, marker="o", color="tab:red", label=f"Pareto front ({len(front)} points)")
    ax.step(e, a, where="post", color="tab:red", lw=1)
    annotate_points(ax, e, a, [setting_label(p) for p in front])
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(ENERGY)
    ax.set_ylabel("accuracy under faults (fraction of test images)")
    ax.set_title(title + (f" ({failed} failed)" if failed else ""), fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, path)


def front_report(source, reference=None, metadata=None):
    """Every point, the front and (with a reference) the hypervolume, as one JSON-ready dict.

    Args:
        source: the points, in any form `pareto_front` accepts (a tuner's failed trials are
            listed with their status and message).
        reference: optional `(energy_ref, accuracy_ref)` for the hypervolume. Defaults to
            `None`.
        metadata: optional dict merged into the top level (command, data, settings...).
            Defaults to `None`.

    Returns:
        A dict with ``front``, ``points``, ``num_trials``, ``num_completed``, ``num_failed``,
        ``front_trial_ids``, ``hypervolume``, ``reference`` and the metadata.

    Raises:
        ValueError: on bad points (see `pareto_front`) or a bad `reference`.

    Example:
    >>> points = [{"alpha": 1.0, "energy": 5.0, "accuracy": 0.9},
    ...           {"alpha": 2.0, "energy": 4.0, "accuracy": 0.8}]
    >>> report = front_report(points, reference=(10.0, 0.1))
    >>> len(report["front"]), round(report["hypervolume"], 6)
    (2, 4.7)
    """
    points = all_points(source)
    completed = _completed(points)
    front = _pareto_front(completed)
    payload = dict(metadata or {})
    payload.update(
        {
            "objectives": {"energy": "min", "accuracy": "max"},
            "num_trials": len(points),
            "num_completed": len(completed),
            "num_failed": len(points) - len(completed),
            "front_trial_ids": [p.get("trial_id") for p in front],
            "reference": None if reference is None else [float(v) for v in reference],
            "hypervolume": None if reference is None else hypervolume(completed, reference),
            "front": front,
            "points": points,
        }
    )
    return payload


def export_json(source, path, reference=None, metadata=None):
    """Writes `front_report` as JSON, atomically.

    Args:
        source: the points (see `front_report`).
        path: the JSON path.
        reference: optional `(energy_ref, accuracy_ref)` for the hypervolume. Defaults to
            `None`.
        metadata: optional dict merged into the top level. Defaults to `None`.

    Returns:
        The payload written.

    Raises:
        ValueError: on bad points (see `pareto_front`) or a bad `reference`.

    Example:
    >>> tl.tuning.export_json(tuner, "front.json", reference=(total_bits, 0.1))
    """
    payload = front_report(source, reference=reference, metadata=metadata)
    write_json_atomic(path, payload)
    return payload
