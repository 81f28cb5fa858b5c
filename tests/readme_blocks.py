"""The fenced code blocks of the README, so that tests run the examples users copy.

>>> text = "# T\\n\\n```python\\nx = 1\\n```\\n"
>>> [block.code for block in code_blocks(text)]
['x = 1\\n']
"""

import pathlib
import re
from typing import NamedTuple

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


class Block(NamedTuple):
    """One fenced block: its language tag, code, the heading it sits under, and its line."""

    language: str
    code: str
    heading: str
    line: int


def code_blocks(text=None, language="python"):
    """The fenced blocks of `text` (None: README.md) in `language` ("" or None: all).

    Args:
        text: Markdown text. Defaults to `None` (the repository's README.md).
        language: the fence's language tag to keep. Defaults to `"python"`.

    Returns:
        A list of `Block`s in document order.
    """
    text = README.read_text(encoding="utf-8") if text is None else text
    blocks = []
    for match in _FENCE.finditer(text):
        if language and match.group(1) != language:
            continue
        before = text[: match.start()]
        headings = re.findall(r"^#+ (.*)$", before, re.MULTILINE)
        line = before.count("\n") + 1
        blocks.append(Block(match.group(1), match.group(2), headings[-1] if headings else "", line))
    return blocks
