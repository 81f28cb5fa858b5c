"""MemSE speed, measured in one run on the acceptance CNN (real Fashion-MNIST, 1 quick epoch).

At equal precision: the default `"probe"` mode runs with as many probes per example as its own
estimate needs for +-5 % at 95 % (found from the spread of one-probe estimates over seeds, and
printed), Monte-Carlo until its 95 % interval is +-5 % (sequential stopping). Prints:

- (MemSE pass) / (clean forward pass) on the same batch for the default, `diagonal` and
  `jacobian` modes, eager and compiled (`tf.function`; on JAX `jax.jit` of a pure step that
  reads the variables from its arguments); target <= 6 for the default mode, compiled;
- (shared-draw Monte-Carlo time to +-5 %) / (default-mode time), target >= 20, and
  (per-example Monte-Carlo time to +-5 %) / (default-mode time), target >= 4: each warm MC run
  (trace cached) is paired with compiled MemSE times taken right after it, the ratio is the
  median over the pairs;
- every mode's predicted MSE against both Monte-Carlo estimates.

    python bench/memse_speed.py [--samples 128] [--rounds 7] [--mc_rounds 3] [--sigma 0.02]
                                [--gmax 0.5]
    KERAS_BACKEND=jax python bench/memse_speed.py
"""

import argparse
import math
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _timing import alternating_times  # noqa: E402  (bench/ is on sys.path)
from keras import layers  # noqa: E402

import tf_lanmax as tl  # noqa: E402
from tf_lanmax import memse  # noqa: E402
from tf_lanmax._compile import compile_function  # noqa: E402


def acceptance_cnn():
    keras.utils.set_random_seed(0)

    def conv_bn(x, filters):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        return layers.BatchNormalization(momentum=0.9)(x)

    inp = keras.Input((28, 28, 1))
    h = layers.MaxPooling2D()(layers.ReLU()(conv_bn(inp, 16)))
    r = conv_bn(layers.ReLU()(conv_bn(h, 16)), 16)
    h = layers.MaxPooling2D()(layers.ReLU()(layers.Add()([h, r])))
    h = layers.MaxPooling2D()(layers.ReLU()(conv_bn(h, 32)))
    return keras.Model(inp, layers.Dense(10)(layers.Flatten()(h)))


def median_times(functions, rounds):
    times = alternating_times(functions, rounds)
    return {name: float(np.median(t)) for name, t in times.items()}


def synced(fn):
    """`fn` that returns only once its result is computed (JAX dispatches asynchronously)."""
    if keras.backend.backend() != "jax":
        return fn
    import jax

    return lambda: jax.block_until_ready(fn())


