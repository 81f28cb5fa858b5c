"""`lanmax export`: a versioned TF Serving SavedModel of a trained model.

Writes `<base_path>/<version>/` with `tl.export.for_serving` (the next free version unless
`--version` is given; an existing version is never overwritten) and `<base_path>/models.config`,
then prints the version folder on the last line of stdout.

Example:
  lanmax export --model_path runs/train/model.keras --base_path /models/fmnist
"""

import re

from absl import flags

import tf_lanmax as tl
from tf_lanmax.cli import flags_common as common

flags.DEFINE_string("base_path", None, "Folder of the model's versions (TF Serving base_path).")
flags.DEFINE_integer("version", None, "Version to write (>= 1). Defaults to the next free one.")
flags.DEFINE_string("model_name", None, "Name TF Serving serves it under. Defaults to the model's.")

SHARED_FLAGS = ("model_path",)


def validate(flag_values):
    """Raises `UsageError` for a bad flag value, before any work."""
    common.check_common(flag_values, SHARED_FLAGS)
    if not flag_values.base_path:
        raise common.UsageError("--base_path is required: the folder of the model's versions.")
    if flag_values.version is not None:
        common.check_int_flag("version", flag_values.version, low=1)
    name = flag_values.model_name
    if name is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise common.UsageError(
            f"--model_name must match [A-Za-z0-9_.-]+. Received: --model_name={name!r}"
        )


def export(model_path, base_path, version=None, model_name=None):
    """Exports the saved model; returns the version folder."""
    model = common.load_model(model_path)
    try:
        return tl.export.for_serving(model, base_path, version=version, model_name=model_name)
    except ValueError as error:  # an existing version: a usage error, nothing was written
        if "version" in str(error):
            raise common.UsageError(str(error).replace("`", "")) from None
        raise


def run(flag_values, args):
    del args
    path = export(
        flag_values.model_path,
        flag_values.base_path,
        version=flag_values.version,
        model_name=flag_values.model_name,
    )
    print(path)
    return 0
