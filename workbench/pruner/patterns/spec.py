"""What a parsed pattern string says: the base of every family's spec.

Each pattern family parses its own strings (``BasePattern.parse``) into a subclass of
:class:`PatternSpec` holding its parameters, and states through it what the pattern can do:
:attr:`PatternSpec.max_sparsity` (the highest target it can reach),
:attr:`PatternSpec.fixed_sparsity` (the sparsity every satisfied unit gives, N/M for N:M: such a
pattern is reported as the fraction of units satisfied, and one-shot pruning prunes exactly it),
:meth:`PatternSpec.effective_target` (the target a run with it actually has) and
:attr:`PatternSpec.features` (capabilities that pruners and regularisers may require, such as
``"blocks"``: units are rectangular blocks of the 2-D weight view with ``pattern.grid``) and
:meth:`PatternSpec.posttraining_form` (how post-training pruning takes it, or ``None``).
Code outside the family asks the spec (``workbench.pruner.parse_pattern(text)``), never for the
family's name or the pattern string's syntax.
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

    @property
    def fixed_sparsity(self) -> float | None:
        """The sparsity of a layer whose every unit satisfies the pattern (N/M for N:M), for a
        family whose units each prune a fixed share of their weights; ``None`` (the default):
        the target decides. Such a pattern's blockwise figure is the fraction of units satisfied
        (not a sparsity), and one-shot (post-training) pruning prunes exactly this."""
        return None

    def effective_target(self, target: float, *, one_shot: bool = False) -> float:
        """The target sparsity a run with this pattern has: ``target`` capped at
        :attr:`max_sparsity`; with ``one_shot`` (post-training pruning) :attr:`fixed_sparsity`
        where the family states one.

        Example:
            >>> PatternSpec("x").effective_target(0.9), PatternSpec("x").effective_target(0.9, one_shot=True)
            (0.9, 0.9)
        """
        if one_shot and self.fixed_sparsity is not None:
            return float(self.fixed_sparsity)
        return min(float(target), float(self.max_sparsity))

    def posttraining_form(self) -> tuple[str, int, int] | None:
        """How post-training pruning (wanda, sparsegpt) takes this pattern: ``("unstructured", 1,
        1)``, ``("nm", n, m)`` (the n lowest of every m consecutive input weights of a row) or
        ``("block", rows, cols)`` (``0`` = the whole dimension); ``None`` (the default): it does
        not, and post-training pruning refuses the pattern naming its family."""
        return None

    def missing(self, required: frozenset[str] | set[str]) -> list[str]:
        """The required features this pattern lacks, sorted (empty when it has them all)."""
        return sorted(set(required) - self.features)
