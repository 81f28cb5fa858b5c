"""`py_test` main for Bazel: run one pytest file and exit with pytest's code.

Bazel's native `py_test` runs a script, while the tests under tests/ are pytest-style (fixtures,
conftest.py, parametrize). Each target in the root BUILD runs this shim with its test file as the
only argument (a runfiles-relative path; Bazel starts tests in the runfiles root).

What the shim sets up, and why:
- The interpreter. The tests need the project venv (tensorflow, keras, pytest). CI passes
  `--test_env=PATH=<repo>/.venv/bin:...` so the venv's python runs this file. A plain
  `bazel test //...` inherits the caller's PATH instead; when the running interpreter is not
  this tree's `.venv`, the shim re-executes itself with `<repo>/.venv/bin/python` (the repo is
  found by resolving the runfiles symlink of this file back to the source tree), keeping the
  PYTHONPATH that Bazel's stub set.
- Which `tf_lanmax` is imported: the runfiles copy (symlinks to this tree's files), because the
  `py_library` has `imports = ["."]` and Bazel puts that on PYTHONPATH ahead of site-packages,
  where the venv's editable install (possibly of another checkout) sits. Subprocesses that tests
  start (`python -m tf_lanmax`, the distributed tuner workers) inherit PYTHONPATH and the
  working directory, so they import the same copy.
- Writable state. Bazel leaves HOME unset (so `~` is the read-only /root in the sandbox). HOME and
  `TF_LANMAX_DATA_DIR` default to folders under the test's private `TEST_TMPDIR`, so every test
  target prepares its datasets in isolation and nothing is written outside Bazel's output tree.
"""

import os
import sys


def _venv_python():
    """`<source tree>/.venv/bin/python`, found through this file's runfiles symlink, or None."""
    repo = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    python = os.path.join(repo, ".venv", "bin", "python")
    return python if os.access(python, os.X_OK) else None


def _maybe_reexec_in_venv():
    venv_python = _venv_python()
    if venv_python is None or os.environ.get("TF_LANMAX_BAZEL_REEXEC") == "1":
        return
    venv = os.path.dirname(os.path.dirname(venv_python))
    if os.path.realpath(sys.prefix) == os.path.realpath(venv):
        return
    os.environ["TF_LANMAX_BAZEL_REEXEC"] = "1"  # once: never loop
    os.execv(venv_python, [venv_python, os.path.abspath(__file__), *sys.argv[1:]])


def _writable_state():
    tmp = os.environ.get("TEST_TMPDIR")
    if not tmp:
        return  # not under `bazel test`: leave the environment as it is
    home = os.environ.get("HOME")
    if not home or not os.access(home, os.W_OK):
        os.environ["HOME"] = os.path.join(tmp, "home")
        os.makedirs(os.environ["HOME"], exist_ok=True)
    os.environ.setdefault("TF_LANMAX_DATA_DIR", os.path.join(tmp, "tf_lanmax_data"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def main(argv):
    if len(argv) != 1:
        sys.exit(f"usage: {os.path.basename(__file__)} TEST_FILE")
    _maybe_reexec_in_venv()
    _writable_state()
    test_file = argv[0]
    tests_dir = os.path.abspath(os.path.dirname(test_file))
    if tests_dir not in sys.path:
        sys.path.insert(0, tests_dir)  # `import helpers`, as pytest's rootdir conftest gives it

    import importlib.util

    import pytest

    spec = importlib.util.find_spec("tf_lanmax")  # locates the package without importing it
    origin = spec.origin if spec else None
    print(f"bazel_pytest: python {sys.executable}; tf_lanmax from {origin}", flush=True)
    return pytest.main([test_file, "-q", "-p", "no:cacheprovider"])


if __name__ == "__main__":
    sys.exit(int(main(sys.argv[1:])))
