"""Flags and helpers shared by the `lanmax` commands.

absl flags live in one global registry, so a flag name used by several commands is defined here,
once, and each command module (`demo` included) defines only its own, so every command can be
imported into one process (tests do); `lanmax` itself imports only the command it runs.

Usage errors (a bad flag value, a missing file) raise `UsageError`; `lanmax` prints its message
on one line and exits with status 2, before any work is done.
"""

import contextlib
import os
import sys

import keras
from absl import flags

import tf_lanmax as tl
from tf_lanmax._io import write_json_atomic
from tf_lanmax._validation import check_int, check_one_of, check_positive, check_probability
from tf_lanmax.data import DATASETS

flags.DEFINE_string(
    "run_dir",
    None,
    "Folder for report.json, plots and models. Defaults to runs/<command>.",
)
flags.DEFINE_enum("dataset", "fashion_mnist_subset", DATASETS, "Dataset of tl.data.load.")
flags.DEFINE_string("split", "test", "TFDS split to evaluate on, e.g. test or 'test[:500]'.")
flags.DEFINE_integer("epochs", 8, "Training epochs.")
flags.DEFINE_integer("batch_size", 128, "Batch size.")
flags.DEFINE_float("fault_rate", 1e-3, "Fault rate p of every faulty layer, in (0, 0.5].")
flags.DEFINE_integer("draws", 10, "Monte-Carlo draws for each confidence interval (>= 2).")
flags.DEFINE_float("confidence", 0.95, "Coverage of the confidence intervals.")
flags.DEFINE_integer("seed", 0, "Seed of weights, data order and fault draws.")
flags.DEFINE_float("alpha", 1.0, "LaNMax energy weight (>= 0).")
flags.DEFINE_string("model_path", None, "A .keras model saved by `lanmax train`.")
flags.DEFINE_string("train_split", "train", "TFDS split to train on, e.g. 'train[:2000]'.")
flags.DEFINE_float("width", None, "Width: binary_cnn's multiplier (1), binary_wrn's factor (4).")
flags.DEFINE_float("learning_rate", 3e-3, "Peak Adam learning rate (cosine decay).")
flags.DEFINE_integer("lanmax_warmup_epochs", 1, "LaNMax epochs that record but do not update p.")
flags.DEFINE_enum(
    "technology",
    tl.memory.DEFAULT,
    tl.memory.names(),
    "Memory technology (tl.memory): its energy model prices each layer's p, for LaNMax and the "
    "energy report; the summary shows the voltage of each layer where it gives voltages.",
)


class UsageError(ValueError):
    """A bad command line: reported on one line, exit status 2."""


def checked(check, flag, *args, **kwargs):
    """Runs a `tf_lanmax._validation` check on a flag value; a failure becomes a `UsageError`.

    The message names the flag as typed (`--fault_rate`), what is allowed and the value.
    """
    try:
        return check(f"--{flag}", *args, **kwargs)
    except ValueError as error:
        raise UsageError(str(error).replace("`", "")) from None


def check_probability_flag(flag, value, **kwargs):
    return checked(check_probability, flag, value, **kwargs)


def check_positive_flag(flag, value, **kwargs):
    return checked(check_positive, flag, value, **kwargs)


def check_int_flag(flag, value, **kwargs):
    return checked(check_int, flag, value, **kwargs)


def parse_floats(flag, values, allow_zero=False, allow_empty=False):
    """A list flag (`--alphas=0.1,1,10`) as finite floats > 0 (>= 0 with `allow_zero`).

    Args:
        flag: the flag's name, for the message.
        values: the strings absl parsed from the comma-separated value.
        allow_zero: whether 0 is allowed. Defaults to `False`.
        allow_empty: whether an empty list is allowed. Defaults to `False`.

    Returns:
        The values as a list of floats.

    Raises:
        UsageError: naming the flag, what is allowed and the offending value.

    Example:
    >>> parse_floats("alphas", ["0.1", "1"])
    [0.1, 1.0]
    """
    if not values and not allow_empty:
        what = ">= 0" if allow_zero else "> 0"
        raise UsageError(f"--{flag} must list at least one number {what}. Received: --{flag}=")
    numbers = []
    for value in values:
        try:
            numbers.append(check_positive_flag(flag, float(value), allow_zero=allow_zero))
        except (ValueError, UsageError):
            what = ">= 0" if allow_zero else "> 0"
            raise UsageError(
                f"--{flag} must list finite numbers {what}, separated by commas. Received: "
                f"{value!r} in --{flag}={','.join(values)}"
            ) from None
    return numbers


