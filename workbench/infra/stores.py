"""Store URLs: the one place that knows what kind of store a spec names and which file is behind it.

The workbench keeps its MLflow runs and Optuna studies in stores named by a URL
(``sqlite:///mlflow.db``, ``postgresql://user:pw@host/db``, ``http://host:5000``) or, for Optuna's
journal storage, a plain file path. Every layer that needs the kind of a store (:func:`store_kind`:
a plain path, SQLite, another database, a server), its scheme, the file behind it, the default
stores, or a URL safe to print asks this module (redaction itself is
:mod:`workbench.infra.redaction`, re-exported here). No other module tests ``"://" in spec`` or a
scheme prefix: ``tests/test_one_owner.py`` checks both.

Example:
    >>> sqlite_path("sqlite:///mlflow.db"), local_path("optuna.journal"), local_path("http://h:5000")
    ('mlflow.db', 'optuna.journal', None)
    >>> [store_kind(s) for s in ("optuna.journal", "sqlite:///o.db", "postgresql+psycopg://h/db", "HTTP://h:5000")]
    ['path', 'sqlite', 'database', 'server']
    >>> redact_url("postgresql://workbench:secret@dbhost/optuna")
    'postgresql://***@dbhost/optuna'
"""

from __future__ import annotations

from pathlib import Path

from workbench.infra.redaction import redact_url

__all__ = [
    "DATABASE_SCHEMES",
    "DEFAULT_TRACKING_URI",
    "JOURNAL_DEFAULT",
    "SQLITE_DEFAULT",
    "SQLITE_PREFIX",
    "absolute_sqlite",
    "STORE_KINDS",
    "is_local_store",
    "local_path",
    "redact_url",
    "sqlite_path",
    "sqlite_url",
    "store_kind",
    "store_scheme",
]

SQLITE_PREFIX = "sqlite:///"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
"""MLflow's store when neither ``--tracking-uri`` nor ``$MLFLOW_TRACKING_URI`` names one."""
SQLITE_DEFAULT, JOURNAL_DEFAULT = "sqlite:///optuna.db", "optuna.journal"
"""Optuna's embedded stores: SQLite for one process, the journal file for several."""
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mariadb", "mssql", "oracle")
"""The schemes of database URLs (SQLAlchemy's dialects; a driver may follow, as ``postgresql+psycopg``)."""
STORE_KINDS = ("path", "sqlite", "database", "server", "other")
"""What :func:`store_kind` answers: a plain path (Optuna's journal file, MLflow's file store), a SQLite
URL, another database URL, a tracking server (``http``/``https``), anything else (``file://``,
``databricks``, an unknown scheme: the store checks name it)."""


def store_scheme(spec: str) -> str:
    """The scheme of a store spec, lower-case and without its driver (``postgresql+psycopg://`` ->
    ``postgresql``); ``""`` for a plain path (no ``://``)."""
    scheme, sep, _ = spec.partition("://")
    return scheme.partition("+")[0].lower() if sep else ""


def store_kind(spec: str) -> str:
    """Which of :data:`STORE_KINDS` the store ``spec`` is (see there)."""
    scheme = store_scheme(spec)
    if not scheme:
        return "path"
    if scheme == "sqlite":
        return "sqlite"
    if scheme in DATABASE_SCHEMES:
        return "database"
    return "server" if scheme in ("http", "https") else "other"


def is_local_store(spec: str) -> bool:
    """Whether ``spec`` is files on this machine: a plain path, a ``file://`` URL or SQLite (one writer at a time)."""
    return store_kind(spec) in ("path", "sqlite") or store_scheme(spec) == "file"


def sqlite_path(url: str) -> str | None:
    """The file path of a ``sqlite:///`` URL as written (relative or absolute); None for other URLs."""
    return url[len(SQLITE_PREFIX) :] if url.startswith(SQLITE_PREFIX) else None


def local_path(spec: str) -> str | None:
    """The file behind a store spec: a SQLite URL's path or a journal file (no ``://``); else None."""
    path = sqlite_path(spec)
    if path is not None:
        return path
    return spec if store_kind(spec) == "path" else None


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
