"""Architecture rules: one-way import levels, public Keras API only."""

import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_import_levels_contract_is_kept():
    exe = shutil.which("lint-imports", path=str(pathlib.Path(sys.executable).parent))
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e .[test])")
    result = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_private_keras_imports():
    pattern = re.compile(r"^\s*(from|import)\s+keras\.src\b", re.M)
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("tf_lanmax", "tests", "bench", "experiments", "tools")
        for path in (ROOT / folder).rglob("*.py")
        if pattern.search(path.read_text())
    ]
    assert not offenders, offenders


def test_backend_specific_imports_stay_in_backend_modules():
    allowed = (
        "data/",
        "export/",
        "_tensorflow",
        "_jax",
        "_torch",
        "tensorflow_step",
        "jax_step",
        "torch_step",
        "cli/",
    )
    pattern = re.compile(r"^\s*(from|import)\s+(tensorflow|jax|torch)\b", re.M)
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "tf_lanmax").rglob("*.py")
        if pattern.search(path.read_text())
        and not any(a in str(path.relative_to(ROOT / "tf_lanmax")) for a in allowed)
    ]
    assert not offenders, offenders


def test_backend_agnostic_modules_read_variables_through_keras_ops():
    # `Variable.numpy()` is TensorFlow's idiom: on JAX, Keras' `np.array(variable)` behind it
    # raises NumPy 2's __array__(copy=...) DeprecationWarning. `ops.convert_to_numpy(v.value)`
    # reads a variable on every backend.
    allowed = ("data/", "export/", "_tensorflow", "tensorflow_step")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in (ROOT / "tf_lanmax").rglob("*.py")
        if not any(a in str(path.relative_to(ROOT / "tf_lanmax")) for a in allowed)
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if ".numpy()" in line
    ]
    assert not offenders, offenders


def test_the_package_cites_no_file_outside_the_repository():
    # A docstring pointing at a Markdown file the user does not have (e.g. our team's notes)
    # is a dead reference: every cited .md must exist somewhere in this repository.
    present = {path.name for path in ROOT.rglob("*.md") if ".venv" not in path.parts}
    cited = re.compile(r"\b([A-Za-z0-9_.-]+\.md)\b")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {name}"
        for path in (ROOT / "tf_lanmax").rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        for name in cited.findall(line)
        if name not in present
    ]
    assert not offenders, offenders
