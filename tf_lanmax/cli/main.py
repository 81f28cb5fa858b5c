"""`lanmax` command line: `lanmax <command> [--flags]` (absl flags; logic lives in the library).

Commands:
  demo      train the binary CNN on the bundled real Fashion-MNIST subset with bit-flip faults,
            print the memory-energy summary and the accuracy under faults with its CI, and
            write <run_dir>/report.json.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

COMMANDS = ("demo",)


def _command_module(name):
    if name == "demo":
        from tf_lanmax.cli import demo

        return demo
    raise KeyError(name)


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        got = argv[1] if len(argv) > 1 else "(none)"
        print(f"lanmax: unknown command {got!r}; allowed: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    return _command_module(argv[1]).run(flags.FLAGS, argv[2:]) or 0


def _parse_flags(argv):
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        print(f"lanmax: {error}", file=sys.stderr)
        sys.exit(2)


def run():
    """Console-script entry point."""
    # Import the command modules first so their flags are defined before parsing.
    for name in COMMANDS:
        _command_module(name)
    app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
