"""The energy/accuracy Pareto front of a set of trials, and its 2-D hypervolume (float64 numpy).

Energy is minimised and accuracy maximised. Keras Tuner's multi-objective
mode only sums its objectives, so the front is computed here from every trial's (energy,
accuracy) pair.
"""

import math
import numbers
import os
from collections.abc import Iterator, Mapping

import numpy as np


def _is_trial_source(obj):
    """Whether `obj` is a tuner, an oracle or a project folder (rather than points)."""
    return hasattr(obj, "oracle") or hasattr(obj, "trials") or isinstance(obj, (str, os.PathLike))


def _check_array(points):
    try:
        array = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(
            "`points` must be (energy, accuracy) pairs, dicts with those keys, a Keras Tuner "
            f"tuner/oracle or a project folder. Received: points={points!r}"
        ) from error
    if array.size == 0:
        raise ValueError("`points` must hold at least one (energy, accuracy) pair. Received: []")
    if array.ndim == 1 and array.size == 2:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(
            f"`points` must have shape (n, 2): (energy, accuracy) pairs. Received an array of "
            f"shape {array.shape}."
        )
    bad = ~np.isfinite(array)
    if np.any(bad):
        row, col = np.argwhere(bad)[0]
        name = ("energy", "accuracy")[col]
        raise ValueError(
            f"Every {name} must be a finite number. Received: {name}={array[row, col]!r} "
            f"at point {row}."
        )
    return array


def _as_records(points, energy_key, accuracy_key):
    """Dicts (or a tuner source) -> (list of dicts, (n, 2) float64 array)."""
    if _is_trial_source(points):
        from tf_lanmax.tuning.trials import trial_points

        records = [p for p in trial_points(points) if p["status"] == "COMPLETED"]
        if not records:
            raise ValueError(
                f"No COMPLETED trial with `{energy_key}` and `{accuracy_key}` metrics in "
                f"{points!r}: there is no front to compute."
            )
    else:
        # Trials that did not complete (alpha_sweep / trial_points dicts) have no point.
        records = [p for p in points if p.get("status", "COMPLETED") == "COMPLETED"]
    if not records:
        raise ValueError(
            f"`points` must hold at least one completed point. Received: {list(points)!r}"
        )
    for i, record in enumerate(records):
        for key in (energy_key, accuracy_key):
            if key not in record:
                raise ValueError(f"Point {i} has no `{key}` entry. Received keys: {sorted(record)}")
    array = _check_array([[r[energy_key], r[accuracy_key]] for r in records])
    return records, array


def front_indices(points):
    """Indices of the non-dominated points of an (n, 2) array, sorted by energy.

    The standard two-objective sweep: sort by energy ascending (ties: accuracy descending, then
    input order) and keep a point iff its accuracy exceeds every accuracy kept so far. Exact
    duplicates are kept once (the first in input order).

    Args:
        points: array-like of shape (n, 2), (energy, accuracy), finite.

    Returns:
        An int64 array of indices into `points`, energy ascending (accuracy then ascends too).

    Raises:
        ValueError: if `points` is empty, not of shape (n, 2) or holds a non-finite value.
    """
    array = _check_array(points)
    order = np.lexsort((-array[:, 1], array[:, 0]))  # stable: ties keep input order
    kept, best = [], -math.inf
    for i in order:
        if array[i, 1] > best:
            kept.append(i)
            best = array[i, 1]
    return np.asarray(kept, dtype=np.int64)


