"""Sharpness-aware step times over the plain step for the same network, measured in one run.

    python bench/sam_overhead.py [--batch_size 128] [--rounds 7] [--steps 40] [--statistic median]

`--statistic min` takes each contender's fastest epoch instead of the median: on a machine
shared with other jobs, epoch times can switch between two levels (one core taken or not), and
a median can land on different levels for different contenders.

A SAMSON step costs two forward/backward passes; the target is <= 2.05. A one-pass step (RWP,
or hardware-aware training with PCM noise: one pass at w + eps, see
`tl.sam.one_pass_train_step`) costs about one; the target is <= 1.3.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _timing import alternating_times, random_images  # noqa: E402  (bench/ is on sys.path)

import tf_lanmax as tl  # noqa: E402

ONE_PASS_TARGET = 1.3


def network():
    keras.utils.set_random_seed(0)
    return tl.models.float_cnn()


def one_pass_contenders():
    """The one-pass steps, each printed as `<name>_step_over_plain: <ratio>`: RWP and
    hardware-aware training with PCM noise (one device read of every kernel per step)."""
    return {
        "rwp": tl.SharpnessAwareModel(network(), rule="rwp", seed=0),
        "hardware_aware": tl.analog.HardwareAwareModel(network(), "pcm", seed=0),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--statistic", choices=("median", "min"), default="median")
    args = parser.parse_args()
    x, y = random_images(args.batch_size, args.steps)
    one_pass = one_pass_contenders()
    models = {
        "plain": network(),
        "samson": tl.SharpnessAwareModel(network(), rule="samson", rho=0.2),
        **one_pass,
    }
    for model in models.values():
        model.compile("adam", "sparse_categorical_crossentropy")

    def epoch(model):
        return lambda: model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0)

    times = alternating_times({name: epoch(m) for name, m in models.items()}, args.rounds)
    statistic = np.median if args.statistic == "median" else np.min
    step = {name: float(statistic(t)) / args.steps for name, t in times.items()}
    s, p = step["samson"], step["plain"]
    print(
        f"backend: {keras.backend.backend()}, batch {args.batch_size}, {args.rounds} rounds, "
        f"{args.statistic} epoch"
    )
    print(f"step time, plain: {p * 1e3:.2f} ms; SAMSON: {s * 1e3:.2f} ms")
    print(f"SAMSON overhead ratio: {s / p:.3f}  (target <= 2.05)")
    for name in one_pass:
        ratio = step[name] / p
        print(f"{name}_step_over_plain: {ratio:.3f}  (target <= {ONE_PASS_TARGET})")


if __name__ == "__main__":
    main()
