"""What a trial costs besides its wall time: the peak memory of its pruning and fine-tuning.

:class:`PeakMemory` measures around a block of code (a trial), each block on its own:

* ``peak_rss_mb``: the highest resident memory of the process **during the block**, MiB. On Linux
  the kernel's high-water mark (``VmHWM``) is reset to the current resident memory when the block
  starts (``/proc/self/clear_refs``, value 5) and read when it ends, so an earlier trial of the
  same worker never raises a later one's peak: trials compare by criterion whatever order they ran
  in. The figure still includes what the process holds anyway (Python, torch, the dataset), the
  same for every trial of a study. Where the mark cannot be reset (another OS, or
  ``clear_refs`` not writable) there is no per-block peak and the key is left out (the cost
  figure then has no memory axis), rather than report the process's high-water mark as the trial's.
* ``peak_rss_increase_mb``: how far the block's peak rose above the resident memory at its start,
  MiB (where the mark cannot be reset: how much the block raised the process's high-water mark, a
  lower bound).
* ``peak_cuda_mb`` (CUDA only): ``torch.cuda.max_memory_allocated`` over the block (the peak
  reset at its start), MiB: what torch's allocator handed out on the trial's GPU, which is what
  a GPU's memory limit is about.

``tracemalloc`` is not used: torch allocates its tensors outside Python's allocator.

Example:
    >>> import torch
    >>> with PeakMemory(torch.device("cpu")) as peak:
    ...     _ = torch.zeros(1 << 20)
    >>> "peak_rss_increase_mb" in peak.result()
    True
"""

from __future__ import annotations

import re
import resource
import sys
from types import TracebackType

import torch

__all__ = ["PeakMemory", "peak_rss_mb", "reset_peak_rss"]

_MIB = 1024.0 * 1024.0
_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


def peak_rss_mb() -> float:
    """The process's resident-set high-water mark so far, MiB (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    raw = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return raw / _MIB if sys.platform == "darwin" else raw / 1024.0


def _status_mb(field: str) -> float | None:
    """``field`` (``VmHWM``, ``VmRSS``) of ``/proc/self/status`` in MiB, or None where there is none."""
    try:
        with open(_STATUS, encoding="ascii") as status:
            found = re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.MULTILINE)
    except OSError:
        return None
    return int(found.group(1)) / 1024.0 if found else None


def reset_peak_rss() -> bool:
    """Reset the process's resident-memory high-water mark to its current resident memory (Linux).

    True when the kernel took the reset and the mark can be read back (``VmHWM``); False elsewhere.
    """
    if _status_mb("VmHWM") is None:
        return False
    try:
        with open(_CLEAR_REFS, "w", encoding="ascii") as clear:
            clear.write("5")
    except OSError:
        return False
    return True


class PeakMemory:
    """Context manager measuring the peak memory of a block on ``device`` (see the module docstring)."""

    def __init__(self, device: torch.device) -> None:
        if not isinstance(device, torch.device):
            raise TypeError(f"device: expected a torch.device, got {type(device).__name__}")
        self.device = device
        self._before = 0.0
        self._fresh = False
        self._values: dict[str, float] = {}

    def __enter__(self) -> PeakMemory:
        self._fresh = reset_peak_rss()
        start = _status_mb("VmHWM") if self._fresh else None
        self._before = start if start is not None else peak_rss_mb()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        peak = _status_mb("VmHWM") if self._fresh else None
        if peak is not None:  # this block's own peak
            self._values = {"peak_rss_mb": peak, "peak_rss_increase_mb": max(0.0, peak - self._before)}
        else:  # only the process's high-water mark: how much the block raised it
            self._values = {"peak_rss_increase_mb": max(0.0, peak_rss_mb() - self._before)}
        if self.device.type == "cuda":
            self._values["peak_cuda_mb"] = torch.cuda.max_memory_allocated(self.device) / _MIB

    def result(self) -> dict[str, float]:
        """The measured values (empty before the block ended)."""
        return dict(self._values)
