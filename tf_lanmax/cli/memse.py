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
(crossbar layers only) runs `tl.memse.power_report` on `--calibration_samples` images of
`--train_split`: one Gmax per layer under that power, in multiples of the power at `--gmax`
(1: the same power, spread across the layers), compared with the best single Gmax (by
Monte-Carlo too), and the MSE-vs-power curve at the `--curve` budgets.

Writes `<run_dir>/report.json`, `<run_dir>/memse_layers.png` and, with `--power_budget`,
`<run_dir>/mse_vs_power.png`.

Example:
  lanmax memse --model_path runs/train/model.keras --sigma 0.02 --draws 200 --power_budget 1
"""

import dataclasses
import os
import time

import tf_lanmax as tl
from tf_lanmax.cli import common, shared
from tf_lanmax.cli.options import at_least, check_fields, each, option, positive

MAPPINGS = ("crossbar", "digital")
CROSSBAR_OPTIONS = ("sigma", "gmax", "levels", "quantization", "rounding", "tia_gain")
CROSSBAR_DEFAULT = "Defaults to tl.memse.Crossbar's."


def _crossbar_check(name, value):
    """Constructs a `tl.memse.Crossbar` with this one option (levels 0: analog devices)."""
    if name != "levels":
        tl.memse.Crossbar(**{name: value})
    elif value != 0:
        try:
            tl.memse.Crossbar(levels=value)
        except ValueError as error:
            raise ValueError(f"{error} (or 0 (analog devices))") from None


def _cov_mode_check(name, value):
    from tf_lanmax._validation import check_one_of
    from tf_lanmax.memse.mirror import COV_MODES

    check_one_of(name, value, COV_MODES)


def _crossbar_option(help_text):
    return option(None, f"Crossbar: {help_text} {CROSSBAR_DEFAULT}", check=_crossbar_check)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """`lanmax memse`'s settings; see the module docstring."""

    model_path: str | None = shared.model_path()
    dataset: str = shared.dataset()
    split: str = shared.split()
    samples: int = option(
        256, "Images of --split the MSE is measured on (the first N).", check=at_least(1)
    )
    batch_size: int = shared.batch_size()
    mapping: str = option(
        "crossbar",
        "crossbar: every kernel (faulty layers' stored weights) on the noisy crossbar; digital: "
        "faulty layers keep their bit faults at the stored p.",
        choices=MAPPINGS,
    )
    sigma: float | None = _crossbar_option("noise of one device's conductance, in Gmax units.")
    gmax: float | None = _crossbar_option("maximal conductance of every layer (> 0).")
    levels: int | None = _crossbar_option("conductance levels (>= 2); 0 for analog devices.")
    quantization: str | None = _crossbar_option("how the mirror treats quantisation.")
    rounding: str | None = _crossbar_option("the conductance quantiser.")
    tia_gain: float | None = _crossbar_option("transimpedance gain (power model only, > 0).")
    fold_batchnorm: bool = option(True, "Crossbar: fold BatchNorm into the kernel before it.")
    cov_mode: str = option("probe", "MemSE's covariance propagation.", check=_cov_mode_check)
    monte_carlo: bool = option(True, "Check the prediction by Monte-Carlo over --draws draws.")
    draws: int = shared.draws()
    confidence: float = shared.confidence()
    seed: int = shared.seed()
    power_budget: float | None = option(
        None,
        "Optimise Gmax per layer under this power, in multiples of the power at --gmax (> 0).",
        check=positive(),
    )
    curve: tuple[float, ...] = option(
        (0.25, 0.5, 1.0, 2.0, 4.0),
        "With --power_budget: budgets of the MSE-vs-power curve, in the same units (may be empty).",
        check=each(positive()),
    )
    gmax_steps: int = option(
        20, "Gradient steps of optimize_gmax after its start (>= 0).", check=at_least(0)
    )
    train_split: str = shared.train_split()
    calibration_samples: int = option(
        64, "Images of --train_split that optimize_gmax calibrates on.", check=at_least(1)
    )
    verbose: bool = option(False, "Progress bars over MemSE's chunks and Monte-Carlo's draws.")

    def __post_init__(self):
        check_fields(self)
        shared.required_model_path(self)

    def crossbar(self):
        """The `tl.memse.Crossbar` of these settings."""
        kwargs = {name: getattr(self, name) for name in CROSSBAR_OPTIONS}
        kwargs = {name: value for name, value in kwargs.items() if value is not None}
        if "levels" in kwargs:
            kwargs["levels"] = kwargs["levels"] or None  # 0: analog devices
        return tl.memse.Crossbar(fold_batchnorm=self.fold_batchnorm, **kwargs)


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


