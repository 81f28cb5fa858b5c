"""Shared timing loop of the bench scripts: alternate the contenders, report medians."""

import time

import numpy as np


def median_fit_times(runs, x, y, batch_size, rounds):
    """Median wall time of one `fit` epoch per contender, measured in one run.

    Each contender is traced and warmed up first; then the contenders alternate `rounds` times,
    so drift in machine load hits all of them alike.

    Args:
        runs: {name: (compiled model, list of callbacks)}.
        x, y: training arrays.
        batch_size: batch size.
        rounds: timed epochs per contender.

    Returns:
        {name: median seconds per epoch}.
    """
    times = {name: [] for name in runs}
    for model, callbacks in runs.values():
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, callbacks=callbacks)
    for _ in range(rounds):
        for name, (model, callbacks) in runs.items():
            start = time.perf_counter()
            model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, callbacks=callbacks)
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def random_images(batch_size, steps, seed=0):
    """`steps` batches of random 28x28x1 images and labels: timing needs shapes, not data."""
    rng = np.random.default_rng(seed)
    n = batch_size * steps
    return rng.random((n, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, n)
