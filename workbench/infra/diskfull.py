"""A full disk is a stop, never a trial result: recognise it, name the path, say how to resume.

A write that fails for lack of space (``ENOSPC``, a quota's ``EDQUOT``, SQLite's "database or disk
is full", possibly wrapped by MLflow or SQLAlchemy in their own exceptions) must stop the study at
once: the trials so far are kept in both stores, the logging that could not be written stays in
the spool and is replayed at the next start, and the CLI prints one line naming the path.

Example:
    >>> err = OSError(28, "No space left on device", "/data/mlruns/x.png")
    >>> str(as_disk_full(err))
    'no space left on device writing /data/mlruns/x.png'
"""

from __future__ import annotations

import errno
import logging

__all__ = ["DISK_FULL_EXIT", "DiskFullError", "as_disk_full", "causes", "quiet_disk_full_reports"]

DISK_FULL_EXIT = 28
"""Exit status of a helper process (the log writer) that stopped on a full disk."""
_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_TEXTS = ("no space left on device", "database or disk is full", "disk quota exceeded")
_REPORTING_LOGGERS = (
    "mlflow.store.db.utils",  # "SQLAlchemy database error. The following exception is caught." + traceback
    "mlflow.store.tracking.sqlalchemy_store",
    "sqlalchemy.pool.impl.QueuePool",
    "sqlalchemy.pool.impl.NullPool",
    "sqlalchemy.pool.impl.SingletonThreadPool",
)


class DiskFullError(OSError):
    """A write failed for lack of space; ``path`` is what was being written (may be empty)."""

    hint = "free space"
    """What to do before resuming (the CLI's line says it)."""

    def __init__(self, path: str) -> None:
        super().__init__(errno.ENOSPC, "no space left on device", path)
        self.path = path

    def __str__(self) -> str:
        return f"no space left on device writing {self.path or 'a store'}"


def causes(err: BaseException | None):
    """``err``, then what caused it (``__cause__``, else ``__context__``), each once."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def as_disk_full(err: BaseException, path: str = "") -> DiskFullError | None:
    """``err`` as a :class:`DiskFullError` when it (or what caused it) is a full disk, else None.

    ``path`` names what was written when the error itself does not (a SQLite store's file).
    """
    for link in causes(err):
        if isinstance(link, DiskFullError):
            return link
        if isinstance(link, OSError) and link.errno in _ERRNOS:
            return DiskFullError(str(link.filename or path))
        if any(text in str(link).lower() for text in _TEXTS):
            return DiskFullError(path)
    return None


class _DropDiskFullReports(logging.Filter):
    """Drops a library's error record about a full disk (and its ~100-line traceback): the
    workbench stops on it and prints one line naming the path."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and as_disk_full(error) is not None:
            return False
        try:
            message = record.getMessage().lower()
        except Exception:  # noqa: BLE001 - a bad format string: logging reports it itself
            return True
        return not any(text in message for text in _TEXTS)


def quiet_disk_full_reports() -> None:
    """Silence MLflow's and SQLAlchemy's own error records about a full disk, in this process. Idempotent."""
    for name in _REPORTING_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropDiskFullReports) for f in logger.filters):
            logger.addFilter(_DropDiskFullReports())
