"""MemSE on real Fashion-MNIST: predicted vs Monte-Carlo MSE, digital faults, power-budgeted Gmax.

Trains the acceptance CNN (conv + BN + ReLU + max pooling + a residual Add, ~17k weights) on the
bundled real Fashion-MNIST subset, maps it onto a noisy memristor crossbar and compares:

1. the MSE of the logits predicted by `tl.memse.MemSE` in its three modes (`"probe"`, the
   default: one output probe per example; `"jacobian"`, exact first order; `"diagonal"`, which
   ignores weight sharing) with `tl.memse.monte_carlo` (>= 1000 draws, 95% CI) at several
   (sigma, Gmax) settings, for the Flatten head and, as the harder case for weight sharing, a
   global-average-pooling head (both heads follow the same residual trunk);
2. the same for bit flips in faulty copies of the network (digital extension): 8-bit fixed
   point, and binary weights (the copy fine-tuned one epoch as a BinaryConnect network);
3. `tl.memse.optimize_gmax` (per-layer Gmax) against the best single Gmax at equal power, checked
   by Monte-Carlo, and the MSE-vs-power curve.

Writes docs/results/memse_fashion_mnist.json, memse_predicted_vs_mc.png, memse_mse_vs_power.png.

    python experiments/memse_fashion_mnist.py            # full run (~25 min on 2 busy cores)
    python experiments/memse_fashion_mnist.py --quick    # smoke run (~3 min)
"""

import argparse
import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

import tf_lanmax as tl  # noqa: E402
from tf_lanmax import memse  # noqa: E402
from tf_lanmax._io import write_json_atomic  # noqa: E402
from tf_lanmax.reports.plots import save_figure  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out_dir", default="docs/results")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=128, help="test images per comparison")
    parser.add_argument("--draws", type=int, default=1000, help="Monte-Carlo draws (analog)")
    parser.add_argument("--digital_draws", type=int, default=3000)
    # sigma:Gmax; the noise scales with sigma / Gmax (quantisation does not depend on Gmax)
    parser.add_argument("--settings", default="0.005:1.0,0.01:1.0,0.02:1.0,0.02:0.5,0.05:0.5")
    parser.add_argument("--levels", type=int, default=128)
    parser.add_argument("--fault_rates", default="3e-4,1e-3", help="8-bit fixed point")
    parser.add_argument("--binary_rates", default="1e-3,1e-2")
    parser.add_argument("--power_sigma", type=float, default=0.02)
    parser.add_argument("--curve", default="0.25,0.5,1,2,4", help="budgets x the Gmax=1 power")
    parser.add_argument("--pilot", type=int, default=10, help="probe seeds for the probe count")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.samples, args.draws, args.digital_draws = 1, 32, 200, 300
        args.settings, args.fault_rates, args.curve = "0.02:0.5", "1e-3", "0.5,1"
        args.binary_rates = "1e-2"
    return args


def acceptance_cnn(head, seed):
    """conv-BN-ReLU-pool, a residual block (conv-BN-ReLU-conv-BN + Add), pool, conv-BN-ReLU."""
    keras.utils.set_random_seed(seed)

    def conv_bn(x, filters, name):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=name)(x)
        return layers.BatchNormalization(momentum=0.9, name=name + "_bn")(x)

    inp = keras.Input((28, 28, 1))
    h = layers.ReLU()(conv_bn(inp, 16, "conv1"))
    h = layers.MaxPooling2D()(h)
    r = layers.ReLU()(conv_bn(h, 16, "res_a"))
    r = conv_bn(r, 16, "res_b")
    h = layers.ReLU()(layers.Add()([h, r]))
    h = layers.MaxPooling2D()(h)
    h = layers.ReLU()(conv_bn(h, 32, "conv4"))
    if head == "gap":
        h = layers.GlobalAveragePooling2D()(h)
    else:
        h = layers.Flatten()(layers.MaxPooling2D()(h))
    out = layers.Dense(10, name="logits")(h)
    return keras.Model(inp, out, name=f"cnn_{head}")


