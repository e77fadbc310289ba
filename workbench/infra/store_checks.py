"""Store settings checked before anything opens a store or starts a server: one line naming the flag.

``workbench search`` and ``run`` open Optuna's storage (``--storage`` / ``$WORKBENCH_STORAGE``) and
MLflow's store (``--tracking-uri`` / ``$MLFLOW_TRACKING_URI``); ``workbench ui`` and ``dashboard``
serve one of them. Opening a store creates it and a server dies on a bad one with a long
traceback, so each command first asks this module, which raises :class:`StoreError` (a
``ValueError``; the CLI: exit 2, one line) on:

* an unknown scheme, or a database driver that is not installed;
* a SQLite file or a journal file in a folder that does not exist;
* a database server (PostgreSQL, MySQL, ...) or tracking server that does not answer.

Standard library only, plus SQLAlchemy when a database URL is checked (neither torch nor MLflow),
so ``workbench ui`` and ``dashboard`` check their inputs before loading anything heavy.

Example:
    >>> check_storage("/no/such/folder/optuna.journal", source="--storage")
    Traceback (most recent call last):
    ...
    workbench.infra.store_checks.StoreError: --storage: the folder of the journal file '/no/such/folder/optuna.journal' does not exist (/no/such/folder)
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from workbench.infra.redaction import redact_text, redact_url
from workbench.infra.stores import DATABASE_SCHEMES, sqlite_path, store_kind, store_scheme

__all__ = ["CONNECT_TIMEOUT", "TRACKING_SCHEMES", "StoreError", "check_storage", "check_tracking_uri", "source_of"]

CONNECT_TIMEOUT = 5.0
"""Seconds a database or tracking server gets to accept a connection before the check fails."""
TRACKING_SCHEMES = ("file", "http", "https", "databricks", *DATABASE_SCHEMES)
"""The MLflow tracking URI schemes the workbench accepts."""


class StoreError(ValueError):
    """A store setting that cannot be used; the message names the flag or variable it came from."""


def source_of(value: str | None, flag: str, env: str) -> str:
    """How to name a store setting in a message: the flag when given, else ``$VAR`` when set."""
    return flag if value else f"${env}" if os.environ.get(env) else flag


def _first_line(err: BaseException) -> str:
    text = str(getattr(err, "orig", None) or err).strip().splitlines()
    return redact_text(text[0] if text else type(err).__name__)


def _check_folder(path: str, what: str, source: str, shown: str) -> None:
    if path in (":memory:", ""):
        return
    folder = Path(path).expanduser().parent
    if not folder.is_dir():
        raise StoreError(f"{source}: the folder of the {what} {shown!r} does not exist ({folder})")


def _check_database(url: str, source: str, allowed: tuple[str, ...]) -> None:
    # start-up: SQLAlchemy is loaded only when a store is checked
    import sqlalchemy
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    shown = redact_url(url)
    try:
        parsed = sqlalchemy.engine.make_url(url)
        dialect = parsed.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        raise StoreError(
            f"{source}: {shown!r} has an unknown scheme; allowed: {', '.join(allowed)} (a driver may follow, "
            "as postgresql+psycopg://)"
        ) from None
    except ImportError as err:
        raise StoreError(f"{source}: the database driver for {shown!r} is not installed ({err})") from None
    if store_kind(url) == "sqlite":
        _check_folder(parsed.database or "", "SQLite file", source, shown)
        return
    connect_args = {"connect_timeout": int(CONNECT_TIMEOUT)} if dialect.name in ("postgresql", "mysql") else {}
    engine = sqlalchemy.create_engine(url, connect_args=connect_args, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect():
            pass
    except Exception as err:  # noqa: BLE001 - any failure to connect is the user's store
        raise StoreError(f"{source}: cannot connect to {shown}: {_first_line(err)}") from None
    finally:
        engine.dispose()


def check_storage(spec: str, *, source: str = "--storage") -> None:
    """:class:`StoreError` unless the Optuna storage ``spec`` (URL or journal file) can be opened."""
    if store_kind(spec) == "path":
        _check_folder(spec, "journal file", source, spec)
        return
    _check_database(spec, source, DATABASE_SCHEMES)


def _check_server(uri: str, source: str) -> None:
    parts = urlsplit(uri)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.hostname
    except ValueError as err:
        raise StoreError(f"{source}: {redact_url(uri)!r} is not a valid URL ({err})") from None
    if not host:
        raise StoreError(f"{source}: {redact_url(uri)!r} names no host")
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as err:
        raise StoreError(
            f"{source}: the tracking server {redact_url(uri)} does not answer ({err.strerror or err})"
        ) from None


def check_tracking_uri(uri: str, *, source: str = "--tracking-uri") -> None:
    """:class:`StoreError` unless the MLflow tracking store ``uri`` can be opened (module docstring)."""
    path = sqlite_path(uri)
    if path is not None:
        _check_folder(path, "SQLite file", source, uri)
        return
    scheme, kind = store_scheme(uri) or "file", store_kind(uri)
    if scheme not in TRACKING_SCHEMES:
        raise StoreError(f"{source}: {redact_url(uri)!r} has an unknown scheme; allowed: {', '.join(TRACKING_SCHEMES)}")
    if kind == "server":
        _check_server(uri, source)
    elif kind in ("sqlite", "database"):  # sqlite:// without a file path: in memory
        _check_database(uri, source, TRACKING_SCHEMES)
