"""Keras Tuner search of LaNMax's alpha on real Fashion-MNIST: the energy/accuracy Pareto front.

Each trial trains the binary CNN with `tl.LaNMax(alpha)` (one learned fault rate per layer),
then measures the accuracy under bit flips (`tl.evaluate_under_faults`, 95% CI over fault
draws) and the memory energy at the learned rates. The front is the non-dominated set of all
completed trials (energy down, accuracy up), with its hypervolume against
(all-reliable energy, chance accuracy). Writes docs/results/tuning_alpha_front.json and .png.

    python experiments/tuning_alpha_fashion_mnist.py            # ~5-10 min on 2 CPU cores
    python experiments/tuning_alpha_fashion_mnist.py --quick    # smoke run

Distributed (Keras Tuner's chief/worker mode): run the same command in several processes,
with KERASTUNER_ORACLE_IP / KERASTUNER_ORACLE_PORT set in all of them and KERASTUNER_TUNER_ID
set to `chief` for one and `tuner0`, `tuner1`, ... for the workers. The chief serves the oracle
and never returns; once the workers have exited, stop it and write the front from its folder:

    python experiments/tuning_alpha_fashion_mnist.py --report_only
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_tuner  # noqa: E402

import tf_lanmax as tl  # noqa: E402
from tf_lanmax import tuning  # noqa: E402

TUNERS = ("random", "bayesian", "grid", "hyperband")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out_dir", default="docs/results")
    parser.add_argument("--directory", default="runs/tuning_alpha", help="Keras Tuner folder")
    parser.add_argument("--project_name", default=None, help="default: alpha_<tuner>")
    parser.add_argument("--tuner", default="grid", choices=TUNERS)
    parser.add_argument("--max_trials", type=int, default=10)
    parser.add_argument("--alpha_min", type=float, default=0.01)
    parser.add_argument("--alpha_max", type=float, default=30.0)
    parser.add_argument("--train_split", default="train[:6000]")
    parser.add_argument("--test_split", default="test")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--width", type=float, default=0.5, help="binary_cnn width_multiplier")
    parser.add_argument("--p_init", type=float, default=1e-2)
    parser.add_argument("--max_step", type=float, default=1.0, help="LaNMax nats per epoch")
    parser.add_argument("--warmup_epochs", type=int, default=1)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="restart instead of resuming")
    parser.add_argument("--report_only", action="store_true", help="no search: read the folder")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    return parser.parse_args(argv)


def make_hypermodel(args):
    def build_model(hp):
        model = tl.models.binary_cnn(
            width_multiplier=args.width, fault_rate=args.p_init, seed=args.seed
        )
        model.compile(
            keras.optimizers.Adam(3e-3),
            "sparse_categorical_crossentropy",
            metrics=["accuracy"],
            jit_compile=False,
        )
        return model

    return tuning.LaNMaxHyperModel(
        build_model,
        alpha_range=(args.alpha_min, args.alpha_max),
        # GridSearch: max_trials alphas in geometric progression over the range.
        alpha_step=None
        if args.tuner != "grid"
        else (args.alpha_max / args.alpha_min) ** (1 / max(1, args.max_trials - 1)),
        epochs=args.epochs,
        draws=args.draws,
        lanmax_kwargs={"max_step": args.max_step, "warmup_epochs": args.warmup_epochs},
        seed=args.seed,
    )


def make_tuner(args, hypermodel):
    common = {
        "objective": hypermodel.objective,
        "directory": args.directory,
        "project_name": args.project_name,
        "overwrite": args.overwrite,
        # Keras Tuner reads seed=0 as "no seed" (a random one per run): give it seed + 1.
        "seed": args.seed + 1,
    }
    if args.tuner == "random":
        return keras_tuner.RandomSearch(hypermodel, max_trials=args.max_trials, **common)
    if args.tuner == "bayesian":
        return keras_tuner.BayesianOptimization(hypermodel, max_trials=args.max_trials, **common)
    if args.tuner == "grid":
        common.pop("seed")
        return keras_tuner.GridSearch(hypermodel, max_trials=args.max_trials, **common)
    return keras_tuner.Hyperband(hypermodel, max_epochs=args.epochs, factor=3, **common)


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    args.project_name = args.project_name or f"alpha_{args.tuner}"
    if args.quick:
        args.max_trials, args.epochs, args.draws, args.warmup_epochs = 3, 1, 2, 0
        args.train_split, args.test_split = "train[:1000]", "test[:500]"
        args.project_name += "_quick"
        args.out_dir = os.path.join(args.directory, "quick_results")
    role = os.environ.get("KERASTUNER_TUNER_ID", "")
    if args.overwrite and os.environ.get("KERASTUNER_ORACLE_IP") and not role.startswith("chief"):
        print("--overwrite ignored on a worker: it would delete the chief's folder")
        args.overwrite = False
    hypermodel = make_hypermodel(args)
    started = time.time()
    if not args.report_only:
        tuner = make_tuner(args, hypermodel)
        if role.startswith("chief"):
            tuner.search()  # serves the oracle until it is stopped
            return None
        train = tl.data.load(
            "fashion_mnist_subset", args.train_split, batch_size=args.batch_size, seed=args.seed
        )
        test = tl.data.load("fashion_mnist_subset", args.test_split, batch_size=500)
        tuner.search(train, validation_data=test, verbose=2)
        if os.environ.get("KERASTUNER_ORACLE_IP"):
            return None  # a worker: the report comes from the chief's folder (--report_only)
    project = os.path.join(args.directory, args.project_name)
    points = tuning.trial_points(project)
    completed = [p for p in points if p["status"] == "COMPLETED"]
    front = tuning.pareto_front(completed)
    total_bits = completed[0]["total_bits"]
    reference = (total_bits, 0.1)  # all-reliable memory (eta = 1 per bit), chance accuracy
    energies = [p["energy"] for p in front]
    metadata = {
        "experiment": "LaNMax alpha search, binary CNN, bundled real Fashion-MNIST subset",
        "command": "python experiments/tuning_alpha_fashion_mnist.py " + " ".join(sys.argv[1:]),
        "seconds": None if args.report_only else time.time() - started,
        "settings": {k: v for k, v in vars(args).items() if k not in ("out_dir",)},
        "energy_unit": "bit-units (a reliable bit read costs 1; eta(p) = -ln(p)/12.8)",
        "front_energy_span": max(energies) / min(energies),
    }
    os.makedirs(args.out_dir, exist_ok=True)
    json_path = os.path.join(args.out_dir, "tuning_alpha_front.json")
    png_path = os.path.join(args.out_dir, "tuning_alpha_front.png")
    payload = tuning.export_json(points, json_path, reference=reference, metadata=metadata)
    tuning.plot_front(
        points,
        png_path,
        title=f"LaNMax alpha search ({args.tuner}, {len(points)} trials), binary CNN",
    )
    print(
        f"{len(completed)}/{len(points)} trials completed; front of {len(front)} points "
        f"spanning {metadata['front_energy_span']:.2f}x in memory energy; hypervolume "
        f"{payload['hypervolume']:.1f} (reference {reference})"
    )
    print(f"{'alpha':>9} {'energy':>10} {'E-bar':>7} {'accuracy':>9}  95% CI")
    for p in front:
        print(
            f"{p['alpha']:9.4g} {p['energy']:10.0f} {p['mean_energy']:7.4f} "
            f"{p['accuracy']:9.4f}  [{p['ci'][0]:.4f}, {p['ci'][1]:.4f}]"
        )
    print(f"wrote {json_path} and {png_path}")
    return payload


if __name__ == "__main__":
    main()
