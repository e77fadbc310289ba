"""What slimming did: per layer pair or attention block, slimmed or skipped (with the reason)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["SlimEntry", "SlimReport"]


@dataclass(frozen=True)
class SlimEntry:
    """One FFN pair or attention block.

    Attributes:
        kind: ``"ffn"`` or ``"heads"``.
        layers: The module names involved (up, down / q, k, v, out).
        before: Hidden channels (FFN) or heads before slimming.
        after: After slimming (equal to ``before`` when nothing was removed).
        reason: Why nothing (or not everything removable) was removed; empty when slimmed.
    """

    kind: str
    layers: tuple[str, ...]
    before: int
    after: int
    reason: str = ""

    @property
    def slimmed(self) -> bool:
        """Whether any channel or head was removed."""
        return self.after < self.before


@dataclass
class SlimReport:
    """The result of :func:`~workbench.pruner.slim.slim_model`.

    Attributes:
        entries: One :class:`SlimEntry` per FFN pair and attention block found.
        params_before: Parameter count of the model before slimming.
        params_after: After slimming.
    """

    entries: list[SlimEntry] = field(default_factory=list)
    params_before: int = 0
    params_after: int = 0

    @property
    def slimmed(self) -> list[SlimEntry]:
        """The entries where something was removed."""
        return [e for e in self.entries if e.slimmed]

    @property
    def skipped(self) -> list[SlimEntry]:
        """The entries left as they were, each with its reason."""
        return [e for e in self.entries if not e.slimmed]

    def summary(self) -> str:
        """One line per entry, e.g. ``ffn 0 -> 2: 16 -> 8`` or ``heads ...: skipped (reason)``."""
        lines = [f"params {self.params_before} -> {self.params_after}"]
        for e in self.entries:
            state = f"{e.before} -> {e.after}" if e.slimmed else "skipped"
            lines.append(f"{e.kind} {' -> '.join(e.layers)}: {state}" + (f" ({e.reason})" if e.reason else ""))
        return "\n".join(lines)
