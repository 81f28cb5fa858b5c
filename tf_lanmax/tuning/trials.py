"""Read every trial of a Keras Tuner search (tuner, oracle or project folder) as plain dicts."""

import glob
import os


def _trials(source):
    """The `keras_tuner.engine.trial.Trial` objects of a tuner, an oracle or a project folder."""
    if isinstance(source, (str, os.PathLike)):
        from keras_tuner.engine.trial import Trial

        folder = os.fspath(source)
        if not os.path.isdir(folder):
            raise ValueError(
                f"`source` must be a tuner project folder (holding trial_*/trial.json). "
                f"Received: source={folder!r}, which is not a folder."
            )
        names = sorted(glob.glob(os.path.join(folder, "trial_*", "trial.json")))
        return [Trial.load(name) for name in names]
    oracle = getattr(source, "oracle", source)
    if not hasattr(oracle, "trials"):
        # A worker's OracleClient cannot list trials: read them from the chief's folder.
        raise ValueError(
            f"Cannot list the trials of {source!r}: pass a tuner, an oracle or the project "
            "folder (in a distributed search, the chief's folder)."
        )
    return list(oracle.trials.values())


def _status(trial):
    status = trial.status
    return getattr(status, "value", status)


def trial_points(source):
    """Every trial of a search as a dict, in trial-id order; failed trials included.

    Args:
        source: a Keras Tuner tuner or oracle, or the path of a tuner project folder
            (``directory/project_name``; for a distributed search, the chief's).

    Returns:
        A list of dicts with ``trial_id``, ``status`` ("COMPLETED", "FAILED", "INVALID",
        "RUNNING"...), ``hyperparameters`` (the trial's values), ``alpha`` (if tuned), the
        metrics the trial reported (``energy``, ``accuracy``, ``accuracy_ci_low``/``high``,
        ``mean_energy``, ``score``...), ``ci`` (``[low, high]`` when reported) and, for a trial
        that did not complete, ``message`` (the last line of its error).

    Raises:
        ValueError: if `source` is none of the above.

    Example:
    >>> [p["alpha"] for p in tl.tuning.trial_points(tuner) if p["status"] == "COMPLETED"]
    """
    points = []
    for trial in sorted(_trials(source), key=lambda t: str(t.trial_id)):
        values = dict(trial.hyperparameters.values)
        point = {"trial_id": str(trial.trial_id), "status": str(_status(trial))}
        point["hyperparameters"] = values
        if "alpha" in values:
            point["alpha"] = float(values["alpha"])
        for name in trial.metrics.metrics:
            value = trial.metrics.get_last_value(name)
            if value is not None:
                point[name] = float(value)
        if "accuracy_ci_low" in point and "accuracy_ci_high" in point:
            point["ci"] = [point["accuracy_ci_low"], point["accuracy_ci_high"]]
        if point["status"] != "COMPLETED" and trial.message:
            lines = [line for line in str(trial.message).strip().splitlines() if line.strip()]
            point["message"] = lines[-1] if lines else ""
        points.append(point)
    return points
