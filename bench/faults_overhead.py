"""Train-step time of the binary CNN with bit-flip faults at p = 1e-2 over the same network
without faults (fault model "none": same binary kernels, no draws), and the price of the SRAM
memory model, all measured in one run on the same network and batches:

- transient bit flips / no faults (target <= 1.10 on CPU);
- persistent per-chip fault maps / transient faults (target <= 1.05);
- SECDED over 64-bit words / no ECC, both transient bit flips (target <= 1.30);
- a Keras MLP quantized by Keras to int8, with `tl.inject_faults` bit flips at p = 1e-2 on
  its stored codes and biases / the same int8 model without faults (target <= 1.15). The
  fault draws cost per expected fault and step (`tf_lanmax.faults.gap_draws`), plus a fixed
  cost per draw, paid once per layer (`tf_lanmax.faults.stream_draws`); the layers cost per
  example: the ratio falls as the batch grows.

    python bench/faults_overhead.py [--batch_size 128] [--rounds 7] [--steps 40]
        [--statistic median]

Prints the median step times (`--statistic min`: each contender's fastest epoch, for a machine
whose speed switches between levels) and the ratios.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _timing import epoch_times, jit_compile, random_images  # noqa: E402  (bench/ is on sys.path)

import tf_lanmax as tl  # noqa: E402


def build(fault_model, **memory):
    """The binary CNN; `memory` (e.g. fault_persistence, ecc) is set on every faulty layer."""
    keras.utils.set_random_seed(0)
    model = tl.models.binary_cnn(fault_model=fault_model, fault_rate=1e-2, seed=0)
    if memory:
        config = model.get_config()
        for layer in config["layers"]:
            if "fault_rate" in layer["config"]:
                layer["config"].update(memory)
        keras.utils.set_random_seed(0)
        model = keras.Sequential.from_config(config)
    model.compile("adam", "sparse_categorical_crossentropy", jit_compile=jit_compile())
    return model


def build_int8(faults, fault_rate=1e-2, fault_model="bit_flip", layer=None):
    """An MLP in plain Keras Dense layers (Keras quantizes Dense, EinsumDense and Embedding),
    quantized by Keras to int8, with `tl.inject_faults` faults (`fault_model` at `fault_rate`)
    on every stored parameter (int8 kernels, float32 biases), or on those of the Dense layer
    number `layer` (0, 1 or 2) alone, or without faults."""
    keras.utils.set_random_seed(0)
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Flatten(),
            layers.Dense(256, activation="relu"),
            layers.Dense(256, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.quantize("int8")
    if faults:
        include = None if layer is None else [model.layers[1 + layer].name]
        model = tl.inject_faults(
            model, fault_model=fault_model, fault_rate=fault_rate, seed=0, include=include
        )
    model.compile("adam", "sparse_categorical_crossentropy", jit_compile=jit_compile())
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--statistic", choices=("median", "min"), default="median")
    args = parser.parse_args()
    x, y = random_images(args.batch_size, args.steps)
    models = {
        "faults": build("bit_flip"),
        "no_faults": build("none"),
        "persistent": build("bit_flip", fault_persistence="persistent"),
        "secded": build("bit_flip", ecc="secded", ecc_word_bits=64),
        "int8_faults": build_int8(faults=True),
        "int8": build_int8(faults=False),
    }
    runs = {name: (model, []) for name, model in models.items()}
    statistic = np.median if args.statistic == "median" else np.min
    epoch = epoch_times(runs, x, y, args.batch_size, args.rounds, statistic)
    step = {name: t / args.steps for name, t in epoch.items()}
    faulty, clean = step["faults"], step["no_faults"]
    print(
        f"backend: {keras.backend.backend()}, batch {args.batch_size}, {args.rounds} rounds, "
        f"{args.statistic} epoch"
    )
    print(f"step time, bit flips at p=1e-2: {faulty * 1e3:.2f} ms")
    print(f"step time, no faults (same binary network): {clean * 1e3:.2f} ms")
    print(f"step time, persistent chip maps: {step['persistent'] * 1e3:.2f} ms")
    print(f"step time, SECDED 64-bit words: {step['secded'] * 1e3:.2f} ms")
    print(f"fault overhead ratio: {faulty / clean:.3f}  (target <= 1.10)")
    print(f"persistent step / transient step: {step['persistent'] / faulty:.3f}  (target <= 1.05)")
    print(f"SECDED step / no-ECC step: {step['secded'] / faulty:.3f}  (target <= 1.30)")
    print(f"step time, Keras int8 MLP: {step['int8'] * 1e3:.2f} ms")
    print(f"step time, Keras int8 MLP with inject_faults: {step['int8_faults'] * 1e3:.2f} ms")
    print(
        f"int8 inject_faults step / int8 step: {step['int8_faults'] / step['int8']:.3f}  "
        "(target <= 1.15)"
    )


if __name__ == "__main__":
    main()
