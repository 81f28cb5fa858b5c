"""Shared pytest setup: quiet TensorFlow logs, a fixed backend and the `--run-slow` switch."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow", action="store_true", default=False, help="also run tests marked slow"
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: enable with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)
