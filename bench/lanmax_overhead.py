"""(epoch time with the LaNMax callback) / (same faulty binary CNN without it), one run.

    python bench/lanmax_overhead.py [--batch_size 128] [--rounds 5] [--steps 60]

LaNMax adds no forward pass: per batch it assigns the sampled rates, reads the batch loss and
restores the rates; per epoch it solves one small least-squares problem. Target <= 1.03.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from _timing import epoch_times, jit_compile, random_images  # noqa: E402  (bench/ is on sys.path)

import tf_lanmax as tl  # noqa: E402


def build():
    keras.utils.set_random_seed(0)
    model = tl.models.binary_cnn(fault_rate=1e-2, seed=0)
    model.compile("adam", "sparse_categorical_crossentropy", jit_compile=jit_compile())
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    x, y = random_images(args.batch_size, args.steps)
    with_lanmax, without = build(), build()
    lanmax = tl.LaNMax(alpha=1.0, warmup_epochs=0, seed=0)
    runs = {
        "lanmax": (with_lanmax, [lanmax]),
        "plain": (without, []),
    }
    epoch = epoch_times(runs, x, y, args.batch_size, args.rounds)
    a, b = epoch["lanmax"], epoch["plain"]
    print(f"backend: {keras.backend.backend()}, {args.steps} steps of {args.batch_size}")
    print(f"epoch time with LaNMax: {a:.3f} s; without: {b:.3f} s")
    print(f"LaNMax overhead ratio: {a / b:.3f}  (target <= 1.03)")


if __name__ == "__main__":
    main()
