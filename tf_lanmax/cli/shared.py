"""The options several `lanmax` commands share, each declared once: default, help and check.

Each function returns a fresh settings field (`options.option`); a command's settings class
uses it as `epochs: int = shared.epochs()`. The checks that name a library object construct it
(`tl.data.info`, `tl.memory.get`), importing the library only when settings are built, never
for `--help`.

Example:
>>> import dataclasses
>>> @dataclasses.dataclass(frozen=True)
... class Settings:
...     draws: int = draws()
>>> Settings().draws
10
"""

from tf_lanmax._validation import check_probability
from tf_lanmax.cli.options import at_least, option, positive, probability


def _dataset_check(name, value):
    import tf_lanmax as tl

    tl.data.info(value)


def _split_check(name, value):
    """A TFDS split: a name, optionally sliced (`test`, `test[:500]`, `train[10%:]`)."""
    base = value.split("[", 1)[0]
    if not base.isidentifier() or ("[" in value and not value.endswith("]")):
        raise ValueError("must be a TFDS split such as 'test' or 'test[:500]'")


def _technology_check(name, value):
    import tf_lanmax as tl

    tl.memory.get(value)


def _model_path_check(name, value):
    import os

    if not value.endswith(".keras"):
        raise ValueError("must be a .keras file saved by `lanmax train`")
    if not os.path.isfile(value):
        raise ValueError("does not exist")


def dataset():
    return option("fashion_mnist_subset", "Dataset of tl.data.load.", check=_dataset_check)


def split():
    return option("test", "Split to evaluate on, e.g. test or 'test[:500]'.", check=_split_check)


def train_split():
    return option("train", "Split to train on, e.g. 'train[:2000]'.", check=_split_check)


def epochs():
    return option(8, "Training epochs.", check=at_least(1))


def batch_size():
    return option(128, "Batch size (training and evaluation).", check=at_least(1))


def fault_rate():
    return option(1e-3, "Fault rate p of every faulty layer, in (0, 0.5].", check=probability())


def draws():
    return option(10, "Monte-Carlo draws for each confidence interval (>= 2).", check=at_least(2))


def confidence():
    return option(
        0.95,
        "Coverage of the confidence intervals, in (0, 1).",
        check=lambda name, value: check_probability(name, value, high=0.999999),
    )


def seed():
    return option(0, "Seed of weights, data order and fault draws (>= 0).", check=at_least(0))


def alpha():
    return option(1.0, "LaNMax energy weight (>= 0).", check=positive(allow_zero=True))


def width():
    return option(
        None, "Width: binary_cnn's multiplier (1), binary_wrn's factor (4).", check=positive()
    )


def learning_rate():
    return option(3e-3, "Peak Adam learning rate (cosine decay).", check=positive())


def lanmax_warmup_epochs():
    return option(1, "LaNMax epochs that record but do not update p.", check=at_least(0))


def technology():
    return option(
        None,
        "Memory technology, a name of tl.memory.names(); its energy model prices each layer's "
        "p (LaNMax, the energy report). Defaults to tl.memory.DEFAULT.",
        check=_technology_check,
    )


def model_path():
    return option(
        None,
        "A .keras model saved by `lanmax train`.",
        check=_model_path_check,
    )


def required_model_path(settings):
    """Raises `InvalidOption` when `model_path` is unset (it has no default)."""
    from tf_lanmax.cli.options import InvalidOption

    if not settings.model_path:
        raise InvalidOption("model_path", None, "is required: a .keras file saved by lanmax train")
