"""Trial logging off the trial's critical path: a spool folder and one writer process per study.

Logging a finished trial to MLflow (about 840 metrics in ``log_batch`` calls, the curves PNG,
four artifact files, closing the run) takes ~0.2 s, mostly Python work (SQLAlchemy,
matplotlib). Done in the trial's process, even on a background thread, it holds the GIL that
the training loop needs, so the study waits for it. Instead:

* A trial's process logs through :class:`SpooledTracker`: creating the run stays synchronous
  (the trial records its run id at once, for recovery), but ``log_result`` / ``log_partial`` /
  ``finish`` are collected per run and, at ``finish``, written as one spool file
  (``<spool>/<time_ns>-<run_id>.jsonl``, written to a temporary name then renamed, so a reader
  never sees half a file; the file is synced to disk before the rename and the folder after it,
  so a power loss cannot take a trial's logging either, :mod:`workbench.infra.durable`). That costs about a millisecond. The files are JSON lines
  (below): reading one cannot run code; only ``*.jsonl`` files are ever read, and a malformed
  one is renamed ``*.bad`` with a warning naming it.
* :class:`SpoolWriter` runs a separate process (spawned once per study) that replays every spool file into MLflow with a plain
  :class:`~workbench.tracking.Tracker` and deletes it (:func:`replay`). It ignores SIGINT and
  SIGTERM (they reach the whole process group; the writer must finish the interrupted trial's
  logging), drains the folder when the study ends or is interrupted, and drains it and exits by
  itself if the study process dies (``kill -9``).
* Nothing is lost: a spool file is deleted only after it has been logged. Files left behind
  by a dead writer are replayed at the next start of the study (:func:`replay`), before
  recovery looks at the runs. A file whose replay keeps failing is renamed ``*.failed`` (a
  warning names it) and replayed again at the next start.

The spool folder is ``$WORKBENCH_SPOOL_DIR``, else ``.workbench-spool/`` in the working
folder, with one sub-folder per (tracking store, study) (:func:`spool_dir`).

**The spool file format**: JSON lines that can hold a trial's logging calls and nothing
executable. One spool file holds the logging calls of one run: a header line
``{"format": "workbench-spool", "version": 1, "run_id": ...}``, then one line per call,
``{"method": ..., "args": [...], "kwargs": {...}}``. Values are tagged JSON, so reading a file
back gives exactly what was written (int keys stay ints, tuples stay tuples, NaN stays NaN):

* ``null``, booleans, numbers, strings and arrays (lists) are themselves;
* every JSON object is a tag: ``{"dict": [[key, value], ...]}``, ``{"tuple": [...]}`` or
  ``{"trial_result": {field: value, ...}}`` (a :class:`~workbench.trial.TrialResult`).

Reading builds only these types, and a call's method must be one of :data:`METHODS`: a file
dropped in the spool folder cannot run anything. Anything else is a :class:`SpoolFormatError`.

**The log writer process**: the study process starts it once (:class:`SpoolWriter`, spawned)
and tells it to stop by closing its end of a pipe. Nothing in that hand-over can wait on a dead
peer: closing a pipe never blocks, and the writer sees end-of-file both when it is told to stop
and when the study process dies (``kill -9``), then drains the folder and exits. (A
``multiprocessing.Event`` could: its ``set`` blocked forever when SIGTERM to the process group
had killed the writer while it waited on the Event's condition.) The study process then joins
the writer with a timeout, stops it if it is stuck, and replays in-process whatever it left. The
writer ignores SIGINT and SIGTERM: a Ctrl-C in the terminal, ``timeout``, Slurm, systemd and
``docker stop`` signal the whole process group, and the writer must finish the interrupted
trial's logging (the study process tells it when to stop).

Example:
    >>> spool = spool_dir("sqlite:///mlflow.db", "demo")                   # doctest: +SKIP
    >>> with SpoolWriter(spool, "sqlite:///mlflow.db"):                    # doctest: +SKIP
    ...     tracker = SpooledTracker("sqlite:///mlflow.db", spool=spool)   # trials log through it
    >>> decode(json.loads(json.dumps(encode({1: (0.5, float("inf")), "a": [None, True]}))))
    {1: (0.5, inf), 'a': [None, True]}
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

from workbench.infra.diskfull import DISK_FULL_EXIT, DiskFullError, as_disk_full, quiet_disk_full_reports
from workbench.infra.durable import make_dirs_durably, write_durably
from workbench.infra.interrupts import ignoring_sigint
from workbench.infra.plugins import import_plugins
from workbench.infra.processes import pid_running
from workbench.infra.redaction import install_redaction
from workbench.infra.stores import sqlite_path
from workbench.tracking.model_store import log_model_file
from workbench.tracking.tracker import Tracker, check_state, now_ms
from workbench.trial.types import TrialResult

__all__ = [
    "METHODS",
    "SPOOL_ENV",
    "SUFFIX",
    "SpoolFormatError",
    "SpoolWriter",
    "SpooledTracker",
    "decode",
    "dumps_entry",
    "encode",
    "pending_runs",
    "read_entry",
    "replay",
    "spool_dir",
]

_log = logging.getLogger(__name__)


# The spool file format

SUFFIX = ".jsonl"
FORMAT, VERSION = "workbench-spool", 1
METHODS = frozenset({"log_result", "log_partial", "log_model_file", "finish"})
"""The only tracker methods a spool file may call."""
_RESULT_FIELDS = frozenset(f.name for f in dataclasses.fields(TrialResult))
_REQUIRED_FIELDS = frozenset(
    f.name
    for f in dataclasses.fields(TrialResult)
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
)


class SpoolFormatError(ValueError):
    """A spool file that is not a well-formed workbench spool file (it is never replayed)."""


def encode(value: Any) -> Any:
    """``value`` (plain data and TrialResults) as tagged JSON data (module docstring)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, tuple):
        return {"tuple": [encode(v) for v in value]}
    if isinstance(value, dict):
        return {"dict": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, TrialResult):
        return {"trial_result": {f: encode(getattr(value, f)) for f in sorted(_RESULT_FIELDS)}}
    raise TypeError(f"cannot spool a {type(value).__name__}: {value!r}")


