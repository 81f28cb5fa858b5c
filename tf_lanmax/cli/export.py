"""`lanmax export`: a versioned TF Serving SavedModel of a trained model.

Writes `<base_path>/<version>/` with `tl.export.for_serving` (the next free version unless
`--version` is given; an existing version is never overwritten) and `<base_path>/models.config`,
then prints the version folder on the last line of stdout.

Example:
  lanmax export --model_path runs/train/model.keras --base_path /models/fmnist
"""

import dataclasses
import re

import tf_lanmax as tl
from tf_lanmax.cli import common, shared
from tf_lanmax.cli.options import InvalidOption, at_least, check_fields, option

WRITES_REPORT = False  # prints the version folder


def _name_check(name, value):
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", value):
        raise ValueError("must match [A-Za-z0-9_.-]+")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """`lanmax export`'s settings."""

    model_path: str | None = shared.model_path()
    base_path: str | None = option(None, "Folder of the model's versions (TF Serving base_path).")
    version: int | None = option(
        None, "Version to write (>= 1). Defaults to the next free one.", check=at_least(1)
    )
    model_name: str | None = option(
        None, "Name TF Serving serves it under. Defaults to the model's.", check=_name_check
    )

    def __post_init__(self):
        check_fields(self)
        shared.required_model_path(self)
        if not self.base_path:
            raise InvalidOption("base_path", None, "is required: the folder of the versions")


def run(settings, run_dir=None):
    """Exports the saved model; returns `{"path": the version folder}`.

    Raises:
        UsageError: for an existing `--version` (nothing was written).
    """
    del run_dir
    model = common.load_model(settings.model_path)
    common.progress(f"exporting {model.name} to {settings.base_path}")
    with common.flag_errors("version", settings.version):
        path = tl.export.for_serving(
            model, settings.base_path, version=settings.version, model_name=settings.model_name
        )
    return {"command": "export", "model": model.name, "path": path}


def show(report):
    print(report["path"])
