"""`lanmax evaluate`: Monte-Carlo accuracy of a trained model under faults or conductance noise.

`--mode faults` evaluates the model saved at `--model_path` on `--split` under `--draws` fault
draws at its stored (trained or learned) rates; `--mode noise` applies memristor conductance
noise of the analog `--device` (a `tl.analog` preset) on the deployed weights, at each of
`--sigmas` (devices with one sigma) and each inference time of `--times` (seconds after
programming; drifting devices), with `--draws` chips each. Both report the mean accuracy with a
Student-t confidence interval (`--confidence`) and the clean accuracy (faults off), and write
`<run_dir>/report.json`; noise mode also writes `<run_dir>/noise_robustness.png` and, with
several times, `<run_dir>/drift.png` (accuracy against time, log axis, CI bands). For a model
with persistent faulty layers (one fixed fault map per chip), `--chips K` evaluates K chips
instead of `--draws`: the mean accuracy over chips with its interval, and the accuracy a given
share of chips reach (quantiles with distribution-free lower bounds), in the report's
`chip_evaluation`.

Example:
  lanmax evaluate --model_path runs/train/model.keras --mode noise --sigmas 0,0.05,0.1
  lanmax evaluate --model_path runs/train/model.keras --mode noise --device pcm \
    --times 1,3600,86400
  lanmax evaluate --model_path persistent.keras --chips 100
"""

import os

from absl import flags
from keras import ops

import tf_lanmax as tl
from tf_lanmax.cli import flags_common as common

MODES = ("faults", "noise")

flags.DEFINE_enum("mode", "faults", MODES, "Evaluate under bit faults or conductance noise.")
flags.DEFINE_enum(
    "device", "multiplicative", tl.analog.names(), "Noise mode: the analog device preset."
)
flags.DEFINE_list(
    "sigmas",
    ["0", "0.05", "0.1"],
    "Noise mode, devices with one sigma (multiplicative, additive): the noise levels.",
)
flags.DEFINE_list(
    "times", ["1"], "Noise mode: inference times in seconds after programming (drift)."
)
flags.DEFINE_integer(
    "chips",
    None,
    "Faults mode, for persistent faulty layers: evaluate this many chips (>= 2, one fault map "
    "each) instead of --draws; reports the mean over chips and the accuracy 95% of chips reach.",
)

SHARED_FLAGS = (
    "run_dir",
    "dataset",
    "model_path",
    "split",
    "batch_size",
    "draws",
    "confidence",
    "seed",
)


def _parse_nonnegative(name, values, what):
    """A list flag as floats >= 0 (a `UsageError` names the flag otherwise)."""
    if not values:
        raise common.UsageError(f"--{name} must list at least one {what} >= 0. Received: --{name}=")
    parsed = []
    for value in values:
        try:
            number = float(value)
        except ValueError:
            number = value
        parsed.append(common.check_positive_flag(name, number, allow_zero=True))
    return parsed


def parse_sigmas(values):
    """`--sigmas` as floats >= 0."""
    return _parse_nonnegative("sigmas", values, "sigma")


def parse_times(values):
    """`--times` (seconds) as floats >= 0."""
    return _parse_nonnegative("times", values, "time")


def noise_sigmas(flag_values):
    """The sigmas of noise mode: `--sigmas` for a device with one sigma, else None.

    `--sigmas` given explicitly with a device that has no single sigma is a `UsageError`.
    """
    has_sigma = "sigma" in tl.analog.get(flag_values.device).get_config()
    if has_sigma:
        return parse_sigmas(flag_values.sigmas)
    if flag_values["sigmas"].present:
        raise common.UsageError(
            f"--sigmas sets the sigma of --device=multiplicative or additive; "
            f"--device={flag_values.device} has none (its noise is a published fit). "
            f"Received: --sigmas={','.join(flag_values.sigmas)}"
        )
    return None


def validate(flag_values):
    """Raises `UsageError` for a bad flag value, before any work."""
    common.check_common(flag_values, SHARED_FLAGS)
    if flag_values.mode == "noise":
        noise_sigmas(flag_values)
        parse_times(flag_values.times)
    else:
        for name in ("device", "sigmas", "times"):
            if flag_values[name].present:
                raise common.UsageError(
                    f"--{name} applies to --mode=noise only. Received: --{name} with "
                    f"--mode={flag_values.mode}"
                )
    chips = flag_values.chips
    if chips is not None:
        common.check_int_flag("chips", chips, low=2)
        if flag_values.mode != "faults":
            raise common.UsageError(
                f"--chips applies to --mode=faults only. Received: --chips={chips} with "
                f"--mode={flag_values.mode}"
            )
        if flag_values["draws"].present:
            raise common.UsageError(
                "--chips and --draws exclude each other (K chips, or K fault draws). Received: "
                f"--chips={chips} --draws={flag_values.draws}"
            )


