"""Optuna's console output in a command: errors only (the workbench logs each trial itself).

The console handler itself is :mod:`workbench.infra.console` (set up by every command before it
loads Optuna or torch); the commands that load the study layer call :func:`quiet_optuna`.
:func:`once_per_study` keeps a layer warning that every trial repeats (the CNN's first
convolution is "not divisible by M=4" under every 2:4 trial) to its first time.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import optuna

__all__ = ["LAYER_WARNINGS", "once_per_study", "quiet_optuna"]

LAYER_WARNINGS = "workbench.pruner.patterns.base"
"""The logger of the pattern's per-layer warnings (``layer X is not pruned: <reason>``)."""


class _Once(logging.Filter):
    """Passes a record the first time its message (with its arguments) is seen."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text in self.seen:
            return False
        self.seen.add(text)
        return True


@contextlib.contextmanager
def once_per_study(logger: str = LAYER_WARNINGS) -> Iterator[None]:
    """While the study's trial loop runs in this process, each warning of ``logger`` prints once."""
    log, once = logging.getLogger(logger), _Once()
    log.addFilter(once)
    try:
        yield
    finally:
        log.removeFilter(once)


def quiet_optuna() -> None:
    """Only Optuna's errors reach the console; failed trials are logged by :mod:`workbench.study.budget`."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
