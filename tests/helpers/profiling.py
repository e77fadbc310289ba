"""CPU allocations seen by torch.profiler, for the pruner's device tests."""

from __future__ import annotations

from collections.abc import Callable


def cpu_allocations(run: Callable[[], object]) -> list[int]:
    """Bytes of each CPU allocation that outlives the op making it, while ``run()`` runs.

    Each op's self memory usage (allocated minus freed by the op itself) from ``torch.profiler``
    with ``profile_memory``; positive entries are outputs and state the op left on the CPU.
    """
    from torch.profiler import ProfilerActivity, profile  # test-only: the profiler loads here

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    return [e.self_cpu_memory_usage for e in prof.events() if e.self_cpu_memory_usage > 0]
