"""Pages the docs site builds from the code (run by mkdocs-gen-files during `mkdocs build`).

- `api/<module>.md`: one mkdocstrings page per public module of `tf_lanmax`.
- `tutorials/<name>.md`: each keras-io-style tutorial of `tutorials/` as Markdown (its string
  blocks are the prose, the code between them becomes Python blocks). No plugin reads that
  format: jupytext and mkdocs-jupyter expect `# %%` cells, keras-io's own converter is not on PyPI.
"""

import ast
import importlib.util
import inspect
import pathlib

import mkdocs_gen_files

import tf_lanmax

ROOT = pathlib.Path(__file__).resolve().parents[1]

# The public modules (`tl.<name>`), from the package's own list (`tf_lanmax.__all__` holds the
# subpackages, "errors" and "export" besides the re-exported names); `cli` is the command line,
# documented by `lanmax --help`.
API_MODULES = tuple(
    name for name in tf_lanmax.__all__ if importlib.util.find_spec(f"tf_lanmax.{name}")
)


def tutorial_markdown(source, filename):
    """Converts a keras-io-format tutorial (header docstring, string blocks as prose) to Markdown.

    Args:
        source: the tutorial's Python source.
        filename: its name in `tutorials/`, shown in the "how to run" note.

    Returns:
        The Markdown page as a string.
    """
    lines = source.splitlines()
    body = ast.parse(source).body
    prose = [
        node
        for node in body
        if isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    ]
    if not prose:
        raise ValueError(f"{filename}: no header docstring (keras-io format expected)")
    header = dict(
        line.split(":", 1) for line in prose[0].value.value.strip().splitlines() if ":" in line
    )
    title = header.get("Title", filename).strip()
    description = " ".join(prose[0].value.value.split("Description:", 1)[-1].split()).strip()
    out = [
        f"# {title}",
        "",
        description,
        "",
        '!!! note "Run it"',
        f"    `python tutorials/{filename}` from the repository root (the full run: minutes on a",
        f"    CPU); `TF_LANMAX_SMOKE=1 python tutorials/{filename}` runs it at smoke size in",
        "    seconds, as the test suite does (`tests/test_tutorials.py`).",
        "",
    ]
    cursor = prose[0].end_lineno
    for node in prose[1:] + [None]:
        stop = len(lines) if node is None else node.lineno - 1
        code = "\n".join(lines[cursor:stop]).strip("\n")
        if code.strip():
            out += ["```python", code, "```", ""]
        if node is not None:
            out += [inspect.cleandoc(node.value.value), ""]
            cursor = node.end_lineno
    return "\n".join(out).rstrip() + "\n"


def main():
    with mkdocs_gen_files.open("api/index.md", "w") as page:
        page.write(
            "# API reference\n\nGenerated from the docstrings. `import tf_lanmax as tl` also "
            "exposes the most used names at the top level: `tl.FaultyDense`, `tl.FaultyConv1D`, "
            "`tl.FaultyConv2D`, `tl.LaNMax`, `tl.SharpnessAwareModel`, `tl.EnergyModel`, "
            "`tl.memory_energy`, `tl.summary`, `tl.evaluate_under_faults`, "
            "`tl.evaluate_under_noise`, `tl.sensitivity`, `tl.faults_disabled`, "
            "`tl.faulty_layers`, `tl.set_fault_rates`.\n\n"
        )
        for name in API_MODULES:
            page.write(f"- [`tf_lanmax.{name}`]({name}.md)\n")
    for name in API_MODULES:
        with mkdocs_gen_files.open(f"api/{name}.md", "w") as page:
            page.write(f"# tf_lanmax.{name}\n\n::: tf_lanmax.{name}\n")
    for path in sorted((ROOT / "tutorials").glob("[0-9]*.py")):
        with mkdocs_gen_files.open(f"tutorials/{path.stem}.md", "w") as page:
            page.write(tutorial_markdown(path.read_text(encoding="utf-8"), path.name))


main()
