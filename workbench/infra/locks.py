"""The one advisory file lock, shared by processes of one machine (workers, parallel searches).

Example:
    >>> import tempfile, pathlib
    >>> with file_lock(pathlib.Path(tempfile.mkdtemp()) / "sub" / "demo.lock"):
    ...     pass
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

try:  # POSIX; elsewhere the lock is a no-op (callers stay correct, they may only repeat work)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["file_lock", "store_lock"]


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created, with its folder, when missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def store_lock(files: Iterable[str]) -> contextlib.AbstractContextManager:
    """The lock every process opening these local store files shares (none when there are none).

    Keyed by the files' real paths, in the temporary folder, so the same stores reached through
    different relative paths share one lock.
    """
    real = sorted(os.path.realpath(f) for f in files if f)
    if not real:
        return contextlib.nullcontext()
    name = hashlib.sha1("\0".join(real).encode()).hexdigest()[:16]
    return file_lock(Path(tempfile.gettempdir()) / f"workbench-{os.getuid()}" / f"stores-{name}.lock")
