"""Monte-Carlo evaluation time, batched draws over the sequential way, measured in one run.

Faults: K fault draws of the binary CNN (bit flips at p = 1e-2) on the first `--images` bundled
Fashion-MNIST test images (compute-bound), and of a small binary MLP on as many random feature
vectors (overhead-bound). Noise: K conductance-noise draws (sigma = 0.1) of the float CNN on the
same images. Each is timed with `method="sequential"` (K `model.evaluate` calls),
`"batched"` (one compiled pass per data batch, the draws looped inside it) and `"vectorized"`
(the draws on a `keras.ops.vectorized_map` axis); the contenders alternate, medians reported.

    python bench/mc_batched.py [--draws 20] [--images 2000] [--batch_size 128] [--rounds 3]
        [--methods sequential,batched,vectorized] [--skip_faults] [--skip_mlp]
        [--skip_noise]

Prints the median seconds per call and each method's speed-up over the sequential way. For the
CNNs it also times the compute floor: K compiled forward passes over the images, nothing else
(the same passes every method must run), and the speed-up that floor would give; and the FLOP
bound: the GFLOP of the K x images forward passes (Conv/Dense multiply-adds), the rate each
method reached, and the rate a 5x speed-up would need next to what a large matmul, the best
case of this machine's BLAS, reaches.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _timing import alternating_times  # noqa: E402  (bench/ is on sys.path)

import tf_lanmax as tl  # noqa: E402
from tf_lanmax._compile import compile_function  # noqa: E402

METHODS = ("sequential", "batched", "vectorized")


def median_call_times(calls, rounds):
    """Median wall time per contender (warmed up first, then alternating: `_timing`)."""
    return {name: float(np.median(t)) for name, t in alternating_times(calls, rounds).items()}


def forward_floor(model, x, draws, batch_size):
    """A callable running `draws` compiled inference passes of `model` over `x`, batch by batch:
    the compute every Monte-Carlo method repeats, without evaluation, metrics or data work."""
    forward = compile_function(
        lambda trainable, non_trainable, batch: model.stateless_call(
            trainable, non_trainable, batch, training=False
        )[0]
    )
    batches = [
        keras.ops.convert_to_tensor(x[i : i + batch_size]) for i in range(0, len(x), batch_size)
    ]

    def run():
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        for _ in range(draws):
            for batch in batches:
                out = forward(trainable, non_trainable, batch)
        keras.ops.convert_to_numpy(out)  # wait for the last pass

    return run


def forward_flops(model):
    """FLOPs of one sample's forward pass: 2 x the multiply-adds of its Conv/Dense kernels."""
    macs = 0
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        out_positions = int(np.prod(layer.output.shape[1:-1]))  # 1 for a Dense on flat inputs
        macs += out_positions * int(np.prod(kernel.shape))
    return 2 * macs


def matmul_gflops(n=2048, rounds=5):
    """GFLOP/s of a compiled n x n float32 matmul, best of `rounds`: the practical peak."""
    a = keras.random.normal((n, n), seed=0)
    b = keras.random.normal((n, n), seed=1)
    product = compile_function(lambda a, b: keras.ops.matmul(a, b))
    keras.ops.convert_to_numpy(product(a, b))
    best = min(
        alternating_times({"mm": lambda: keras.ops.convert_to_numpy(product(a, b))}, rounds)["mm"]
    )
    return 2 * n**3 / best / 1e9


def report(title, times, gflop=None, peak=None):
    print(title)
    for name in times:
        ratio = times["sequential"] / times[name]
        label = "forward floor" if name == "floor" else name
        rate = f"   {gflop / times[name]:5.0f} GFLOP/s" if gflop else ""
        print(f"  {label:>13}: {times[name]:7.2f} s   speed-up over sequential {ratio:5.2f}x{rate}")
    if gflop:
        need = gflop / (times["sequential"] / 5)
        print(
            f"  {gflop:.0f} GFLOP of forward passes; 5x would need {need:.0f} GFLOP/s, "
            f"a {peak:.0f} GFLOP/s large matmul is this machine's best case"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--methods", default=",".join(METHODS), help="sequential first")
    parser.add_argument("--skip_faults", action="store_true")
    parser.add_argument("--skip_mlp", action="store_true")
    parser.add_argument("--skip_noise", action="store_true")
    args = parser.parse_args()
    methods = args.methods.split(",")
    x, y = tl.data.load_numpy("fashion_mnist_subset", "test")
    data = (x[: args.images], y[: args.images])
    common = {"draws": args.draws, "seed": 0, "verbose": 0, "batch_size": args.batch_size}
    peak = matmul_gflops()
    print(
        f"backend: {keras.backend.backend()}, {len(data[0])} images, batch {args.batch_size}, "
        f"K = {args.draws} draws, {args.rounds} rounds (medians)"
    )

    if not args.skip_faults:
        keras.utils.set_random_seed(0)
        binary = tl.models.binary_cnn(fault_rate=1e-2, seed=0)
        binary.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        calls = {
            m: lambda m=m: tl.evaluate_under_faults(binary, data, method=m, **common)
            for m in methods
        }
        calls["floor"] = forward_floor(binary, data[0], args.draws, args.batch_size)
        gflop = forward_flops(binary) * len(data[0]) * args.draws / 1e9
        report(
            "faults, binary CNN, bit flips p=1e-2:",
            median_call_times(calls, args.rounds),
            gflop,
            peak,
        )

    if not args.skip_mlp:
        # Overhead-bound: a faulty MLP whose forward pass costs little next to `evaluate`'s
        # per-call and per-step work, as in small tuning trials and tests.
        rng = np.random.default_rng(0)
        features = (rng.normal(size=(args.images, 8)).astype("float32"), data[1])
        mlp = keras.Sequential(
            [
                keras.Input((8,)),
                tl.layers.FaultyDense(16, fault_rate=0.05, seed=0),
                tl.layers.FaultyDense(10, fault_rate=0.05, seed=1),
                keras.layers.Softmax(),
            ]
        )
        mlp.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
        calls = {
            m: lambda m=m: tl.evaluate_under_faults(mlp, features, method=m, **common)
            for m in methods
        }
        report("faults, 8-16-10 binary MLP, p=0.05:", median_call_times(calls, args.rounds))

    if not args.skip_noise:
        cnn = tl.models.float_cnn()
        cnn.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        calls = {
            m: lambda m=m: tl.evaluate_under_noise(cnn, data, [0.1], method=m, **common)
            for m in methods
        }
        calls["floor"] = forward_floor(cnn, data[0], args.draws, args.batch_size)
        gflop = forward_flops(cnn) * len(data[0]) * args.draws / 1e9
        report("noise, float CNN, sigma=0.1:", median_call_times(calls, args.rounds), gflop, peak)


if __name__ == "__main__":
    main()