def _key(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        raise SpoolFormatError(f"unhashable dict key {value!r}") from None
    return value


def decode(data: Any) -> Any:
    """The value :func:`encode` made ``data`` from; SpoolFormatError for anything else."""
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict) or len(data) != 1:
        raise SpoolFormatError(f"expected a tagged value, got {data!r:.80}")
    ((tag, body),) = data.items()
    if tag == "tuple" and isinstance(body, list):
        return tuple(decode(v) for v in body)
    if tag == "dict" and isinstance(body, list) and all(isinstance(p, list) and len(p) == 2 for p in body):
        return {_key(decode(k)): decode(v) for k, v in body}
    if tag == "trial_result" and isinstance(body, dict):
        if set(body) <= _RESULT_FIELDS and _REQUIRED_FIELDS <= set(body):
            return TrialResult(**{f: decode(v) for f, v in body.items()})
    raise SpoolFormatError(f"unknown or malformed tag {tag!r}")


def dumps_entry(run_id: str, calls: list[tuple[str, tuple, dict]]) -> str:
    """The text of the spool file of ``run_id`` holding ``calls`` (method, args, kwargs)."""
    lines = [json.dumps({"format": FORMAT, "version": VERSION, "run_id": run_id})]
    for method, args, kwargs in calls:
        if method not in METHODS:
            raise ValueError(f"method: {method!r} cannot be spooled; allowed: {', '.join(sorted(METHODS))}")
        lines.append(json.dumps({"method": method, "args": encode(list(args)), "kwargs": encode(dict(kwargs))}))
    return "\n".join(lines) + "\n"


