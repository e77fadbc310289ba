"""Scratch tensors reused across the layers of one pruning step.

Every fresh multi-megabyte tensor costs page faults on first touch, which on the reference
machine take several times longer than the arithmetic that fills it. Temporaries that live only
while one layer is ranked therefore come from a :class:`Workspace` that lives for one mask
update and hands out the same memory for every layer. Buffers live on the device asked for
(the scored tensors' own), so a pruning step on CUDA allocates nothing on the CPU.
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
        self._buffers: dict[tuple[str, torch.dtype, torch.device | None], torch.Tensor] = {}

    def get(
        self, slot: str, shape: tuple[int, ...], dtype: torch.dtype = torch.float32, device: torch.device | None = None
    ) -> torch.Tensor:
        """An uninitialised tensor of ``shape`` on ``device`` (default: the CPU) whose memory is
        reused by the next ``get(slot)`` for the same dtype and device."""
        numel = 1
        for d in shape:
            numel *= d
        key = (slot, dtype, device)
        buffer = self._buffers.get(key)
        if buffer is None or buffer.numel() < numel:
            buffer = self._buffers[key] = torch.empty(numel, dtype=dtype, device=device)
        return buffer[:numel].view(shape)


def on_cpu(t: torch.Tensor) -> bool:
    """Whether ``t`` lives on the CPU: the one check that sends work to the compiled kernels and
    the CPU-tuned paths; a tensor on any other device takes the plain PyTorch path there.

    Example:
        >>> on_cpu(torch.zeros(1)), on_cpu(torch.zeros(1, device="meta"))
        (True, False)
    """
    return t.device.type == "cpu"
