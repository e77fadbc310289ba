"""Scratch tensors reused across the layers of one pruning step.

Every fresh multi-megabyte tensor costs page faults on first touch, which on the reference
machine take several times longer than the arithmetic that fills it. Temporaries that live only
while one layer is ranked therefore come from a :class:`Workspace` that lives for one mask
update and hands out the same memory for every layer.
"""

from __future__ import annotations

import torch


class Workspace:
    """Named scratch buffers, grown to the largest request and reused.

    Example:
        >>> ws = Workspace()
        >>> a = ws.get("t", (2, 3))
        >>> b = ws.get("t", (3,))
        >>> a.data_ptr() == b.data_ptr()
        True
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, torch.dtype], torch.Tensor] = {}

    def get(self, slot: str, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """An uninitialised tensor of ``shape`` whose memory is reused by the next ``get(slot)``."""
        numel = 1
        for d in shape:
            numel *= d
        buffer = self._buffers.get((slot, dtype))
        if buffer is None or buffer.numel() < numel:
            buffer = self._buffers[(slot, dtype)] = torch.empty(numel, dtype=dtype)
        return buffer[:numel].view(shape)
