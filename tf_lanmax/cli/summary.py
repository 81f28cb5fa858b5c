"""`lanmax summary`: the memory-energy table of a saved model.

Prints `tl.summary` of the model at `--model_path`: per faulty layer its format, fault model,
stored bits, p, eta(p) and share of the energy, then the totals and the saving against a
reliable memory.

Example:
  lanmax summary --model_path runs/train/model.keras
"""

import tf_lanmax as tl
from tf_lanmax.cli import flags_common as common

SHARED_FLAGS = ("model_path",)


def validate(flag_values):
    """Raises `UsageError` for a bad flag value, before any work."""
    common.check_common(flag_values, SHARED_FLAGS)


def run(flag_values, args):
    del args
    tl.summary(common.load_model(flag_values.model_path))
    return 0
