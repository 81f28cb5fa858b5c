"""Every tutorial runs end to end in smoke mode (tiny epochs), so none of them rots."""

import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

TUTORIALS = sorted((pathlib.Path(__file__).resolve().parents[1] / "tutorials").glob("[0-9]*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_in_smoke_mode(path, tmp_path):
    if "pytorch" in path.stem and importlib.util.find_spec("torch") is None:
        pytest.skip("needs torch (make torch)")
    env = dict(os.environ, TF_LANMAX_SMOKE="1", TF_CPP_MIN_LOG_LEVEL="2", MPLBACKEND="Agg")
    result = subprocess.run(
        [sys.executable, str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]


def test_tutorials_exist():
    assert len(TUTORIALS) >= 3
