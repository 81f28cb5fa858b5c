"""`lanmax summary`: the memory-energy table of a saved model.

Prints `tl.summary` of the model at `--model_path` priced by `--technology`: per faulty layer its
format, fault model, stored bits, p, the supply voltage (where the technology gives voltages),
eta(p) and share of the energy, then the totals, the saving against a reliable memory and the
bits of float parameters assumed reliable.

Example:
  lanmax summary --model_path runs/train/model.keras --technology yang_murmann_28nm
"""

import tf_lanmax as tl
from tf_lanmax.cli import flags_common as common

SHARED_FLAGS = ("model_path", "technology")


def validate(flag_values):
    """Raises `UsageError` for a bad flag value, before any work."""
    common.check_common(flag_values, SHARED_FLAGS)


def run(flag_values, args):
    del args
    tl.summary(common.load_model(flag_values.model_path), technology=flag_values.technology)
    return 0
