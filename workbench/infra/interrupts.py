"""Ctrl-C and SIGTERM that cannot get lost.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be when the signal is
handled; if that is inside a garbage-collector callback or a ``__del__`` (SQLAlchemy and torch
run such code all the time), Python prints "Exception ignored in ..." and the interrupt is gone:
the study would carry on. Inside :func:`interrupt_guard` the signal handler raises
``KeyboardInterrupt`` and, until some code that closes trials calls :func:`handled`, raises it
again every second (the "Exception ignored" report of the lost one is dropped, and so is a log
record with its traceback from library code that caught it, as SQLAlchemy's connection pool
logs "Exception during reset" when the interrupt lands in a connection's finalizer). Once
handled, further signals are ignored so that closing the runs cannot be cut short; the guard
restores the previous handlers on exit.

Some code must never be cut in the middle: a store's write (an interrupted SQLite transaction
keeps the database locked for every other connection, and Optuna's ``tell`` interrupted half-way
fails with "Should not reach"). Inside :func:`deferred` an interrupt is remembered and raised when
the block ends (or at :func:`raise_deferred`); :func:`deliverable` opens a region inside it where
interrupts are raised at once again (a trial's training). The trial loop runs deferred and the
trial deliverable, with every Optuna storage call deferred, so an interrupt lands either in the
training or between two store writes, never inside one.

Example:
    >>> with interrupt_guard():            # doctest: +SKIP
    ...     run_study(experiment)
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

__all__ = [
    "deferred",
    "deliverable",
    "handled",
    "ignoring_sigint",
    "interrupt_guard",
    "interrupt_reason",
    "raise_deferred",
]

_log = logging.getLogger(__name__)

REDELIVER_AFTER = 1.0
"""Seconds after which an interrupt that nobody handled is raised again."""

_state: dict[str, Any] = {
    "active": False,
    "pending": False,
    "handled": False,
    "defer": 0,
    "deferred": False,
    "generation": 0,
    "signal": None,
}


def _redeliver(main_ident: int, generation: int) -> None:
    while True:
        time.sleep(REDELIVER_AFTER)
        if not _state["active"] or _state["handled"] or _state["generation"] != generation:
            return  # handled, or the guard it belongs to has ended (a later guard is not its business)
        _log.debug("interrupt not handled yet; raising it again")
        signal.pthread_kill(main_ident, signal.SIGINT)


def _handler(signum: int, frame: Any) -> None:
    if _state["handled"]:
        return  # the runs are being closed; a second Ctrl-C must not cut that short
    if not _state["pending"]:
        _state["signal"] = signum
        _state["pending"] = True
        threading.Thread(
            target=_redeliver,
            args=(threading.main_thread().ident, _state["generation"]),
            daemon=True,
            name="workbench-interrupt",
        ).start()
    if _state["defer"] > 0:
        _state["deferred"] = True  # raised when the deferred block ends
        return
    raise KeyboardInterrupt(f"signal {signum}")


def handled() -> None:
    """Say that a ``KeyboardInterrupt`` reached code that closes the trials (stops re-raising)."""
    if _state["active"]:
        _state["handled"] = True


class _DropInterruptReports(logging.Filter):
    """Drops log records that carry a ``KeyboardInterrupt`` traceback: the CLI reports the
    interrupt once, in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt))


def _report_handlers() -> list[logging.Handler]:
    """The handlers a third-party library's error record reaches: the root's, or Python's
    last-resort stderr handler when the root has none."""
    handlers = list(logging.getLogger().handlers)
    return handlers + [logging.lastResort] if logging.lastResort is not None else handlers


@contextlib.contextmanager
def interrupt_guard() -> Iterator[None]:
    """SIGINT and SIGTERM raise ``KeyboardInterrupt`` until :func:`handled` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous_hook = sys.unraisablehook

    def unraisable(info: Any) -> None:  # the lost KeyboardInterrupt is raised again: no "Exception ignored"
        if not isinstance(info.exc_value, KeyboardInterrupt):
            previous_hook(info)

    sys.unraisablehook = unraisable
    quiet, handlers = _DropInterruptReports(), _report_handlers()
    for handler in handlers:
        handler.addFilter(quiet)
    _state.update(
        active=True, pending=False, handled=False, deferred=False, generation=_state["generation"] + 1, signal=None
    )
    try:
        yield
    finally:
        _state.update(active=False)
        for handler in handlers:
            handler.removeFilter(quiet)
        sys.unraisablehook = previous_hook
        for sig, old in previous.items():
            signal.signal(sig, old)


def interrupt_reason(err: BaseException | None = None) -> str:
    """Why the process is being interrupted, for a run's reason: ``"interrupted by SIGTERM"``.

    The first signal the current :func:`interrupt_guard` received names it; without one (a
    ``KeyboardInterrupt`` raised by Python's own handler, a ``SystemExit``) the exception's type does.

    Example:
        >>> interrupt_reason(KeyboardInterrupt())
        'interrupted (KeyboardInterrupt)'
    """
    signum = _state["signal"]
    if signum is not None:
        return f"interrupted by {signal.Signals(signum).name}"
    return f"interrupted ({type(err).__name__ if err is not None else 'KeyboardInterrupt'})"


def raise_deferred() -> None:
    """Raise ``KeyboardInterrupt`` now if an interrupt was deferred and nobody handled it yet."""
    if _state["deferred"] and not _state["handled"]:
        _state["deferred"] = False
        raise KeyboardInterrupt("signal (deferred)")


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """An interrupt inside the block is raised when it ends (module docstring); nests.

    Other threads than the main one (which never receive the signal) are not affected.
    """
    if not _main_thread():
        yield
        return
    _state["defer"] += 1
    try:
        yield
    finally:
        _state["defer"] -= 1
    if _state["defer"] == 0:
        raise_deferred()


@contextlib.contextmanager
def deliverable() -> Iterator[None]:
    """Interrupts are raised at once inside the block, even within :func:`deferred`; one that was
    deferred before is raised on entry."""
    if not _main_thread():
        yield
        return
    saved, _state["defer"] = _state["defer"], 0
    try:
        raise_deferred()
        yield
    finally:
        _state["defer"] = saved


@contextlib.contextmanager
def ignoring_sigint() -> Iterator[None]:
    """Ignore SIGINT inside the block, restoring the previous handler after it.

    Processes started inside the block inherit "ignore SIGINT" (so a Ctrl-C during a worker's
    start-up cannot leave a traceback), and closing runs after an interrupt cannot be cut short.
    Outside the main thread (where handlers cannot be set) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
