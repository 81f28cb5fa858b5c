"""Shared timing loop of the bench scripts: alternate the contenders, reduce each one's times
(median, or min for a machine whose speed switches between levels)."""

import time

import keras
import numpy as np


def alternating_times(calls, rounds):
    """Wall times of `rounds` calls per contender, measured in one run.

    Each contender is called once first (tracing, warm-up; not timed); then the contenders
    alternate `rounds` times, so drift in machine load hits all of them alike. Each round
    starts one contender later than the last, so no contender always runs right after the
    same other one (a small model timed just after a large one measured up to 1.3x slower
    than just after a small one).

    Args:
        calls: {name: callable taking no argument}.
        rounds: timed calls per contender.

    Returns:
        {name: list of seconds, one per round}.
    """
    for call in calls.values():
        call()
    times = {name: [] for name in calls}
    names = list(calls)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - start)
    return times


def epoch_times(runs, x, y, batch_size, rounds, statistic=np.median):
    """Wall time of one `fit` epoch per contender (`alternating_times`), reduced over the
    rounds by `statistic`.

    Args:
        runs: {name: (compiled model, list of callbacks)}.
        x, y: training arrays.
        batch_size: batch size.
        rounds: timed epochs per contender.
        statistic: the reduction over rounds, `np.median` (default) or `np.min` (each
            contender's fastest epoch, for a machine whose speed switches between levels).

    Returns:
        {name: seconds per epoch, reduced by `statistic`}.
    """

    def epoch(model, callbacks):
        return lambda: model.fit(
            x, y, batch_size=batch_size, epochs=1, verbose=0, callbacks=callbacks
        )

    times = alternating_times({name: epoch(*run) for name, run in runs.items()}, rounds)
    return {name: float(statistic(t)) for name, t in times.items()}


def random_images(batch_size, steps, seed=0, shape=(28, 28, 1)):
    """`steps` batches of random images of `shape` and labels: timing needs shapes, not data."""
    rng = np.random.default_rng(seed)
    n = batch_size * steps
    return rng.random((n, *shape), dtype=np.float32), rng.integers(0, 10, n)


def jit_compile(on_accelerator=False):
    """The `jit_compile` a bench's models compile with: `False` for TensorFlow on a CPU (XLA
    is slower there), else `"auto"` (JAX compiles its step; without it JAX runs op by op)."""
    if keras.backend.backend() == "tensorflow" and not on_accelerator:
        return False
    return "auto"