def read_entry(path: str | Path) -> tuple[str, list[tuple[str, tuple, dict]]]:
    """The run id and calls of the spool file ``path``; SpoolFormatError if it is not one."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        header = json.loads(lines[0]) if lines else None
        if not (isinstance(header, dict) and header.get("format") == FORMAT and header.get("version") == VERSION):
            raise SpoolFormatError("no workbench spool header")
        run_id, calls = header.get("run_id"), []
        if not isinstance(run_id, str):
            raise SpoolFormatError("the header has no run id")
        for line in lines[1:]:
            call = json.loads(line)
            if not isinstance(call, dict) or set(call) != {"method", "args", "kwargs"}:
                raise SpoolFormatError(f"not a call: {line:.80}")
            method, args, kwargs = call["method"], decode(call["args"]), decode(call["kwargs"])
            if method not in METHODS or not isinstance(args, list) or not isinstance(kwargs, dict):
                raise SpoolFormatError(f"not an allowed call: {line:.80}")
            if not all(isinstance(k, str) for k in kwargs):
                raise SpoolFormatError(f"keyword names must be strings: {line:.80}")
            calls.append((method, tuple(args), kwargs))
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError, RecursionError) as err:
        raise SpoolFormatError(str(err)) from None
    return run_id, calls


# Spooling a trial's logging, and replaying it

SPOOL_ENV = "WORKBENCH_SPOOL_DIR"
DEFAULT_SPOOL_DIR = ".workbench-spool"
_ATTEMPTS = 3


def spool_dir(tracking_uri: str, study_name: str) -> Path:
    """The spool folder of ``study_name`` on the store ``tracking_uri`` (see the module docstring)."""
    base = Path(os.environ.get(SPOOL_ENV) or DEFAULT_SPOOL_DIR)
    digest = hashlib.sha1(f"{tracking_uri}\0{study_name}".encode()).hexdigest()[:16]
    return (base / digest).resolve()


class SpooledTracker(Tracker):
    """A :class:`~workbench.tracking.Tracker` whose end-of-trial logging goes to the spool.

    ``log_result`` and ``log_partial`` are collected per run; ``finish`` appends the closing
    call and writes them all as one spool file, which :class:`SpoolWriter` logs in order.
    Everything else (experiments, creating runs, reads) goes to MLflow directly.
    """

    def __init__(self, tracking_uri: str | None = None, *, spool: str | os.PathLike) -> None:
        super().__init__(tracking_uri)
        self.spool = Path(spool)
        self._calls: dict[str, list[tuple[str, tuple, dict]]] = {}

    def log_result(self, run_id: str, result: TrialResult, params: dict[str, Any], *, ts: int | None = None) -> float:
        """Queue the trial's params, metrics and artifacts; returns 0.0 (nothing is spent here).

        The metrics are stamped now, so replaying the file again (after a failure half-way)
        logs no metric twice.
        """
        kwargs = {"ts": ts or now_ms()}
        self._calls.setdefault(run_id, []).append(("log_result", (run_id, result, dict(params)), kwargs))
        return 0.0

    def log_partial(
        self,
        run_id: str,
        params: dict[str, Any],
        *,
        pruning_config: dict[str, Any] | None,
        eval_values: dict[int, float] | None = None,
        metric: str = "accuracy",
        ts: int | None = None,
    ) -> None:
        """Queue what a stopped or failed trial still has (stamped now, as in :meth:`log_result`)."""
        evals = eval_values or {}
        kwargs = {"pruning_config": pruning_config, "eval_values": dict(evals), "metric": metric, "ts": ts or now_ms()}
        self._calls.setdefault(run_id, []).append(("log_partial", (run_id, dict(params)), kwargs))

    def model_staging(self, run_id: str) -> Path:
        """``<spool>/models/<run_id>/``: the sparse model waits next to the spool file that logs it."""
        return self.spool / "models" / run_id

    def log_model_file(self, run_id: str, path: str) -> None:
        """Queue logging the trial's sparse model file (the writer logs it, then deletes it)."""
        self._calls.setdefault(run_id, []).append(("log_model_file", (run_id, str(path)), {}))

    def finish(self, run_id: str, state: str, reason: str | None = None) -> None:
        """Queue the run's end and write the run's spool file (``state`` as in ``Tracker.finish``)."""
        check_state(state)
        calls = self._calls.pop(run_id, []) + [("finish", (run_id, state, reason), {})]
        _write_entry(self.spool, run_id, calls)


