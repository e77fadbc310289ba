"""What a parsed pattern string says: the base of every family's spec.

Each pattern family parses its own strings (``BasePattern.parse``) into a subclass of
:class:`PatternSpec` holding its parameters, and states through it what the pattern can do:
:attr:`PatternSpec.max_sparsity` (the highest target it can reach) and
:attr:`PatternSpec.features` (capabilities that pruners and regularisers may require, such as
``"blocks"``: units are rectangular blocks of the 2-D weight view with ``pattern.grid``).
Code outside the family asks the spec, never for the family's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

__all__ = ["BLOCKS", "CHANNELS", "PatternSpec"]

BLOCKS = "blocks"
"""Feature: every unit is a rectangular block of the 2-D weight view (``pattern.grid``/``block``)."""

CHANNELS = "channels"
"""Feature: every unit is a whole row or a whole column of the 2-D weight view (a channel)."""


@dataclass(frozen=True)
class PatternSpec:
    """A parsed pattern string.

    Attributes:
        text: The pattern as the user wrote it, normalised (``"4x1"``, ``"2:4"``).
        family: The registry name of the family that parsed it (set by ``parse_pattern``).
        features: Capabilities of the pattern (see the module docstring).
    """

    text: str
    family: str = field(default="", kw_only=True, compare=False)
    features: ClassVar[frozenset[str]] = frozenset()
    """Capabilities of the pattern (a family may make this a property of the parsed values)."""

    @property
    def max_sparsity(self) -> float:
        """The highest target sparsity this pattern can reach (1.0 unless a family says less)."""
        return 1.0

    def missing(self, required: frozenset[str] | set[str]) -> list[str]:
        """The required features this pattern lacks, sorted (empty when it has them all)."""
        return sorted(set(required) - self.features)
