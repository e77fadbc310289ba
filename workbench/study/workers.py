"""Worker processes on one study: start, progress, interruption.

Every process that runs trials (the ``workbench search`` process itself with one worker, or
each of N worker processes) runs :func:`~workbench.study.budget.run_trials`, which stops the N
processes at exactly the requested total.

:func:`run_workers` starts the N workers (forked from the worker server that has their libraries
loaded, :mod:`workbench.infra.forkserver`; each with ``max(1, cores // N)`` torch threads unless
the experiment asks for fewer), draws a progress bar and, on Ctrl-C, passes the interrupt to
the workers, waits for them to close their trials and runs, and re-raises. With several visible
GPUs and ``training.device`` ``auto`` or ``cuda``, worker ``i`` sees only GPU ``i mod n``
(``CUDA_VISIBLE_DEVICES``, set in the worker before CUDA starts; see
:func:`~workbench.trial.devices.worker_gpu`).

Example:
    >>> run_workers(experiment, spec="optuna.journal", total=12, workers=2,   # doctest: +SKIP
    ...             tracking_uri="http://127.0.0.1:5001", experiment_id="1", parent_run_id=parent)
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from typing import Any

import optuna
import torch

from workbench.experiment import Experiment
from workbench.infra import interrupts
from workbench.infra.diskfull import DISK_FULL_EXIT, DiskFullError
from workbench.infra.forkserver import inherit, worker_context, worker_inheritance
from workbench.infra.interrupts import ignoring_sigint, interrupt_guard
from workbench.infra.outage import OUTAGE_EXIT, StoreOutage, as_stop
from workbench.infra.plugins import import_plugins
from workbench.infra.redaction import install_redaction
from workbench.infra.stores import redact_url
from workbench.study.budget import progress_bar, run_trials
from workbench.study.factories import make_pruner, make_sampler, make_storage
from workbench.study.objective import Objective, TrialRunner
from workbench.study.recovery import counted_trials, recover_study, stale_trial_callback
from workbench.tracking import Tracker
from workbench.tracking.provenance import prefetch_run_tags
from workbench.tracking.server import wait_for_server
from workbench.trial.devices import visible_gpus, worker_gpu

__all__ = ["WorkerError", "run_workers", "thread_budget", "warm_up_torch"]

_log = logging.getLogger(__name__)


class WorkerError(RuntimeError):
    """A worker process died (its RUNNING trial is recovered on the next start of the study)."""


def thread_budget(requested: int, workers: int) -> int:
    """torch threads per worker: ``max(1, cores // workers)``, or fewer when the experiment asks."""
    budget = max(1, (os.cpu_count() or 1) // workers)
    return min(requested, budget) if requested > 0 else budget


def _worker(job: dict[str, Any]) -> None:
    """One worker process: run trials until the study holds the total.

    It starts with SIGINT ignored (inherited from the worker server, started with SIGINT
    ignored), so a Ctrl-C during start-up cannot leave a traceback; SIGINT and SIGTERM
    interrupt it once it is set up.
    """
    study = tracker = None
    # forked from the worker server: take the search process's environment and stdio, not the server's
    inherit(job["inherit"])
    if job.get("gpu") is not None:  # before anything starts CUDA in this process
        os.environ["CUDA_VISIBLE_DEVICES"] = job["gpu"]
    prefetch_run_tags()  # the runs' git tags, asked in the background while torch warms up
    warm_up_torch()  # while SIGINT is still ignored
    guard = interrupt_guard()
    try:
        guard.__enter__()
        install_redaction()  # a new process: nothing it logs may show a credential
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"[worker {job['index']}] %(message)s"))
        root = logging.getLogger("workbench")
        root.handlers[:], root.propagate = [handler], False
        root.setLevel(job["log_level"])
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        torch.set_num_threads(job["threads"])
        exp: Experiment = job["experiment"]
        import_plugins(exp.plugins)  # a new process: the user's registrations run again here
        if job["wait_for_server"]:  # the local tracking server starts alongside the workers
            wait_for_server(job["tracking_uri"])
        tracker = Tracker(job["tracking_uri"])
        storage = make_storage(job["storage"], failed_trial_callback=stale_trial_callback(tracker))
        study = optuna.load_study(
            study_name=exp.study_name, storage=storage, pruner=make_pruner(exp), sampler=make_sampler(exp)
        )
        objective = Objective(
            exp,
            tracking_uri=job["tracking_uri"],
            experiment_id=job["experiment_id"],
            parent_run_id=job["parent_run_id"],
            threads=job["threads"],
            spool=job["spool"],
            runner=job["runner"],
        )
        run_trials(
            study,
            objective,
            spec=job["storage"],
            total=job["total"],
            tracker=tracker,
            parent_run_id=job["parent_run_id"],
        )
    except KeyboardInterrupt:
        interrupts.handled()
        if study is not None:  # a trial interrupted between its creation and its objective
            with contextlib.suppress(Exception):
                recover_study(study, tracker, job["parent_run_id"], own=True)
        sys.exit(130)  # the trial and its run are closed; no traceback
    except Exception as err:  # a full disk or a store outage stops this worker with one line
        stop = as_stop(err, job["tracking_uri"])
        if stop is None:
            raise  # our bug: the worker's traceback is the report
        logging.getLogger("workbench").error("stopped: %s", stop)
        sys.exit(DISK_FULL_EXIT if isinstance(stop, DiskFullError) else OUTAGE_EXIT)


