"""`lanmax` command line: `lanmax <command> [--flags]` (also `python -m tf_lanmax`).

Commands:
  demo         train the binary CNN on the bundled real Fashion-MNIST subset with bit-flip
               faults, then again with LaNMax; print the memory-energy summary and the accuracy
               under faults with its CI; write <run_dir>/report.json and model.keras.
  train        train --model (binary_cnn, binary_wrn) with faults at --fault_rate, optionally
               learning p per layer (--lanmax --alpha) and sharpness-aware (--sam --rho); write
               <run_dir>/model.keras, report.json and the LaNMax plots.
  tune         search LaNMax's alpha with Keras Tuner (--tuner grid|random|bayesian|hyperband,
               --alphas or --alpha_min/--alpha_max/--trials); print the energy/accuracy Pareto
               front; report.json (front with CIs, hypervolume), front.png and tuner/.
  evaluate     accuracy of --model_path under faults or conductance noise (--mode, --sigmas),
               Monte-Carlo over --draws with a confidence interval; report.json (+ PNG).
  sensitivity  accuracy with one faulty layer at a time at --test_rate; report.json and PNG.
  memse        predicted MSE of --model_path's logits on a noisy crossbar (--sigma, --gmax,
               --levels) or its faulty memory (--mapping digital), total and per layer, against
               Monte-Carlo (--draws, CI); --power_budget spreads Gmax across layers and draws
               the MSE-vs-power curve; report.json and PNGs.
  export       a versioned TF Serving SavedModel in --base_path; prints the version folder.
  summary      print the memory-energy table of --model_path.

`lanmax <command> --help` lists a command's flags (without loading TensorFlow or JAX). A bad
command, flag or flag value, or a flag of another command, exits with status 2 and one line on
stderr, before any work is done.
"""

import importlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # noqa: E402

from tf_lanmax.cli import options  # noqa: E402
from tf_lanmax.cli.options import UsageError  # noqa: E402

COMMANDS = ("demo", "train", "tune", "evaluate", "sensitivity", "memse", "export", "summary")
HELP = ("-h", "--help", "-?", "--helpshort", "--helpfull")
RUN_DIR_HELP = "Folder for report.json, plots and models. Defaults to runs/<command>."


def _fail(message):
    print(f"lanmax: {message}", file=sys.stderr)
    return 2


def command_module(name):
    """The module of command `name` (its `Settings`, `run`, `show`; `plot` if it draws).

    Raises:
        UsageError: for an unknown command, listing the commands.
    """
    if name not in COMMANDS:
        raise UsageError(f"unknown command {name!r}; allowed: {', '.join(COMMANDS)}")
    return importlib.import_module(f"tf_lanmax.cli.{name}")


def writes_report(module):
    """Whether the command writes `<run_dir>/report.json` (and so has `--run_dir`)."""
    return getattr(module, "WRITES_REPORT", True)


def command_flags(module):
    """A fresh `FlagValues` holding only the command's flags (`--run_dir` where it writes)."""
    flag_values = flags.FlagValues()
    options.define_flags(module.Settings, flag_values)
    if writes_report(module):
        flags.DEFINE_string("run_dir", None, RUN_DIR_HELP, flag_values=flag_values)
    return flag_values


def command_help(name):
    """The module docstring of command `name` and its flags, each with help and default."""
    module = command_module(name)
    lines = [(module.__doc__ or "").rstrip(), "", "Flags:", *options.help_lines(module.Settings)]
    if writes_report(module):
        lines.append(f"  --run_dir: {RUN_DIR_HELP} (default: None)")
    return "\n".join(lines)


def _owners(flag):
    return [c for c in COMMANDS if flag in command_flags(command_module(c))]


def parse(argv):
    """Parses `lanmax <command> [--flags]` into the command's module, settings and run_dir.

    Builds the settings, so every flag's check runs (a library name is looked up, a library
    object constructed): nothing is loaded, trained or written yet.

    Raises:
        UsageError: an unknown command, a stray argument, a flag of another command or an
            unknown one, or a bad flag value; the message names the flag.
    """
    if len(argv) < 2:
        raise UsageError(f"unknown command '(none)'; allowed: {', '.join(COMMANDS)}")
    name = argv[1]
    module = command_module(name)
    flag_values = command_flags(module)
    try:
        extra = flag_values([argv[0], *argv[2:]])[1:]
    except flags.UnrecognizedFlagError as error:
        flag = error.flagname
        owners = _owners(flag)
        where = f" (a flag of {', '.join(owners)})" if owners else ""
        raise UsageError(
            f"{name}: unknown flag --{flag}{where}; `lanmax {name} --help` lists its flags"
        ) from None
    except flags.Error as error:
        raise UsageError(f"{name}: {error}") from None
    if extra:
        raise UsageError(f"{name}: unexpected arguments {' '.join(extra)!r}; flags start with --")
    try:
        settings = options.from_flags(module.Settings, flag_values)
    except options.InvalidOption as error:
        raise UsageError(f"{name}: {error}") from None
    run_dir = None
    if writes_report(module):
        run_dir = flag_values.run_dir or os.path.join("runs", name)
    return module, settings, run_dir


def execute(module, settings, run_dir):
    """Runs a command: `run`, then `plot` and report.json (where it writes one), then `show`.

    Returns:
        The exit status: the command's `exit_status(report)`, else 0.
    """
    from tf_lanmax.cli import common

    report = module.run(settings, run_dir)
    if writes_report(module):
        report["plots"] = module.plot(report, run_dir) if hasattr(module, "plot") else []
    module.show(report)
    if writes_report(module):
        common.write_report(run_dir, report)  # non-finite floats are written as null
    return module.exit_status(report) if hasattr(module, "exit_status") else 0


def main(argv):
    """Parses, checks and runs `argv` (`["lanmax", command, *flags]`); returns the exit status."""
    from absl import logging

    try:
        module, settings, run_dir = parse(argv)
    except UsageError as error:
        return _fail(str(error))
    flags.FLAGS.mark_as_parsed()  # libraries that read absl flags see their defaults
    logging.set_verbosity(logging.WARNING)  # TFDS' per-load INFO lines would bury progress
    try:
        return execute(module, settings, run_dir)
    except UsageError as error:  # found on loading the data or the model
        return _fail(f"{argv[1]}: {error}")


def run(argv=None):
    """Console-script entry point: `--help` answers without importing Keras or a backend."""
    argv = list(sys.argv if argv is None else argv)
    command = argv[1] if len(argv) > 1 else None
    if command in HELP or command == "help":
        print(__doc__)
        sys.exit(0)
    if command in COMMANDS and any(arg in HELP for arg in argv[2:]):
        print(command_help(command))
        sys.exit(0)
    sys.exit(main(argv))


if __name__ == "__main__":
    run()
