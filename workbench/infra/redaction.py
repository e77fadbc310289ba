"""Secrets out of everything printed or logged: store URLs with credentials, and text holding them.

A store URL may carry a password (``postgresql://user:pw@host/db``), a token alone
(``https://tok3n@host``) or a credential in its query (``?token=...``). :func:`redact_url` hides
the whole userinfo and every credential-like query value of one URL; :func:`redact_text` does it
to every URL inside a message (an exception text from MLflow, Optuna or SQLAlchemy included);
:func:`install_redaction` makes every log record of the process, and Python's warnings, pass
through it.

The userinfo ends at the LAST ``@`` before the query: a password with an unencoded ``/`` or ``@``
(``postgresql://u:se/cret@host/db``) is hidden whole, and the host after it is kept. A ``?`` or
``#`` inside a password is a delimiter to every URL parser and must be percent-encoded.

Example:
    >>> redact_url("postgresql://workbench:se/cr@t@dbhost/optuna?sslmode=require&password=x")
    'postgresql://***@dbhost/optuna?sslmode=require&password=***'
    >>> redact_text("tracking http://alice:S3cret@127.0.0.1:5000, storage optuna.db")
    'tracking http://***@127.0.0.1:5000, storage optuna.db'
"""

from __future__ import annotations

import logging
import re
import warnings
from typing import Any
from urllib.parse import urlsplit

__all__ = ["MASK", "install_redaction", "redact_text", "redact_url"]

MASK = "***"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)(.*)$", re.DOTALL)
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
_SECRET_KEY = re.compile(r"token|passw|pwd|secret|key|auth|credential|signature|^sig$|session", re.IGNORECASE)


def _redact_query(query: str) -> str:
    parts = []
    for part in query.split("&"):
        key, eq, _value = part.partition("=")
        parts.append(f"{key}={MASK}" if eq and _SECRET_KEY.search(key) else part)
    return "&".join(parts)


def redact_url(url: str) -> str:
    """``url`` with its whole userinfo and every credential-like query value replaced by ``***``.

    Host, port, path and the other query values stay (see the module docstring for how an
    unencoded ``/`` or ``@`` in a password is handled). Text without ``scheme://`` is returned as is.
    """
    text = str(url)
    match = _SCHEME.match(text)
    if match is None:
        return text
    scheme, rest = match.groups()
    split = urlsplit(f"{scheme}{rest}")
    delimiter = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    head, tail = rest[:delimiter], rest[delimiter:]
    if split.netloc and "@" in head:  # an authority with userinfo (not sqlite:////a@b.db: no netloc)
        head = f"{MASK}@{head.rpartition('@')[2]}"
    if split.query and tail.startswith("?"):
        query, hash_, fragment = tail[1:].partition("#")
        tail = f"?{_redact_query(query)}{hash_}{fragment}"
    return f"{scheme}{head}{tail}"


def redact_text(text: str) -> str:
    """``text`` with every ``scheme://...`` URL in it passed through :func:`redact_url`."""
    text = str(text)
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def _redacting_factory(previous: Any) -> Any:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: logging reports it itself later
            return record
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact_text(text)
        return record

    factory._workbench_redacting = True  # type: ignore[attr-defined]
    return factory


def install_redaction() -> None:
    """Redact every log record created in this process (any logger) and every warning printed.

    Idempotent. Records are redacted when created, so no handler (ours, Optuna's, MLflow's, the
    root's) ever sees a secret; an exception attached to a record is formatted and redacted too.
    """
    previous = logging.getLogRecordFactory()
    if not getattr(previous, "_workbench_redacting", False):
        logging.setLogRecordFactory(_redacting_factory(previous))
    formatwarning = warnings.formatwarning
    if not getattr(formatwarning, "_workbench_redacting", False):

        def redacted_formatwarning(*args: Any, **kwargs: Any) -> str:
            return redact_text(formatwarning(*args, **kwargs))

        redacted_formatwarning._workbench_redacting = True  # type: ignore[attr-defined]
        warnings.formatwarning = redacted_formatwarning
