"""`lanmax memse`: predicted MSE of a trained model's logits on noisy memory (MemSE).

Maps the model saved at `--model_path` onto noisy memory and predicts, with the moment-
propagating `tl.memse.MemSE` mirror, the MSE of its logits against the clean network on the
first `--samples` images of `--split`: in total (variance + bias^2), per output and for every
layer's output (`--cov_mode`). Two mappings:

- `--mapping crossbar` (default): every Dense / convolution kernel is programmed on a memristor
  crossbar (`tl.memse.Crossbar`: `--sigma`, `--gmax`, `--levels`, ...). The faulty layers of a
  model from `lanmax train` contribute their stored (clean) weights, as deployed: their bit-fault
  rates play no part here.
- `--mapping digital`: the model as saved. Faulty layers keep their digital faults at their
  stored (trained or learned) p, with closed-form moments; plain layers, if any, go on the
  crossbar.

`--monte_carlo` (default on) samples the very same noise model over `--draws` draws and checks
the prediction against the Monte-Carlo MSE and its `--confidence` interval. `--power_budget`
(crossbar layers only) runs `tl.memse.optimize_gmax` on `--calibration_samples` images of
`--train_split`: one Gmax per layer under that power, in multiples of the power at `--gmax`
(1: the same power, spread across the layers), compared with the best single Gmax (by
Monte-Carlo too), and the MSE-vs-power curve at the `--curve` budgets.

Writes `<run_dir>/report.json`, `<run_dir>/memse_layers.png` and, with `--power_budget`,
`<run_dir>/mse_vs_power.png`.

Example:
  lanmax memse --model_path runs/train/model.keras --sigma 0.02 --draws 200 --power_budget 1
"""

import os
import time

import numpy as np
from absl import flags
from keras import ops

import tf_lanmax as tl
from tf_lanmax.cli import flags_common as common
from tf_lanmax.memse.crossbar import QUANTIZATION_MODES, ROUNDING_MODES
from tf_lanmax.memse.mirror import COV_MODES

MAPPINGS = ("crossbar", "digital")

flags.DEFINE_enum(
    "mapping",
    "crossbar",
    MAPPINGS,
    "crossbar: every kernel (faulty layers' stored weights) on the noisy crossbar; digital: "
    "faulty layers keep their bit faults at the stored p.",
)
flags.DEFINE_float("sigma", 0.01, "Crossbar: noise of one device's conductance, in Gmax units.")
flags.DEFINE_float("gmax", 1.0, "Crossbar: maximal conductance of every layer (> 0).")
flags.DEFINE_integer("levels", 128, "Crossbar: conductance levels (>= 2); 0 for analog devices.")
flags.DEFINE_enum(
    "quantization", "exact", QUANTIZATION_MODES, "Crossbar: how the mirror treats quantisation."
)
flags.DEFINE_enum("rounding", "nearest", ROUNDING_MODES, "Crossbar: the conductance quantiser.")
flags.DEFINE_float("tia_gain", 1.0, "Crossbar: transimpedance gain (power model only, > 0).")
flags.DEFINE_bool("fold_batchnorm", True, "Crossbar: fold BatchNorm into the kernel before it.")
flags.DEFINE_enum("cov_mode", "probe", COV_MODES, "MemSE's covariance propagation.")
flags.DEFINE_integer("samples", 256, "Images of --split the MSE is measured on (the first N).")
flags.DEFINE_bool("monte_carlo", True, "Check the prediction by Monte-Carlo over --draws draws.")
flags.DEFINE_float(
    "power_budget",
    None,
    "Optimise Gmax per layer under this power, in multiples of the power at --gmax (> 0).",
)
flags.DEFINE_list(
    "curve",
    ["0.25", "0.5", "1", "2", "4"],
    "With --power_budget: budgets of the MSE-vs-power curve, in the same units (may be empty).",
)
flags.DEFINE_integer("gmax_steps", 20, "Gradient steps of optimize_gmax after its start (>= 0).")
flags.DEFINE_integer(
    "calibration_samples", 64, "Images of --train_split that optimize_gmax calibrates on."
)
flags.DEFINE_bool("verbose", False, "Progress bars over MemSE's chunks and Monte-Carlo's draws.")

SHARED_FLAGS = (
    "run_dir",
    "dataset",
    "model_path",
    "split",
    "train_split",
    "batch_size",
    "draws",
    "confidence",
    "seed",
)


