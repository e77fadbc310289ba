"""Mask selection shared by the post-training methods: which weights a score prunes.

A pattern string is read by the pruner's own parser (:func:`workbench.pruner.patterns.parse_pattern`)
into a :class:`Shape`: unstructured (``"1x1"``), N:M (``"2:4"``: N of every M consecutive input
weights of a row) or an NxM block (``"4x1"``, ``"1x4"``, ``"channelx1"``, ``"1xchannel"``). Masks
are boolean ``[out, in]`` tensors in Linear orientation, ``True`` = pruned.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..patterns import parse_pattern

__all__ = ["Shape", "block_mask", "count_schedule", "nm_mask", "parse_shape", "row_mask"]


@dataclass(frozen=True)
class Shape:
    """A parsed pattern: ``kind`` is ``"unstructured"``, ``"nm"`` or ``"block"``.

    ``n``/``m`` are N and M of an N:M pattern, or the block's rows and columns (``0`` meaning the
    whole dimension, from ``"channel"``).
    """

    text: str
    kind: str
    n: int = 1
    m: int = 1

    def block(self, rows: int, cols: int) -> tuple[int, int]:
        """``(rows, cols)`` of one block of a ``[rows, cols]`` weight."""
        return (self.n or rows, self.m or cols)

    def check(self, rows: int, cols: int, name: str) -> None:
        """Raise :class:`ConfigError` if layer ``name``'s ``[rows, cols]`` weight cannot take the pattern."""
        if self.kind == "nm" and cols % self.m:
            raise ConfigError(f"pattern: {self.text!r} needs in_features divisible by M; layer {name} has {cols}")
        if self.kind == "block":
            bn, bm = self.block(rows, cols)
            if rows % bn or cols % bm:
                raise ConfigError(f"pattern: {self.text!r} does not tile layer {name}'s {rows}x{cols} weight")


def parse_shape(text: str) -> Shape:
    """A pattern string -> :class:`Shape`.

    Example:
        >>> parse_shape("2:4")
        Shape(text='2:4', kind='nm', n=2, m=4)
        >>> parse_shape("1xchannel").block(8, 16)
        (1, 16)
    """
    spec = parse_pattern(text)
    form = spec.posttraining_form()  # the family declares whether and how post-training pruning takes it
    if form is None:
        raise ConfigError(
            f"pattern: {text!r} (family {spec.family!r}) is not supported by post-training pruning: its family "
            "declares no post-training form; allowed: unstructured '1x1', N:M ('2:4') or NxM blocks ('4x1')"
        )
    kind, n, m = form
    return Shape(spec.text, kind, n, m)


def count_schedule(total_per_chunk: list[int], ratio: float) -> list[int]:
    """How many units to prune in each chunk so the total is exactly ``round(ratio * sum)``.

    Example:
        >>> count_schedule([3, 3, 3], 0.5)
        [2, 1, 1]
    """
    counts, done, seen = [], 0, 0
    for n in total_per_chunk:
        seen += n
        want = int(round(ratio * seen))
        counts.append(min(n, max(0, want - done)))
        done += counts[-1]
    return counts


def _lowest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the ``k`` lowest entries of each row of ``scores`` (ties: lowest index)."""
    mask = torch.zeros_like(scores, dtype=torch.bool)
    if k > 0:
        mask.scatter_(1, torch.topk(scores, k, dim=1, largest=False).indices, True)
    return mask


def row_mask(scores: torch.Tensor, ratio: float) -> torch.Tensor:
    """Prune ``round(ratio * cols)`` lowest scores in every row (the same count per row)."""
    return _lowest(scores, int(round(ratio * scores.shape[1])))


def nm_mask(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Prune the ``n`` lowest scores of every group of ``m`` consecutive columns of each row."""
    rows, cols = scores.shape
    return _lowest(scores.reshape(rows * cols // m, m), n).reshape(rows, cols)


def block_mask(scores: torch.Tensor, bn: int, bm: int, ratio: float, per_block_row: bool = True) -> torch.Tensor:
    """Prune whole ``bn x bm`` blocks ranked by the SUM of their scores.

    With ``per_block_row`` (and more than one block per block row) each block row prunes the same
    number of blocks, Wanda's per-output comparison group; otherwise blocks compete layer-wide.
    """
    rows, cols = scores.shape
    r, c = rows // bn, cols // bm
    sums = scores.reshape(r, bn, c, bm).sum(dim=(1, 3))
    if per_block_row and c > 1:
        pruned = row_mask(sums, ratio)
    else:
        pruned = row_mask(sums.reshape(1, r * c), ratio).reshape(r, c)
    return pruned.view(r, 1, c, 1).expand(r, bn, c, bm).reshape(rows, cols)
