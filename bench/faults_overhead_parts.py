"""Where the int8 `inject_faults` overhead of `bench/faults_overhead.py` goes, per train step.

The Keras int8 MLP of `faults_overhead.build_int8` (784-256-256-10, `model.quantize("int8")`),
timed step by step (a callback's batch begin to batch end, so Keras' work between steps is left
out), contenders rotated each round, in one run:

- faults on every layer at p = 1e-2 (the ratio's numerator);
- the same at p = 1e-9: what the draws cost with almost no faults to draw (each draw's fixed
  part: its rate-tier switch, completion check and ops);
- faults on one Dense layer only, at p = 1e-2;
- fault model "none" on every layer: the wrapper's own cost.

Each line is the extra time per step over the same model without faults, at a percentile of
the steps (a low one is robust to a machine whose speed switches between levels).

    python bench/faults_overhead_parts.py [--rounds 20] [--steps 40] [--percentile 25]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _timing import alternating_times, random_images  # noqa: E402  (bench/ on sys.path)
from faults_overhead import build_int8  # noqa: E402


class StepTimes(keras.callbacks.Callback):
    """Seconds from each train batch's begin to its end."""

    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--percentile", type=float, default=25)
    args = parser.parse_args()
    x, y = random_images(128, args.steps)
    models = {
        "no faults": build_int8(faults=False),
        "all layers, p=1e-2": build_int8(faults=True),
        "all layers, p=1e-9": build_int8(faults=True, fault_rate=1e-9),
        "first Dense only (784x256), p=1e-2": build_int8(faults=True, layer=0),
        "second Dense only (256x256), p=1e-2": build_int8(faults=True, layer=1),
        "third Dense only (256x10), p=1e-2": build_int8(faults=True, layer=2),
        "fault model none": build_int8(faults=True, fault_model="none"),
    }
    callbacks = {name: StepTimes() for name in models}

    def epoch(name):
        return lambda: models[name].fit(
            x, y, batch_size=128, epochs=1, verbose=0, callbacks=[callbacks[name]]
        )

    alternating_times({name: epoch(name) for name in models}, args.rounds)
    # Each contender's first epoch traces and warms up: its steps are left out.
    step = {
        name: np.percentile(c.times[args.steps :], args.percentile) for name, c in callbacks.items()
    }
    clean = step.pop("no faults")
    print(
        f"backend: {keras.backend.backend()}, batch 128, {args.rounds} rounds of {args.steps} "
        f"steps, percentile {args.percentile:g} of the step times"
    )
    print(f"step time, no faults: {clean * 1e3:.3f} ms")
    for name, seconds in step.items():
        print(f"extra step time, {name}: {(seconds - clean) * 1e3:+.3f} ms  (no target)")


if __name__ == "__main__":
    main()