def train(head, data, epochs, seed):
    (x, y), (xt, yt) = data
    model = acceptance_cnn(head, seed)
    model.compile(
        keras.optimizers.Adam(3e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=False,
    )
    model.fit(x, y, epochs=epochs, batch_size=128, verbose=2)
    accuracy = float(model.evaluate(xt, yt, verbose=0)[1])
    print(f"[{head}] clean test accuracy {accuracy:.4f}", flush=True)
    return model, accuracy


#: The MemSE modes compared with Monte-Carlo: the default first.
MODES = ("probe", "jacobian", "diagonal")


def probes_for(model, crossbar, mapping, x, pilot, precision=0.05):
    """Probes per example for +-`precision` at 95 %, from the spread of one-probe estimates.

    The same rule as `bench/memse_speed.py`: the relative standard deviation of the batch's
    mean variance over `pilot` probe seeds, scaled by 1/sqrt(probes).
    """
    one = memse.MemSE(model, crossbar, probes=1, mapping=mapping)
    estimates = [float(keras.ops.mean(one.moments(x, seed=s).var)) for s in range(pilot)]
    spread = float(np.std(estimates, ddof=1) / np.mean(estimates))
    return max(1, math.ceil((1.96 * spread / precision) ** 2)), spread


def compare(model_or_mirror, crossbar, x, draws, seed, pilot, modes=MODES):
    row = {}
    if isinstance(model_or_mirror, memse.MemSE):
        model, crossbar = model_or_mirror.model, model_or_mirror.crossbar
        mapping = model_or_mirror.mapping
    else:
        model, mapping = model_or_mirror, "crossbar"
    for mode in modes:
        options = {}
        if mode == "probe":
            start = time.perf_counter()
            probes, spread = probes_for(model, crossbar, mapping, x, pilot)
            row["probe_pilot"] = {
                "probes": probes,
                "one_probe_relative_sd": spread,
                "pilot_seeds": pilot,
                "seconds": time.perf_counter() - start,
            }
            options = {"probes": probes, "seed": seed}
        mirror = memse.MemSE(model, crossbar, cov_mode=mode, mapping=mapping, **options)
        start = time.perf_counter()
        summary = mirror.summary(x, batch_size=len(x))
        row[mode] = {
            "predicted_mse": summary["mse"],
            "variance": summary["variance"],
            "bias2": summary["bias2"],
            "seconds": time.perf_counter() - start,
        }
        if mode == "jacobian":
            row["noise_contributions"] = summary["noise_contributions"]
    mc = memse.monte_carlo(mirror, None, x, draws=draws, seed=seed)
    row["monte_carlo"] = mc.to_dict()
    for mode in modes:
        pred = row[mode]["predicted_mse"]
        row[mode]["relative_error"] = (pred - mc.mse) / mc.mse
        row[mode]["in_ci"] = mc.ci[0] <= pred <= mc.ci[1]
    return row


def log_row(label, row, tolerance):
    mc = row["monte_carlo"]
    parts = [
        f"{label}: MC {mc['mse']:.4g} [{mc['ci'][0]:.4g}, {mc['ci'][1]:.4g}] ({mc['draws']} d)"
    ]
    for mode in MODES:
        if mode in row:
            r = row[mode]
            ok = "ok" if abs(r["relative_error"]) <= tolerance else "MISS"
            parts.append(f"{mode} {r['predicted_mse']:.4g} ({r['relative_error']:+.1%} {ok})")
    if "probe_pilot" in row:
        parts.append(f"{row['probe_pilot']['probes']} probes")
    print(" | ".join(parts), flush=True)


def analog_section(models, x, args):
    rows = []
    for head, model in models.items():
        for setting in args.settings.split(","):
            sigma, gmax = (float(v) for v in setting.split(":"))
            cb = memse.Crossbar(sigma=sigma, levels=args.levels, gmax=gmax)
            row = compare(model, cb, x, args.draws, args.seed, args.pilot)
            row.update({"model": head, "sigma": sigma, "gmax": gmax, "levels": args.levels})
            log_row(f"[{head}] sigma={sigma} Gmax={gmax}", row, 0.10)
            rows.append(row)
    return rows


def digital_section(model, data, x, args):
    rows = []
    for rate in (float(v) for v in args.fault_rates.split(",")):
        digital = memse.faulty_copy(model, "fixed_point", "bit_flip", fault_rate=rate, bits=8)
        mirror = memse.MemSE(
            digital, memse.Crossbar(sigma=0.0), cov_mode="jacobian", mapping="digital"
        )
        row = compare(mirror, None, x, args.digital_draws, args.seed, args.pilot)
        row.update({"format": "fixed_point(8)", "fault_model": "bit_flip", "fault_rate": rate})
        log_row(f"[digital] 8-bit flips p={rate}", row, 0.15)
        rows.append(row)
    # Binary weights: a faulty copy fine-tuned one epoch as a BinaryConnect network.
    (x_train, y_train), (x_test, y_test) = data
    binary = memse.faulty_copy(model, "binary", "bit_flip", fault_rate=1e-4, seed=args.seed)
    binary.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=False,
    )
    binary.fit(x_train, y_train, epochs=1, batch_size=128, verbose=2)
    with tl.faults_disabled(binary):
        accuracy = float(binary.evaluate(x_test, y_test, verbose=0)[1])
    print(f"[digital] binary copy, clean test accuracy {accuracy:.4f}", flush=True)
    for rate in (float(v) for v in args.binary_rates.split(",")):
        tl.set_fault_rates(binary, rate)
        mirror = memse.MemSE(
            binary, memse.Crossbar(sigma=0.0), cov_mode="jacobian", mapping="digital"
        )
        row = compare(mirror, None, x, args.draws, args.seed, args.pilot)
        row.update(
            {
                "format": "binary (fine-tuned 1 epoch)",
                "fault_model": "bit_flip",
                "fault_rate": rate,
                "clean_test_accuracy": accuracy,
            }
        )
        log_row(f"[digital] binary flips p={rate}", row, 0.15)
        rows.append(row)
    return rows


