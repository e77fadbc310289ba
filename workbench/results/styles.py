"""One colour per pattern and one marker per criterion, the same in every study and figure.

Figures used to number the values they met (``C0`` for the first pattern in sorted order), so
``2:4`` was green in one study and orange in the next. :func:`color_of` and :func:`marker_of`
are the one owner of that choice: the built-in patterns and criteria have fixed entries
(:data:`PATTERN_COLORS`, :data:`CRITERION_COLORS`, :data:`CRITERION_MARKERS`,
:data:`PATTERN_MARKERS`); any other value (a plug-in's pattern, a knob without a table) gets
one from a stable hash of its text (SHA-1, not Python's salted ``hash``), so it too keeps its
look across studies and processes. Two unknown values may share a colour; the legend still
names both.

Example:
    >>> color_of("pattern", "2:4"), marker_of("criterion", "snip")
    ('tab:green', 'D')
    >>> color_of("pattern", "my-plugin-pattern") == color_of("pattern", "my-plugin-pattern")
    True
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

__all__ = [
    "CRITERION_COLORS",
    "CRITERION_MARKERS",
    "PATTERN_COLORS",
    "PATTERN_MARKERS",
    "color_map",
    "color_of",
    "marker_map",
    "marker_of",
]

PATTERN_COLORS = {
    "1x1": "tab:blue",
    "4x1": "tab:orange",
    "2:4": "tab:green",
    "channelx1": "tab:red",
    "1x4": "tab:purple",
    "2x2": "tab:brown",
    "4:8": "tab:pink",
    "1xchannel": "tab:olive",
    "8x1": "tab:cyan",
    "1:4": "tab:gray",
}
"""The built-in and example patterns' colours (matplotlib's tab10, each used once)."""

CRITERION_COLORS = {
    "magnitude": "tab:blue",
    "gradient": "tab:orange",
    "snip": "tab:green",
    "snip_momentum": "tab:red",
    "snip_momentum_block": "tab:purple",
    "wanda": "tab:brown",
    "sparsegpt": "tab:pink",
}
"""The criteria's colours, where a figure colours by criterion (the cost figure)."""

CRITERION_MARKERS = {
    "magnitude": "o",
    "gradient": "s",
    "snip": "D",
    "snip_momentum": "^",
    "snip_momentum_block": "v",
    "wanda": "P",
    "sparsegpt": "X",
}
"""The criteria's markers (post-training ones are also drawn hollow by the figures)."""

PATTERN_MARKERS = {"1x1": "o", "4x1": "s", "2:4": "D", "channelx1": "^", "1x4": "v", "2x2": "P", "4:8": "X"}
"""The patterns' markers, where a figure marks by pattern."""

_OTHER_COLORS = (
    "#393b79",
    "#637939",
    "#8c6d31",
    "#843c39",
    "#7b4173",
    "#3182bd",
    "#e6550d",
    "#31a354",
    "#756bb1",
    "#636363",
    "#17becf",
    "#bcbd22",
)
"""Colours for values without a table entry (matplotlib's tab20b/tab20c darks: apart from tab10)."""

_OTHER_MARKERS = ("*", "p", "h", "<", ">", "8", "H", "d")
"""Markers for values without a table entry (none of them in the tables)."""

_COLORS = {"pattern": PATTERN_COLORS, "criterion": CRITERION_COLORS}
_MARKERS = {"pattern": PATTERN_MARKERS, "criterion": CRITERION_MARKERS}


def _stable_pick(value: str, choices: tuple[str, ...]) -> str:
    digest = hashlib.sha1(value.encode("utf-8")).digest()
    return choices[int.from_bytes(digest[:4], "big") % len(choices)]


def _key(value: Any) -> str:
    return str(value).strip().lower()


def color_of(knob: str, value: Any) -> str:
    """The colour of ``value`` of ``knob`` (``pattern``, ``criterion``, or any other): fixed, or from a stable hash."""
    table = _COLORS.get(knob, {})
    return table.get(_key(value)) or _stable_pick(f"{knob}={_key(value)}", _OTHER_COLORS)


def marker_of(knob: str, value: Any) -> str:
    """The marker of ``value`` of ``knob``: fixed for the known criteria and patterns, else from a stable hash."""
    table = _MARKERS.get(knob, {})
    return table.get(_key(value)) or _stable_pick(f"{knob}={_key(value)}", _OTHER_MARKERS)


def color_map(knob: str, values: Iterable[Any]) -> dict[str, str]:
    """``{str(value): colour}`` for each distinct value, in sorted order (a figure's legend order)."""
    return {v: color_of(knob, v) for v in sorted({str(v) for v in values})}


def marker_map(knob: str, values: Iterable[Any]) -> dict[str, str]:
    """``{str(value): marker}`` for each distinct value, in sorted order."""
    return {v: marker_of(knob, v) for v in sorted({str(v) for v in values})}
