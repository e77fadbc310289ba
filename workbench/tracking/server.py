"""A local MLflow tracking server: the single writer of a SQLite store shared by parallel workers.

SQLite locks ("database is locked") when several processes write at once, so with
``--workers N`` the workbench starts a tracking server on 127.0.0.1 over the SQLite store and
points the workers at it (``http://127.0.0.1:<port>``); only the server touches the database.
It is MLflow's own tracking app (``mlflow.server.app``, what ``mlflow server`` serves) run by a
single-threaded WSGI server in a child process: requests are handled one at a time, so there is
exactly one writer. It starts in about 2 s where ``mlflow server`` (uvicorn, job runners) needs
10-20 s on a small machine; ``WORKBENCH_TRACKING_SERVER=mlflow`` uses ``mlflow server`` instead.
Artifacts are not proxied: runs keep the file artifact location of their experiment, which the
workers write directly (same machine). The server runs in its own session, so a Ctrl-C in the
terminal reaches the workers but not the server; the workers can still close their runs. Its
guard (:func:`workbench.infra.serve.guarded`) ends it when the study process is killed outright.

Example:
    >>> with LocalTrackingServer("sqlite:///mlflow.db") as uri:   # doctest: +SKIP
    ...     MlflowClient(uri).search_experiments()
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

from workbench.infra.redaction import install_redaction
from workbench.infra.serve import guarded
from workbench.infra.stores import is_local_store, sqlite_path

__all__ = ["LocalTrackingServer", "needs_local_server", "wait_for_server"]

_log = logging.getLogger(__name__)


def needs_local_server(tracking_uri: str) -> bool:
    """Whether concurrent workers need a single writer in front of ``tracking_uri`` (SQLite, files)."""
    return is_local_store(tracking_uri)


def _artifact_root(backend_uri: str) -> str:
    db_file = sqlite_path(backend_uri)
    if db_file is not None:
        return (Path(db_file).resolve().parent / "mlruns").as_uri()
    return (Path.cwd() / "mlruns").as_uri()


def wait_for_server(uri: str, *, timeout: float = 180.0, proc: subprocess.Popen | None = None) -> None:
    """Wait until the tracking server at ``uri`` answers ``/health`` (RuntimeError otherwise)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"the MLflow tracking server for {uri} exited (status {proc.returncode}); see the lines above"
            )
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the MLflow tracking server on {uri} did not answer in {timeout:.0f}s")
        time.sleep(0.1)


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class LocalTrackingServer:
    """Start a tracking server over ``backend_uri`` on entry, stop it on exit; yields its URI.

    As a context manager it does not wait for the server to answer: the workers, which take
    seconds to start themselves, call :func:`wait_for_server` before their first request.
    """

    def __init__(self, backend_uri: str, *, host: str = "127.0.0.1", timeout: float = 180.0) -> None:
        self.backend_uri, self.host, self.timeout = backend_uri, host, timeout
        self.proc: subprocess.Popen | None = None
        self.uri = ""

    def start(self, *, wait: bool = True) -> str:
        """Start the server (and wait until it answers ``/health`` unless ``wait`` is false); its URI."""
        port = _free_port(self.host)
        root = _artifact_root(self.backend_uri)
        if os.environ.get("WORKBENCH_TRACKING_SERVER") == "mlflow":
            cmd = [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                self.backend_uri,
                "--default-artifact-root",
                root,
                "--host",
                self.host,
                "--port",
                str(port),
                "--workers",
                "1",
            ]
        else:
            cmd = [sys.executable, "-m", "workbench.tracking.server", self.backend_uri, root, self.host, str(port)]
        # its own group, led by a guard that ends it if this process is killed outright (no orphan server)
        self.proc = subprocess.Popen(
            guarded(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True
        )
        self.uri = f"http://{self.host}:{port}"
        if wait:
            try:
                wait_for_server(self.uri, timeout=self.timeout, proc=self.proc)
            except RuntimeError:
                self.stop()
                raise
        _log.debug("tracking server %s over %s (pid %d)", self.uri, self.backend_uri, self.proc.pid)
        return self.uri

    def stop(self) -> None:
        """Stop the server (its whole process group); idempotent."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass

    def __enter__(self) -> str:
        return self.start(wait=False)  # the workers wait for it while they start up

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(backend_uri: str, artifact_root: str, host: str, port: int) -> None:
    """The server process: MLflow's tracking app behind a single-threaded WSGI server."""
    warnings.simplefilter("ignore")  # import-time deprecation noise of the server's dependencies
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # start-up, and after the two lines above: only the server process loads MLflow's Flask app
    from mlflow.server import app
    from mlflow.server.handlers import initialize_backend_stores
    from werkzeug.serving import make_server

    install_redaction()
    logging.basicConfig(level=logging.WARNING, format="[tracking server] %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    initialize_backend_stores(backend_uri, default_artifact_root=artifact_root)
    server = make_server(host, port, app, threaded=False)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":  # pragma: no cover - run as a child process by LocalTrackingServer
    serve(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
