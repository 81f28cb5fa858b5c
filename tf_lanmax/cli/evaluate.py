"""`lanmax evaluate`: Monte-Carlo accuracy of a trained model under faults or conductance noise.

`--mode faults` evaluates the model saved at `--model_path` on `--split` under `--draws` fault
draws at its stored (trained or learned) rates; `--mode noise` applies memristor conductance
noise of the analog `--device` (a `tl.analog` preset) on the deployed weights, at each of
`--sigmas` (devices with one sigma; none: the preset's) and each inference time of `--times`
(seconds after programming; drifting devices), with `--draws` chips each. Both report the mean
accuracy with a Student-t confidence interval (`--confidence`) and the clean accuracy (faults
off), and write `<run_dir>/report.json`; noise mode also writes `<run_dir>/noise_robustness.png`
with several sigmas and `<run_dir>/drift.png` with several times (accuracy against time, log
axis, CI bands). For a model with persistent faulty layers (one fixed fault map per chip),
`--chips K` evaluates K chips instead of `--draws`: the mean accuracy over chips with its
interval, and the accuracy a given share of chips reach (quantiles with distribution-free lower
bounds), in the report's `chip_evaluation`.

Example:
  lanmax evaluate --model_path runs/train/model.keras --mode noise --sigmas 0,0.05,0.1
  lanmax evaluate --model_path runs/train/model.keras --mode noise --device pcm \
    --times 1,3600,86400
  lanmax evaluate --model_path persistent.keras --chips 100
"""

import dataclasses
import os

import tf_lanmax as tl
from tf_lanmax.cli import common, shared
from tf_lanmax.cli.options import InvalidOption, at_least, check_fields, each, option, positive

MODES = ("faults", "noise")


def _device_check(name, value):
    tl.analog.get(value)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """`lanmax evaluate`'s settings; see the module docstring."""

    model_path: str | None = shared.model_path()
    dataset: str = shared.dataset()
    split: str = shared.split()
    batch_size: int = shared.batch_size()
    mode: str = option("faults", "Evaluate under bit faults or conductance noise.", choices=MODES)
    device: str | None = option(
        None,
        "Noise mode: the tl.analog device preset. Defaults to tl.evaluate_under_noise's.",
        check=_device_check,
    )
    sigmas: tuple[float, ...] = option(
        (),
        "Noise mode, devices with one sigma (multiplicative, additive): noise levels >= 0 "
        "replacing the preset's sigma, e.g. 0,0.05,0.1. Defaults to the preset's.",
        check=each(positive(allow_zero=True)),
    )
    times: tuple[float, ...] = option(
        (),
        "Noise mode: inference times in seconds after programming (drift). Defaults to 1 s.",
        check=each(positive(allow_zero=True)),
    )
    draws: int = shared.draws()
    chips: int | None = option(
        None,
        "Faults mode, for persistent faulty layers: evaluate this many chips (>= 2, one fault "
        "map each) instead of --draws; reports the mean over chips and the accuracy 95% of "
        "chips reach.",
        check=at_least(2),
    )
    confidence: float = shared.confidence()
    seed: int = shared.seed()

    def __post_init__(self):
        check_fields(self)
        shared.required_model_path(self)
        if self.mode == "noise":
            self._check_sigmas()
        else:
            for name in ("device", "sigmas", "times"):
                if getattr(self, name) != _default(name):
                    raise InvalidOption(
                        name, getattr(self, name), "applies to --mode=noise only; --mode=faults"
                    )
        if self.chips is not None:
            if self.mode != "faults":
                raise InvalidOption("chips", self.chips, "applies to --mode=faults only")
            if self.draws != _default("draws"):
                raise InvalidOption(
                    "chips", self.chips, f"and --draws={self.draws} exclude each other"
                )

    def _check_sigmas(self):
        if not self.sigmas or self.device is None:
            return
        try:  # the library refuses a sigma for a device that has none
            tl.analog.get(self.device, sigma=self.sigmas[0])
        except (ValueError, TypeError) as error:
            raise InvalidOption("sigmas", self.sigmas, error) from None


def _default(name):
    return next(f.default for f in dataclasses.fields(Settings) if f.name == name)