def _write_entry(spool: Path, run_id: str, calls: list[tuple[str, tuple, dict]]) -> Path:
    """Write the run's spool file durably: synced, renamed, its folder synced (nothing is lost)."""
    make_dirs_durably(spool)
    text = dumps_entry(run_id, calls).encode("utf-8")
    return write_durably(spool / f"{time.time_ns()}-{run_id}{SUFFIX}", lambda handle: handle.write(text))


def pending_runs(spool: str | os.PathLike) -> set[str]:
    """Run ids with logging still in the spool (waiting or being written)."""
    folder = Path(spool)
    if not folder.is_dir():
        return set()
    return {
        p.name.split(".")[0].partition("-")[2]
        for p in folder.iterdir()
        if p.suffix in (SUFFIX, ".working") and not p.name.startswith(".")
    }


def _reclaim_abandoned(spool: Path) -> None:
    """Put files claimed by a writer that died, and files that failed before, back in the queue."""
    for path in spool.glob("*.working"):
        pid = path.suffixes[-2].lstrip(".") if len(path.suffixes) >= 2 else ""
        if not pid.isdigit() or not pid_running(int(pid)):
            os.replace(path, path.with_name(path.name.split(".")[0] + SUFFIX))
    for path in spool.glob("*.failed"):
        os.replace(path, path.with_name(path.name.split(".")[0] + SUFFIX))


def replay(spool: str | os.PathLike, tracker: Tracker, *, reclaim: bool = False) -> int:
    """Log every spool file in ``spool`` through ``tracker``, oldest first; returns how many.

    Each file is claimed by renaming it (so two replayers never log it twice), logged, and
    deleted. With ``reclaim`` (at the start of a study), files claimed by a process that no
    longer runs and files that failed before are taken back first. A malformed file is renamed
    ``*.bad`` with a warning.

    Raises:
        DiskFullError: A store's disk is full; the file being logged is kept (``*.failed``, replayed
            at the next start) and the rest wait in the spool.
    """
    folder = Path(spool)
    if not folder.is_dir():
        return 0
    if reclaim:
        _reclaim_abandoned(folder)
    done = 0
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        claimed = path.with_name(f"{path.stem}.{os.getpid()}.working")
        try:
            os.rename(path, claimed)
        except FileNotFoundError:  # another replayer took it
            continue
        try:
            _, calls = read_entry(claimed)
        except (SpoolFormatError, OSError) as err:
            bad = claimed.with_name(f"{path.stem}.bad")
            os.replace(claimed, bad)
            _log.warning("spool file %s is not a workbench spool file (%s); not replayed, kept as %s", path, err, bad)
            continue
        try:
            for method, args, kwargs in calls:
                call = getattr(tracker, method, None) or partial(log_model_file, tracker.client)  # log_model_file
                _call_with_retries(call, args, kwargs)
        except Exception as err:  # noqa: BLE001 - keep the file, go on with the others
            failed = claimed.with_name(f"{path.stem}.failed")
            os.replace(claimed, failed)
            full = as_disk_full(err, sqlite_path(tracker.tracking_uri) or "")
            if full is not None:  # the next file would fail too: stop; this one is replayed at the next start
                raise full from err
            _log.warning("could not log spooled trial %s (%s); kept as %s", path.stem, err, failed)
            continue
        claimed.unlink()
        done += 1
    return done


def _call_with_retries(method: Any, args: tuple, kwargs: dict) -> None:
    for attempt in range(_ATTEMPTS):
        try:
            method(*args, **kwargs)
            return
        except Exception as err:  # noqa: BLE001 - a locked or restarting store: try again
            if attempt == _ATTEMPTS - 1 or as_disk_full(err) is not None:
                raise
            _log.debug("retrying %s after %s", getattr(method, "__name__", method), err)
            time.sleep(0.5 * (attempt + 1))


