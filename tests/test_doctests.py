"""Every `>>>` example in the package's docstrings runs, so none of them can rot.

`doctest.DocTestFinder` collects the examples of every `tf_lanmax` module (one test per
docstring). They run with ELLIPSIS and NORMALIZE_WHITESPACE, in a temporary folder, with the
module's globals, the public names of its subpackage (`MemSE` in `tf_lanmax/memse/*`) and
`names()`: the objects the examples take as given (`model`, `x`, `kernel`, `train_ds`...), small
and built afresh for each docstring. The docs' conventions:

- an example that shows its output (`>>> f(1)` then `2`) has it checked;
- an example with no output line (`>>> f(1)  # 0.36`) only has to run: a comment may say
  roughly what it gives without pinning every digit;
- `# doctest: +IGNORE_OUTPUT` runs an example and shows an output that is not checked (random
  draws, timings); `# doctest: +SKIP` is kept for what cannot run here (files that only exist on
  some machines), and `NOT_RUN` lists whole docstrings that run elsewhere, with the reason.
"""

import doctest
import importlib
import pkgutil

import keras
import matplotlib.figure
import numpy as np
import pytest

import tf_lanmax as tl

IGNORE_OUTPUT = doctest.register_optionflag("IGNORE_OUTPUT")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

#: Docstrings whose examples run in another test (they need processes, a server or a TPU).
TUNER = "a Keras Tuner search (minutes): the README's tuner block runs these calls (slow)"
NOT_RUN = {
    "tf_lanmax.distribute.multi_worker_strategy": "a multi-worker cluster: test_multiworker.py",
    "tf_lanmax.distribute.is_chief": "a multi-worker cluster: test_multiworker.py",
    "tf_lanmax.tuning": TUNER,
    "tf_lanmax.tuning.hypermodel.LaNMaxHyperModel": TUNER,
    "tf_lanmax.tuning.sweep.alpha_sweep": TUNER,
    "tf_lanmax.tuning.trials.trial_points": TUNER,
    "tf_lanmax.tuning.report.plot_front": TUNER,
    "tf_lanmax.tuning.report.export_json": TUNER,
}

#: Docstrings whose examples train or search for more than a few seconds: `--run-slow`.
SLOW = {
    "tf_lanmax",
    "tf_lanmax.analog.hardware_aware.HardwareAwareModel",
    "tf_lanmax.lanmax.callback.LaNMax",
    "tf_lanmax.memse.optimize.optimize_gmax",
    "tf_lanmax.memse.penalty.MemSEPenaltyModel",
    "tf_lanmax.sam.model.SharpnessAwareModel",
}

# A backend's own modules end in these suffixes; only the running backend's are imported.
BACKEND_SUFFIXES = {
    "tensorflow": ("_tensorflow", "tensorflow_step"),
    "jax": ("_jax", "jax_step"),
    "torch": ("_torch", "torch_step"),
}


class _Checker(doctest.OutputChecker):
    """Checks an example's output only where the docstring shows one (see the module doc)."""

    def check_output(self, want, got, optionflags):
        if not want or optionflags & IGNORE_OUTPUT:
            return True
        return super().check_output(want, got, optionflags)


def _modules():
    backend = keras.backend.backend()
    other = tuple(
        suffix
        for name, suffixes in BACKEND_SUFFIXES.items()
        if name != backend
        for suffix in suffixes
    )
    names = ["tf_lanmax"]
    for info in pkgutil.walk_packages(tl.__path__, "tf_lanmax."):
        if info.name.startswith("tf_lanmax.cli"):
            continue  # the command line: its examples are `lanmax ...` shell lines
        if any(info.name.endswith(suffix) for suffix in other):
            continue
        if backend != "tensorflow" and info.name.split(".")[1] in ("export", "data"):
            continue  # TensorFlow-only parts (SavedModel, tf.data)
        names.append(info.name)
    return names


def _doctests():
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = {}
    for name in _modules():
        module = importlib.import_module(name)
        for test in finder.find(module, name):
            if test.examples and test.name not in tests:
                tests[test.name] = test
    return [tests[name] for name in sorted(tests)]


_DATA = {}


def _arrays():
    # The bundled real images, read once: 256 training and 64 test images.
    if not _DATA:
        x_train, y_train = tl.data.load_numpy("fashion_mnist_subset", "train", take=256)
        x_test, y_test = tl.data.load_numpy("fashion_mnist_subset", "test", take=64)
        _DATA.update(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return _DATA


def names():
    """The objects the docstring examples take as given, small and fresh."""
    keras.utils.set_random_seed(0)
    data = _arrays()
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            tl.FaultyConv2D(
                4, 3, padding="same", use_bias=False, fault_rate=1e-2, seed=0, name="hidden"
            ),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            tl.FaultyDense(10, fault_rate=1e-2, seed=1, name="out"),
        ],
        name="example",
    )
    model.compile(
        "adam",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    train_ds = tl.data.load("fashion_mnist_subset", "train[:256]", batch_size=64)
    test_ds = tl.data.load("fashion_mnist_subset", "test[:64]", batch_size=64)
    figure = matplotlib.figure.Figure(figsize=(2.0, 2.0))
    return {
        "tl": tl,
        "figure": figure,
        "tf_lanmax": tl,
        "keras": keras,
        "np": np,
        "model": model,
        "kernel": np.random.default_rng(0).normal(0.0, 0.1, (16, 8)).astype("float32"),
        "x": data["x_test"][:16],
        "y": data["y_test"][:16],
        "train": train_ds,
        "test": test_ds,
        "train_ds": train_ds,
        "test_ds": test_ds,
        **data,
    }


def _package_names(name):
    """The public names of the subpackage a docstring lives in (`MemSE` for tl.memse's)."""
    parts = name.split(".")
    if len(parts) < 2 or not hasattr(tl, parts[1]):
        return {}
    package = getattr(tl, parts[1])
    return {n: getattr(package, n) for n in getattr(package, "__all__", ()) if hasattr(package, n)}


DOCTESTS = _doctests()


def _marks(test):
    if test.name in NOT_RUN:
        return [pytest.mark.skip(reason=NOT_RUN[test.name])]
    return [pytest.mark.slow] if test.name in SLOW else []


@pytest.mark.parametrize("test", [pytest.param(t, id=t.name, marks=_marks(t)) for t in DOCTESTS])
def test_docstring_examples_run(test, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # what an example writes (figures, JSON) goes here
    keras.backend.clear_session()
    globs = {**names(), **_package_names(test.name), **test.globs}
    test = doctest.DocTest(test.examples, globs, test.name, test.filename, test.lineno, "")
    runner = doctest.DocTestRunner(checker=_Checker(), optionflags=FLAGS)
    report = []
    runner.run(test, out=report.append)
    assert not runner.failures, "".join(report)


def test_every_module_with_examples_is_collected():
    collected = {t.name.rsplit(".", 1)[0] for t in DOCTESTS} | {t.name for t in DOCTESTS}
    assert {"tf_lanmax", "tf_lanmax.energy.model", "tf_lanmax.tuning.pareto"} <= collected


def test_the_checker_checks_shown_output_only():
    checker = _Checker()
    assert checker.check_output("", "anything\n", FLAGS)
    assert checker.check_output("0.5\n", "0.5\n", FLAGS)
    assert not checker.check_output("0.5\n", "0.6\n", FLAGS)
    assert checker.check_output("0.5\n", "0.6\n", FLAGS | IGNORE_OUTPUT)
