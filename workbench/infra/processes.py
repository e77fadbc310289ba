"""Which process runs a trial: its identity as recorded on the trial, and whether it still lives.

Example:
    >>> me = worker_identity()
    >>> pid_running(me["pid"]), owner_is_dead(me)
    (True, False)
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

__all__ = ["owner_is_dead", "pid_running", "worker_identity"]


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> str:
    """The process start time (clock ticks since boot, from /proc), or "" where unavailable."""
    stat = _read(f"/proc/{pid}/stat")
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else ""


def worker_identity(pid: int | None = None) -> dict[str, Any]:
    """This process (or ``pid``) as recorded on its trials: host, boot id, pid, start time."""
    pid = os.getpid() if pid is None else pid
    return {
        "host": socket.gethostname(),
        "boot": _read("/proc/sys/kernel/random/boot_id"),
        "pid": pid,
        "start": _start_ticks(pid),
    }


def pid_running(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def owner_is_dead(owner: Any) -> bool:
    """Whether the recorded ``owner`` of a trial is a process of this host that no longer runs.

    Owners on other hosts are never judged here (their heartbeat is, on RDB storages).
    """
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname():
        return False
    me = worker_identity()
    if owner.get("boot") and me["boot"] and owner["boot"] != me["boot"]:
        return True  # the machine rebooted since
    pid = int(owner.get("pid", -1))
    if pid <= 0 or not pid_running(pid):
        return True
    return bool(owner.get("start")) and _start_ticks(pid) not in ("", owner["start"])  # pid reused