def check_split(flag, value):
    """A TFDS split string: a name, optionally sliced (`test`, `test[:500]`, `train[10%:]`)."""
    name = value.split("[", 1)[0]
    if not name.isidentifier() or ("[" in value and not value.endswith("]")):
        raise UsageError(
            f"--{flag} must be a TFDS split such as 'test' or 'test[:500]'. Received: "
            f"--{flag}={value!r}"
        )
    return value


def check_model_path(value):
    """`--model_path` must name an existing `.keras` file."""
    if not value:
        raise UsageError("--model_path is required: a .keras file saved by `lanmax train`.")
    if not value.endswith(".keras"):
        raise UsageError(f"--model_path must be a .keras file. Received: --model_path={value!r}")
    if not os.path.isfile(value):
        raise UsageError(f"--model_path does not exist. Received: --model_path={value!r}")
    return value


def check_common(flag_values, names):
    """Validates the shared flags in `names` (the ones a command uses) that have a check."""
    checks = {
        "dataset": lambda v: checked(check_one_of, "dataset", v, DATASETS),
        "epochs": lambda v: check_int_flag("epochs", v, low=1),
        "batch_size": lambda v: check_int_flag("batch_size", v, low=1),
        "fault_rate": lambda v: check_probability_flag("fault_rate", v),
        "draws": lambda v: check_int_flag("draws", v, low=2),
        "confidence": lambda v: check_probability_flag("confidence", v, high=0.999999),
        "seed": lambda v: check_int_flag("seed", v, low=0),
        "alpha": lambda v: check_positive_flag("alpha", v, allow_zero=True),
        "split": lambda v: check_split("split", v),
        "train_split": lambda v: check_split("train_split", v),
        "width": lambda v: v is None or check_positive_flag("width", v),
        "learning_rate": lambda v: check_positive_flag("learning_rate", v),
        "lanmax_warmup_epochs": lambda v: check_int_flag("lanmax_warmup_epochs", v, low=0),
        "model_path": check_model_path,
    }
    for name in names:
        if name in checks:
            checks[name](flag_values[name].value)


def run_dir(flag_values, command):
    """`--run_dir`, or `runs/<command>` when it is not given."""
    return flag_values.run_dir or os.path.join("runs", command)


def write_report(run_dir, report):
    """Writes `<run_dir>/report.json` atomically, prints its path and returns the path."""
    path = write_json_atomic(os.path.join(run_dir, "report.json"), report)
    print(f"Report: {path}")
    return path


def keras_verbose():
    """Live progress bars in a terminal, one line per epoch in logs and CI."""
    return 1 if sys.stdout.isatty() else 2


@contextlib.contextmanager
def _data_usage_errors(dataset, split, flag):
    """A missing dataset or a bad split, found on loading, becomes a one-line `UsageError`."""
    try:
        yield
    except tl.data.DatasetUnavailableError as error:
        raise UsageError(f"--dataset={dataset}: {' '.join(str(error).split())}") from None
    except ValueError as error:
        raise UsageError(f"--{flag}={split!r}: {' '.join(str(error).split())}") from None


def load_data(dataset, split, batch_size, flag="split", **kwargs):
    """`tl.data.load`; a missing dataset or a bad split becomes a one-line `UsageError`."""
    with _data_usage_errors(dataset, split, flag):
        return tl.data.load(dataset, split, batch_size=batch_size, **kwargs)


def load_images(dataset, split, take, flag="split"):
    """The first `take` images of a split as a float32 array (`tl.data.load_numpy`).

    Raises:
        UsageError: naming `--{flag}` for a bad or empty split, `--dataset` for a missing one.
    """
    with _data_usage_errors(dataset, split, flag):
        x, _ = tl.data.load_numpy(dataset, split, take=take)
    if len(x) == 0:
        raise UsageError(f"--{flag} holds no images. Received: --{flag}={split!r}")
    return x


def load_model(path):
    """Loads a `.keras` model in safe mode, compiled for evaluation with an accuracy metric.

    Importing `tf_lanmax` registered the package's classes, so safe mode finds them.
    """
    model = keras.saving.load_model(path, safe_mode=True, compile=False)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
