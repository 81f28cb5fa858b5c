"""MemSE speed, measured in one run on the acceptance CNN (real Fashion-MNIST, 1 quick epoch).

Prints, for the MemSE modes `diagonal` and `jacobian`:

- (MemSE pass) / (clean forward pass) on the same batch, target <= 4: eager calls, and both
  compiled (`tf.function` on TensorFlow; on JAX, `jax.jit` of a pure step that reads the
  variables from its arguments, as the library's own compiled passes do);
- (time for Monte-Carlo to reach a +-5% 95% CI on the MSE) / (MemSE time), target >= 50. The MC
  runs with sequential stopping (`rel_half_width=0.05`), draws vectorised in compiled chunks;
  each warm MC run (trace cached) is paired with compiled MemSE times taken right after it,
  and the ratio is the median over the pairs.

    python bench/memse_speed.py [--samples 128] [--rounds 7] [--mc_rounds 3] [--sigma 0.02]
                                [--gmax 0.5]
    KERAS_BACKEND=jax python bench/memse_speed.py
"""

import argparse
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
    mirrors = {mode: memse.MemSE(model, cb, cov_mode=mode) for mode in ("diagonal", "jacobian")}

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
        for label, table in (("eager", eager_t), (compiler, compiled_t)):
            if table:
                ratio = table[f"MemSE {mode}"] / table["clean forward"]
                print(f"(MemSE {mode} pass) / (clean forward), {label}: {ratio:.2f}  (target <= 4)")

    # The Monte-Carlo reference runs compiled (its default); the first call pays the trace. Each
    # of --mc_rounds warm MC runs is paired with compiled MemSE timings taken right after it, and
    # the ratios are medians over the pairs: the machine's load drifts more between phases of
    # the run than within one pair.
    def run_mc():
        start = time.perf_counter()
        result = memse.monte_carlo(
            mirrors["diagonal"], None, x_test, draws=50_000, rel_half_width=0.05, seed=0
        )
        return result, time.perf_counter() - start

    mc, first = run_mc()
    pairs = []
    for _ in range(args.mc_rounds):
        mc_time = run_mc()[1]
        pairs.append((mc_time, median_times(compiled_calls, 5)))
    mc_warm = float(np.median([mc_time for mc_time, _ in pairs]))

    def paired(name):
        """Median over the pairs of (MC time) / (the compiled `name` time)."""
        return float(np.median([mc_time / table[name] for mc_time, table in pairs]))

    print(f"Monte-Carlo to +-5% (95% CI): {mc.draws} draws, {mc_warm:.2f} s warm (median of "
          f"{args.mc_rounds}, {mc_warm / mc.draws * 1e3:.1f} ms per draw), {first:.2f} s on the "
          f"first call (tracing); {mc}")  # fmt: skip
    # What the two speed targets leave together: MC / 50, in clean forward passes.
    forwards = paired("clean forward")
    print(f"The >= 50 target leaves MemSE {mc_warm / 50 * 1e3:.1f} ms = {forwards / 50:.2f} "
          f"clean forward passes ({compiler}); MC spent {forwards:.0f} of them")  # fmt: skip
    for mode, mirror in mirrors.items():
        predicted = float(keras.ops.mean(mirror.mse(x)))
        error = predicted / mc.mse - 1
        print(f"MemSE {mode}: predicted MSE {predicted:.4g} vs MC {mc.mse:.4g} ({error:+.1%})")
        ratios = {"eager": mc_warm / eager_t[f"MemSE {mode}"], compiler: paired(f"MemSE {mode}")}
        for label, ratio in ratios.items():
            print(
                f"  (MC time to +-5%, warm) / (MemSE {mode} time, {label}): {ratio:.1f}  "
                "(target >= 50)"
            )


if __name__ == "__main__":
    main()
