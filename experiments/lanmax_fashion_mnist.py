"""LaNMax on real Fashion-MNIST: learned per-layer p vs the best uniform p vs smaller reliable nets.

Reproduces the comparison of Henwood et al. (arXiv:1912.10764) at
iso-accuracy on the binary CNN: (i) LaNMax-learned rates for several alpha, (ii) one uniform p
for every layer, (iii) reliable networks (p = p0, eta = 1) of smaller width. Accuracy is always
measured under faults with `tl.evaluate_under_faults` (95% CI over fault draws). Writes
docs/results/lanmax_fashion_mnist.json and PNGs.

    python experiments/lanmax_fashion_mnist.py              # full run (~40 min on 2 cores)
    python experiments/lanmax_fashion_mnist.py --quick      # smoke run on the bundled subset
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import tf_lanmax as tl  # noqa: E402
from tf_lanmax._io import write_json_atomic  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out_dir", default="docs/results")
    parser.add_argument(
        "--dataset", default=None, help="default: fashion_mnist if local, else subset"
    )
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--uniform_rates", default="1e-3,1e-2,3e-2,0.1")
    parser.add_argument("--alphas", default="0.3,1,3")
    parser.add_argument("--widths", default="0.25,0.5,1.0")
    parser.add_argument("--lanmax_p_init", type=float, default=1e-2)
    parser.add_argument("--tolerance", type=float, default=0.005, help="iso-accuracy slack")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def floats(text):
    return [float(v) for v in text.split(",") if v]


def pick_dataset(requested):
    if requested:
        return requested
    try:
        tl.data.info("fashion_mnist")
        tl.data.load("fashion_mnist", "test[:1%]", batch_size=32)
        return "fashion_mnist"
    except (FileNotFoundError, RuntimeError, ValueError):
        return "fashion_mnist_subset"


def train(train_ds, epochs, width, fault_model, fault_rate, seed, callbacks=()):
    keras.utils.set_random_seed(seed)
    model = tl.models.binary_cnn(
        width_multiplier=width, fault_model=fault_model, fault_rate=fault_rate, seed=seed
    )
    steps = max(1, epochs * int(train_ds.cardinality()))
    model.compile(
        keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(3e-3, steps)),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(train_ds, epochs=epochs, verbose=2, callbacks=list(callbacks))
    return model


def measure(model, test_ds, draws, seed, **extra):
    result = tl.evaluate_under_faults(model, test_ds, draws=draws, seed=seed, verbose=0)
    energy = tl.memory_energy(model)
    point = {
        "accuracy": result.mean,
        "ci": list(result.ci),
        "energy": energy["total_energy"],
        "bits": energy["total_bits"],
        "mean_energy": energy["mean_energy"],
        "layers": energy["layers"],
        **extra,
    }
    print(
        f"  -> accuracy {result.mean:.4f} [{result.ci[0]:.4f}, {result.ci[1]:.4f}], "
        f"energy {point['energy']:,.0f} bit-units ({energy['total_bits']:,} bits)",
        flush=True,
    )
    return point


def cheapest_at(points, target):
    """Lowest-energy point of a family whose accuracy reaches `target` (None if none does)."""
    ok = [p for p in points if p["accuracy"] >= target]
    return min(ok, key=lambda p: p["energy"]) if ok else None


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    if args.quick:
        args.epochs, args.draws = 2, 3
        args.uniform_rates, args.alphas, args.widths = "1e-2,0.1", "1", "0.5,1.0"
        args.dataset = args.dataset or "fashion_mnist_subset"
    dataset = pick_dataset(args.dataset)
    print(f"dataset: {dataset}", flush=True)
    train_ds = tl.data.load(dataset, "train", batch_size=128, seed=args.seed)
    test_ds = tl.data.load(dataset, "test", batch_size=1000)
    started = time.time()
    families = {"uniform p": [], "LaNMax": [], "reliable, smaller": []}
    trajectories = {}

    for width in floats(args.widths):
        print(f"reliable network, width x{width}", flush=True)
        model = train(train_ds, args.epochs, width, "none", 0.5, args.seed)
        families["reliable, smaller"].append(
            measure(model, test_ds, args.draws, args.seed, width=width)
        )

    for p in floats(args.uniform_rates):
        print(f"uniform p = {p:g}", flush=True)
        model = train(train_ds, args.epochs, 1.0, "bit_flip", p, args.seed)
        families["uniform p"].append(measure(model, test_ds, args.draws, args.seed, p=p))
        if p == 1e-2:
            sens = tl.sensitivity(model, test_ds, test_rate=0.5, draws=args.draws, seed=args.seed)
            tl.reports.plot_sensitivity(sens, os.path.join(args.out_dir, "lanmax_sensitivity.png"))

    for alpha in floats(args.alphas):
        print(f"LaNMax alpha = {alpha:g}", flush=True)
        lanmax = tl.LaNMax(alpha=alpha, seed=args.seed)
        model = train(
            train_ds, args.epochs, 1.0, "bit_flip", args.lanmax_p_init, args.seed, [lanmax]
        )
        families["LaNMax"].append(
            measure(model, test_ds, args.draws, args.seed, alpha=alpha, rates=lanmax.rates)
        )
        trajectories[str(alpha)] = lanmax.trajectory

    reliable_full = max(families["reliable, smaller"], key=lambda p: p["bits"])
    target = reliable_full["accuracy"] - args.tolerance
    iso = {}
    for name, points in families.items():
        best = cheapest_at(points, target)
        iso[name] = (
            None
            if best is None
            else {
                "energy": best["energy"],
                "accuracy": best["accuracy"],
                "ratio_vs_reliable_full": reliable_full["energy"] / best["energy"],
            }
        )
    report = {
        "dataset": dataset,
        "epochs": args.epochs,
        "draws": args.draws,
        "seconds": time.time() - started,
        "command": "python experiments/lanmax_fashion_mnist.py " + " ".join(sys.argv[1:]),
        "iso_accuracy_target": target,
        "tolerance": args.tolerance,
        "reliable_full": {k: reliable_full[k] for k in ("accuracy", "ci", "energy", "bits")},
        "iso_accuracy": iso,
        "families": families,
        "lanmax_trajectories": trajectories,
    }
    out = args.out_dir
    write_json_atomic(os.path.join(out, "lanmax_fashion_mnist.json"), report)
    tl.reports.plot_energy_accuracy(
        families,
        os.path.join(out, "lanmax_energy_accuracy.png"),
        reference=target,
        title=f"Binary CNN on {dataset}: accuracy under faults vs memory energy",
    )
    if families["LaNMax"]:
        best = max(families["LaNMax"], key=lambda p: p["accuracy"])
        tl.reports.plot_rates_vs_size(best["layers"], os.path.join(out, "lanmax_rates_vs_size.png"))
        alpha = str(best["alpha"])
        tl.reports.plot_rate_trajectories(
            trajectories[alpha],
            os.path.join(out, "lanmax_trajectories.png"),
            title=f"LaNMax (alpha = {alpha}): p per layer over epochs",
        )
    print(f"iso-accuracy target {target:.4f} (reliable full width {reliable_full['accuracy']:.4f})")
    for name, row in iso.items():
        if row is None:
            print(f"  {name}: no point reaches the target")
        else:
            print(
                f"  {name}: energy {row['energy']:,.0f} -> {row['ratio_vs_reliable_full']:.2f}x "
                f"less than the reliable full network (accuracy {row['accuracy']:.4f})"
            )
    return report


if __name__ == "__main__":
    main()
