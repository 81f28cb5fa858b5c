"""The docs site's sources stay whole: cited docs paths exist, every page is in the navigation."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
CITED = re.compile(r"\bdocs/[\w/.-]+\.(?:md|png|json)\b")
NAV_PAGE = re.compile(r'^\s*-\s*(?:(?:"[^"\n]*"|[^:"\n]+):\s*)?([\w/.-]+\.md)\s*$', re.M)
#: Pages mkdocs-gen-files writes at build time (tools/docs_pages.py).
GENERATED = ("api/", "tutorials/")


def _sources():
    # Not experiments/: the results they cite are what they write, before a first run too.
    yield ROOT / "README.md"
    for folder in ("tf_lanmax", "tutorials", "bench"):
        yield from (ROOT / folder).rglob("*.py")


def test_every_cited_docs_path_exists():
    missing = [
        f"{path.relative_to(ROOT)}: {cited}"
        for path in _sources()
        for cited in CITED.findall(path.read_text(encoding="utf-8"))
        if not (ROOT / cited.rstrip(".")).exists()
    ]
    assert not missing, missing


def test_the_citation_pattern_finds_paths():
    text = 'See docs/maths/energy.md. ![x](docs/results/sram_ecc.png) "docs/none.json"'
    assert CITED.findall(text) == [
        "docs/maths/energy.md",
        "docs/results/sram_ecc.png",
        "docs/none.json",
    ]


def test_every_page_is_in_the_navigation_and_every_nav_page_exists():
    nav = set(NAV_PAGE.findall((ROOT / "mkdocs.yml").read_text(encoding="utf-8")))
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert pages <= nav, sorted(pages - nav)
    written = {page for page in nav if not page.startswith(GENERATED)}
    assert written <= pages, sorted(written - pages)
    assert any(page.startswith("api/") for page in nav)
    assert any(page.startswith("tutorials/") for page in nav)
