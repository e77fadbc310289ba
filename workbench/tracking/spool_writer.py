"""The log writer process of one study: replays the spool into MLflow while the trials run.

The study process starts it once (:class:`SpoolWriter`, spawned) and tells it to stop by closing
its end of a pipe. Nothing in that hand-over can wait on a dead peer: closing a pipe never
blocks, and the writer sees end-of-file both when it is told to stop and when the study process
dies (``kill -9``), then drains the folder and exits. (A ``multiprocessing.Event`` could: its
``set`` blocked forever when SIGTERM to the process group had killed the writer while it waited
on the Event's condition.) The study process then joins the writer with a timeout, stops it if it
is stuck, and replays in-process whatever it left.

The writer ignores SIGINT and SIGTERM: a Ctrl-C in the terminal, ``timeout``, Slurm, systemd and
``docker stop`` signal the whole process group, and the writer must finish the interrupted
trial's logging (the study process tells it when to stop).

Example:
    >>> with SpoolWriter(spool, "sqlite:///mlflow.db"):                    # doctest: +SKIP
    ...     tracker = SpooledTracker("sqlite:///mlflow.db", spool=spool)   # trials log through it
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
from pathlib import Path
from typing import Any

from workbench.infra.diskfull import DISK_FULL_EXIT, DiskFullError, quiet_disk_full_reports
from workbench.infra.interrupts import ignoring_sigint
from workbench.infra.redaction import install_redaction
from workbench.tracking.spool import pending_runs, replay
from workbench.tracking.tracker import Tracker

__all__ = ["SpoolWriter"]

_log = logging.getLogger(__name__)

POLL_SECONDS = 0.1
"""How often the writer looks for new spool files."""


def _writer_main(spool: str, tracking_uri: str, stop: Any, report: Any, parent: int, level: int) -> None:
    """The writer process: replay until the pipe ``stop`` closes (or it is orphaned), then drain.

    On a full disk it sends the path that filled through ``report`` and exits with
    :data:`~workbench.infra.diskfull.DISK_FULL_EXIT`.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    install_redaction()
    quiet_disk_full_reports()  # the full disk is one line, not a library's traceback
    logging.basicConfig(level=level, format="[log writer] %(message)s")
    tracker = Tracker(tracking_uri)
    # start-up: the writer process loads matplotlib now, not while the first trial waits on it
    import workbench.tracking.figures  # noqa: F401

    try:
        while os.getppid() == parent:
            replay(spool, tracker)
            if stop.poll(POLL_SECONDS):  # end-of-file: the study process closed its end or died
                break
        replay(spool, tracker)
    except DiskFullError as err:  # the study process sees the exit status and stops the study
        report.send(err.path)
        sys.exit(DISK_FULL_EXIT)


class SpoolWriter:
    """The writer process of one study (a context manager; see the module docstring).

    On exit it tells the writer to drain the spool, waits for it (``timeout`` seconds), stops a
    writer still running after that, and replays in this process whatever is left. Ctrl-C cannot
    cut the wait short (SIGINT is ignored meanwhile).
    """

    def __init__(self, spool: str | os.PathLike, tracking_uri: str, *, timeout: float = 300.0) -> None:
        self.spool, self.tracking_uri, self.timeout = Path(spool), tracking_uri, timeout
        self._proc: Any = None
        self._stop: Any = None

    def __enter__(self) -> SpoolWriter:
        self.spool.mkdir(parents=True, exist_ok=True)
        ctx = multiprocessing.get_context("spawn")
        reader, self._stop = ctx.Pipe(duplex=False)
        self._report, report = ctx.Pipe(duplex=False)
        level = logging.getLogger("workbench").getEffectiveLevel()
        self._proc = ctx.Process(
            target=_writer_main,
            name="workbench-log-writer",
            daemon=False,
            args=(str(self.spool), self.tracking_uri, reader, report, os.getpid(), level),
        )
        with ignoring_sigint():  # the writer must outlive a Ctrl-C in the terminal
            self._proc.start()
        reader.close()  # the writer holds the only read end: it sees end-of-file when we close ours
        report.close()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def check(self) -> None:
        """Raise :class:`DiskFullError` if the writer stopped on a full disk (called between trials)."""
        if self._proc is not None and self._proc.exitcode == DISK_FULL_EXIT:
            self.close()

    def close(self) -> None:
        """Drain the spool and stop the writer (idempotent; never waits on a dead writer).

        Raises:
            DiskFullError: The writer, or the replay here, stopped on a full disk; what could not
                be logged stays in the spool for the next start.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with ignoring_sigint():
            self._stop.close()
            proc.join(self.timeout)
            if proc.is_alive():
                _log.warning("the log writer did not finish in %.0f s; stopping it", self.timeout)
                proc.kill()
                proc.join(10)
            if proc.exitcode == DISK_FULL_EXIT:
                raise DiskFullError(self._report.recv() if self._report.poll(1.0) else str(self.spool))
            if pending_runs(self.spool):
                replay(self.spool, Tracker(self.tracking_uri), reclaim=True)
