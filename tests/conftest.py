"""Shared pytest setup: quiet TensorFlow logs, the backend, `--run-slow`, `tensorflow_only` and
the backend-agnostic core.

The suite runs on TensorFlow (the default); `make test-jax` and `make test-torch` run its
backend-agnostic core (``KERAS_BACKEND=jax`` / ``torch``, ``pytest -m core``): the modules in
`CORE_MODULES`, marked `core` here. Tests of TensorFlow-only parts (SavedModel export,
tf.data/tfds, tf.distribute) are marked ``tensorflow_only`` and skipped on other backends.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

if os.environ["KERAS_BACKEND"] == "torch":
    # torch first: importing it after TensorFlow in one process can crash on shared libraries.
    import torch  # noqa: F401

if os.environ["KERAS_BACKEND"] == "jax":
    # JAX runs each eager op through its own XLA compile (about 0.1 s each on this CPU): a
    # MemSE test compiles some 300 of them. Without LLVM's optimisation passes the compiles are
    # about 30 % shorter (a test: 76 s -> 54 s), far more than the tests' tiny programs lose
    # in run time: `make test-jax` took 650 s instead of 1251 s.
    os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

import pytest  # noqa: E402

#: The backend-agnostic core every backend runs: formats, faults, layers, energy, LaNMax, SAM,
#: evaluation, MemSE, seeds and the backend comparison. CI runs the rest on TensorFlow only
#: (three full backends do not fit its 60 minutes on 2 cores).
CORE_MODULES = (
    "test_backends",
    "test_draw_runner",
    "test_energy",
    "test_evaluation",
    "test_faults",
    "test_formats",
    "test_gap_draws",
    "test_inject_faults",
    "test_lanmax",
    "test_lanmax_estimator",
    "test_lanmax_torch",
    "test_layers",
    "test_memse",
    "test_memse_crossbar",
    "test_memse_moments",
    "test_sam",
    "test_sam_rules",
    "test_sam_torch",
    "test_seeds",
    "test_stream_draws",
)


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow", action="store_true", default=False, help="also run tests marked slow"
    )


@pytest.hookimpl(tryfirst=True)  # before `-m` selects on the `core` mark added here
def pytest_collection_modifyitems(config, items):
    backend = os.environ["KERAS_BACKEND"]
    skip_backend = pytest.mark.skip(reason=f"TensorFlow-only; the backend is {backend}")
    skip_slow = pytest.mark.skip(reason="slow: enable with --run-slow")
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        if module in CORE_MODULES:
            item.add_marker(pytest.mark.core)
        if "tensorflow_only" in item.keywords and backend != "tensorflow":
            item.add_marker(skip_backend)
        if "slow" in item.keywords and not config.getoption("--run-slow"):
            item.add_marker(skip_slow)
