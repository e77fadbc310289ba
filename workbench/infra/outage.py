"""A store that stops answering is a stop, never a trial result: recognise it and say how to resume.

MLflow retries a request to a tracking server for about four minutes before it gives up. A
trial that starts during a longer outage cannot create its run; that says nothing about its
configuration, so the trial is interrupted (it does not count and runs again on resume) and the
study stops with one line, exactly as on a full disk (:mod:`workbench.infra.diskfull`).

Example:
    >>> err = ConnectionRefusedError(111, "Connection refused")
    >>> str(as_outage(err, "http://127.0.0.1:5000"))
    'the store http://127.0.0.1:5000 stopped answering (Connection refused)'
    >>> stop = as_stop(OSError(28, "No space left on device", "/data/mlflow.db"))
    >>> stop.hint
    'free space'
"""

from __future__ import annotations

import errno

from workbench.infra.diskfull import DiskFullError, as_disk_full, causes
from workbench.infra.redaction import redact_text, redact_url

__all__ = ["OUTAGE_EXIT", "StoreOutage", "as_outage", "as_stop"]

OUTAGE_EXIT = 29
"""Exit status of a worker process that stopped because a store stopped answering."""

_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH}
_TEXTS = ("max retries exceeded", "connection refused", "failed to establish a new connection")


class StoreOutage(ConnectionError):
    """A tracking server or database stopped answering; ``uri`` names it (redacted, may be empty)."""

    hint = "once it answers again"

    def __init__(self, uri: str, cause: str) -> None:
        super().__init__(cause)
        self.uri, self.cause = redact_url(uri) if uri else "", redact_text(cause)

    def __str__(self) -> str:
        return f"the store {self.uri or '(unnamed)'} stopped answering ({self.cause})"


def as_outage(err: BaseException, uri: str = "") -> StoreOutage | None:
    """``err`` as a :class:`StoreOutage` when it (or what caused it) is a refused or lost connection."""
    for link in causes(err):
        if isinstance(link, StoreOutage):
            return link
        text = str(link)
        if isinstance(link, OSError) and link.errno in _ERRNOS:
            return StoreOutage(uri, link.strerror or text)
        if any(needle in text.lower() for needle in _TEXTS):
            first = text.strip().splitlines()[0] if text.strip() else type(link).__name__
            return StoreOutage(uri, first[:300])
    return None


def as_stop(err: BaseException, uri: str = "") -> DiskFullError | StoreOutage | None:
    """A full disk or a store outage behind ``err`` (each has a ``hint``: what to do first), else None.

    A ``ValueError`` (a :class:`~workbench.pruner.ConfigError`: a store URL that never answered
    at the start, say) is the user's to fix, not a stop: None.
    """
    if isinstance(err, ValueError):
        return None
    return as_disk_full(err) or as_outage(err, uri)
