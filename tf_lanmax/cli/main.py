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

`lanmax <command> --help` lists a command's flags. A bad command, flag or flag value exits with
status 2 and one line on stderr, before any work is done.
"""

import importlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

COMMANDS = ("demo", "train", "tune", "evaluate", "sensitivity", "memse", "export", "summary")
HELP = ("-h", "--help", "-?", "--helpshort", "--helpfull")


def _fail(message):
    print(f"lanmax: {message}", file=sys.stderr)
    return 2


def _command_module(name):
    if name not in COMMANDS:
        raise KeyError(name)
    return importlib.import_module(f"tf_lanmax.cli.{name}")


def _command_help(name):
    module = _command_module(name)
    own = flags.FLAGS.flags_by_module_dict().get(module.__name__, [])
    shared = [flags.FLAGS[n] for n in getattr(module, "SHARED_FLAGS", ())]
    lines = [(module.__doc__ or "").rstrip(), "", "Flags:"]
    lines += [f"  --{f.name}: {f.help} (default: {f.default!r})" for f in [*own, *shared]]
    return "\n".join(lines)


def validate(argv):
    """Checks a parsed command line (absl has removed the flags) before any work is done.

    Returns:
        The module of the command to run.

    Raises:
        UsageError: an unknown command, a stray argument or a bad flag value.
    """
    from tf_lanmax.cli.flags_common import UsageError

    if len(argv) < 2 or argv[1] not in COMMANDS:
        got = argv[1] if len(argv) > 1 else "(none)"
        raise UsageError(f"unknown command {got!r}; allowed: {', '.join(COMMANDS)}")
    command, extra = argv[1], argv[2:]
    if extra:
        raise UsageError(
            f"{command}: unexpected arguments {' '.join(extra)!r}; flags start with --"
        )
    module = _command_module(command)
    try:
        if hasattr(module, "validate"):
            module.validate(flags.FLAGS)
    except UsageError as error:
        raise UsageError(f"{command}: {error}") from None
    return module


def main(argv):
    """Runs the command `argv[1]` with the parsed flags; returns the exit status."""
    from tf_lanmax.cli.flags_common import UsageError

    try:
        module = validate(argv)
    except UsageError as error:
        return _fail(str(error))
    try:
        return module.run(flags.FLAGS, argv[2:]) or 0
    except UsageError as error:  # found on loading the data or the model: still before work
        return _fail(f"{argv[1]}: {error}")


def _parse_flags(argv):
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        sys.exit(_fail(str(error)))


def run(argv=None):
    """Console-script entry point."""
    argv = list(sys.argv if argv is None else argv)
    command = argv[1] if len(argv) > 1 else None
    if command in HELP or command == "help":
        print(__doc__)
        sys.exit(0)
    if command not in COMMANDS:
        sys.exit(main(argv))  # the one-line error with the allowed commands
    if any(arg in HELP for arg in argv[2:]):
        print(_command_help(command))
        sys.exit(0)
    # Import only the command that runs: its flags (and the shared ones) get defined, and a
    # flag of another command is rejected as unknown.
    _command_module(command)
    # absl logs INFO under app.run; TFDS' per-load INFO lines would bury the progress bars.
    flags.FLAGS.set_default("verbosity", -1)  # WARNING; `-v 0` brings INFO back
    app.run(main, argv=argv, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