def compiled(fn, variables, x):
    """``fn(x)`` compiled for the backend as one pure step: it reads `variables` from its
    arguments (`keras.StatelessScope`), so `jax.jit` does not bake the weights in as constants
    (TensorFlow's `tf.function` reads them live either way)."""

    def step(values, x):
        with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
            return fn(x)

    step = compile_function(step)
    return synced(lambda: step([v.value for v in variables], x))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--mc_rounds", type=int, default=3, help="warm Monte-Carlo runs")
    parser.add_argument("--sigma", type=float, default=0.02)
    parser.add_argument("--gmax", type=float, default=0.5)
    parser.add_argument("--levels", type=int, default=128)
    parser.add_argument("--pilot", type=int, default=20, help="seeds of the probe-count pilot")
    args = parser.parse_args()
    (x_train, y_train), (x_test, _) = (
        tl.data.load_numpy("fashion_mnist_subset", "train", take=4096),
        tl.data.load_numpy("fashion_mnist_subset", "test", take=args.samples),
    )
    model = acceptance_cnn()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train, y_train, epochs=1, batch_size=128, verbose=0)
    x = keras.ops.convert_to_tensor(x_test)
    cb = memse.Crossbar(sigma=args.sigma, levels=args.levels, gmax=args.gmax)

    # Probes for +-5 % at 95 %: the spread of the one-probe estimate of the batch's mean MSE.
    one = memse.MemSE(model, cb, probes=1)
    estimates = [float(keras.ops.mean(one.moments(x, seed=s).var)) for s in range(args.pilot)]
    spread = float(np.std(estimates, ddof=1) / np.mean(estimates))
    probes = max(1, math.ceil((1.96 * spread / 0.05) ** 2))
    print(f"probes for +-5% at 95%: {probes}  (one probe per example: relative SD {spread:.1%} "
          f"over {args.pilot} seeds, batch {args.samples})")  # fmt: skip
    mirrors = {
        "probe": memse.MemSE(model, cb, probes=probes),
        "diagonal": memse.MemSE(model, cb, cov_mode="diagonal"),
        "jacobian": memse.MemSE(model, cb, cov_mode="jacobian"),
    }

    eager = {"clean forward": synced(lambda: model(x, training=False))}
    eager.update({f"MemSE {m}": synced(lambda m=m: mirrors[m](x)) for m in mirrors})
    eager_t = median_times(eager, args.rounds)
    compiled_calls = {
        "clean forward": compiled(lambda x: model(x, training=False), model.variables, x)
    }
    compiled_calls.update(
        {
            f"MemSE {m}": compiled(mirror, model.variables + mirror.variables, x)
            for m, mirror in mirrors.items()
        }
    )
    compiled_t = median_times(compiled_calls, args.rounds)
    compiler = {"tensorflow": "tf.function", "jax": "jax.jit"}.get(
        keras.backend.backend(), "uncompiled"
    )

    print(f"backend {keras.backend.backend()}, batch {args.samples}, {args.rounds} rounds, "
          f"sigma={args.sigma} Gmax={args.gmax} levels={args.levels}")  # fmt: skip
    for label, table in (("eager", eager_t), (compiler, compiled_t)):
        for name, seconds in table.items():
            print(f"  {label:11s} {name:16s} {seconds * 1e3:9.1f} ms")
    for mode in mirrors:
        target = "  (target <= 6)" if mode == "probe" else ""
        for label, table in (("eager", eager_t), (compiler, compiled_t)):
            ratio = table[f"MemSE {mode}"] / table["clean forward"]
            print(f"(MemSE {mode} pass) / (clean forward), {label}: {ratio:.2f}{target}")

    # Monte-Carlo runs compiled (its default); the first call pays the trace. Each of
    # --mc_rounds warm runs is paired with compiled MemSE timings taken right after it, and the
    # ratios are medians over the pairs: the machine's load drifts more between phases.
    def run_mc(per_example):
        start = time.perf_counter()
        result = memse.monte_carlo(
            mirrors["diagonal"], None, x_test, draws=50_000, rel_half_width=0.05, seed=0,
            per_example=per_example,
        )  # fmt: skip
        return result, time.perf_counter() - start

    reference = {}
    for per_example, label, target in ((False, "shared-draw", 20), (True, "per-example", 4)):
        mc, first = run_mc(per_example)
        pairs = []
        for _ in range(args.mc_rounds):
            mc_time = run_mc(per_example)[1]
            pairs.append((mc_time, median_times(compiled_calls, 5)))
        mc_warm = float(np.median([mc_time for mc_time, _ in pairs]))
        reference[label] = mc
        forwards = float(np.median([t / table["clean forward"] for t, table in pairs]))
        print(f"{label} Monte-Carlo to +-5% (95% CI): {mc.draws} draws, {mc_warm:.2f} s warm "
              f"(median of {args.mc_rounds}; {forwards:.0f} clean forward passes), {first:.2f} s "
              f"on the first call (tracing); {mc}")  # fmt: skip
        ratio = float(np.median([t / table["MemSE probe"] for t, table in pairs]))
        print(f"({label} MC time to +-5%) / (MemSE default time, {compiler}): {ratio:.1f}  "
              f"(target >= {target})")  # fmt: skip
    for mode, mirror in mirrors.items():
        predicted = float(keras.ops.mean(mirror.mse(x)))
        errors = ", ".join(
            f"{(predicted / mc.mse - 1):+.1%} vs {label} MC {mc.mse:.4g}"
            for label, mc in reference.items()
        )
        print(f"MemSE {mode} error vs Monte-Carlo: predicted MSE {predicted:.4g}: {errors}")


if __name__ == "__main__":
    main()
