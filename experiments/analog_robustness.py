"""The SAMSON claim re-tested: which training rule keeps a CNN accurate on real analog devices.

SAMSON (Mordido et al., arXiv:2211.11561) claims that sharpness-aware training makes a network
robust to analog weight noise "without hardware knowledge", SAMSON most of all. Here the float
CNN is trained on a fixed 20k-image subset of real Fashion-MNIST with seven rules: plain, SAM,
ASAM, SAMSON, random weight perturbation (RWP), Lookbehind-SAM and hardware-aware training with
PCM noise (the baseline that has the hardware knowledge). Protocol:

1. Selection: each rule's rho (noise scale for RWP and hardware-aware) from a grid of three, one
   seed, SGD with momentum 0.9 (the references' optimizer), by the mean validation accuracy
   (5k images held out of the training set) over three devices: multiplicative sigma 0.3, PCM
   after one day and ReRAM (Wan 2022) after one day.
2. The chosen settings with three seeds, with SGD and with Adam.
3. Test (10k images) under `multiplicative` (sigma 0.3), `pcm` at 1 s, 1 h, 1 day, 1 month
   without and with global drift compensation, and `reram_wan2022` at 1 s and 1 day.

Per device and optimizer the rules are ranked by their mean over seeds with a 95 % t-interval
over seeds. Every trained model and every evaluation is cached under `--cache_dir`, so an
interrupted run resumes where it stopped. The records (training seconds, evaluations) live in
docs/results/analog_robustness_runs/ and are committed, so the hours of compute survive a change
of machine; the model files beside them are not committed (pass another `--cache_dir` to run
everything afresh). Writes docs/results/analog_robustness.json and .png, and reports the
compute time of the whole experiment, summed over its records.

    python experiments/analog_robustness.py            # the protocol above (hours on 2 cores)
    python experiments/analog_robustness.py --quick    # smoke run on the bundled subset
"""

import argparse
import functools
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import tf_lanmax as tl  # noqa: E402
from tf_lanmax._io import write_json_atomic  # noqa: E402
from tf_lanmax.evaluation.statistics import t_interval  # noqa: E402

#: rule -> (how to build its trainer, the grid of its one hyperparameter).
GRIDS = {
    "plain": [None],
    "sam": [0.02, 0.05, 0.1],
    "asam": [0.2, 0.5, 1.0],
    "samson": [0.1, 0.2, 0.5],
    "rwp": [0.02, 0.05, 0.1],
    "lookbehind": [0.02, 0.05, 0.1],
    "hardware_aware": [0.5, 1.0, 2.0],
}
LOOKBEHIND_STEPS = 2
MULTIPLICATIVE_SIGMA = 0.3
PCM_TIMES = [1.0, 3600.0, 86400.0, 2592000.0]
RERAM_TIMES = [1.0, 86400.0]
SELECTION = [("multiplicative", None), ("pcm", 86400.0), ("reram_wan2022", 86400.0)]


def trainer_for(rule, value, inner, seed):
    """The Keras model that `fit` trains for `rule` at hyperparameter `value`."""
    if rule == "plain":
        return inner
    if rule == "hardware_aware":
        return tl.analog.HardwareAwareModel(inner, "pcm", noise_scale=value, seed=seed)
    if rule == "lookbehind":
        return tl.SharpnessAwareModel(
            inner, rule="sam", rho=value, lookbehind_steps=LOOKBEHIND_STEPS
        )
    if rule == "rwp":
        return tl.SharpnessAwareModel(inner, rule="rwp", rho=value, seed=seed)
    return tl.SharpnessAwareModel(inner, rule=rule, rho=value)


def optimizer(name, steps):
    if name == "sgd":
        return keras.optimizers.SGD(keras.optimizers.schedules.CosineDecay(0.05, steps), 0.9)
    return keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(2e-3, steps))


def trained_model(rule, value, opt, seed, data, epochs, cache, tag):
    """(a function that returns the model of run `tag`, trained at its first call; the path
    of the run's training record).

    The model is saved to `cache/models/<tag>.keras` (not committed: megabytes per run) and its
    training seconds to `cache/train/<tag>.json` (committed). A later call, or a later process
    that finds the model file, loads it instead of training again; a run whose evaluations are
    all cached never calls this function at all.
    """
    path = os.path.join(cache, "models", tag + ".keras")
    record = os.path.join(cache, "train", tag + ".json")

    def model():
        if os.path.exists(path):
            loaded = keras.saving.load_model(path)
            loaded.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            return loaded
        keras.utils.set_random_seed(seed)
        inner = tl.models.float_cnn(name="cnn")
        trainer = trainer_for(rule, value, inner, seed)
        steps = max(1, epochs * int(data.cardinality()))
        trainer.compile(
            optimizer(opt, steps), "sparse_categorical_crossentropy", metrics=["accuracy"]
        )
        start = time.perf_counter()
        trainer.fit(data, epochs=epochs, verbose=2)
        seconds = time.perf_counter() - start
        inner.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        inner.save(path)
        write_json_atomic(record, {"tag": tag, "epochs": epochs, "seconds": seconds})
        return inner

    return functools.cache(model), record


