"""A server child process whose lifetime is ours: started in its own process group, announced only
once it answers, and ended with its whole group when we exit, are signalled or are killed.

``workbench ui`` runs ``mlflow server``, which starts workers of its own; killing only the
process we started would leave them holding the port. So the server starts in a new session
(its own process group) and :class:`ServedProcess` ends that group on exit, on Ctrl-C and on
SIGTERM / SIGHUP. A SIGKILL cannot be caught, so the group is led by a small guard (this module
run as ``python -m workbench.infra.serve PARENT_PID -- CMD...``): it starts the server in its
group and, when its parent dies (a parent-death signal on Linux, else it sees its parent pid
change), ends the whole group by itself. A host that does not resolve is a ``ValueError`` naming
``--host`` and a port already in use a :class:`PortInUse` error, before anything starts (the
CLI: exit 2, one line). Standard library only, so ``workbench ui`` starts without torch.

Example:
    >>> port_in_use("127.0.0.1", 1)
    False
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import webbrowser
from collections.abc import Callable, Sequence
from types import FrameType

__all__ = [
    "PortInUse",
    "ServedProcess",
    "check_host",
    "check_port_free",
    "guard",
    "guarded",
    "port_in_use",
    "run_server",
    "wait_until_answers",
]


class PortInUse(ValueError):
    """The port a server should listen on is taken; the message names ``--port`` and the value."""


def port_in_use(host: str, port: int) -> bool:
    """Whether something already accepts connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def check_host(host: str) -> None:
    """``ValueError`` naming ``--host`` unless ``host`` resolves to an IPv4 address to listen on."""
    try:
        socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        reason = err.strerror if isinstance(err, socket.gaierror) else str(err)
        raise ValueError(f"--host: {host!r} is not a host name or IPv4 address here ({reason})") from None


def check_port_free(host: str, port: int) -> None:
    """:class:`PortInUse` naming ``--port`` when ``host:port`` is taken (in use or not bindable).

    ``ValueError`` naming ``--host`` when ``host`` does not resolve (:func:`check_host`).
    """
    check_host(host)
    taken = port_in_use(host, port)
    if not taken:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                taken = True
    if taken:
        raise PortInUse(
            f"--port: {port} is already in use on {host}; stop what serves there "
            f"(another `workbench ui`?) or pick another port, e.g. --port {port + 1}"
        )


def wait_until_answers(url: str, proc: subprocess.Popen, *, timeout: float) -> None:
    """Poll ``url`` until it answers HTTP 200; RuntimeError if ``proc`` exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode} before it answered {url}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not answer {url} within {timeout:.0f} s")
        time.sleep(0.25)


class ServedProcess:
    """``with ServedProcess(cmd) as proc:`` runs ``cmd`` in its own process group, ended on exit.

    Inside the block SIGTERM and SIGHUP raise ``KeyboardInterrupt`` (so ``kill PID`` ends the
    server too); on leaving, the group gets SIGTERM, then SIGKILL after ``grace`` seconds. ``proc``
    is the group's guard (:func:`guard`), which runs ``cmd``, exits with its status, and ends the
    group by itself if this process dies without ending it (SIGKILL).
    """

    def __init__(self, cmd: Sequence[str], *, grace: float = 10.0, env: dict[str, str] | None = None) -> None:
        self.cmd, self.grace, self.env = list(cmd), grace, env
        self.proc: subprocess.Popen | None = None
        self._old: dict[int, object] = {}

    def __enter__(self) -> subprocess.Popen:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            self._old[sig] = signal.signal(sig, self._interrupt)
        # the server's own output goes to stderr: stdout carries only what the caller prints
        self.proc = subprocess.Popen(
            guarded(self.cmd), start_new_session=True, env=self.env, stdout=sys.stderr.fileno()
        )
        return self.proc

    @staticmethod
    def _interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            for sig, handler in self._old.items():
                signal.signal(sig, handler)  # type: ignore[arg-type]

    def stop(self) -> None:
        """End the server's whole process group (SIGTERM, then SIGKILL after the grace period)."""
        proc = self.proc
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, self.grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
            if not _group_alive(proc.pid):
                break
        proc.poll()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_server(
    cmd: Sequence[str],
    *,
    ready_url: str,
    timeout: float,
    landing: Callable[[], str],
    announce: Callable[[str], None],
    open_browser: bool = False,
) -> int:
    """Run ``cmd`` as a :class:`ServedProcess` until it exits or we are interrupted (then 0).

    Once ``ready_url`` answers, ``landing()`` gives the address to show, ``announce`` receives it
    (the CLI prints it) and ``open_browser`` opens it. RuntimeError if the server exits or stays
    silent before answering, or exits by itself after it answered (it was not asked to stop).
    """
    try:
        with ServedProcess(cmd) as proc:
            wait_until_answers(ready_url, proc, timeout=timeout)
            address = landing()
            announce(address)
            if open_browser:
                webbrowser.open(address)
            status = proc.wait()
    except KeyboardInterrupt:
        return 0
    where = urllib.parse.urlsplit(ready_url)
    raise RuntimeError(f"the server exited with status {status} while serving {where.scheme}://{where.netloc}")


GUARD_POLL = 0.5
"""Seconds between the guard's looks at its parent pid (where no parent-death signal exists)."""


def _ask_parent_death_signal(sig: int) -> None:
    """Linux: have the kernel send ``sig`` to this process when its parent dies (else nothing)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes  # start-up: the guard process only

    pr_set_pdeathsig = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, sig, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl here: the pid poll below still sees the parent die
        pass


def guarded(cmd: Sequence[str]) -> list[str]:
    """``cmd`` run under a :func:`guard` whose parent is this process.

    Start the result with ``start_new_session=True``: the guard then leads the server's process
    group, ends it when this process dies, and exits with the server's status.
    """
    return [sys.executable, "-m", "workbench.infra.serve", str(os.getpid()), "--", *cmd]


def guard(parent: int, cmd: Sequence[str], *, grace: float = 10.0) -> int:
    """Run ``cmd`` in this process's group while ``parent`` lives; its exit status (128+N for signal N).

    When ``parent`` dies first, or this process gets SIGTERM / SIGHUP, the whole group gets
    SIGTERM, then SIGKILL after ``grace`` seconds (this process included), so no server
    outlives the command that started it.
    """
    stop = {"now": False}

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop["now"] = True

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _stop)
    _ask_parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the signal was asked for
        return 0
    child = subprocess.Popen(list(cmd))
    while not stop["now"] and os.getppid() == parent:
        try:
            code = child.wait(timeout=GUARD_POLL)
        except subprocess.TimeoutExpired:
            continue
        return 128 - code if code < 0 else code
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    os.killpg(os.getpgid(0), signal.SIGTERM)
    try:
        child.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    os.killpg(os.getpgid(0), signal.SIGKILL)  # the stragglers of the group, and this guard
    return 1  # pragma: no cover - not reached


if __name__ == "__main__":  # pragma: no cover - run by ServedProcess as the group's guard
    _parent, _sep, *_cmd = sys.argv[1:]
    sys.exit(guard(int(_parent), _cmd))