def run_workers(
    experiment: Experiment,
    *,
    spec: str,
    total: int,
    workers: int,
    tracking_uri: str,
    experiment_id: str,
    parent_run_id: str,
    wait_for_server: bool = False,
    show_progress_bar: bool = False,
    spool: str | None = None,
    runner: TrialRunner = TrialRunner(),
) -> None:
    """Spawn ``workers`` processes on the study and wait for them (see the module docstring).

    With ``wait_for_server`` each worker waits until the tracking server at ``tracking_uri``
    answers before its first trial (a local server started alongside the workers). With
    ``spool``, trials leave their end-of-trial logging there for the study's log writer.

    Raises:
        KeyboardInterrupt: Ctrl-C (or SIGTERM); the workers were interrupted and have exited.
        DiskFullError, StoreOutage: A worker stopped on a full disk or a store outage (it logged
            one line naming the path or store; its trial is interrupted and runs again on resume).
        WorkerError: A worker died (the next start of the study recovers its trial).
    """
    threads = thread_budget(experiment.training.threads, workers)
    ctx = worker_context()
    base = {
        "inherit": worker_inheritance(),
        "experiment": experiment,
        "storage": spec,
        "total": total,
        "threads": threads,
        "tracking_uri": tracking_uri,
        "experiment_id": experiment_id,
        "parent_run_id": parent_run_id,
        "log_level": logging.getLogger("workbench").getEffectiveLevel(),
        "wait_for_server": wait_for_server,
        "spool": spool,
        "runner": runner,
    }
    gpus = visible_gpus()
    jobs = [dict(base, index=i, gpu=worker_gpu(i, experiment.training.device, gpus)) for i in range(workers)]
    procs = [ctx.Process(target=_worker, args=(job,), name=f"workbench-worker-{job['index']}") for job in jobs]
    _log.info("%d workers, %d torch threads each, tracking %s", workers, threads, redact_url(tracking_uri))
    if any(job["gpu"] is not None for job in jobs):
        _log.info("GPUs (CUDA_VISIBLE_DEVICES) of the workers: %s", ", ".join(str(job["gpu"]) for job in jobs))
    study = optuna.load_study(study_name=experiment.study_name, storage=make_storage(spec))
    try:
        with ignoring_sigint():  # the workers inherit "ignore SIGINT" until they are set up
            for proc in procs:
                proc.start()
        done = counted_trials(study) if show_progress_bar else 0  # a full trial listing: only for the bar
        with progress_bar(show_progress_bar, total, done, experiment.study_name) as bar:
            while any(p.is_alive() for p in procs):
                for proc in procs:
                    proc.join(timeout=1.0 / len(procs))
                if bar is not None:
                    bar.update(counted_trials(study) - bar.n)
    except BaseException:
        interrupts.handled()
        with ignoring_sigint():
            _stop_workers(procs)
        raise
    died = [p.exitcode for p in procs if p.exitcode]
    if died and all(code == 130 for code in died):
        raise KeyboardInterrupt("workers interrupted")
    if died and all(code in (130, DISK_FULL_EXIT, OUTAGE_EXIT) for code in died):  # each worker named its stop
        if DISK_FULL_EXIT in died:
            raise DiskFullError("")
        raise StoreOutage(tracking_uri, "a worker could not reach it")
    if died:
        raise WorkerError(f"{len(died)} of {workers} workers exited with an error (exit codes {died})")


def _stop_workers(procs: list[Any], *, grace: float = 15.0, timeout: float = 120.0) -> None:
    """Let interrupted workers close their trials, then SIGTERM those still alive, and wait.

    A Ctrl-C reaches the workers too (one process group): they mark their trials and close their
    runs by themselves, and a SIGTERM during that would cut it short, so they get ``grace``
    seconds first. SIGTERM then stops the rest (a worker still starting up ignores SIGINT).
    """
    deadline = time.monotonic() + grace
    for proc in procs:
        proc.join(timeout=max(0.0, deadline - time.monotonic()))
    for proc in procs:
        if proc.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        proc.join(timeout=max(0.1, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join()


def warm_up_torch() -> None:
    """Run one tiny training step so torch's lazy imports happen now, not inside a trial.

    torch imports ``sympy`` and ``torch._dynamo`` on first use (the first optimizer step). An
    interrupt that lands inside such an import leaves the module half-initialised, and every
    later trial of the process then fails with an import error, which would count as the trial's
    own failure. Call this before interrupts are armed.
    """
    # torch.use_deterministic_algorithms (benchmarks.base.torch_settings) imports inductor's config
    import torch._inductor.config  # noqa: F401

    layer = torch.nn.Linear(2, 2)
    for optimizer in (
        torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9),
        torch.optim.AdamW(layer.parameters(), lr=0.1),
    ):
        layer(torch.zeros(1, 2)).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