def recorded_seconds(get_model, record):
    """The training seconds of a run (training it first when no record of it exists)."""
    if not os.path.exists(record):
        get_model()
    with open(record) as f:
        return json.load(f)["seconds"]


def evaluate(get_model, data, device, times, draws, seed, path):
    """`evaluate_under_noise` of one model on one device (cached at `path`), as a dict."""
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    model = get_model()
    start = time.perf_counter()
    if device == "multiplicative":
        result = tl.evaluate_under_noise(
            model, data, [MULTIPLICATIVE_SIGMA], draws=draws, seed=seed, verbose=0
        )
    else:
        name, _, compensated = device.partition("+")
        dev = tl.analog.get(name, **({"drift_compensation": True} if compensated else {}))
        result = tl.evaluate_under_noise(
            model, data, draws=draws, seed=seed, verbose=0, device=dev, times=times
        )
    summary = dict(result.to_dict(), seconds=time.perf_counter() - start)
    write_json_atomic(path, summary)
    return summary


def compute_seconds(cache):
    """Training plus evaluation seconds of every run recorded in `cache`: the whole experiment's
    compute time, also when it ran in several processes (each resuming from the records)."""
    total = 0.0
    for part in ("train", "validation", "test"):
        folder = os.path.join(cache, part)
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            with open(os.path.join(folder, name)) as f:
                total += json.load(f).get("seconds", 0.0)
    return total


def mean_accuracy(summary, time=None):
    points = summary["points"]
    if time is not None:
        points = [p for p in points if p["time"] == time]
    return float(np.mean([p["accuracy"]["mean"] for p in points]))


def select(args, data, cache):
    """Step 1: each rule's hyperparameter by mean validation accuracy over `SELECTION`."""
    chosen, table = {}, {}
    for rule, grid in GRIDS.items():
        scores = {}
        for value in grid:
            tag = f"{rule}_{value}_sgd_{args.seed}"
            get_model, _ = trained_model(
                rule, value, "sgd", args.seed, data["train"], args.epochs, cache, tag
            )
            accs = []
            for device, t in SELECTION:
                summary = evaluate(
                    get_model, data["validation"], device, None if t is None else [t],
                    args.selection_draws, args.seed,
                    os.path.join(cache, "validation", f"{tag}_{device}.json"),
                )  # fmt: skip
                accs.append(mean_accuracy(summary))
            scores[str(value)] = float(np.mean(accs))
            print(f"  select {rule} {value}: {scores[str(value)]:.4f}", flush=True)
        best = max(scores, key=scores.get)
        chosen[rule] = grid[[str(v) for v in grid].index(best)]
        table[rule] = scores
    return chosen, table


def test_devices():
    return [
        ("multiplicative", None),
        ("pcm", PCM_TIMES),
        ("pcm+compensated", PCM_TIMES),
        ("reram_wan2022", RERAM_TIMES),
    ]


