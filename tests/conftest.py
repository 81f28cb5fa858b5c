"""Shared pytest setup: quiet TensorFlow logs, the backend, `--run-slow` and `tensorflow_only`.

The suite runs on TensorFlow (the default) and on JAX (``KERAS_BACKEND=jax``); tests of
TensorFlow-only parts (SavedModel export, tf.data/tfds, tf.distribute) are marked
``tensorflow_only`` and skipped on other backends.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow", action="store_true", default=False, help="also run tests marked slow"
    )


def pytest_collection_modifyitems(config, items):
    backend = os.environ["KERAS_BACKEND"]
    skip_backend = pytest.mark.skip(reason=f"TensorFlow-only; the backend is {backend}")
    skip_slow = pytest.mark.skip(reason="slow: enable with --run-slow")
    for item in items:
        if "tensorflow_only" in item.keywords and backend != "tensorflow":
            item.add_marker(skip_backend)
        if "slow" in item.keywords and not config.getoption("--run-slow"):
            item.add_marker(skip_slow)
