"""Train-step time of the binary CNN with bit-flip faults at p = 1e-2 over the same network
without faults (fault model "none": same binary kernels, no draws), measured in one run.

    python bench/faults_overhead.py [--batch_size 128] [--rounds 7] [--steps 40]

Prints both median step times and their ratio (target <= 1.10 on CPU).
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from _timing import median_fit_times, random_images  # noqa: E402  (bench/ is on sys.path)

import tf_lanmax as tl  # noqa: E402


def build(fault_model):
    keras.utils.set_random_seed(0)
    model = tl.models.binary_cnn(fault_model=fault_model, fault_rate=1e-2, seed=0)
    model.compile("adam", "sparse_categorical_crossentropy", jit_compile=False)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    x, y = random_images(args.batch_size, args.steps)
    runs = {"faults": (build("bit_flip"), []), "no_faults": (build("none"), [])}
    epoch = median_fit_times(runs, x, y, args.batch_size, args.rounds)
    faulty, clean = epoch["faults"] / args.steps, epoch["no_faults"] / args.steps
    print(f"backend: {keras.backend.backend()}, batch {args.batch_size}, {args.rounds} rounds")
    print(f"step time, bit flips at p=1e-2: {faulty * 1e3:.2f} ms")
    print(f"step time, no faults (same binary network): {clean * 1e3:.2f} ms")
    print(f"fault overhead ratio: {faulty / clean:.3f}  (target <= 1.10)")


if __name__ == "__main__":
    main()
