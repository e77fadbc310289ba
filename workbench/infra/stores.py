"""Store URLs: the one place that knows how a SQLite URL or a journal file names a local file.

The workbench keeps its MLflow runs and Optuna studies in stores named by a URL
(``sqlite:///mlflow.db``, ``postgresql://user:pw@host/db``, ``http://host:5000``) or, for Optuna's
journal storage, a plain file path. Every layer that needs the file behind a store, the default
stores, or a URL safe to print asks this module (redaction itself is
:mod:`workbench.infra.redaction`, re-exported here).

Example:
    >>> sqlite_path("sqlite:///mlflow.db"), local_path("optuna.journal"), local_path("http://h:5000")
    ('mlflow.db', 'optuna.journal', None)
    >>> redact_url("postgresql://workbench:secret@dbhost/optuna")
    'postgresql://***@dbhost/optuna'
"""

from __future__ import annotations

from pathlib import Path

from workbench.infra.redaction import redact_url

__all__ = [
    "DEFAULT_TRACKING_URI",
    "JOURNAL_DEFAULT",
    "SQLITE_DEFAULT",
    "SQLITE_PREFIX",
    "absolute_sqlite",
    "local_path",
    "redact_url",
    "sqlite_path",
    "sqlite_url",
]

SQLITE_PREFIX = "sqlite:///"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
"""MLflow's store when neither ``--tracking-uri`` nor ``$MLFLOW_TRACKING_URI`` names one."""
SQLITE_DEFAULT, JOURNAL_DEFAULT = "sqlite:///optuna.db", "optuna.journal"
"""Optuna's embedded stores: SQLite for one process, the journal file for several."""


def sqlite_path(url: str) -> str | None:
    """The file path of a ``sqlite:///`` URL as written (relative or absolute); None for other URLs."""
    return url[len(SQLITE_PREFIX) :] if url.startswith(SQLITE_PREFIX) else None


def local_path(spec: str) -> str | None:
    """The file behind a store spec: a SQLite URL's path or a journal file (no ``://``); else None."""
    path = sqlite_path(spec)
    if path is not None:
        return path
    return None if "://" in spec else spec


def sqlite_url(path: str | Path) -> str:
    """The SQLite URL of ``path`` (``sqlite:///`` + the path as given)."""
    return f"{SQLITE_PREFIX}{path}"


def absolute_sqlite(url: str, base: str | Path | None = None) -> str:
    """``url`` with a relative SQLite path resolved against ``base`` (default: the working folder).

    Other URLs come back unchanged. Needed wherever a store is opened from another folder (the
    notebooks' kernel, a server process).
    """
    path = sqlite_path(url)
    if path is None:
        return url
    full = Path(path) if Path(path).is_absolute() else Path(base or Path.cwd()) / path
    return sqlite_url(full.resolve())