def evaluate_and_report(
    model_path,
    run_dir,
    dataset="fashion_mnist_subset",
    split="test",
    mode="faults",
    draws=10,
    sigmas=(0.0, 0.05, 0.1),
    confidence=0.95,
    batch_size=512,
    seed=0,
    verbose=None,
    chips=None,
    device="multiplicative",
    times=(1.0,),
):
    """Evaluates the saved model and writes `run_dir/report.json` (+ a PNG in noise mode).

    With `chips` (faults mode), K chips of the model's persistent faulty layers replace the
    fault draws: the report's `chip_evaluation` holds `ChipEvaluation.to_dict()`. In noise
    mode `device` (a `tl.analog` preset name) is read at each of `times`; `sigmas` is None for a
    device without a single sigma.

    Returns:
        The report dict.

    Raises:
        UsageError: `chips` for a model without persistent faulty layers, before any work.
    """
    bar = 1 if (common.keras_verbose() if verbose is None else verbose) == 1 else 0
    data = common.load_data(dataset, split, batch_size)
    model = common.load_model(model_path)
    if chips is not None and not any(
        layer.fault_persistence == "persistent" for layer in tl.faulty_layers(model)
    ):
        raise common.UsageError(
            f"--chips needs faulty layers with fault_persistence='persistent'; those of "
            f"{model_path} are all transient (every fault draw is a new chip): use --draws. "
            f"Received: --chips={chips}"
        )
    with tl.faults_disabled(model):
        clean_loss, clean_accuracy = model.evaluate(data, verbose=0)
    report = {
        "command": "evaluate",
        "model_path": os.path.abspath(model_path),
        "model": model.name,
        "dataset": dataset,
        "split": split,
        "mode": mode,
        "draws": None if chips is not None else draws,
        "chips": chips,
        "confidence": confidence,
        "seed": seed,
        "clean_accuracy": float(clean_accuracy),
        "clean_loss": float(clean_loss),
        "plots": [],
        "package_version": tl.__version__,
    }
    print(f"Clean {split} accuracy (faults off): {clean_accuracy:.4f}")
    if mode == "faults":
        report["rates"] = {
            layer.name: float(ops.convert_to_numpy(layer.fault_rate.value))
            for layer in tl.faulty_layers(model)
        }
        if chips is not None:
            result = tl.evaluate_under_faults(
                model, data, chips=chips, confidence=confidence, seed=seed, verbose=bar
            )
            report["chip_evaluation"] = result.to_dict()
            print(f"{split} accuracy over chips at the stored rates: {result}")
        else:
            result = tl.evaluate_under_faults(
                model, data, draws=draws, confidence=confidence, seed=seed, verbose=bar
            )
            report["faults"] = result.to_dict()
            print(f"{split} accuracy under faults at the stored rates: {result}")
    else:
        # Noise on the deployed weights; an analog array has no digital read faults.
        result = tl.evaluate_under_noise(
            model,
            data,
            None if sigmas is None else list(sigmas),
            draws=draws,
            confidence=confidence,
            seed=seed,
            verbose=bar,
            device=device,
            times=list(times),
        )
        report["device"] = device
        report["noise"] = result.to_dict()
        for point in result.points:
            level = f"sigma {point.sigma:g}, " if point.sigma is not None else ""
            interval = point.accuracy
            print(
                f"{device} {level}t = {point.time:g} s: accuracy {interval.mean:.4f} +- "
                f"{interval.half_width:.4f} ({interval.confidence:.0%} CI over {interval.n} draws)"
            )
        report["plots"] = []
        if len(result.sigmas) > 1:
            report["plots"].append(
                tl.reports.plot_noise_robustness(
                    {model.name: result}, os.path.join(run_dir, "noise_robustness.png")
                )
            )
        if len(result.times) > 1:
            report["plots"].append(
                tl.reports.plot_drift({model.name: result}, os.path.join(run_dir, "drift.png"))
            )
    common.write_report(run_dir, report)
    return report


def run(flag_values, args):
    del args
    evaluate_and_report(
        flag_values.model_path,
        common.run_dir(flag_values, "evaluate"),
        dataset=flag_values.dataset,
        split=flag_values.split,
        mode=flag_values.mode,
        draws=flag_values.draws,
        sigmas=noise_sigmas(flag_values) if flag_values.mode == "noise" else (),
        device=flag_values.device,
        times=parse_times(flag_values.times) if flag_values.mode == "noise" else (1.0,),
        confidence=flag_values.confidence,
        batch_size=flag_values.batch_size,
        seed=flag_values.seed,
        chips=flag_values.chips,
    )
    return 0
