"""A griffe extension for the API reference (mkdocs.yml): doctest examples render as code.

The docstrings hold doctests (``>>> ...`` and their expected output) in free text, which Markdown
would read as prose, taking ``x[0][1]`` for a cross-reference. This wraps each run of doctest
lines (a ``>>>`` line, its ``...`` continuations and output, up to a blank line) in a ``pycon``
fence, in the rendered page only; the source and ``pytest --doctest-modules`` are untouched.
"""

from __future__ import annotations

import griffe


def fence_doctests(text: str) -> str:
    r"""``text`` with every doctest block fenced as ``pycon`` code, at the block's indentation.

    >>> fence_doctests("Example:\n\n>>> 1 + 1\n2\n\nDone.").splitlines()
    ['Example:', '', '```pycon', '>>> 1 + 1', '2', '```', '', 'Done.']
    """
    out: list[str] = []
    indent: str | None = None
    for line in text.splitlines():
        stripped = line.lstrip()
        if indent is None and stripped.startswith(">>>"):
            indent = line[: len(line) - len(stripped)]
            if out and out[-1].strip():
                out.append("")
            out.append(f"{indent}```pycon")
        elif indent is not None and not stripped:
            out.append(f"{indent}```")
            indent = None
        out.append(line)
    if indent is not None:
        out.append(f"{indent}```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Fence the doctests of every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: object) -> None:
        """Rewrite ``obj``'s docstring, if it has one, with its doctests fenced."""
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
