"""Images/s of the binary Wide ResNet at CIFAR shape (32x32x3, 10 classes), training and
inference, with bit flips at p = 1e-2 and without faults (fault model "none": the same binary
network, no draws), on whatever backend and device are present, measured in one run.

    python bench/throughput.py [--depth 10] [--width 1] [--batch_size 64] [--steps 20]
    KERAS_BACKEND=jax python bench/throughput.py --depth 16 --width 4 --batch_size 128

Defaults: WRN-10-1, batch 64, 20 steps per round on CPU; the paper's WRN-16-4, batch 128,
50 steps on a GPU. Training is `fit` on random images (one epoch of `steps` batches per round),
inference is `predict` on the same images; each contender is warmed up (traced) first, then the
contenders alternate `rounds` times. Prints the backend, the device, images/s for each (best
round, and median) and the fault overhead ratios (time with / without; target <= 1.10 on CPU).
On a machine shared with other jobs the best rounds are the undisturbed ones; read the ratio of
the best rounds there.
"""

import argparse
import os
import platform

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _timing import alternating_times, jit_compile, random_images  # noqa: E402

import tf_lanmax as tl  # noqa: E402

SHAPE = (32, 32, 3)
CPU_DEFAULTS = {"depth": 10, "width": 1, "batch_size": 64, "steps": 20}
GPU_DEFAULTS = {"depth": 16, "width": 4, "batch_size": 128, "steps": 50}


def accelerator():
    """'gpu: <name> (xN)' when the backend sees an accelerator, else None."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        devices = [d for d in jax.devices() if d.platform != "cpu"]
        if devices:
            return f"{devices[0].platform}: {devices[0].device_kind} (x{len(devices)})"
    elif backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            name = tf.config.experimental.get_device_details(gpus[0]).get("device_name")
            return f"gpu: {name or gpus[0].name} (x{len(gpus)})"
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            return f"gpu: {torch.cuda.get_device_name(0)} (x{torch.cuda.device_count()})"
    return None


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build(fault_model, args):
    keras.utils.set_random_seed(0)
    model = tl.models.binary_wide_resnet(
        depth=args.depth,
        width=args.width,
        input_shape=SHAPE,
        num_classes=10,
        fault_model=fault_model,
        fault_rate=1e-2,
        seed=0,
    )
    model.compile("adam", "sparse_categorical_crossentropy", jit_compile=args.jit_compile)
    return model


def _number(text):
    value = float(text)
    return int(value) if value.is_integer() else value  # WRN-16-4, not WRN-16-4.0


def epoch(model, x, y, batch_size):
    return lambda: model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)


def inference(model, x, batch_size):
    return lambda: model.predict(x, batch_size=batch_size, verbose=0)


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--depth", type=int, help="6n + 4 (CPU 10, GPU 16)")
    parser.add_argument("--width", type=_number, help="width factor (CPU 1, GPU 4)")
    parser.add_argument("--batch_size", type=int, help="images per step (CPU 64, GPU 128)")
    parser.add_argument("--steps", type=int, help="steps per timed round (CPU 20, GPU 50)")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per contender")
    parser.add_argument(
        "--jit_compile",
        choices=("auto", "true", "false"),
        help="default: false for TensorFlow on CPU (XLA is slower there), else auto",
    )
    return parser.parse_args()


def main():
    args = parse_args()
    device = accelerator()
    for name, value in (GPU_DEFAULTS if device else CPU_DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.jit_compile is None:
        args.jit_compile = jit_compile(on_accelerator=device is not None)
    else:
        args.jit_compile = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    if device is None:
        device = f"cpu: {cpu_name()} ({os.cpu_count()} cores)"

    x, y = random_images(args.batch_size, args.steps, shape=SHAPE)
    models = {"faults": build("bit_flip", args), "no_faults": build("none", args)}
    train = {name: epoch(model, x, y, args.batch_size) for name, model in models.items()}
    infer = {name: inference(model, x, args.batch_size) for name, model in models.items()}
    times = {
        "train": alternating_times(train, args.rounds),
        "inference": alternating_times(infer, args.rounds),
    }
    images = len(x)

    model = models["faults"]
    print(f"backend: {keras.backend.backend()} (keras {keras.__version__}), device: {device}")
    print(
        f"model: {model.name} at {SHAPE}, 10 classes, {model.count_params():,} parameters; "
        f"batch {args.batch_size}, {args.steps} steps x {args.rounds} rounds, "
        f"jit_compile={args.jit_compile}"
    )
    best = {kind: {n: min(t) for n, t in ts.items()} for kind, ts in times.items()}
    median = {kind: {n: float(np.median(t)) for n, t in ts.items()} for kind, ts in times.items()}
    print(f"{'images/s: best round (median)':40}{'train':>20}{'inference':>20}")
    labels = {"faults": "bit flips at p=1e-2", "no_faults": "no faults (same network)"}
    for name, label in labels.items():
        cells = [
            f"{images / best[kind][name]:.1f} ({images / median[kind][name]:.1f})"
            for kind in ("train", "inference")
        ]
        print(f"{label:40}{cells[0]:>20}{cells[1]:>20}")
    for statistic, values in (("best rounds", best), ("medians", median)):
        ratios = {kind: values[kind]["faults"] / values[kind]["no_faults"] for kind in values}
        print(
            f"fault overhead ratio (time with / without), {statistic}: "
            f"train {ratios['train']:.3f}, inference {ratios['inference']:.3f}"
        )
    print("target <= 1.10 on CPU; on a shared machine the best rounds are the undisturbed ones")


if __name__ == "__main__":
    main()
