"""Files that survive a crash once written: the file synced before its rename, the folder after.

``os.replace`` is atomic (a reader sees the old name or the whole new file) but not durable: after
a power loss or a kernel crash, a renamed file's data may not be on disk yet (the file exists,
empty or short), and the rename or the creation itself may be gone (the folder's entry was never
written). Code that promises nothing is lost -- the spool of a trial's logging, a new MLflow
store, a new journal file, a dense-baseline cache entry -- goes through here:
:func:`replace_durably` syncs the file (``os.fsync``), renames it, then syncs the folder holding
it; :func:`write_durably` writes a file that way (through a temporary file beside it, removed if
anything fails); :func:`create_durably` creates an empty file and syncs its folder;
:func:`make_dirs_durably` creates missing folders and syncs each one's parent.

On platforms whose folders cannot be opened (Windows), folders are not synced: NTFS journals
renames itself.

Example:
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> write_durably(folder / "entry.txt", lambda handle: handle.write(b"hello")).read_text()
    'hello'
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["create_durably", "fsync_dir", "make_dirs_durably", "replace_durably", "write_durably"]


def fsync_dir(folder: str | os.PathLike) -> None:
    """Sync ``folder`` itself, so the entries created, renamed or removed in it reach the disk."""
    if not hasattr(os, "O_DIRECTORY"):  # Windows: a folder cannot be opened (module docstring)
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs_durably(folder: str | os.PathLike) -> Path:
    """``folder`` and its missing parents created; each new one's parent synced. Returns ``folder``."""
    folder = Path(folder)
    missing = []
    probe = folder
    while not probe.is_dir():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    folder.mkdir(parents=True, exist_ok=True)
    for created in reversed(missing):
        fsync_dir(created.parent)
    return folder


def replace_durably(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """``os.replace(src, dst)`` after syncing ``src``'s data, then sync ``dst``'s folder."""
    fd = os.open(src, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(src, dst)
    fsync_dir(Path(dst).parent)


def write_durably(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Make ``path`` by ``write(handle)`` (binary) into a temporary file beside it, synced, renamed.

    The temporary file is ``.<name>.<random>.tmp`` in ``path``'s folder (a dot file, so folder
    scans skip it; a rename does not cross file systems) and is removed if anything fails. After
    the rename the folder is synced. Returns ``path``.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return path


def create_durably(path: str | os.PathLike) -> bool:
    """Create the empty file ``path`` unless it exists, then sync its folder; whether it was created."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return False
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(Path(path).parent)
    return True