# The log writer process of one study

POLL_SECONDS = 0.1
"""How often the writer looks for new spool files."""


def _writer_main(
    spool: str, tracking_uri: str, stop: Any, report: Any, parent: int, level: int, plugins: tuple[str, ...] = ()
) -> None:
    """The writer process: replay until the pipe ``stop`` closes (or it is orphaned), then drain.

    ``plugins`` (the experiment's ``plugins:``) are imported first: what is logged depends on
    their registrations (a plug-in pattern's spec decides its metric names).

    On a full disk it sends the path that filled through ``report`` and exits with
    :data:`~workbench.infra.diskfull.DISK_FULL_EXIT`.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    install_redaction()
    quiet_disk_full_reports()  # the full disk is one line, not a library's traceback
    logging.basicConfig(level=level, format="[log writer] %(message)s")
    import_plugins(plugins)  # a spawned process: the user's registrations run again here
    tracker = Tracker(tracking_uri)
    # start-up: the writer process loads matplotlib now, not while the first trial waits on it
    import workbench.tracking.figures  # noqa: F401

    try:
        while os.getppid() == parent:
            replay(spool, tracker)
            if stop.poll(POLL_SECONDS):  # end-of-file: the study process closed its end or died
                break
        replay(spool, tracker)
    except DiskFullError as err:  # the study process sees the exit status and stops the study
        report.send(err.path)
        sys.exit(DISK_FULL_EXIT)


class SpoolWriter:
    """The writer process of one study (a context manager; see the module docstring).

    On exit it tells the writer to drain the spool, waits for it (``timeout`` seconds), stops a
    writer still running after that, and replays in this process whatever is left. Ctrl-C cannot
    cut the wait short (SIGINT is ignored meanwhile).
    """

    def __init__(
        self, spool: str | os.PathLike, tracking_uri: str, *, timeout: float = 300.0, plugins: Iterable[str] = ()
    ) -> None:
        self.spool, self.tracking_uri, self.timeout = Path(spool), tracking_uri, timeout
        self.plugins = tuple(plugins)
        self._proc: Any = None
        self._stop: Any = None

    def __enter__(self) -> SpoolWriter:
        self.spool.mkdir(parents=True, exist_ok=True)
        ctx = multiprocessing.get_context("spawn")
        reader, self._stop = ctx.Pipe(duplex=False)
        self._report, report = ctx.Pipe(duplex=False)
        level = logging.getLogger("workbench").getEffectiveLevel()
        self._proc = ctx.Process(
            target=_writer_main,
            name="workbench-log-writer",
            daemon=False,
            args=(str(self.spool), self.tracking_uri, reader, report, os.getpid(), level, self.plugins),
        )
        with ignoring_sigint():  # the writer must outlive a Ctrl-C in the terminal
            self._proc.start()
        reader.close()  # the writer holds the only read end: it sees end-of-file when we close ours
        report.close()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def check(self) -> None:
        """Raise :class:`DiskFullError` if the writer stopped on a full disk (called between trials)."""
        if self._proc is not None and self._proc.exitcode == DISK_FULL_EXIT:
            self.close()

    def close(self) -> None:
        """Drain the spool and stop the writer (idempotent; never waits on a dead writer).

        Raises:
            DiskFullError: The writer, or the replay here, stopped on a full disk; what could not
                be logged stays in the spool for the next start.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with ignoring_sigint():
            self._stop.close()
            proc.join(self.timeout)
            if proc.is_alive():
                _log.warning("the log writer did not finish in %.0f s; stopping it", self.timeout)
                proc.kill()
                proc.join(10)
            if proc.exitcode == DISK_FULL_EXIT:
                raise DiskFullError(self._report.recv() if self._report.poll(1.0) else str(self.spool))
            if pending_runs(self.spool):
                replay(self.spool, Tracker(self.tracking_uri), reclaim=True)
