"""Griffe extension for the docs site: the docstrings' `>>>` examples as Python console blocks.

The package writes its examples as bare doctest lines under "Example:" (what `doctest` reads).
Markdown would render `>>>` as nested quotes, so each run of doctest lines (prompts, `...`
continuations and expected output up to a blank line) is wrapped in a ```pycon fence.
"""

import griffe


def fence_doctest_lines(text):
    """Returns `text` with every run of doctest lines wrapped in a ```pycon fence.

    Args:
        text: a docstring (already dedented).

    Returns:
        The docstring with fenced examples; text without `>>>` comes back unchanged.
    """
    out, in_block, indent = [], False, ""
    for line in text.splitlines():
        stripped = line.lstrip()
        if not in_block and stripped.startswith(">>>"):
            indent = line[: len(line) - len(stripped)]
            out += [f"{indent}```pycon"]
            in_block = True
        elif in_block and not stripped:
            out += [f"{indent}```"]
            in_block = False
        out.append(line)
    if in_block:
        out.append(f"{indent}```")
    return "\n".join(out)


class DoctestBlocks(griffe.Extension):
    """Fences the `>>>` examples of every docstring griffe loads."""

    def on_object(self, *, obj, **kwargs):
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctest_lines(obj.docstring.value)
