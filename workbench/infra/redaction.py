"""Secrets out of everything printed or logged: store URLs with credentials, and text holding them.

A store URL may carry a password (``postgresql://user:pw@host/db``), a token alone
(``https://tok3n@host``) or a credential in its query (``?token=...``), its fragment
(``#access_token=...``) or a path parameter (``/api;password=...``). :func:`redact_url` hides the
whole userinfo and every credential-like ``key=value`` after the host; :func:`redact_text` does it
to every URL inside a message (an exception text from MLflow, Optuna or SQLAlchemy included);
:func:`install_redaction` makes every log record of the process, and Python's warnings, pass
through it.

The userinfo is split the way the most lenient parser (SQLAlchemy's) may split it, so that no
parser's password escapes: it ends at the LAST ``@`` of the URL whose user part (before the first
``:``) holds no ``/``. A password with an unencoded ``/``, ``@``, ``?`` or ``#``
(``postgresql://u:se#cr/e?t@host/db``) is hidden whole and the host after it is kept. A URL whose
query or fragment holds an ``@`` after a ``user:`` may lose more than its userinfo (the host too):
hiding too much is the safe side. In running text a URL ends at whitespace, so a password holding
whitespace must be percent-encoded there.

Example:
    >>> redact_url("postgresql://workbench:se/cr@t@dbhost/optuna?sslmode=require&password=x")
    'postgresql://***@dbhost/optuna?sslmode=require&password=***'
    >>> redact_url("postgresql+psycopg://wb:se#cret9@host/db")
    'postgresql+psycopg://***@host/db'
    >>> redact_url("https://h/api;password=s?x=1#token=t")
    'https://h/api;password=***?x=1#token=***'
    >>> redact_text("tracking http://alice:S3cret@127.0.0.1:5000, storage optuna.db")
    'tracking http://***@127.0.0.1:5000, storage optuna.db'
"""

from __future__ import annotations

import logging
import re
import warnings
from typing import Any

__all__ = ["MASK", "install_redaction", "redact_text", "redact_url"]

MASK = "***"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)(.*)$", re.DOTALL)
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S+")
_TRAILING_PUNCTUATION = re.compile(r"['\"`<>()\[\]{},.]+$")
_SECRET_KEY = re.compile(r"token|passw|pwd|secret|key|auth|credential|signature|^sig$|session", re.IGNORECASE)
# one ``key=value`` after the host: a path parameter (``;``, up to the next ``/?#;``), or one in the
# query (``?``/``&``/``;``) or fragment (``#``)
_PATH_PARAM = re.compile(r"(?P<lead>;)(?P<key>[^=;?&#/]*)=(?P<value>[^;?#/]*)")
_PARAM = re.compile(r"(?P<lead>[;?&#])(?P<key>[^=;?&#/]*)=(?P<value>[^;&#]*)")


def _userinfo_end(rest: str) -> int:
    """Index of the ``@`` that ends the userinfo of ``rest`` (the URL after ``scheme://``), or -1."""
    at = rest.rfind("@")
    while at >= 0:
        user = rest[:at].partition(":")[0]
        if "/" not in user and (":" in rest[:at] or not any(c in user for c in "?#")):
            return at
        at = rest.rfind("@", 0, at)
    return -1


def _redact_params(tail: str) -> str:
    def mask(match: re.Match[str]) -> str:
        if not _SECRET_KEY.search(match["key"]):
            return match.group(0)
        return f"{match['lead']}{match['key']}={MASK}"

    query = min((i for i in (tail.find("?"), tail.find("#")) if i >= 0), default=len(tail))
    return _PATH_PARAM.sub(mask, tail[:query]) + _PARAM.sub(mask, tail[query:])


def redact_url(url: str) -> str:
    """``url`` with its whole userinfo and every credential-like ``key=value`` after the host hidden.

    The userinfo becomes ``***``; the value of every query, fragment or ``;`` path parameter whose
    key looks like a credential (token, password, secret, key, auth, signature, session) becomes
    ``***``. Host, port, path and the other values stay (see the module docstring for how a
    password with unencoded delimiters is handled). Text without ``scheme://`` is returned as is.
    """
    text = str(url)
    match = _SCHEME.match(text)
    if match is None:
        return text
    scheme, rest = match.groups()
    at = _userinfo_end(rest)
    userinfo = f"{MASK}@" if at >= 0 else ""
    after = rest[at + 1 :]
    host_end = min((i for i in (after.find(c) for c in "/?#;") if i >= 0), default=len(after))
    return f"{scheme}{userinfo}{after[:host_end]}{_redact_params(after[host_end:])}"


def redact_text(text: str) -> str:
    """``text`` with every ``scheme://...`` URL in it passed through :func:`redact_url`.

    A URL runs to the next whitespace, so a quote or bracket closing it is part of it: a masked
    value at its end takes the closing characters with it (a password may end in them too).
    """
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