def run(settings, run_dir):
    """Runs MemSE (and Monte-Carlo, and the power report) on the saved model.

    Returns:
        The report dict.

    Raises:
        UsageError: a split without images, a model MemSE cannot mirror, or `power_budget`
            for a model with no crossbar-mapped layer.
    """
    import numpy as np
    from keras import ops

    from tf_lanmax.memse.power_budget import monte_carlo_row

    x = common.load_images(settings.dataset, settings.split, settings.samples)
    model = common.load_model(settings.model_path)
    mapped = mapped_model(model, settings.mapping, settings.model_path)
    crossbar = settings.crossbar()
    with common.flag_errors("model_path", settings.model_path):
        mirror = tl.memse.MemSE(
            mapped,
            crossbar,
            cov_mode=settings.cov_mode,
            mapping=settings.mapping,
            batch_size=settings.batch_size,
            verbose=settings.verbose,
        )
    if settings.power_budget is not None and not mirror.gmax:
        raise common.UsageError(
            f"--power_budget needs crossbar-mapped layers, and every mapped layer of "
            f"{model.name} keeps its digital faults with --mapping={settings.mapping} (no Gmax "
            f"to optimise); use --mapping=crossbar. Received: "
            f"--power_budget={settings.power_budget:g}"
        )
    x_cal = None
    if settings.power_budget is not None:
        x_cal = common.load_images(
            settings.dataset, settings.train_split, settings.calibration_samples, "train_split"
        )

    common.progress(f"MemSE ({settings.mapping}, {settings.cov_mode}) on {len(x)} images")
    start = time.perf_counter()
    summary = mirror.summary(x, batch_size=settings.batch_size)
    seconds = time.perf_counter() - start
    clean = np.asarray(ops.convert_to_numpy(mirror.clean(x)), dtype=np.float64)
    report = {
        "command": "memse",
        "model_path": os.path.abspath(settings.model_path),
        "model": model.name,
        "dataset": settings.dataset,
        "split": settings.split,
        "samples": len(x),
        "mapping": settings.mapping,
        "crossbar": crossbar.get_config(),
        "crossbar_layers": list(mirror.gmax),
        "digital_layers": [layer.name for layer in tl.faulty_layers(mapped)],
        "fault_rates": {
            layer.name: float(ops.convert_to_numpy(layer.fault_rate.value))
            for layer in tl.faulty_layers(mapped)
        },
        "cov_mode": settings.cov_mode,
        "seed": settings.seed,
        "clean_output_variance": float(np.var(clean.reshape(len(x), -1), axis=0).mean()),
        "predicted": {**summary, "seconds": seconds},
        "package_version": tl.__version__,
    }
    mc_kwargs = None
    if settings.monte_carlo:
        mc_kwargs = {
            "draws": settings.draws,
            "confidence": settings.confidence,
            "seed": settings.seed,
        }
        common.progress(f"Monte-Carlo check ({settings.draws} draws)")
        result = tl.memse.monte_carlo(
            mirror, None, x, batch_size=settings.batch_size, verbose=settings.verbose, **mc_kwargs
        )
        report["monte_carlo"] = monte_carlo_row(result, summary["mse"])
    if settings.power_budget is not None:
        common.progress(f"optimising Gmax per layer at {settings.power_budget:g} x the power")
        report["power"] = tl.memse.power_report(
            mirror,
            mapped,
            x,
            x_cal,
            settings.power_budget,
            curve=settings.curve,
            steps=settings.gmax_steps,
            monte_carlo=mc_kwargs,
        )
    return report


def plot(report, run_dir):
    paths = [
        tl.reports.plot_memse_layers(
            report["predicted"],
            os.path.join(run_dir, "memse_layers.png"),
            report.get("monte_carlo"),
        )
    ]
    if "power" in report:
        path = os.path.join(run_dir, "mse_vs_power.png")
        paths.append(tl.reports.plot_mse_vs_power(report["power"], path))
    return paths


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


def show(report):
    predicted = report["predicted"]
    print(
        f"MemSE ({report['mapping']}, {report['cov_mode']}) on {report['samples']} images of "
        f"{report['split']}: predicted MSE of the outputs {predicted['mse']:.4g} (variance "
        f"{predicted['variance']:.4g}, bias^2 {predicted['bias2']:.4g}); clean output variance "
        f"{report['clean_output_variance']:.4g}"
    )
    _print_layers(predicted)
    if "monte_carlo" in report:
        mc = report["monte_carlo"]
        inside = "inside" if mc["predicted_in_ci"] else "outside"
        print(
            f"Monte-Carlo MSE {mc['mse']:.4g} +- {mc['half_width']:.2g} over {mc['draws']} "
            f"draws: the prediction is {inside} the interval"
        )
    if "power" in report:
        power = report["power"]
        print(
            f"Power budget {power['power_budget']:g} x {power['reference_power']:.4g} (the power "
            f"at Gmax = {power['reference_gmax']:g} on the calibration images). Predicted MSE on "
            "the calibration / measured images, and Monte-Carlo on the measured images:"
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