def device_settings():
    """(label, device key, time) of every reported test setting."""
    rows = [(f"multiplicative sigma {MULTIPLICATIVE_SIGMA:g}", "multiplicative", None)]
    for key, times in test_devices()[1:]:
        rows += [(f"{key} t={t:g}s", key, t) for t in times]
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out_dir", default="docs/results")
    # The per-run records (training seconds, every evaluation) are committed under
    # docs/results/, so a run continues across machines; the model files beside them are not.
    parser.add_argument("--cache_dir", default="docs/results/analog_robustness_runs")
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--train_split", default="train[:20000]")
    parser.add_argument("--validation_split", default="train[55000:]")
    parser.add_argument("--test_split", default="test")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--optimizers", default="sgd,adam")
    parser.add_argument("--selection_draws", type=int, default=3)
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    if args.quick:
        args.dataset, args.epochs, args.seeds = "fashion_mnist_subset", 1, "0,1"
        args.train_split, args.validation_split = "train[:512]", "train[-256:]"
        args.test_split, args.selection_draws, args.draws = "test[:256]", 2, 2
        if args.cache_dir == parser.get_default("cache_dir"):
            args.cache_dir = os.path.join("runs", "analog_robustness_quick")
    start = time.perf_counter()
    data = {
        "train": tl.data.load(args.dataset, args.train_split, batch_size=128, seed=args.seed),
        "validation": tl.data.load(args.dataset, args.validation_split, batch_size=1000),
        "test": tl.data.load(args.dataset, args.test_split, batch_size=1000),
    }
    print("== selection (SGD, one seed)", flush=True)
    chosen, selection = select(args, data, args.cache_dir)
    print(f"chosen: {chosen}", flush=True)
    name = "analog_robustness_quick" if args.quick else "analog_robustness"
    os.makedirs(args.out_dir, exist_ok=True)
    # Step 1 on its own, so a run stopped during step 2 still leaves its selection.
    write_json_atomic(
        os.path.join(args.out_dir, name + "_selection.json"),
        {
            "command": "python experiments/analog_robustness.py " + " ".join(sys.argv[1:]),
            "grids": GRIDS,
            "selection": selection,
            "chosen": chosen,
            "wall_seconds": time.perf_counter() - start,
        },
    )
    seeds = [int(s) for s in args.seeds.split(",")]
    optimizers = args.optimizers.split(",")
    per_seed, train_seconds = {}, {}
    for opt in optimizers:
        for rule, value in chosen.items():
            for seed in seeds:
                tag = f"{rule}_{value}_{opt}_{seed}"
                print(f"== {tag}", flush=True)
                get_model, record = trained_model(
                    rule, value, opt, seed, data["train"], args.epochs, args.cache_dir, tag
                )
                for key, times in test_devices():
                    summary = evaluate(
                        get_model, data["test"], key, times, args.draws, seed,
                        os.path.join(args.cache_dir, "test", f"{tag}_{key}.json"),
                    )  # fmt: skip
                    for label, k, t in device_settings():
                        if k == key:
                            per_seed.setdefault((opt, label, rule), []).append(
                                mean_accuracy(summary, t)
                            )
                    per_seed.setdefault((opt, "clean", rule), [])
                per_seed[(opt, "clean", rule)].append(summary["clean_accuracy"])
                train_seconds[tag] = recorded_seconds(get_model, record)
    ranking = {}
    for opt in optimizers:
        ranking[opt] = {}
        for label in ["clean"] + [row[0] for row in device_settings()]:
            rows = {
                rule: t_interval(per_seed[(opt, label, rule)], 0.95).to_dict() for rule in chosen
            }
            best = max(rows, key=lambda r: rows[r]["mean"])
            ranking[opt][label] = {"rules": rows, "best": best}
            print(f"{opt:4s} {label:32s} best {best:15s} {rows[best]['mean']:.4f}", flush=True)
    wall = time.perf_counter() - start
    report = {
        "command": "python experiments/analog_robustness.py " + " ".join(sys.argv[1:]),
        "dataset": args.dataset,
        "splits": {
            "train": args.train_split,
            "validation": args.validation_split,
            "test": args.test_split,
        },
        "epochs": args.epochs,
        "seeds": seeds,
        "draws": args.draws,
        "grids": {rule: grid for rule, grid in GRIDS.items()},
        "selection": selection,
        "chosen": chosen,
        "ranking": ranking,
        "train_seconds": train_seconds,
        "wall_seconds_this_run": wall,
        "wall_seconds_total_training": float(sum(train_seconds.values())),
        "compute_seconds_whole_experiment": compute_seconds(args.cache_dir),
    }
    write_json_atomic(os.path.join(args.out_dir, name + ".json"), report)
    plot(ranking, os.path.join(args.out_dir, name + ".png"))
    print(
        f"wall time: {wall:.0f} s; compute of the whole experiment: "
        f"{report['compute_seconds_whole_experiment']:.0f} s",
        flush=True,
    )
    return report


def plot(ranking, path):
    """Mean test accuracy over seeds (95 % CI) per rule and device setting, one panel per
    optimizer."""
    optimizers = list(ranking)
    fig, axes = plt.subplots(len(optimizers), 1, figsize=(11, 4.2 * len(optimizers)), squeeze=False)
    for ax, opt in zip(axes[:, 0], optimizers, strict=True):
        labels = list(ranking[opt])
        rules = list(ranking[opt][labels[0]]["rules"])
        width = 0.8 / len(rules)
        for r, rule in enumerate(rules):
            means = [ranking[opt][lab]["rules"][rule]["mean"] for lab in labels]
            half = [ranking[opt][lab]["rules"][rule]["half_width"] for lab in labels]
            x = np.arange(len(labels)) + (r - (len(rules) - 1) / 2) * width
            ax.bar(x, means, width, yerr=half, capsize=2, label=rule)
        ax.set_xticks(np.arange(len(labels)))
        ax.set_xticklabels(labels, rotation=35, ha="right", fontsize=8)
        low = min(ranking[opt][lab]["rules"][rule]["mean"] for lab in labels for rule in rules)
        ax.set_ylim(max(0.0, low - 0.05), 1.0)
        ax.set_ylabel("test accuracy (mean over seeds)")
        ax.set_title(f"{opt.upper()}: accuracy per device setting, 95 % CI over seeds")
        ax.legend(ncol=len(rules), fontsize=8, loc="lower left")
    tl.reports.save_figure(fig, path)


if __name__ == "__main__":
    main()