def pareto_front(points_or_tuner, energy_key="energy", accuracy_key="accuracy"):
    """The non-dominated set of (energy, accuracy) points: energy down, accuracy up.

    Point i dominates j iff ``E_i <= E_j`` and ``A_i >= A_j`` with one inequality strict; the
    front is every point no other point dominates, found by one sort and a sweep.
    Duplicates appear once.

    Args:
        points_or_tuner: one of
            - (energy, accuracy) pairs: an array-like of shape (n, 2);
            - a list of dicts holding `energy_key` and `accuracy_key` (e.g. `alpha_sweep`'s
              points), returned whole; dicts whose ``status`` is not "COMPLETED" are skipped;
            - a Keras Tuner tuner or oracle, or the path of a tuner project folder (the
              chief's, after a distributed search): its COMPLETED trials as
              `tl.tuning.trial_points` reads them (failed trials have no point).
        energy_key: the energy entry of dict points. Defaults to `"energy"`.
        accuracy_key: the accuracy entry of dict points; `"accuracy_ci_low"` gives the
            "robust" front on the lower confidence bounds. Defaults to `"accuracy"`.

    Returns:
        For pairs, a float64 array of shape (m, 2); otherwise a list of the front's dicts.
        Either way sorted by energy ascending (so accuracy ascends too).

    Raises:
        ValueError: on an empty set, a non-finite energy or accuracy, a missing key, a wrong
            shape, or a tuner without a completed trial.

    Example:
    >>> pareto_front([(1.0, 0.9), (0.5, 0.8), (0.7, 0.7), (0.5, 0.8)])
    array([[0.5, 0.8],
           [1. , 0.9]])
    """
    if isinstance(points_or_tuner, Iterator):  # a generator: read it once
        points_or_tuner = list(points_or_tuner)
    if _is_trial_source(points_or_tuner) or _is_dict_list(points_or_tuner):
        records, array = _as_records(points_or_tuner, energy_key, accuracy_key)
        return [records[i] for i in front_indices(array)]
    array = _check_array(points_or_tuner)
    return array[front_indices(array)]


def _is_dict_list(points):
    if isinstance(points, np.ndarray) or isinstance(points, Mapping):
        return False
    try:
        first = next(iter(points))
    except (TypeError, StopIteration):
        return False
    return isinstance(first, Mapping)


def _points_array(points_or_tuner, energy_key, accuracy_key):
    if isinstance(points_or_tuner, Iterator):
        points_or_tuner = list(points_or_tuner)
    if _is_trial_source(points_or_tuner) or _is_dict_list(points_or_tuner):
        return _as_records(points_or_tuner, energy_key, accuracy_key)[1]
    return _check_array(points_or_tuner)


def hypervolume(front, reference, energy_key="energy", accuracy_key="accuracy"):
    """The 2-D hypervolume (area) dominated by a front inside a reference box.

    With the reference ``R = (E_ref, A_ref)`` (energy above every point's, accuracy below,
    e.g. the all-reliable energy and chance accuracy), points outside the box are dropped and
    the front, sorted by energy, gives ``HV = sum_i (E_(i+1) - E_i) (A_i - A_ref)`` with
    ``E_(m+1) = E_ref``. Dominated points do not change it, so any point
    set may be passed. Larger is better.

    Args:
        front: the points, in any form `pareto_front` accepts.
        reference: `(energy_ref, accuracy_ref)`, finite.
        energy_key: the energy entry of dict points. Defaults to `"energy"`.
        accuracy_key: the accuracy entry of dict points. Defaults to `"accuracy"`.

    Returns:
        The hypervolume as a Python float (0.0 when no point lies strictly inside the box).

    Raises:
        ValueError: on bad points (see `pareto_front`) or a bad `reference`.

    Example:
    >>> hypervolume([(0.5, 0.8), (1.0, 0.9)], reference=(2.0, 0.0))  # 0.5*0.8 + 1.0*0.9
    1.3
    """
    ok = (
        isinstance(reference, (tuple, list, np.ndarray))
        and len(reference) == 2
        and all(isinstance(v, numbers.Real) and math.isfinite(float(v)) for v in reference)
    )
    if not ok:
        raise ValueError(
            "`reference` must be a pair of finite numbers (energy_ref, accuracy_ref). "
            f"Received: reference={reference!r}"
        )
    e_ref, a_ref = float(reference[0]), float(reference[1])
    array = _points_array(front, energy_key, accuracy_key)
    inside = array[(array[:, 0] <= e_ref) & (array[:, 1] >= a_ref)]
    if inside.shape[0] == 0:
        return 0.0
    nondominated = inside[front_indices(inside)]
    energies = np.append(nondominated[:, 0], e_ref)
    return float(np.sum(np.diff(energies) * (nondominated[:, 1] - a_ref)))
