"""The 2-D view of a weight that every pattern works on.

Linear ``[out, in]`` is used as is; Conv ``[out, in, kh, kw]`` is viewed channels-last as
``[out, kh*kw*in]``; a 3-D ``[out, in, k]`` weight as ``[out, k*in]``. Only 2-D weights get a
true view (no copy): those are the large ones, so the hot path never copies a weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Layout:
    """How one weight maps to its 2-D view ``[rows, cols]``."""

    shape: tuple[int, ...]

    @property
    def rows(self) -> int:
        return self.shape[0]

    @property
    def cols(self) -> int:
        n = 1
        for d in self.shape[1:]:
            n *= d
        return n

    @property
    def is_2d(self) -> bool:
        return len(self.shape) == 2

    def to_2d(self, t: torch.Tensor) -> torch.Tensor:
        """The 2-D view of ``t`` (a view for 2-D weights, a channels-last copy otherwise)."""
        if t.dim() == 2:
            return t
        if t.dim() == 1:
            return t.view(self.rows, 1)
        perm = (0, *range(2, t.dim()), 1)
        return t.permute(perm).reshape(self.rows, self.cols)

    def from_2d(self, t2d: torch.Tensor) -> torch.Tensor:
        """Map a ``[rows, cols]`` tensor back to the weight's shape (a strided view)."""
        if len(self.shape) == 2:
            return t2d
        if len(self.shape) == 1:
            return t2d.reshape(self.shape)
        channels_last = (self.shape[0], *self.shape[2:], self.shape[1])
        inverse = (0, len(self.shape) - 1, *range(1, len(self.shape) - 1))
        return t2d.reshape(channels_last).permute(inverse)
