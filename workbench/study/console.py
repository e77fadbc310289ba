"""Optuna's console output in a command: errors only (the workbench logs each trial itself).

The console handler itself is :mod:`workbench.infra.console` (set up by every command before it
loads Optuna or torch); the commands that load the study layer call :func:`quiet_optuna`.
"""

from __future__ import annotations

import optuna

__all__ = ["quiet_optuna"]


def quiet_optuna() -> None:
    """Only Optuna's errors reach the console; failed trials are logged by :mod:`workbench.study.budget`."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