def power_section(model, x_cal, x, args):
    cb = memse.Crossbar(sigma=args.power_sigma, levels=args.levels, gmax=1.0)
    mirror = memse.MemSE(model, cb)  # the default mode, as a user's optimize_gmax runs it
    reference = float(mirror.power(x_cal)[0])
    start = time.perf_counter()
    result = memse.optimize_gmax(mirror, None, x_cal, power_budget=reference, steps=20)
    seconds = time.perf_counter() - start
    print(f"[power] optimize_gmax {seconds:.0f} s: {result.gmax}", flush=True)
    mc_opt = memse.monte_carlo(model, result.crossbar, x, draws=args.draws, seed=args.seed)
    mc_single = memse.monte_carlo(
        model, result.baseline["crossbar"], x, draws=args.draws, seed=args.seed
    )
    budget_row = {
        "sigma": args.power_sigma,
        "power_budget": reference,
        "optimize_seconds": seconds,
        "optimized": {
            "gmax": result.gmax,
            "predicted_mse": result.predicted_mse,
            "power": result.power,
            "monte_carlo": mc_opt.to_dict(),
        },
        "best_single": {
            "gmax": result.baseline["gmax"],
            "predicted_mse": result.baseline["predicted_mse"],
            "power": result.baseline["power"],
            "monte_carlo": mc_single.to_dict(),
        },
        "optimized_lower_mc_mse": bool(mc_opt.ci[1] < mc_single.ci[0]),
        "history": result.history,
    }
    print(
        f"[power] budget {reference:.4g}: per-layer MC {mc_opt} vs single Gmax="
        f"{result.baseline['gmax']:.3g} MC {mc_single}",
        flush=True,
    )
    budgets = [reference * float(f) for f in args.curve.split(",")]
    curve = memse.mse_power_curve(mirror, None, x_cal, budgets=budgets, steps=0)
    for point in curve:
        print(
            f"[curve] P={point['power_budget']:.4g}: single {point['single']['predicted_mse']:.4g}"
            f" per-layer {point['per_layer']['predicted_mse']:.4g}",
            flush=True,
        )
    return budget_row, curve


