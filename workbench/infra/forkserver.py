"""The process that study workers are forked from: started once, with the workers' libraries loaded.

A spawned worker imported torch, MLflow, Optuna and the trial code itself, about five seconds of
CPU each, while the search process, the local tracking server and the other workers did the
same on the same cores. Workers are now forked from one server process (multiprocessing's
``forkserver`` start method) that imported :data:`WORKER_MODULES` once; each worker starts with
them loaded. ``workbench search --workers N`` starts the server right after reading its
experiment (:func:`start_worker_server`), so those imports run beside the command's own.

Forking the server is safe: it only imports modules (no torch op has run in it, so no OpenMP
pool; nothing initialises CUDA, which torch documents forkserver as safe for; no thread). A
worker gets, at its own start, the search process's working folder and ``sys.path``
(multiprocessing's preparation data), its environment and its stdout and stderr
(:func:`worker_inheritance`, applied by the worker first thing with :func:`inherit`), not the
server's from when it started: a worker's lines go where the search process's go now. The server ignores SIGINT and so do
the workers forked from it until they are set up, as spawned workers did; it exits with the
process that started it.

Example:
    >>> ctx = worker_context()      # doctest: +SKIP
    >>> ctx.Process(target=work, args=(job,)).start()  # doctest: +SKIP
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from multiprocessing import forkserver, reduction
from multiprocessing.context import BaseContext
from typing import Any

from workbench.infra.interrupts import ignoring_sigint

__all__ = ["WORKER_MODULES", "inherit", "start_worker_server", "worker_context", "worker_inheritance"]

WORKER_MODULES = ("workbench.study.workers", "torch._dynamo")
"""What the server imports before forking: the worker's code (torch, MLflow, Optuna, the trial)
and ``torch._dynamo``, which the first optimizer step would import (``warm_up_torch``)."""


def worker_context() -> BaseContext:
    """The multiprocessing context study workers start from (forkserver, preloading :data:`WORKER_MODULES`)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(WORKER_MODULES))
    return ctx


def start_worker_server() -> None:
    """Start the server now (a no-op when it runs), ignoring SIGINT; its imports run in the background."""
    worker_context()
    with ignoring_sigint():  # the server, and the workers forked from it, inherit "ignore SIGINT"
        forkserver.ensure_running()


class _Fd:
    """One of this process's file descriptors, pickled for a process being started: the process
    receives a duplicate (multiprocessing passes it over the server's socket) as an int."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self):
        return (_received, (reduction.DupFd(self.fd),))


def _received(dup: Any) -> int:
    return dup.detach()


def worker_inheritance() -> dict[str, Any]:
    """What a worker takes over from this process at its start (put it in the worker's arguments;
    the worker calls :func:`inherit` with it): the environment, stdout and stderr."""
    return {"environ": dict(os.environ), "stdout": _Fd(1), "stderr": _Fd(2)}


def inherit(inheritance: dict[str, Any]) -> None:
    """In a worker, first thing: take over the environment, stdout and stderr of the process that
    started it (:func:`worker_inheritance`, received as the environment and two descriptors)."""
    os.environ.clear()
    os.environ.update(inheritance["environ"])
    for target, stream in ((1, sys.stdout), (2, sys.stderr)):
        fd = inheritance["stdout" if target == 1 else "stderr"]
        if stream is not None:
            stream.flush()
        os.dup2(fd, target)
        os.close(fd)
