"""Real SRAM on real Fashion-MNIST: persistent chips, voltage domains, SECDED, technology presets.

Four studies on Debian's full Fashion-MNIST (10k test images; a fixed training subset to fit a
2-core CPU), each written as JSON + PNG into docs/results/:

(a) transient vs persistent faults at the same p (binary and 8-bit CNN): accuracy over >= 100
    chips (persistent per-chip maps) against the transient mean and CI;
(b) on the 8-bit CNN, >= 3 training seeds per setting: LaNMax with 2 voltage domains, LaNMax per
    layer, and one uniform p with fault-aware training (RandBET, Stutz et al. MLSys 2021) —
    memory-energy saving against reliable memory and accuracy, intervals over seeds, on one axis;
(c) SECDED vs no ECC on the 8-bit CNN: accuracy against energy with the check bits counted;
(d) every `tl.memory` technology: the energy saving at <= 1 % accuracy loss.

    python experiments/sram_fashion_mnist.py                 # all parts (~40 min on 2 cores)
    python experiments/sram_fashion_mnist.py --parts c,d     # some parts
    python experiments/sram_fashion_mnist.py --quick         # smoke run on the bundled subset
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tf_lanmax as tl  # noqa: E402
from tf_lanmax._io import write_json_atomic  # noqa: E402
from tf_lanmax.evaluation.statistics import t_interval  # noqa: E402
from tf_lanmax.reports.plots import save_figure  # noqa: E402

# 7 fraction bits: weights in [-1, 1) with step 1/128 (6 bits rounded most dense weights to 0).
FIXED8 = {"bits": 8, "fraction_bits": 7}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out_dir", default="docs/results")
    parser.add_argument("--parts", default="a,b,c,d")
    parser.add_argument("--train_split", default="train[:20000]")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--test_split", default="test")
    parser.add_argument("--width", type=float, default=0.5, help="width multiplier of the CNN")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--chips", type=int, default=100)
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--alpha", type=float, default=1.0, help="LaNMax's energy weight")
    parser.add_argument("--uniform_rates", default="1e-4,1e-3,3e-3")
    parser.add_argument("--tolerance", type=float, default=0.01, help="accuracy loss allowed")
    parser.add_argument("--settings", default="", help="part (b) settings, ';'-separated")
    parser.add_argument("--cache_dir", default="runs/sram_b", help="part (b) runs, one JSON each")
    parser.add_argument("--quick", action="store_true")
    return parser.parse_args(argv)


def floats(text):
    return [float(v) for v in text.split(",") if v]


def train(data, args, weight_format, fault_model, fault_rate, seed, callbacks=()):
    keras.utils.set_random_seed(seed)
    model = tl.models.binary_cnn(
        width_multiplier=args.width,
        weight_format=weight_format,
        fault_model=fault_model,
        fault_rate=fault_rate,
        seed=seed * 10,
    )
    steps = max(1, args.epochs * int(data.cardinality()))
    model.compile(
        keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(3e-3, steps)),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(data, epochs=args.epochs, verbose=0, callbacks=list(callbacks))
    return model


def compiled(model):
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def clean_accuracy(model, test):
    with tl.faults_disabled(model):
        return float(model.evaluate(test, verbose=0, return_dict=True)["accuracy"])


def energy_ratio(model, energy_model=None):
    return 1.0 / tl.memory_energy(model, energy_model)["mean_energy"]


# --- (a) ----------------------------------------------------------------------------------------
def part_a(args, train_ds, test):
    rows = {}
    for label, fmt, p in (("binary", "binary", 2e-2), ("8-bit fixed point", FIXED8, 3e-3)):
        fmt_obj = tl.formats.Binary() if fmt == "binary" else tl.formats.FixedPoint(**fmt)
        print(f"(a) {label}: fault-aware training at p = {p:g}", flush=True)
        model = train(train_ds, args, fmt_obj, "bit_flip", p, seed=0)
        transient = tl.evaluate_under_faults(model, test, draws=args.draws, seed=1, verbose=0)
        chips_model = compiled(tl.layers.with_memory(model, fault_persistence="persistent"))
        chips = tl.evaluate_under_faults(chips_model, test, chips=args.chips, seed=1, verbose=0)
        rows[label] = {
            "p": p,
            "clean_accuracy": clean_accuracy(model, test),
            "transient": transient.to_dict(),
            "persistent": chips.to_dict(),
        }
        print(f"    transient: {transient}\n    persistent: {chips}", flush=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rows), figsize=(5 * len(rows), 4))
    for ax, (label, row) in zip(np.atleast_1d(axes), rows.items(), strict=True):
        per_chip = np.asarray(row["persistent"]["per_chip_accuracy"])
        ax.hist(per_chip, bins=20, color="tab:blue", alpha=0.7, label=f"{len(per_chip)} chips")
        tr = row["transient"]["accuracy"]
        ax.axvline(tr["mean"], color="tab:red", label="transient mean")
        ax.axvspan(tr["low"], tr["high"], color="tab:red", alpha=0.2, label="transient 95% CI")
        ax.set_xlabel("test accuracy under faults (fraction of images)")
        ax.set_ylabel("chips (count)")
        ax.set_title(f"{label}, p = {row['p']:g}")
        ax.legend(fontsize=8, loc="upper left")
    save_figure(fig, os.path.join(args.out_dir, "sram_chips.png"))
    return rows


# --- (b) ----------------------------------------------------------------------------------------
def summarise(points):
    acc = t_interval([p["accuracy"] for p in points], 0.95)
    ratio = t_interval([p["energy_ratio"] for p in points], 0.95)
    return {"accuracy": acc.to_dict(), "energy_ratio": ratio.to_dict(), "seeds": points}


def setting_names(args):
    return ["reliable", "LaNMax, 2 domains", "LaNMax, per layer"] + [
        f"uniform p = {p:g}" for p in floats(args.uniform_rates)
    ]


DOMAINS = [["conv1", "conv2"], ["dense1", "dense2"]]


def run_setting(args, train_ds, test, name, seed):
    """Trains and measures one (setting, seed) of part (b)."""
    started = time.time()
    # LaNMax starts between the uniform rates that keep and that lose the iso-accuracy target.
    callbacks, fault_model, p = [], "bit_flip", 3e-4
    if name == "reliable":
        fault_model = "none"
    elif name.startswith("uniform"):
        p = float(name.split("= ")[1])
    else:
        lanmax = tl.LaNMax(
            alpha=args.alpha,
            seed=seed,
            learning_rate=10.0,
            max_step=0.75,
            domains=DOMAINS if "domains" in name else None,
        )
        callbacks = [lanmax]
    model = train(train_ds, args, tl.formats.FixedPoint(**FIXED8), fault_model, p, seed, callbacks)
    model.save(os.path.join(args.cache_dir, f"{name.replace(' ', '_')}__{seed}.keras"))
    if fault_model == "none":
        accuracy, ci = clean_accuracy(model, test), None
    else:
        result = tl.evaluate_under_faults(model, test, draws=args.draws, seed=seed, verbose=0)
        accuracy, ci = result.mean, list(result.ci)
    return {
        "setting": name,
        "seed": seed,
        "accuracy": accuracy,
        "fault_draw_ci": ci,
        "clean_accuracy": clean_accuracy(model, test),
        "energy_ratio": energy_ratio(model),
        "rates": {
            layer.name: float(keras.ops.convert_to_numpy(layer.fault_rate.value))
            for layer in tl.faulty_layers(model)
        },
        "seconds": time.time() - started,
    }


def part_b(args, train_ds, test):
    """Each (setting, seed) is cached in `--cache_dir`, so settings may run in several processes
    (`--settings`) and the summary is assembled from every cached run."""
    os.makedirs(args.cache_dir, exist_ok=True)
    wanted = args.settings.split(";") if args.settings else setting_names(args)
    for seed in range(args.seeds):
        for name in wanted:
            path = os.path.join(args.cache_dir, f"{name.replace(' ', '_')}__{seed}.json")
            if os.path.exists(path):
                continue
            print(f"(b) seed {seed}: {name}", flush=True)
            point = run_setting(args, train_ds, test, name, seed)
            write_json_atomic(path, point)
            print(
                f"    accuracy {point['accuracy']:.4f}, saving {point['energy_ratio']:.2f}x, "
                f"rates {point['rates']}",
                flush=True,
            )
    settings = {name: [] for name in setting_names(args)}
    for name in settings:
        for seed in range(args.seeds):
            path = os.path.join(args.cache_dir, f"{name.replace(' ', '_')}__{seed}.json")
            if os.path.exists(path):
                with open(path) as f:
                    settings[name].append(json.load(f))
    single = {name: points for name, points in settings.items() if len(points) == 1}
    settings = {name: points for name, points in settings.items() if len(points) >= 2}
    if "reliable" not in settings:
        return {"incomplete": sorted(settings)}
    summary = {name: summarise(points) for name, points in settings.items()}
    target = summary["reliable"]["accuracy"]["mean"] - args.tolerance
    for row in summary.values():
        row["meets_target"] = row["accuracy"]["mean"] >= target
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, row in summary.items():
        a, r = row["accuracy"], row["energy_ratio"]
        ax.errorbar(
            r["mean"],
            a["mean"],
            xerr=r["half_width"],
            yerr=a["half_width"],
            fmt="o",
            capsize=3,
            label=f"{name} ({len(row['seeds'])} seeds)",
        )
    ax.axhline(target, color="k", ls="--", label=f"reliable - {args.tolerance:.0%}")
    ax.set_xlabel("memory energy saving vs reliable memory (x)")
    ax.set_ylabel("test accuracy under faults (fraction of images)")
    ax.set_title("8-bit CNN: 95% CI over training seeds")
    for name, points in single.items():
        ax.plot(points[0]["energy_ratio"], points[0]["accuracy"], "x", label=f"{name} (1 seed)")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    save_figure(fig, os.path.join(args.out_dir, "sram_domains.png"))
    return {
        "iso_accuracy_target": target,
        "domains": DOMAINS,
        "settings": summary,
        "single_seed_settings": single,
    }


# --- (c) ----------------------------------------------------------------------------------------
def uniform_model(args, train_ds):
    """The 8-bit CNN that part (b) trained at uniform p = 1e-3 (seed 2), or a new one."""
    saved = os.path.join(args.cache_dir, "uniform_p_=_0.001__2.keras")
    if os.path.exists(saved):
        print(f"    8-bit CNN from {saved}", flush=True)
        return compiled(keras.models.load_model(saved))
    print("    8-bit CNN trained at p = 1e-3", flush=True)
    return train(train_ds, args, tl.formats.FixedPoint(**FIXED8), "bit_flip", 1e-3, seed=2)


def part_c(args, train_ds, test):
    print("(c) SECDED vs none", flush=True)
    model = uniform_model(args, train_ds)
    reliable_bits = sum(layer.stored_bits for layer in tl.faulty_layers(model))
    curves = {}
    for label, options in (("no ECC", {}), ("SECDED (72,64)", {"ecc": "secded"})):
        points = []
        for p in (1e-4, 3e-4, 1e-3, 3e-3, 1e-2):
            copy = compiled(tl.layers.with_memory(model, fault_rate=p, **options))
            result = tl.evaluate_under_faults(copy, test, draws=args.draws, seed=2, verbose=0)
            bits = sum(layer.stored_bits for layer in tl.faulty_layers(copy))
            energy = bits * tl.EnergyModel().eta(p)
            points.append(
                {
                    "p": p,
                    "accuracy": result.mean,
                    "ci": list(result.ci),
                    "stored_bits": bits,
                    "energy_ratio": reliable_bits / energy,
                }
            )
            print(f"    {label} p={p:g}: {result}", flush=True)
        curves[label] = points
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for label, points in curves.items():
        x = [pt["energy_ratio"] for pt in points]
        y = [pt["accuracy"] for pt in points]
        err = np.abs(np.array([pt["ci"] for pt in points]).T - y)
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=label)
        for pt in points:
            ax.annotate(
                f"p={pt['p']:g}",
                (pt["energy_ratio"], pt["accuracy"]),
                fontsize=7,
                xytext=(3, -10),
                textcoords="offset points",
            )
    ax.set_xlabel("memory energy saving vs reliable, check bits counted (x)")
    ax.set_ylabel("test accuracy under faults (fraction of images)")
    ax.set_title("8-bit CNN: SECDED vs none (95% CI over fault draws)")
    ax.legend(loc="lower left")
    save_figure(fig, os.path.join(args.out_dir, "sram_ecc.png"))
    return {"reliable_bits": reliable_bits, "curves": curves}


# --- (d) ----------------------------------------------------------------------------------------
def part_d(args, train_ds, test):
    print("(d) technology presets", flush=True)
    model = uniform_model(args, train_ds)
    clean = clean_accuracy(model, test)
    rows = {}
    for name in tl.memory.names():
        tech = tl.memory.get(name)
        energy_model = tech.energy_model()
        persistence = "persistent" if tech.persistent else "transient"
        rates = sorted({float(ber) for _, ber, _ in tech.points if 0 < ber <= 0.5})
        if len(rates) < 3:
            rates = sorted(set(rates) | {1e-4, 1e-3, 1e-2})
        points = []
        for p in rates:
            copy = compiled(
                tl.layers.with_memory(
                    model,
                    fault_rate=p,
                    fault_model=tech.fault_model(),
                    fault_persistence=persistence,
                )
            )
            if persistence == "persistent":
                result = tl.evaluate_under_faults(
                    copy, test, chips=max(10, args.draws), seed=3, verbose=0
                )
            else:
                result = tl.evaluate_under_faults(copy, test, draws=args.draws, seed=3, verbose=0)
            points.append(
                {
                    "p": p,
                    "accuracy": result.mean,
                    "ci": list(result.ci),
                    "voltage": tech.voltage(p),
                    "energy_ratio": energy_ratio(copy, energy_model),
                }
            )
            print(f"    {name} p={p:g}: {result.mean:.4f}", flush=True)
        ok = [pt for pt in points if pt["accuracy"] >= clean - args.tolerance]
        best = max(ok, key=lambda pt: pt["energy_ratio"]) if ok else None
        rows[name] = {
            "persistence": persistence,
            "points": points,
            "best": best,
            "source": tech.source,
        }
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, row in rows.items():
        x = [pt["energy_ratio"] for pt in row["points"]]
        y = np.array([pt["accuracy"] for pt in row["points"]])
        err = np.abs(np.array([pt["ci"] for pt in row["points"]]).T - y)
        bars = ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=f"{name} (95% CI)")
        for pt in row["points"]:
            ax.annotate(
                f"p={pt['p']:.2g}",
                (pt["energy_ratio"], pt["accuracy"]),
                fontsize=6,
                xytext=(3, 4),
                textcoords="offset points",
                color=bars[0].get_color(),
            )
    ax.axhline(clean - args.tolerance, color="k", ls="--", label="clean - 1%")
    ax.set_xscale("log")
    ax.set_xlabel("memory energy saving vs nominal (x)")
    ax.set_ylabel("test accuracy under faults (fraction of images)")
    ax.set_title("8-bit CNN on each SRAM technology preset")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    save_figure(fig, os.path.join(args.out_dir, "sram_technologies.png"))
    return {"clean_accuracy": clean, "technologies": rows}


PARTS = {"a": part_a, "b": part_b, "c": part_c, "d": part_d}


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    dataset = "fashion_mnist"
    if args.quick:
        dataset, args.train_split, args.test_split = "fashion_mnist_subset", "train", "test"
        args.epochs, args.seeds, args.chips, args.draws = 2, 2, 4, 2
    train_ds = tl.data.load(dataset, args.train_split, batch_size=args.batch_size, seed=0)
    test = tl.data.load(dataset, args.test_split, batch_size=1000)
    os.makedirs(args.out_dir, exist_ok=True)
    for part in args.parts.split(","):
        started = time.time()
        result = PARTS[part](args, train_ds, test)
        report = {
            "part": part,
            "dataset": dataset,
            "train_split": args.train_split,
            "test_split": args.test_split,
            "width_multiplier": args.width,
            "epochs": args.epochs,
            "seconds": time.time() - started,
            "command": "python experiments/sram_fashion_mnist.py " + " ".join(sys.argv[1:]),
            **result,
        }
        name = {"a": "chips", "b": "domains", "c": "ecc", "d": "technologies"}[part]
        write_json_atomic(os.path.join(args.out_dir, f"sram_{name}.json"), report)
        print(f"part {part}: {report['seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