def plot_comparison(analog, digital, path):
    rows = analog + digital
    labels, mc, err, preds = [], [], [], {mode: [] for mode in MODES}
    for row in rows:
        if "model" in row:
            labels.append(f"{row['model']}\nσ={row['sigma']:g}\nG={row['gmax']:g}")
        else:
            kind = "binary" if row["format"].startswith("binary") else "8-bit"
            labels.append(f"{kind} flip\np={row['fault_rate']:g}")
        m = row["monte_carlo"]
        mc.append(m["mse"])
        err.append(m["half_width"])
        for mode in preds:
            preds[mode].append(row.get(mode, {}).get("predicted_mse", np.nan))
    import matplotlib.pyplot as plt  # a script: pyplot picks a backend (Agg without a display)

    xs = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(7, 1.1 * len(rows)), 4.5))
    width = 0.2
    ax.bar(xs - 1.5 * width, mc, width, yerr=err, capsize=3, label="Monte-Carlo (95% CI)")
    for i, mode in enumerate(MODES):
        label = f"MemSE {mode}" + (" (default)" if i == 0 else "")
        ax.bar(xs + (i - 0.5) * width, preds[mode], width, label=label)
    ax.set_yscale("log")
    ax.set_xticks(xs, labels, fontsize=7)
    ax.set_ylabel("MSE of the logits (squared logit units)")
    ax.set_title("Predicted vs sampled MSE, real Fashion-MNIST CNN")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_curve(curve, budget_row, path):
    import matplotlib.pyplot as plt

    power = [p["power_budget"] for p in curve]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(power, [p["single"]["predicted_mse"] for p in curve], "o-", label="best single Gmax")
    ax.plot(power, [p["per_layer"]["predicted_mse"] for p in curve], "s-", label="per-layer Gmax")
    for key, marker in (("best_single", "o"), ("optimized", "s")):
        mc = budget_row[key]["monte_carlo"]
        half = [[mc["half_width"]], [mc["half_width"]]]
        ax.errorbar(
            [budget_row["power_budget"]], [mc["mse"]], yerr=half, fmt=marker, color="k",
            mfc="none", capsize=3,
        )  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("power budget (crossbar power units)")
    ax.set_ylabel("MSE of the logits (squared logit units; black: MC)")
    ax.set_title(f"MSE vs power, sigma = {budget_row['sigma']:g}")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def _count(flags):
    return int(sum(bool(f) for f in flags))


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    start = time.perf_counter()
    data = (
        tl.data.load_numpy("fashion_mnist_subset", "train"),
        tl.data.load_numpy("fashion_mnist_subset", "test"),
    )
    x = data[1][0][: args.samples]
    x_cal = data[0][0][:64]
    models, accuracy, logit_variance = {}, {}, {}
    for head in ("flatten", "gap"):
        models[head], accuracy[head] = train(head, data, args.epochs, args.seed)
        # The signal the noise MSE compares with: variance of the clean logits over samples.
        logit_variance[head] = float(np.var(models[head].predict(x, verbose=0), axis=0).mean())
    analog = analog_section(models, x, args)
    digital = digital_section(models["flatten"], data, x, args)
    budget_row, curve = power_section(models["flatten"], x_cal, x, args)
    flatten_rows = [r for r in analog if r["model"] == "flatten"]
    acceptance = {
        **{
            f"analog_{head}_within_10pct_{mode}": _count(
                abs(r[mode]["relative_error"]) <= 0.10 for r in analog if r["model"] == head
            )
            for head in models
            for mode in MODES
        },
        "analog_settings_per_head": len(flatten_rows),
        **{
            f"digital_within_15pct_{mode}": _count(
                abs(r[mode]["relative_error"]) <= 0.15 for r in digital
            )
            for mode in MODES
        },
        "digital_settings": len(digital),
        "optimized_gmax_lower_mc_mse": budget_row["optimized_lower_mc_mse"],
    }
    payload = {
        "experiment": "memse_fashion_mnist",
        "dataset": "fashion_mnist_subset (real, bundled)",
        "backend": keras.backend.backend(),
        "args": vars(args),
        "clean_test_accuracy": accuracy,
        "clean_logit_variance": logit_variance,
        "analog": analog,
        "digital": digital,
        "power": budget_row,
        "mse_vs_power": curve,
        "acceptance": acceptance,
        "seconds": time.perf_counter() - start,
    }
    os.makedirs(args.out_dir, exist_ok=True)
    write_json_atomic(os.path.join(args.out_dir, "memse_fashion_mnist.json"), payload)
    plot_comparison(analog, digital, os.path.join(args.out_dir, "memse_predicted_vs_mc.png"))
    plot_curve(curve, budget_row, os.path.join(args.out_dir, "memse_mse_vs_power.png"))
    print(f"acceptance: {acceptance}")
    print(f"wrote {args.out_dir}/memse_fashion_mnist.json in {payload['seconds']:.0f} s")


if __name__ == "__main__":
    main()