def validate(flag_values):
    """Raises `UsageError` for a bad flag value, before any work."""
    common.check_common(flag_values, SHARED_FLAGS)
    common.check_positive_flag("sigma", flag_values.sigma, allow_zero=True)
    common.check_positive_flag("gmax", flag_values.gmax)
    levels = flag_values.levels
    if levels != 0:
        try:
            common.check_int_flag("levels", levels, low=2)
        except common.UsageError:
            raise common.UsageError(
                f"--levels must be 0 (analog devices) or an integer >= 2. Received: "
                f"--levels={levels}"
            ) from None
    common.check_positive_flag("tia_gain", flag_values.tia_gain)
    common.check_int_flag("samples", flag_values.samples, low=1)
    common.check_int_flag("gmax_steps", flag_values.gmax_steps, low=0)
    common.check_int_flag("calibration_samples", flag_values.calibration_samples, low=1)
    if flag_values.power_budget is not None:
        common.check_positive_flag("power_budget", flag_values.power_budget)
        common.parse_floats("curve", flag_values.curve, allow_empty=True)


def make_crossbar(sigma=0.01, gmax=1.0, levels=128, **kwargs):
    """The `tl.memse.Crossbar` of the flags; `levels=0` means analog devices (`levels=None`).

    Args:
        sigma: device conductance noise, in Gmax units. Defaults to `0.01`.
        gmax: Gmax of every layer. Defaults to `1.0`.
        levels: conductance levels, or 0 for analog devices. Defaults to `128`.
        **kwargs: other `Crossbar` arguments (`quantization`, `rounding`, `tia_gain`,
            `fold_batchnorm`).

    Returns:
        A `tl.memse.Crossbar`.

    Example:
    >>> make_crossbar(sigma=0.02, levels=0).levels is None
    True
    """
    return tl.memse.Crossbar(sigma=sigma, gmax=gmax, levels=levels or None, **kwargs)


def mapped_model(model, mapping, model_path):
    """The network MemSE mirrors: the deployment view (`crossbar`) or the model (`digital`)."""
    if mapping == "digital":
        return model
    deployed = tl.layers.deployment_model(model)
    if deployed is None:
        raise common.UsageError(
            f"--model_path must hold a Sequential or Functional model for MemSE (a subclassed "
            f"model cannot be mapped layer by layer). Received: --model_path={model_path!r}"
        )
    return deployed


def _mc_row(result, predicted=None):
    row = result.to_dict()
    if predicted is not None:
        row["predicted_in_ci"] = bool(result.ci[0] <= predicted <= result.ci[1])
        row["relative_error"] = (predicted - result.mse) / result.mse if result.mse else None
    return row


def _print_layers(summary):
    contributions = summary["noise_contributions"]
    width = max(len(name) for name in summary["layers"])
    print(f"{'layer':<{width}}  {'MSE':>10} {'variance':>10} {'bias^2':>10}  output var. share")
    total = sum(contributions.values())
    for name, row in summary["layers"].items():
        share = ""
        if name in contributions and total > 0:
            share = f"{contributions[name] / total:16.1%}"
        print(
            f"{name:<{width}}  {row['mse']:10.4g} {row['variance']:10.4g} {row['bias2']:10.4g}"
            f"  {share}"
        )


def power_section(mirror, mapped, crossbar, x, x_cal, budget, curve, steps, mc_kwargs):
    """`optimize_gmax` at `budget` x the power at `crossbar.gmax`, its Monte-Carlo check
    (`mc_kwargs` None: none) and the MSE-vs-power curve at the `curve` budgets."""
    reference = float(ops.convert_to_numpy(mirror.power(x_cal)[0]))
    start = time.perf_counter()
    result = tl.memse.optimize_gmax(
        mirror, None, x_cal, power_budget=budget * reference, steps=steps, max_samples=len(x_cal)
    )
    seconds = time.perf_counter() - start
    optimized = {
        "gmax": result.gmax,
        "predicted_mse": result.predicted_mse,
        "power": result.power,
    }
    single = {k: v for k, v in result.baseline.items() if k != "crossbar"}
    # The optimum is found on the calibration images; predict (and sample) it on the measured
    # images too, so that the prediction and Monte-Carlo compare on the same inputs.
    for row in (optimized, single):
        values = (
            row["gmax"]
            if isinstance(row["gmax"], dict)
            else dict.fromkeys(mirror.gmax, row["gmax"])
        )
        gmax = {name: ops.convert_to_tensor(value, "float32") for name, value in values.items()}
        row["samples_predicted_mse"] = float(ops.convert_to_numpy(ops.mean(mirror.mse(x, gmax))))
    if mc_kwargs is not None:
        optimized["monte_carlo"] = _mc_row(
            tl.memse.monte_carlo(mapped, result.crossbar, x, **mc_kwargs)
        )
        single["monte_carlo"] = _mc_row(
            tl.memse.monte_carlo(mapped, result.baseline["crossbar"], x, **mc_kwargs)
        )
    rows = []
    if curve:
        rows = tl.memse.mse_power_curve(
            mirror,
            None,
            x_cal,
            budgets=[factor * reference for factor in curve],
            steps=0,
            max_samples=len(x_cal),
        )
        for factor, row in zip(curve, rows, strict=True):
            row["relative_budget"] = factor
    return {
        "reference_gmax": crossbar.gmax,
        "reference_power": reference,
        "power_budget": budget,
        "power_budget_absolute": budget * reference,
        "steps": steps,
        "calibration_samples": len(x_cal),
        "optimize_seconds": seconds,
        "optimized": optimized,
        "best_single": single,
        "initial_gmax": result.initial_gmax,
        "history": result.history,
        "curve": rows,
    }


