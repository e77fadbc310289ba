"""Splitting compiled-kernel work over threads (the kernels release the GIL).

A job is a list of tasks, each ``(units, cost per unit, part)``, where ``part(lo, hi)`` does
units ``lo..hi`` of one task. All tasks' units, laid end to end, are cut into one contiguous
share of about equal cost per thread, so a probe over twelve layers costs one thread hand-off,
not twelve. Jobs smaller than :data:`SPLIT` elements run on the calling thread. The pool has
``torch.get_num_threads() - 1`` threads; the caller does the first share itself.

Example:
    >>> done = []
    >>> run_split([(3, 1, lambda lo, hi: done.append((lo, hi)) or hi - lo)])
    [[3]]
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import torch

Task = tuple[int, int, Callable[[int, int], int]]
SPLIT = 1 << 18
"""Below this much work (units x cost, about elements) one thread does it all."""

_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def run_split(tasks: list[Task]) -> list[list[int]]:
    """Run every task's units as ``part(lo, hi)`` calls; returns each task's results in order.

    A task whose units straddle two shares is called once per share; a unit is never split
    (a task of one unit, e.g. a whole layer whose output order matters, runs in one call).
    """
    total = sum(n * c for n, c, _ in tasks)
    threads = max(1, min(torch.get_num_threads(), total // SPLIT))
    results: list[list[int]] = [[] for _ in tasks]
    if threads == 1:
        for i, (n, _, part) in enumerate(tasks):
            results[i].append(part(0, n))
        return results
    shares = _shares(tasks, threads, total)

    def run(pieces: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
        return [(i, tasks[i][2](lo, hi)) for i, lo, hi in pieces]

    pool = _get_pool(threads - 1)
    futures = [pool.submit(run, pieces) for pieces in shares[1:]]
    for i, r in run(shares[0]) + [x for f in futures for x in f.result()]:
        results[i].append(r)
    return results


def _shares(tasks: list[Task], threads: int, total: int) -> list[list[tuple[int, int, int]]]:
    """``(task, lo, hi)`` pieces per thread, each thread's share about ``total / threads``."""
    shares: list[list[tuple[int, int, int]]] = [[] for _ in range(threads)]
    share, done = -(-total // threads), 0
    for i, (n, cost, _) in enumerate(tasks):
        lo = 0
        while lo < n:
            t = min(done // share, threads - 1)
            if t == threads - 1 or cost == 0:
                take = n - lo
            else:
                take = max(1, min(n - lo, -(-((t + 1) * share - done) // cost)))
            shares[t].append((i, lo, lo + take))
            lo, done = lo + take, done + take * cost
    return shares


def _get_pool(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    if _pool is None or _pool_size < workers:
        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prune-kernel")
        _pool_size = workers
    return _pool


def _forget_pool() -> None:
    """A forked child has no pool threads: start a new pool there when one is needed."""
    global _pool, _pool_size
    _pool, _pool_size = None, 0


os.register_at_fork(after_in_child=_forget_pool)
