"""A throw-away PostgreSQL server (and an MLflow tracking server on it) for tests.

The server is the Debian ``postgresql`` package's binaries (``/usr/lib/postgresql/<v>/bin``),
run on a fresh data folder under ``/tmp``, listening on ``127.0.0.1`` and a free port (its unix
socket stays in that folder), with password authentication for TCP clients so the URLs look like
the ones a team uses: ``postgresql://workbench:<password>@127.0.0.1:<port>/<database>``.
PostgreSQL refuses to run as root; as root the folder belongs to the ``postgres`` system user and
every server command runs through ``runuser -u postgres --``. Durability is switched off
(``fsync=off``): the data is thrown away at the end.

:func:`find_pg_bin` looks for the binaries and, when they are missing and the process may use
``apt-get`` (root), installs the package once; it returns ``None`` when neither works, so a test
can skip with a reason.

Example:
    >>> server = start_postgres()                     # doctest: +SKIP
    >>> server.create_database("optuna")              # doctest: +SKIP
    >>> server.url("optuna")                          # doctest: +SKIP
    'postgresql://workbench:...@127.0.0.1:41234/optuna'
    >>> server.stop()                                 # doctest: +SKIP
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from helpers import SAFETY_NET_S

if TYPE_CHECKING:  # psycopg is imported where a connection is made: the module loads without it
    import psycopg

__all__ = ["PostgresServer", "find_pg_bin", "free_port", "start_mlflow_server", "start_postgres", "stop_process"]


PG_USER = "workbench"
_INSTALL_TIMEOUT = 600


def _pg_bin_dirs() -> list[Path]:
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        found.append(Path(on_path).resolve().parent)
    # newest major version first: "16" > "15" numerically, not as strings
    return sorted(set(found), key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else -1, reverse=True)


def _can_install() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get") is not None


def find_pg_bin(*, install: bool = True) -> tuple[Path | None, str]:
    """The folder holding ``initdb``/``pg_ctl`` and a reason when there is none.

    With ``install`` (and root and ``apt-get``), a missing server is installed with
    ``apt-get install -y postgresql`` (after ``apt-get update``), as ``.ci/run`` does.
    """
    dirs = _pg_bin_dirs()
    if dirs:
        return dirs[0], ""
    if not install or not _can_install():
        return None, (
            "PostgreSQL is not installed (no initdb under /usr/lib/postgresql/*/bin) and cannot be "
            "installed here (needs root and apt-get); install the Debian package `postgresql`"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "postgresql"]):
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as err:
            return None, f"installing PostgreSQL failed: {' '.join(cmd)}: {err}"
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
            return None, f"installing PostgreSQL failed: {' '.join(cmd)} exited {done.returncode}: {tail[0]}"
    dirs = _pg_bin_dirs()
    return (dirs[0], "") if dirs else (None, "apt-get installed postgresql but no initdb was found")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PostgresServer:
    """A running throw-away server; :meth:`stop` shuts it down and deletes its folder."""

    bin_dir: Path
    base: Path
    port: int
    password: str
    as_postgres: bool

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def log_path(self) -> Path:
        return self.base / "server.log"

    def url(self, database: str, *, driver: str = "postgresql") -> str:
        """The SQLAlchemy/Optuna/MLflow URL of ``database`` over TCP with the password."""
        return f"{driver}://{PG_USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str, *, autocommit: bool = False) -> psycopg.Connection:
        """A psycopg connection to ``database`` as the workbench user (a context manager)."""
        import psycopg

        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=PG_USER,
            password=self.password,
            dbname=database,
            connect_timeout=10,
            autocommit=autocommit,
        )

    def create_database(self, name: str) -> None:
        """``CREATE DATABASE name`` (owned by the workbench user)."""
        with self.connect("postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server (fast shutdown; SIGKILL of the postmaster if that fails) and delete the folder."""
        if self.data_dir.exists():
            try:
                _run_pg(
                    self,
                    [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30", "stop"],
                    check=False,
                )
            except subprocess.TimeoutExpired:
                pass
            pid_file = self.data_dir / "postmaster.pid"
            if pid_file.exists():
                try:
                    os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
                except (OSError, ValueError, IndexError):
                    pass
        shutil.rmtree(self.base, ignore_errors=True)


def _run_pg(server: PostgresServer, cmd: list[str], *, check: bool = True) -> subprocess.CompletedProcess:
    if server.as_postgres:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    done = subprocess.run(cmd, cwd=server.base, capture_output=True, text=True, timeout=SAFETY_NET_S)
    if check and done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} exited {done.returncode}: {(done.stderr or done.stdout).strip()}\n{server.log_tail()}"
        )
    return done


def start_postgres(bin_dir: Path | None = None, *, attempts: int = 3) -> PostgresServer:
    """initdb a fresh cluster under ``/tmp`` and start it on 127.0.0.1 and a free port.

    Raises ``RuntimeError`` when the binaries are missing or the server does not start.
    """
    if bin_dir is None:
        bin_dir, reason = find_pg_bin()
        if bin_dir is None:
            raise RuntimeError(reason)
    as_postgres = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="workbench-pg-"))
    server = PostgresServer(bin_dir=bin_dir, base=base, port=0, password=secrets.token_hex(8), as_postgres=as_postgres)
    try:
        (base / "pwfile").write_text(server.password + "\n")
        if as_postgres:
            shutil.chown(base, "postgres", "postgres")
            shutil.chown(base / "pwfile", "postgres", "postgres")
        _run_pg(
            server,
            [
                str(bin_dir / "initdb"),
                "-D",
                str(server.data_dir),
                "-U",
                PG_USER,
                "-E",
                "UTF8",
                "--no-sync",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                f"--pwfile={base / 'pwfile'}",
            ],
        )
        for _attempt in range(attempts):  # the free port may be taken between free_port() and the bind
            server.port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {server.port} -c unix_socket_directories={base} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
            )
            done = _run_pg(
                server,
                [
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(server.data_dir),
                    "-l",
                    str(server.log_path),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    options,
                    "start",
                ],
                check=False,
            )
            if done.returncode == 0:
                return server
        raise RuntimeError(
            f"pg_ctl start failed {attempts} times: {(done.stderr or done.stdout).strip()}\n{server.log_tail()}"
        )
    except BaseException:
        server.stop()
        raise


def stop_process(proc: subprocess.Popen, *, timeout: float = 15.0) -> None:
    """SIGTERM the process group of ``proc`` (started with ``start_new_session=True``), then SIGKILL."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:  # children of the group may outlive its leader (server workers)
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def start_mlflow_server(
    backend_uri: str, artifacts_dir: Path, *, log_path: Path, workers: int = 1, timeout: float = SAFETY_NET_S
) -> tuple[subprocess.Popen, str]:
    """``mlflow server`` over ``backend_uri`` with proxied artifacts in ``artifacts_dir``.

    Returns the process (its own process group; stop it with :func:`stop_process`) and the
    tracking URI ``http://127.0.0.1:<port>`` once ``/health`` answers.
    """
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend_uri,
        "--artifacts-destination",
        str(artifacts_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as reply:
                if reply.status == 200:
                    return proc, uri
        except OSError:
            time.sleep(0.5)
    stop_process(proc)
    tail = "\n".join(Path(log_path).read_text(errors="replace").splitlines()[-20:])
    raise RuntimeError(f"mlflow server did not answer on {uri} within {timeout:.0f}s (exit {proc.returncode}):\n{tail}")
