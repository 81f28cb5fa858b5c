"""`lanmax summary`: the memory-energy table of a saved model.

Prints `tl.summary` of the model at `--model_path` priced by `--technology`: per faulty layer its
format, fault model, stored bits, p, the supply voltage (where the technology gives voltages),
eta(p) and share of the energy, then the totals, the saving against a reliable memory and the
bits of float parameters assumed reliable.

Example:
  lanmax summary --model_path runs/train/model.keras --technology yang_murmann_28nm
"""

import dataclasses

import tf_lanmax as tl
from tf_lanmax.cli import common, shared
from tf_lanmax.cli.options import check_fields

WRITES_REPORT = False  # prints only


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """`lanmax summary`'s settings."""

    model_path: str | None = shared.model_path()
    technology: str | None = shared.technology()

    def __post_init__(self):
        check_fields(self)
        shared.required_model_path(self)


def run(settings, run_dir=None):
    """The energy profile of the saved model: `{"model": name, "energy": tl.summary(...)}`."""
    del run_dir
    model = common.load_model(settings.model_path)
    technology = tl.memory.get(settings.technology)  # None: the library's default
    profile = tl.summary(model, technology=technology, print_fn=None)
    return {"command": "summary", "model": model.name, "energy": profile}


def show(report):
    print(common.energy_table(report["model"], report["energy"]))
