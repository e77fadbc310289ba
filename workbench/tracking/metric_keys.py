"""Deterministic MLflow metric keys for layer names.

MLflow accepts metric keys matching ``^[/\\w.\\- ]*$`` (colons too, but not on Windows), that do not
change under ``posixpath.normpath`` and that are at most 250 characters long. Layer names from
``model.named_modules()`` normally pass unchanged (dots are kept: ``layer_sparsity/encoder.0.fc1``).
Anything else is mapped, always the same way:

1. every character outside ``[\\w.\\- ]`` (this includes ``/`` and ``:``) becomes ``_``;
2. a name that is empty, ``.`` or ``..``, or that starts or ends with a space, has its dots and
   outer spaces replaced by ``_`` (so the key stays one path segment);
3. when the key would exceed 249 characters, the name is cut and ``-`` plus the first 8 hex
   digits of the SHA-1 of the *original* name is appended;
4. when two different names of the same set map to the same key, *each* of them gets that
   ``-<sha1[:8]>`` suffix (only then, so ordinary keys stay readable).

The result depends only on the set of names, never on their order.

Example:
    >>> layer_metric_keys(["enc.0.fc1", "head:out"], prefix="layer_sparsity")
    {'enc.0.fc1': 'layer_sparsity/enc.0.fc1', 'head:out': 'layer_sparsity/head_out'}
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Iterable

__all__ = ["MAX_BATCH", "MAX_KEY_LENGTH", "layer_metric_keys", "sanitize_name"]

MAX_BATCH = 1000
"""MLflow's limit on metrics per ``log_batch`` call."""
MAX_KEY_LENGTH = 249
"""Keys stay strictly under MLflow's 250-character limit."""

_BAD = re.compile(r"[^\w.\- ]")


def _digest(name: str) -> str:
    return hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]


def sanitize_name(name: str) -> str:
    """Rules 1 and 2: one valid path segment for ``name`` (no length limit, no suffix)."""
    out = _BAD.sub("_", str(name))
    if out in ("", ".", "..") or out != out.strip() or posixpath.normpath(out) != out:
        out = out.replace(".", "_").replace(" ", "_") or "_"
    return out


def _fit(prefix: str, segment: str, original: str, *, suffix: bool) -> str:
    head = f"{prefix}/" if prefix else ""
    tail = f"-{_digest(original)}" if suffix else ""
    if len(head) + len(segment) + len(tail) > MAX_KEY_LENGTH:
        tail = f"-{_digest(original)}"
        segment = segment[: MAX_KEY_LENGTH - len(head) - len(tail)]
    return head + segment + tail


def layer_metric_keys(names: Iterable[str], *, prefix: str) -> dict[str, str]:
    """Map each layer name to its metric key ``<prefix>/<sanitised name>`` (rules above)."""
    unique = sorted(set(names))
    first = {name: _fit(prefix, sanitize_name(name), name, suffix=False) for name in unique}
    counts: dict[str, int] = {}
    for key in first.values():
        counts[key] = counts.get(key, 0) + 1
    keys = {
        name: key if counts[key] == 1 else _fit(prefix, sanitize_name(name), name, suffix=True)
        for name, key in first.items()
    }
    if len(set(keys.values())) != len(keys):  # a suffixed key met an unsuffixed one: suffix all
        keys = {name: _fit(prefix, sanitize_name(name), name, suffix=True) for name in unique}
    return keys
