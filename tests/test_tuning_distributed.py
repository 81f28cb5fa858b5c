"""Distributed alpha search on Keras Tuner's chief/worker mode, on 127.0.0.1.

The test starts this file as a script three times (a `chief` serving the oracle over gRPC and
workers `tuner0`, `tuner1` running trials), waits for the workers with a deadline, stops the
chief itself (it keeps serving after the last trial) by killing its process group, and checks
that the front read from the chief's project folder equals the front of the same trials run
serially. Every wait is bounded; every process is killed in a `finally`.
"""

import os
import random
import socket
import sys
import time

import pytest
from helpers import start_logged, stop
from helpers import tiny_faulty_classifier as tiny_build

MAX_TRIALS = 3
SEED = 7
DEADLINE_S = 240  # all trials, on a loaded 2-core machine; about 30 s when idle
LANMAX = {"warmup_epochs": 0, "max_step": 2.0}


def make_tuner(directory, project_name="distributed"):
    """The same tuner in every process (and for the serial run)."""
    import keras_tuner

    from tf_lanmax import tuning

    hypermodel = tuning.LaNMaxHyperModel(
        tiny_build, alpha_range=(0.01, 30.0), epochs=1, draws=2, lanmax_kwargs=LANMAX
    )
    return keras_tuner.RandomSearch(
        hypermodel,
        objective=hypermodel.objective,
        max_trials=MAX_TRIALS,
        seed=SEED,
        directory=str(directory),
        project_name=project_name,
        overwrite=False,
    )


def load_data():
    import tf_lanmax as tl

    train = tl.data.load_numpy("fashion_mnist_subset", "train", take=1000)
    test = tl.data.load_numpy("fashion_mnist_subset", "test", take=500)
    return train, test


def run_search(tuner, data):
    (x, y), validation = data
    tuner.search(x, y, batch_size=50, validation_data=validation, verbose=0)


def main(directory):
    """One process of the distributed search; its role comes from KERASTUNER_TUNER_ID."""
    tuner = make_tuner(directory)
    if os.environ["KERASTUNER_TUNER_ID"] == "chief":
        tuner.search()  # serves the oracle; does not return while trials remain
    else:
        run_search(tuner, load_data())


# ---------------------------------------------------------------------------------------------
# The test
# ---------------------------------------------------------------------------------------------


def free_port():
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    except OSError as error:
        pytest.skip(f"cannot bind a port on 127.0.0.1 for the oracle server: {error}")


def start(role, directory, port, log_dir):
    env = dict(os.environ)
    env.update(
        KERASTUNER_TUNER_ID=role,
        KERASTUNER_ORACLE_IP="127.0.0.1",
        KERASTUNER_ORACLE_PORT=str(port),
        KERAS_BACKEND=os.environ["KERAS_BACKEND"],  # the suite's backend (conftest.py)
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    argv = [sys.executable, os.path.abspath(__file__), str(directory)]
    return start_logged(argv, env, os.path.join(log_dir, f"{role}.log"))


def tail(log_dir, role, chars=3000):
    with open(os.path.join(log_dir, f"{role}.log"), "rb") as f:
        return f"--- {role} ---\n" + f.read().decode(errors="replace")[-chars:]


def run_distributed(directory, log_dir):
    """Chief + two workers; returns when the workers are done (or fails at the deadline)."""
    port = free_port()
    processes = {}
    try:
        processes["chief"] = start("chief", directory, port, log_dir)
        for role in ("tuner0", "tuner1"):
            processes[role] = start(role, directory, port, log_dir)
        deadline = time.monotonic() + DEADLINE_S
        workers = [processes["tuner0"], processes["tuner1"]]
        while any(p.poll() is None for p in workers):
            chief_code = processes["chief"].poll()
            if chief_code not in (None, 0):
                # The chief died (e.g. the port was taken): the workers would wait. A clean
                # exit can legitimately come just after the last trial.
                pytest.fail("the chief failed:\n" + tail(log_dir, "chief"))
            if time.monotonic() > deadline:
                logs = "\n".join(tail(log_dir, r) for r in processes)
                pytest.fail(f"distributed search not done after {DEADLINE_S} s:\n{logs}")
            time.sleep(0.5)
        for role in ("tuner0", "tuner1"):
            assert processes[role].returncode == 0, tail(log_dir, role)
    finally:
        for process in processes.values():
            stop(process)
    assert all(p.poll() is not None for p in processes.values())


def test_distributed_search_front_equals_the_serial_front(tmp_path):
    from tf_lanmax import tuning

    directory = tmp_path / "search"
    load_data()  # prepare the dataset once here: the two workers would race to prepare it
    run_distributed(directory, str(tmp_path))
    project = directory / "distributed"

    points = tuning.trial_points(project)
    assert len(points) == MAX_TRIALS
    assert all(p["status"] == "COMPLETED" for p in points), points
    # Both workers ran trials (a worker writes its state after each trial it ends).
    for role in ("tuner0", "tuner1"):
        assert (project / f"{role}.json").exists(), f"{role} ran no trial"
    front = tuning.pareto_front(project)
    assert front

    # The same points in another order, and through a tuner reloaded from the chief's folder.
    shuffled = random.Random(0).sample(points, len(points))
    assert tuning.pareto_front(shuffled) == front
    reloaded = make_tuner(directory)
    assert tuning.trial_points(reloaded) == points
    assert tuning.pareto_front(reloaded) == front

    # A serial search with the same seed proposes the same alphas and, the trials being
    # deterministic, measures the same points: the same front.
    serial = make_tuner(tmp_path / "serial")
    run_search(serial, load_data())
    serial_points = tuning.trial_points(serial)
    assert sorted(p["alpha"] for p in serial_points) == sorted(p["alpha"] for p in points)
    by_alpha = {p["alpha"]: p for p in serial_points}
    for point in points:
        again = by_alpha[point["alpha"]]
        for name in ("energy", "accuracy"):
            assert again[name] == pytest.approx(point[name], rel=1e-5, abs=1e-9), name
    serial_front = tuning.pareto_front(serial)
    assert [p["alpha"] for p in serial_front] == [p["alpha"] for p in front]


if __name__ == "__main__":
    main(sys.argv[1])
