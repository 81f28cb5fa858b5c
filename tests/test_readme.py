"""Every ```python block of the README runs, at smoke size, so none of them can rot.

The blocks are read from README.md at collection time (none is copied here). Each runs alone in
a fresh namespace, in a temporary folder, so each must define what it uses. Shell commands are
```bash blocks and listings ```text: neither is run. For speed, `SMOKE` rewrites sizes in the
code before it runs (fewer epochs, draws and trials, a slice of each split); every rewrite must
still find something to rewrite, so a renamed argument fails here instead of making a block slow.
"""

import pathlib
import re

import keras
import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)

#: (pattern, replacement): the README's sizes -> smoke sizes.
SMOKE = (
    (r"epochs=\d+", "epochs=1"),
    (r"draws=\d+", "draws=3"),
    (r"max_trials=\d+", "max_trials=2"),
    (r"steps=\d+", "steps=0"),
    (r'"fashion_mnist_subset", "train"', '"fashion_mnist_subset", "train[:384]"'),
    (r'"fashion_mnist_subset", "test"', '"fashion_mnist_subset", "test[:128]"'),
)


def readme_blocks(text):
    """The README's fenced blocks as (language, code), in order."""
    return [(match.group(1), match.group(2)) for match in FENCE.finditer(text)]


def python_blocks():
    return [code for language, code in readme_blocks(README.read_text()) if language == "python"]


def smoke(code):
    """`code` with the `SMOKE` rewrites applied."""
    for pattern, replacement in SMOKE:
        code = re.sub(pattern, replacement, code)
    return code


BLOCKS = python_blocks()
#: Blocks that take most of a minute even at smoke size run with `--run-slow` (`make test-slow`).
SLOW_IF_CONTAINS = ("keras_tuner", "optimize_gmax")


def _param(index, code):
    slow = any(word in code for word in SLOW_IF_CONTAINS)
    return pytest.param(code, id=f"block{index}", marks=[pytest.mark.slow] if slow else [])


def test_every_fence_says_its_language():
    languages = [language for language, _ in readme_blocks(README.read_text())]
    assert "" not in languages, "mark each ``` block python, bash or text"
    assert set(languages) <= {"python", "bash", "text"}, languages


def test_there_are_python_blocks_and_every_smoke_rewrite_applies():
    assert len(BLOCKS) >= 5
    source = "\n".join(BLOCKS)
    unused = [pattern for pattern, _ in SMOKE if not re.search(pattern, source)]
    assert not unused, unused


def test_the_extraction_reads_fences_and_smoke_rewrites():
    # The oracle for the two helpers, on a hand-written text.
    text = "a\n```python\nfit(epochs=5)\n```\n```bash\nls\n```\n"
    assert readme_blocks(text) == [("python", "fit(epochs=5)\n"), ("bash", "ls\n")]
    assert smoke("fit(epochs=5, draws=20)") == "fit(epochs=1, draws=3)"


@pytest.mark.parametrize("code", [_param(i, code) for i, code in enumerate(BLOCKS)])
def test_readme_block_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # files the block writes (log.csv, runs/, front.png) go here
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    exec(compile(smoke(code), str(README), "exec"), {"__name__": "__readme__"})
