"""``workbench dashboard``: Optuna's own dashboard (optuna-dashboard) over a study's storage.

optuna-dashboard is an optional extra (``pip install -e '.[dashboard]'``; ``make dashboard``
installs it on demand): interactive Pareto front, slice, parallel-coordinate and importance views
of the Optuna study, next to the MLflow UI. This module finds the storage and the study and builds
the command and the study's address; :mod:`workbench.infra.serve` runs it.

Example:
    >>> dashboard_command("sqlite:///optuna.db", "127.0.0.1", 8080)[-5:]
    ['sqlite:///optuna.db', '--host', '127.0.0.1', '--port', '8080']
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import optuna

from workbench.infra.stores import JOURNAL_DEFAULT, SQLITE_DEFAULT, local_path, store_kind
from workbench.pruner.errors import ConfigError
from workbench.study.factories import make_storage

__all__ = ["dashboard_command", "find_storage", "installed", "latest_study", "study_page"]


def installed() -> bool:
    """Whether optuna-dashboard can be imported."""
    return importlib.util.find_spec("optuna_dashboard") is not None


def find_storage(storage: str | None = None) -> str:
    """``storage``, else ``$WORKBENCH_STORAGE``, else whichever default store exists here (journal first).

    ``ConfigError`` naming ``--storage`` when none is given and neither ``optuna.journal`` nor
    ``optuna.db`` exists (no study has run in this folder).
    """
    spec = storage or os.environ.get("WORKBENCH_STORAGE")
    if spec:
        return spec
    for default in (JOURNAL_DEFAULT, SQLITE_DEFAULT):
        if Path(local_path(default) or "").is_file():
            return default
    raise ConfigError(
        f"--storage: no Optuna storage given and no {JOURNAL_DEFAULT} or optuna.db here; run `make search` first"
    )


def latest_study(spec: str, name: str | None = None) -> tuple[str, int]:
    """``(name, study id)`` of study ``name`` in the storage, else of the most recently started one."""
    storage = make_storage(spec)
    studies = optuna.get_all_study_summaries(storage, include_best_trial=False)
    if name is not None:
        found = [s for s in studies if s.study_name == name]
        if not found:
            allowed = ", ".join(sorted(s.study_name for s in studies)) or "(none)"
            raise ConfigError(f"--study: {name!r} is not in {spec}; allowed: {allowed}")
        return name, found[0]._study_id
    if not studies:
        raise ConfigError(f"--storage: {spec} holds no study; run `make search` first")
    newest = max(studies, key=lambda s: (s.datetime_start is not None, s.datetime_start or 0, s._study_id))
    return newest.study_name, newest._study_id


def dashboard_command(spec: str, host: str, port: int) -> list[str]:
    """The optuna-dashboard command over ``spec`` (a journal file gets its storage-class hint)."""
    hint = ["--storage-class", "JournalFileStorage"] if store_kind(spec) == "path" else []
    script = Path(sys.executable).with_name("optuna-dashboard")  # its console script, beside our python
    start = (
        [str(script)] if script.is_file() else [sys.executable, "-c", "from optuna_dashboard._cli import main; main()"]
    )
    return [*start, *hint, spec, "--host", host, "--port", str(port)]


def study_page(base: str, study_id: int) -> str:
    """The dashboard page of one study (history, Pareto front, slice, parallel coordinates, importances)."""
    return f"{base}/dashboard/studies/{study_id}"