def memse_and_report(
    model_path,
    run_dir,
    dataset="fashion_mnist_subset",
    split="test",
    samples=256,
    mapping="crossbar",
    sigma=0.01,
    gmax=1.0,
    levels=128,
    quantization="exact",
    rounding="nearest",
    tia_gain=1.0,
    fold_batchnorm=True,
    cov_mode="probe",
    monte_carlo=True,
    draws=10,
    confidence=0.95,
    seed=0,
    batch_size=128,
    power_budget=None,
    curve=(0.25, 0.5, 1.0, 2.0, 4.0),
    gmax_steps=20,
    train_split="train",
    calibration_samples=64,
    verbose=False,
):
    """Runs MemSE (and Monte-Carlo, and `optimize_gmax`) on the saved model; writes the report.

    Args:
        model_path: a `.keras` file.
        run_dir: output folder.
        dataset: a `tl.data` dataset. Defaults to `"fashion_mnist_subset"`.
        split: split of the measured images. Defaults to `"test"`.
        samples: images of `split` used (the first N). Defaults to `256`.
        mapping: `"crossbar"` or `"digital"` (see the module docstring). Defaults to
            `"crossbar"`.
        sigma: crossbar device noise, in Gmax units. Defaults to `0.01`.
        gmax: Gmax of every crossbar layer. Defaults to `1.0`.
        levels: conductance levels, 0 for analog devices. Defaults to `128`.
        quantization: the crossbar's quantisation mode. Defaults to `"exact"`.
        rounding: the crossbar's quantiser. Defaults to `"nearest"`.
        tia_gain: the crossbar's transimpedance gain. Defaults to `1.0`.
        fold_batchnorm: fold BatchNorm into the kernel before it. Defaults to `True`.
        cov_mode: the mirror's covariance mode. Defaults to `"probe"`.
        monte_carlo: sample the MSE over `draws` draws as a check. Defaults to `True`.
        draws: Monte-Carlo draws. Defaults to `10`.
        confidence: coverage of the Monte-Carlo intervals. Defaults to `0.95`.
        seed: seed of the draws. Defaults to `0`.
        batch_size: images per mirror pass. Defaults to `128`.
        power_budget: optional budget of `optimize_gmax`, in multiples of the power at `gmax`.
            Defaults to `None` (no optimisation).
        curve: budgets of the MSE-vs-power curve (same units). Defaults to
            `(0.25, 0.5, 1.0, 2.0, 4.0)`.
        gmax_steps: gradient steps of `optimize_gmax`. Defaults to `20`.
        train_split: split of the calibration images. Defaults to `"train"`.
        calibration_samples: calibration images (the first N). Defaults to `64`.
        verbose: progress bars over the mirror's chunks and the Monte-Carlo draws.
            Defaults to `False`.

    Returns:
        The report dict (as written to report.json).

    Raises:
        UsageError: a split without images, a model MemSE cannot mirror, or `power_budget`
            for a model with no crossbar-mapped layer.
    """
    x = common.load_images(dataset, split, samples)
    x_cal = None
    if power_budget is not None:
        x_cal = common.load_images(dataset, train_split, calibration_samples, flag="train_split")
    model = common.load_model(model_path)
    mapped = mapped_model(model, mapping, model_path)
    crossbar = make_crossbar(
        sigma,
        gmax,
        levels,
        quantization=quantization,
        rounding=rounding,
        tia_gain=tia_gain,
        fold_batchnorm=fold_batchnorm,
    )
    try:
        mirror = tl.memse.MemSE(
            mapped, crossbar, cov_mode=cov_mode, mapping=mapping, batch_size=batch_size,
            verbose=verbose,
        )  # fmt: skip
    except ValueError as error:
        raise common.UsageError(
            f"--model_path={model_path!r}: {' '.join(str(error).split())}"
        ) from None
    digital = [layer.name for layer in tl.faulty_layers(mapped)]
    if power_budget is not None and not mirror.gmax:
        raise common.UsageError(
            f"--power_budget needs crossbar-mapped layers, and every mapped layer of "
            f"{model.name} keeps its digital faults with --mapping={mapping} (no Gmax to "
            f"optimise); use --mapping=crossbar. Received: --power_budget={power_budget:g}"
        )

    start = time.perf_counter()
    summary = mirror.summary(x, batch_size=batch_size)
    seconds = time.perf_counter() - start
    clean = np.asarray(ops.convert_to_numpy(mirror.clean(x)), dtype=np.float64)
    signal = float(np.var(clean.reshape(len(x), -1), axis=0).mean())
    print(
        f"MemSE ({mapping}, {cov_mode}) on {len(x)} images of {split}: predicted MSE of the "
        f"outputs {summary['mse']:.4g} (variance {summary['variance']:.4g}, bias^2 "
        f"{summary['bias2']:.4g}); clean output variance {signal:.4g}"
    )
    _print_layers(summary)
    report = {
        "command": "memse",
        "model_path": os.path.abspath(model_path),
        "model": model.name,
        "dataset": dataset,
        "split": split,
        "samples": len(x),
        "mapping": mapping,
        "crossbar": crossbar.get_config(),
        "crossbar_layers": list(mirror.gmax),
        "digital_layers": digital,
        "fault_rates": {
            layer.name: float(ops.convert_to_numpy(layer.fault_rate.value))
            for layer in tl.faulty_layers(mapped)
        },
        "cov_mode": cov_mode,
        "seed": seed,
        "clean_output_variance": signal,
        "predicted": {**summary, "seconds": seconds},
        "plots": [],
        "package_version": tl.__version__,
    }
    mc_kwargs = None
    if monte_carlo:
        mc_kwargs = {"draws": draws, "confidence": confidence, "seed": seed}
        result = tl.memse.monte_carlo(
            mirror, None, x, batch_size=batch_size, verbose=verbose, **mc_kwargs
        )
        report["monte_carlo"] = _mc_row(result, summary["mse"])
        inside = "inside" if report["monte_carlo"]["predicted_in_ci"] else "outside"
        print(f"{result}: the prediction is {inside} the interval")
    if power_budget is not None:
        power = power_section(
            mirror,
            mapped,
            crossbar,
            x,
            x_cal,
            power_budget,
            list(curve),
            gmax_steps,
            mc_kwargs,
        )
        report["power"] = power
        print(
            f"Power budget {power_budget:g} x {power['reference_power']:.4g} (the power at "
            f"Gmax = {gmax:g} on the calibration images). Predicted MSE on the calibration / "
            "measured images, and Monte-Carlo on the measured images:"
        )
        for label, row in (("per-layer", power["optimized"]), ("single", power["best_single"])):
            values = row["gmax"] if isinstance(row["gmax"], dict) else {"all": row["gmax"]}
            line = (
                f"  {label:<9} Gmax {', '.join(f'{k} {v:.4g}' for k, v in values.items())}: "
                f"{row['predicted_mse']:.4g} / {row['samples_predicted_mse']:.4g}"
            )
            if "monte_carlo" in row:
                mc = row["monte_carlo"]
                line += f"; MC {mc['mse']:.4g} +- {mc['half_width']:.2g}"
            print(line)
        report["plots"].append(
            tl.reports.plot_mse_vs_power(power, os.path.join(run_dir, "mse_vs_power.png"))
        )
    report["plots"].insert(
        0,
        tl.reports.plot_memse_layers(
            summary, os.path.join(run_dir, "memse_layers.png"), report.get("monte_carlo")
        ),
    )
    common.write_report(run_dir, report)  # non-finite floats are written as null
    return report


def run(flag_values, args):
    del args
    power_budget = flag_values.power_budget
    memse_and_report(
        flag_values.model_path,
        common.run_dir(flag_values, "memse"),
        dataset=flag_values.dataset,
        split=flag_values.split,
        samples=flag_values.samples,
        mapping=flag_values.mapping,
        sigma=flag_values.sigma,
        gmax=flag_values.gmax,
        levels=flag_values.levels,
        quantization=flag_values.quantization,
        rounding=flag_values.rounding,
        tia_gain=flag_values.tia_gain,
        fold_batchnorm=flag_values.fold_batchnorm,
        cov_mode=flag_values.cov_mode,
        monte_carlo=flag_values.monte_carlo,
        draws=flag_values.draws,
        confidence=flag_values.confidence,
        seed=flag_values.seed,
        batch_size=flag_values.batch_size,
        power_budget=power_budget,
        curve=(
            common.parse_floats("curve", flag_values.curve, allow_empty=True)
            if power_budget is not None
            else ()
        ),
        gmax_steps=flag_values.gmax_steps,
        train_split=flag_values.train_split,
        calibration_samples=flag_values.calibration_samples,
        verbose=flag_values.verbose,
    )
    return 0
