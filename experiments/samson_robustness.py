"""Robustness to memristor conductance noise of a CNN trained plain, with SAM, ASAM and SAMSON.

The SAMSON paper (Mordido et al., arXiv:2211.11561) claims that
sharpness-aware training makes a network robust to analog weight noise without simulating it,
and that SAMSON is the most robust of the three rules. Here the same CNN is trained on real
Fashion-MNIST four ways, then evaluated under multiplicative conductance noise
``w' = w delta, delta ~ N(1, sigma^2)`` with 95% CIs over noise draws. Writes
docs/results/samson_robustness.json and .png.

    python experiments/samson_robustness.py            # full data if installed (~30-40 min)
    python experiments/samson_robustness.py --quick    # smoke run on the bundled subset
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import tf_lanmax as tl  # noqa: E402
from tf_lanmax._io import write_json_atomic  # noqa: E402

RULES = {"plain": None, "SAM": ("sam", 0.05), "ASAM": ("asam", 0.5), "SAMSON": ("samson", 0.2)}


def network(seed):
    keras.utils.set_random_seed(seed)
    return tl.models.float_cnn(name="cnn")


def train(name, train_ds, epochs, seed):
    inner = network(seed)
    trainer = inner
    if RULES[name] is not None:
        rule, rho = RULES[name]
        trainer = tl.SharpnessAwareModel(inner, rule=rule, rho=rho)
    steps = max(1, epochs * int(train_ds.cardinality()))
    trainer.compile(
        keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(2e-3, steps)),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    trainer.fit(train_ds, epochs=epochs, verbose=2)
    seconds = time.perf_counter() - start
    inner.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return inner, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out_dir", default="docs/results")
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--test_split", default="test[:5000]")
    parser.add_argument("--sigmas", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.8")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    if args.quick:
        args.epochs, args.draws, args.sigmas = 1, 3, "0,0.3,0.6"
        args.dataset, args.test_split = args.dataset or "fashion_mnist_subset", "test[:500]"
    dataset = args.dataset
    if dataset is None:
        try:
            tl.data.load("fashion_mnist", "test[:1%]", batch_size=32)
            dataset = "fashion_mnist"
        except (FileNotFoundError, RuntimeError, ValueError):
            dataset = "fashion_mnist_subset"
    print(f"dataset: {dataset}", flush=True)
    sigmas = [float(s) for s in args.sigmas.split(",")]
    train_ds = tl.data.load(dataset, "train", batch_size=128, seed=args.seed)
    test_ds = tl.data.load(dataset, args.test_split, batch_size=1000)
    results, seconds = {}, {}
    for name in RULES:
        print(f"== {name}", flush=True)
        model, seconds[name] = train(name, train_ds, args.epochs, args.seed)
        results[name] = tl.evaluate_under_noise(
            model, test_ds, sigmas, draws=args.draws, seed=args.seed, verbose=0
        )
        row = ", ".join(f"{s:g}: {a.mean:.4f}" for s, a in zip(sigmas, results[name].accuracy))
        print(f"   accuracy by sigma: {row}", flush=True)
    clean = results["plain"].accuracy[0].mean
    report_sigma = next(
        (s for s, a in zip(sigmas, results["plain"].accuracy) if clean - a.mean >= 0.10), None
    )
    comparison = None
    if report_sigma is not None:
        comparison = {name: r.at(report_sigma).to_dict() for name, r in results.items()}
        best = max(comparison, key=lambda n: comparison[n]["mean"])
        print(f"At sigma = {report_sigma:g} (plain loses >= 10 points):")
        for name, a in comparison.items():
            print(f"  {name:7s} {a['mean']:.4f} [{a['low']:.4f}, {a['high']:.4f}]")
        print(f"  most robust: {best}")
    report = {
        "dataset": dataset,
        "test_split": args.test_split,
        "epochs": args.epochs,
        "draws": args.draws,
        "rho": {name: (None if r is None else r[1]) for name, r in RULES.items()},
        "train_seconds": seconds,
        "command": "python experiments/samson_robustness.py " + " ".join(sys.argv[1:]),
        "results": {name: r.to_dict() for name, r in results.items()},
        "report_sigma": report_sigma,
        "comparison_at_report_sigma": comparison,
    }
    write_json_atomic(os.path.join(args.out_dir, "samson_robustness.json"), report)
    tl.reports.plot_noise_robustness(
        results,
        os.path.join(args.out_dir, "samson_robustness.png"),
        title=f"CNN on {dataset}: accuracy under conductance noise (95% CI)",
    )
    return report


if __name__ == "__main__":
    main()
