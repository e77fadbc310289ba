"""What a trial costs besides its wall time: the peak memory of its pruning and fine-tuning.

:class:`PeakMemory` measures around a block of code:

* ``peak_rss_mb``: the process's resident-set high-water mark at the end of the block
  (``resource.getrusage(RUSAGE_SELF).ru_maxrss``), MiB. It includes everything the process ever
  held (Python, torch, the dataset, earlier trials of the same worker), so it compares trials
  only within one process or across processes that ran one trial each.
* ``peak_rss_increase_mb``: how much the block raised that high-water mark, MiB. 0 when an
  earlier part of the process already peaked higher (the kernel keeps only the maximum), so it
  is a lower bound of the block's own peak.
* ``peak_cuda_mb`` (CUDA only): ``torch.cuda.max_memory_allocated`` over the block (the peak
  reset at its start), MiB: what torch's allocator handed out on the trial's GPU, which is what
  a GPU's memory limit is about.

``tracemalloc`` is not used: torch allocates its tensors outside Python's allocator.

Example:
    >>> import torch
    >>> with PeakMemory(torch.device("cpu")) as peak:
    ...     _ = torch.zeros(1 << 20)
    >>> sorted(peak.result())
    ['peak_rss_increase_mb', 'peak_rss_mb']
"""

from __future__ import annotations

import resource
import sys
from types import TracebackType

import torch

__all__ = ["PeakMemory", "peak_rss_mb"]

_MIB = 1024.0 * 1024.0


def peak_rss_mb() -> float:
    """The process's resident-set high-water mark so far, MiB (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    raw = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return raw / _MIB if sys.platform == "darwin" else raw / 1024.0


class PeakMemory:
    """Context manager measuring the peak memory of a block on ``device`` (see the module docstring)."""

    def __init__(self, device: torch.device) -> None:
        if not isinstance(device, torch.device):
            raise TypeError(f"device: expected a torch.device, got {type(device).__name__}")
        self.device = device
        self._before = 0.0
        self._values: dict[str, float] = {}

    def __enter__(self) -> PeakMemory:
        self._before = peak_rss_mb()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        after = peak_rss_mb()
        self._values = {"peak_rss_mb": after, "peak_rss_increase_mb": max(0.0, after - self._before)}
        if self.device.type == "cuda":
            self._values["peak_cuda_mb"] = torch.cuda.max_memory_allocated(self.device) / _MIB

    def result(self) -> dict[str, float]:
        """The measured values (empty before the block ended)."""
        return dict(self._values)
