"""A line every minute while a trial runs: which trial, how far, ``n/N`` trials done and an ETA.

A trial of a large model can run for many minutes with nothing on the console (the bar of
``workbench search`` moves only when a trial ends, and is not shown when stderr is not a
terminal). :class:`Heartbeat` runs beside the trial loop (:func:`workbench.study.budget.run_trials`)
and, every :data:`HEARTBEAT_S` seconds of a running trial, logs::

    trial 7 running 3m05s (step 120/300); 6/24 trials done; ETA ~41m

and puts the same text after the progress bar when there is one. The step is the last evaluated
step the objective saw (``training.eval_every``); the ETA is an estimate: the finished trials'
mean duration (or, before any finished, this trial's pace over its steps) times the trials left,
shared among the trials running at once (workers), plus what this trial has left.

Example:
    >>> eta_seconds(elapsed=60.0, done=2, total=4, durations=[100.0, 140.0])
    180.0
    >>> format_duration(185.0)
    '3m05s'
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

__all__ = ["HEARTBEAT_S", "Heartbeat", "eta_seconds", "format_duration", "progress_line"]

_log = logging.getLogger("workbench.study.workers")  # beside the trial lines

HEARTBEAT_S = 60.0
"""Seconds between two progress lines of one running trial."""


def format_duration(seconds: float) -> str:
    """``45s``, ``3m05s``, ``2h07m``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def eta_seconds(
    *,
    elapsed: float,
    done: int,
    total: int,
    durations: Sequence[float],
    step: int | None = None,
    steps: int | None = None,
    parallel: int = 1,
) -> float | None:
    """Seconds until ``total`` trials count, from the running trial's ``elapsed`` time (None: no estimate yet).

    A trial's duration is the mean of ``durations`` (finished trials), else the running trial's
    pace (``elapsed`` over ``step`` of ``steps``). The running trial has that duration less
    ``elapsed`` left; the ``total - done - 1`` trials after it share ``parallel`` workers.
    """
    pace = elapsed * steps / step if step and steps and 0 < step <= steps else None
    per_trial = statistics.fmean(durations) if durations else pace
    if per_trial is None:
        return None
    current = pace if pace is not None else per_trial
    left = max(0, total - done - 1)
    return max(0.0, current - elapsed) + left * per_trial / max(1, parallel)


def progress_line(
    *,
    number: int | None,
    elapsed: float,
    done: int,
    total: int,
    eta: float | None,
    step: int | None = None,
    steps: int | None = None,
) -> str:
    """``trial 7 running 3m05s (step 120/300); 6/24 trials done; ETA ~41m`` (parts left out when unknown)."""
    name = f"trial {number}" if number is not None else "a trial"
    where = f" (step {step}/{steps})" if step and steps else ""
    when = f"ETA ~{format_duration(eta)}" if eta is not None else "ETA after the first step or trial"
    return f"{name} running {format_duration(elapsed)}{where}; {done}/{total} trials done; {when}"


class Heartbeat:
    """Logs :func:`progress_line` every ``interval`` seconds while a trial runs (a daemon thread).

    The trial loop calls :meth:`trial_started` with what it read from the study (trials counted,
    durations of the finished ones, trials running elsewhere) and :meth:`trial_ended`; the running
    trial's number and step come from ``state`` (the objective's ``progress`` dict: ``trial``,
    ``step``, ``steps``). ``clock`` is injectable so :meth:`beat` can be tested without waiting.
    """

    def __init__(
        self,
        state: Callable[[], dict[str, Any]],
        *,
        total: int,
        progress: Any = None,
        interval: float = HEARTBEAT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._state, self.total, self.progress, self.interval, self._clock = state, total, progress, interval, clock
        self._started: float | None = None
        self._done, self._durations, self._parallel = 0, [], 1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def trial_started(self, *, done: int, durations: Sequence[float], parallel: int = 1) -> None:
        """A trial is about to run: ``done`` trials count, ``durations`` of finished ones, ``parallel`` at once."""
        self._done, self._durations, self._parallel = done, list(durations), max(1, parallel)
        self._started = self._clock()

    def trial_ended(self) -> None:
        """The trial ended: no line until the next one starts."""
        self._started = None

    def beat(self) -> str | None:
        """Log and return the progress line of the running trial (None when none runs)."""
        started = self._started
        if started is None:
            return None
        state = dict(self._state() or {})
        elapsed = self._clock() - started
        step, steps = state.get("step"), state.get("steps")
        eta = eta_seconds(
            elapsed=elapsed,
            done=self._done,
            total=self.total,
            durations=self._durations,
            step=step,
            steps=steps,
            parallel=self._parallel,
        )
        line = progress_line(
            number=state.get("trial"),
            elapsed=elapsed,
            done=self._done,
            total=self.total,
            eta=eta,
            step=step,
            steps=steps,
        )
        _log.info("%s", line)
        if self.progress is not None:
            self.progress.set_postfix_str(line.split(";")[0], refresh=True)
        return line

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception as err:  # noqa: BLE001 - a progress line must never stop a study
                _log.debug("progress line failed: %s", err)

    def __enter__(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._loop, name="workbench-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
