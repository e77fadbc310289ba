"""Both SQLite stores checked at start: intact, and agreeing on the study's trials.

A truncated or overwritten ``optuna.db`` / ``mlflow.db`` used to end in an 81-line traceback; an
emptied ``optuna.db`` silently restarted the study (trial numbers 0, 1, ... again under the same
parent run) and an emptied ``mlflow.db`` was written to as if healthy. Before anything is
written, :func:`check_store_health` reads both files (read-only, with SQLite's own
``quick_check``) and compares the study's Optuna trials with the MLflow runs of its parent run.
Any problem is a :class:`~workbench.pruner.ConfigError`: one line naming the file and what to do.

Only SQLite files are examined (a journal file or a database server is trusted as it is).

Example:
    >>> check_store_health("sqlite:///optuna.db", "sqlite:///mlflow.db", "demo", "demo")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from workbench.infra.stores import sqlite_path
from workbench.pruner.errors import ConfigError

__all__ = ["check_store_health"]

_AWAY = "restore it from a backup, or move both optuna.db and mlflow.db away to start the study anew"


def _open(path: Path, what: str) -> sqlite3.Connection | None:
    """A read-only connection to an intact SQLite file; None when the file is missing or empty."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (verdict,) = conn.execute("PRAGMA quick_check").fetchone()
        conn.execute("SELECT name FROM sqlite_master").fetchall()
    except sqlite3.DatabaseError as err:
        conn.close()
        raise ConfigError(f"{path}: the {what} store is not a readable SQLite database ({err}); {_AWAY}") from None
    if verdict != "ok":
        conn.close()
        raise ConfigError(f"{path}: the {what} store is damaged (SQLite quick_check: {verdict}); {_AWAY}")
    return conn


def _optuna_trials(conn: sqlite3.Connection | None, study: str) -> tuple[int, int]:
    """(trials, trials with an MLflow run id) of ``study``; (0, 0) without the study or tables."""
    if conn is None:
        return 0, 0
    try:
        row = conn.execute("SELECT study_id FROM studies WHERE study_name = ?", (study,)).fetchone()
        if row is None:
            return 0, 0
        (trials,) = conn.execute("SELECT COUNT(*) FROM trials WHERE study_id = ?", row).fetchone()
        (logged,) = conn.execute(
            "SELECT COUNT(*) FROM trial_user_attributes a JOIN trials t ON a.trial_id = t.trial_id "
            "WHERE t.study_id = ? AND a.key = 'mlflow_run_id'",
            row,
        ).fetchone()
    except sqlite3.OperationalError:  # not an Optuna schema (yet)
        return 0, 0
    return trials, logged


def _mlflow_children(conn: sqlite3.Connection | None, experiment: str, study: str) -> int | None:
    """Child runs of the study's parent run; None when the store has no parent run for it."""
    if conn is None:
        return None
    try:
        parents = [
            r[0]
            for r in conn.execute(
                "SELECT t.run_uuid FROM tags t JOIN runs r ON r.run_uuid = t.run_uuid "
                "JOIN experiments e ON e.experiment_id = r.experiment_id "
                "WHERE t.key = 'workbench.study' AND t.value = ? AND e.name = ?",
                (study, experiment),
            )
        ]
        if not parents:
            return None
        marks = ",".join("?" * len(parents))
        (children,) = conn.execute(
            f"SELECT COUNT(*) FROM tags WHERE key = 'mlflow.parentRunId' AND value IN ({marks})", parents
        ).fetchone()
    except sqlite3.OperationalError:  # not an MLflow schema (yet)
        return None
    return children


def check_store_health(storage: str, tracking_uri: str, study: str, experiment: str) -> None:
    """ConfigError when a SQLite store is damaged or the two disagree on ``study`` (module docstring)."""
    optuna_file, mlflow_file = sqlite_path(storage), sqlite_path(tracking_uri)
    optuna_path = Path(optuna_file) if optuna_file else None
    mlflow_path = Path(mlflow_file) if mlflow_file else None
    with contextlib.ExitStack() as stack:
        optuna_conn = _open(optuna_path, "Optuna") if optuna_path else None
        if optuna_conn is not None:
            stack.callback(optuna_conn.close)
        mlflow_conn = _open(mlflow_path, "MLflow") if mlflow_path else None
        if mlflow_conn is not None:
            stack.callback(mlflow_conn.close)
        if optuna_path is None or mlflow_path is None:
            return
        trials, logged = _optuna_trials(optuna_conn, study)
        children = _mlflow_children(mlflow_conn, experiment, study)
    if children and children > trials:
        raise ConfigError(
            f"{optuna_path}: holds {trials} trials of study {study!r} but {mlflow_path} holds {children} trial runs "
            f"of it: optuna.db was emptied or replaced; {_AWAY}"
        )
    if logged and children is None and mlflow_path.exists():
        raise ConfigError(
            f"{mlflow_path}: holds no runs of study {study!r} but {optuna_path} holds {logged} trials logged there: "
            f"mlflow.db was emptied or replaced; {_AWAY}"
        )