def run(settings, run_dir, verbose=None):
    """Evaluates the saved model under faults or noise; returns the report.

    Raises:
        UsageError: `chips` for a model without persistent faulty layers, before any work.
    """
    from keras import ops

    bar = common.bar(common.keras_verbose() if verbose is None else verbose)
    data = common.load_data(settings.dataset, settings.split, settings.batch_size)
    model = common.load_model(settings.model_path)
    layers = tl.faulty_layers(model)
    if settings.chips is not None and not any(
        layer.fault_persistence == "persistent" for layer in layers
    ):
        raise common.UsageError(
            f"--chips needs faulty layers with fault_persistence='persistent'; those of "
            f"{settings.model_path} are all transient (every fault draw is a new chip): use "
            f"--draws. Received: --chips={settings.chips}"
        )
    with tl.faults_disabled(model):
        clean_loss, clean_accuracy = model.evaluate(data, verbose=0)
    report = {
        "command": "evaluate",
        "model_path": os.path.abspath(settings.model_path),
        "model": model.name,
        "dataset": settings.dataset,
        "split": settings.split,
        "mode": settings.mode,
        "draws": None if settings.chips is not None else settings.draws,
        "chips": settings.chips,
        "confidence": settings.confidence,
        "seed": settings.seed,
        "clean_accuracy": float(clean_accuracy),
        "clean_loss": float(clean_loss),
        "package_version": tl.__version__,
    }
    common_kwargs = {"confidence": settings.confidence, "seed": settings.seed, "verbose": bar}
    if settings.mode == "faults":
        report["rates"] = {
            layer.name: float(ops.convert_to_numpy(layer.fault_rate.value)) for layer in layers
        }
        if settings.chips is not None:
            common.progress(f"evaluating {settings.chips} chips")
            result = tl.evaluate_under_faults(model, data, chips=settings.chips, **common_kwargs)
            report["chip_evaluation"] = result.to_dict()
            report["chip_evaluation_text"] = str(result)
        else:
            common.progress(f"evaluating under faults ({settings.draws} draws)")
            result = tl.evaluate_under_faults(model, data, draws=settings.draws, **common_kwargs)
            report["faults"] = result.to_dict()
        return report
    # Noise on the deployed weights; an analog array has no digital read faults.
    device = {} if settings.device is None else {"device": settings.device}
    common.progress(f"evaluating under conductance noise ({settings.draws} chips per point)")
    with common.flag_errors("sigmas", ",".join(map(str, settings.sigmas))):
        result = tl.evaluate_under_noise(
            model,
            data,
            list(settings.sigmas) or None,
            draws=settings.draws,
            times=list(settings.times) or None,
            **device,
            **common_kwargs,
        )
    report["noise"] = result.to_dict()
    report["device"] = tl.analog.get(report["noise"]["device"]).name
    return report


def plot(report, run_dir):
    """Noise mode: accuracy vs sigma (several sigmas) and vs time (several times)."""
    if report["mode"] != "noise":
        return []
    noise, paths = report["noise"], []
    if len(noise["sigmas"]) > 1:
        path = os.path.join(run_dir, "noise_robustness.png")
        paths.append(tl.reports.plot_noise_robustness({report["model"]: noise}, path))
    if len(noise["times"]) > 1:
        path = os.path.join(run_dir, "drift.png")
        paths.append(tl.reports.plot_drift({report["model"]: noise}, path))
    return paths


def show(report):
    split = report["split"]
    print(f"Clean {split} accuracy (faults off): {report['clean_accuracy']:.4f}")
    if "chip_evaluation" in report:
        print(f"{split} accuracy over chips at the stored rates: {report['chip_evaluation_text']}")
    elif "faults" in report:
        print(
            f"{split} accuracy under faults at the stored rates: "
            f"{common.faults_text(report['faults'])}"
        )
    else:
        for point in report["noise"]["points"]:
            level = f"sigma {point['sigma']:g}, " if point["sigma"] is not None else ""
            a = point["accuracy"]
            print(
                f"{report['device']} {level}t = {point['time']:g} s: accuracy {a['mean']:.4f} "
                f"+- {a['half_width']:.4f} ({a['confidence']:.0%} CI over {a['n']} draws)"
            )
