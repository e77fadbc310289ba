"""Parse pattern strings ("4x1", "channelx1", "2:4") into a small spec object."""
from __future__ import annotations

import re
from dataclasses import dataclass

_NXM = re.compile(r"^(\d+|channel)x(\d+|channel)$")
_NM = re.compile(r"^(\d+):(\d+)$")


@dataclass(frozen=True)
class PatternSpec:
    """A parsed pattern string.

    Attributes:
        text: The pattern as the user wrote it, lower-cased (``"4x1"``, ``"2:4"``).
        kind: ``"NxM"`` (blocks kept or pruned whole) or ``"N:M"`` (N of every M pruned).
        n: Rows per block (``"channel"`` = all output channels) or N of N:M.
        m: Columns per block (``"channel"`` = all input columns) or M of N:M.
    """

    text: str
    kind: str
    n: int | str
    m: int | str

    @property
    def max_sparsity(self) -> float:
        """The highest target sparsity this pattern can reach (N/M for N:M, else 1)."""
        if self.kind == "N:M":
            return self.n / self.m  # type: ignore[operator]
        return 1.0


def parse_pattern(text: str) -> PatternSpec:
    """Parse a pattern string, raising ``ValueError`` naming the value and the allowed forms.

    Example:
        >>> parse_pattern("4x1").kind, parse_pattern("2:4").max_sparsity
        ('NxM', 0.5)
    """
    if not isinstance(text, str):
        raise ValueError(f"pattern: expected a string such as '4x1' or '2:4', got {text!r}")
    norm = text.strip().lower()
    if match := _NXM.match(norm):
        n, m = (g if g == "channel" else int(g) for g in match.groups())
        if n == "channel" and m == "channel":
            raise ValueError(f"pattern: {text!r} is not allowed; at most one side may be 'channel'")
        if 0 in (n, m):
            raise ValueError(f"pattern: {text!r} has a zero-sized block; N and M must be >= 1")
        return PatternSpec(norm, "NxM", n, m)
    if match := _NM.match(norm):
        n, m = (int(g) for g in match.groups())
        if not 0 < n < m:
            raise ValueError(f"pattern: {text!r} needs 0 < N < M for an N:M pattern")
        return PatternSpec(norm, "N:M", n, m)
    raise ValueError(
        f"pattern: {text!r} is not a known pattern; allowed forms are 'NxM' (e.g. '4x1', '1x1', "
        f"'2x2', 'channelx1', '1xchannel') and 'N:M' (e.g. '2:4', '1:4', '5:8')"
    )
