"""What the `lanmax` commands share at run time: loading, progress lines, the report file.

A bad command line raises `UsageError`; `lanmax` prints its message on one line and exits with
status 2, before any work is done. A library `ValueError` about a flag's value found only once
data or a model is loaded (an empty split, a model MemSE cannot mirror) becomes a `UsageError`
naming the flag through `flag_errors`.
"""

import contextlib
import os
import sys

import tf_lanmax as tl
from tf_lanmax._io import write_json_atomic
from tf_lanmax.cli.options import UsageError  # noqa: F401 - raised by the commands


@contextlib.contextmanager
def flag_errors(name, value):
    """A `ValueError` raised inside becomes a one-line `UsageError` naming `--name=value`."""
    try:
        yield
    except ValueError as error:
        raise UsageError(
            f"--{name}={value}: {' '.join(str(error).replace('`', '').split())}"
        ) from None


def progress(message):
    """One progress line on stdout, flushed at once (a long step is starting)."""
    print(f"... {message}", flush=True)


def keras_verbose():
    """Live progress bars in a terminal, one line per epoch in logs and CI."""
    return 1 if sys.stdout.isatty() else 2


def bar(verbose):
    """The Monte-Carlo progress bar setting for Keras' `verbose`: a bar only in a terminal."""
    return 1 if verbose == 1 else 0


def write_report(run_dir, report):
    """Writes `<run_dir>/report.json` atomically, prints its path and returns the path."""
    path = write_json_atomic(os.path.join(run_dir, "report.json"), report)
    print(f"Report: {path}")
    return path


def load_data(dataset, split, batch_size, flag="split", **kwargs):
    """`tl.data.load`; a missing dataset or a bad split becomes a one-line `UsageError`."""
    progress(f"loading {dataset} {split}")
    try:
        return tl.data.load(dataset, split, batch_size=batch_size, **kwargs)
    except tl.errors.DatasetUnavailableError as error:
        raise UsageError(f"--dataset={dataset}: {' '.join(str(error).split())}") from None
    except ValueError as error:
        raise UsageError(f"--{flag}={split!r}: {' '.join(str(error).split())}") from None


def load_train_and_test(settings):
    """The training split (shuffled with `settings.seed`), the evaluation split and the
    dataset's `tl.data.info`, for the commands that train (`train`, `tune`).

    Args:
        settings: a command's settings with `dataset`, `train_split`, `split`, `batch_size` and
            `seed`.

    Returns:
        `(train, test, info)`.
    """
    train = load_data(
        settings.dataset,
        settings.train_split,
        settings.batch_size,
        flag="train_split",
        seed=settings.seed,
    )
    test = load_data(settings.dataset, settings.split, settings.batch_size)
    return train, test, tl.data.info(settings.dataset)


def load_images(dataset, split, take, flag="split"):
    """The first `take` images of a split as a float32 array (`tl.data.load_numpy`).

    Raises:
        UsageError: naming `--{flag}` for a bad or empty split, `--dataset` for a missing one.
    """
    progress(f"loading {take} images of {dataset} {split}")
    try:
        x, _ = tl.data.load_numpy(dataset, split, take=take)
    except tl.errors.DatasetUnavailableError as error:
        raise UsageError(f"--dataset={dataset}: {' '.join(str(error).split())}") from None
    except ValueError as error:
        raise UsageError(f"--{flag}={split!r}: {' '.join(str(error).split())}") from None
    if len(x) == 0:
        raise UsageError(f"--{flag} holds no images. Received: --{flag}={split!r}")
    return x


def load_model(path):
    """Loads a `.keras` model in safe mode, compiled for evaluation with an accuracy metric.

    `tl.layers` (any `tl.<name>`) loads the whole package first, so safe mode finds every
    registered class.
    """
    import keras

    tl.layers  # noqa: B018 - registers the package's serializable classes
    progress(f"loading {path}")
    model = keras.saving.load_model(path, safe_mode=True, compile=False)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def history(keras_history):
    """A Keras `History` as `{metric: [float per epoch]}`."""
    return {k: [float(v) for v in values] for k, values in keras_history.history.items()}


def energy_table(model_name, profile):
    """The memory-energy table of a report's `energy` (as `tl.summary` prints it)."""
    return f'Model: "{model_name}"\n' + tl.reports.render_table(profile)


def faults_text(result):
    """One line for a `FaultEvaluation.to_dict()`: mean +- half-width, CI, draws, loss."""
    a = result["accuracy"]
    return (
        f"{result['metric']} {a['mean']:.4f} +- {a['half_width']:.4f} ({a['confidence']:.0%} "
        f"CI over {a['n']} fault draws; loss {result['loss']['mean']:.4f})"
    )
