"""(SAMSON step time) / (plain step time) for the same network, measured in one run.

    python bench/sam_overhead.py [--batch_size 128] [--rounds 7] [--steps 40]

A sharpness-aware step costs two forward/backward passes; the target is <= 2.05.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from _timing import median_fit_times, random_images  # noqa: E402  (bench/ is on sys.path)

import tf_lanmax as tl  # noqa: E402


def network():
    keras.utils.set_random_seed(0)
    return tl.models.float_cnn()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    x, y = random_images(args.batch_size, args.steps)
    plain = network()
    plain.compile("adam", "sparse_categorical_crossentropy")
    samson = tl.SharpnessAwareModel(network(), rule="samson", rho=0.2)
    samson.compile("adam", "sparse_categorical_crossentropy")
    epoch = median_fit_times(
        {"plain": (plain, []), "samson": (samson, [])}, x, y, args.batch_size, args.rounds
    )
    s, p = epoch["samson"] / args.steps, epoch["plain"] / args.steps
    print(f"backend: {keras.backend.backend()}, batch {args.batch_size}, {args.rounds} rounds")
    print(f"step time, plain: {p * 1e3:.2f} ms; SAMSON: {s * 1e3:.2f} ms")
    print(f"SAMSON overhead ratio: {s / p:.3f}  (target <= 2.05)")


if __name__ == "__main__":
    main()
