"""The documentation: README and docs/ link only to files that exist and to no local path, and the
API reference's doctest fences (tools/griffe_doctests.py) keep every docstring line.

``make test`` also builds the site with ``mkdocs build --strict`` (broken links inside docs/,
missing pages, unreadable docstrings); these checks cover what that build cannot see: the README,
which is not part of the site.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from hypothesis import given
from hypothesis import strategies as st

from tools.griffe_doctests import fence_doctests

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_readme_links_point_to_files_that_exist():
    targets = [t for t in LINK.findall((ROOT / "README.md").read_text()) if "://" not in t]
    assert targets, "the README links into docs/"
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert missing == []


def test_no_page_points_to_a_local_path():
    local = re.compile(r"/work/|/root/|file://")
    offenders = [str(p.relative_to(ROOT)) for p in PAGES if local.search(p.read_text())]
    assert offenders == []


def test_every_docs_page_is_in_the_site_navigation():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def pages(node):
        if isinstance(node, str):
            yield node
        elif isinstance(node, dict):
            for value in node.values():
                yield from pages(value)
        elif isinstance(node, list):
            for value in node:
                yield from pages(value)

    in_nav = set(pages(config["nav"]))
    on_disk = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert on_disk == in_nav


def test_readme_stays_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 220


lines = st.lists(
    st.one_of(
        st.sampled_from(["", ">>> x = 1", "... y", "2", "    >>> [a][0]", "text [x][y]", "Example:"]),
        st.text(alphabet="abc >.", max_size=8),
    ),
    max_size=20,
)


@given(lines)
def test_fencing_keeps_every_line_and_fences_every_doctest(text_lines):
    text = "\n".join(text_lines)
    fenced = fence_doctests(text)
    kept = [line for line in fenced.splitlines() if line.strip() not in ("```pycon", "```")]
    original = [line for line in text.splitlines() if line.strip() not in ("```pycon", "```")]
    assert [line for line in kept if line.strip()] == [line for line in original if line.strip()]
    inside = False
    for line in fenced.splitlines():
        if line.strip() == "```pycon":
            inside = True
        elif line.strip() == "```":
            inside = False
        elif line.lstrip().startswith(">>>"):
            assert inside, fenced
