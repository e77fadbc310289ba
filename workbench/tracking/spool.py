"""Trial logging off the trial's critical path: a spool folder and one writer process per study.

Logging a finished trial to MLflow (about 840 metrics in ``log_batch`` calls, the curves PNG,
four artifact files, closing the run) takes ~0.2 s, mostly Python work (SQLAlchemy,
matplotlib). Done in the trial's process, even on a background thread, it holds the GIL that
the training loop needs, so the study waits for it. Instead:

* A trial's process logs through :class:`SpooledTracker`: creating the run stays synchronous
  (the trial records its run id at once, for recovery), but ``log_result`` / ``log_partial`` /
  ``finish`` are collected per run and, at ``finish``, written as one spool file
  (``<spool>/<time_ns>-<run_id>.jsonl``, written to a temporary name then renamed, so a reader
  never sees half a file). That costs about a millisecond. The files are JSON lines
  (:mod:`.spool_format`): reading one cannot run code. Pickle files of older versions
  (``*.pkl``) are never loaded: a warning names them, and so does one for a malformed file
  (renamed ``*.bad``).
* :class:`~workbench.tracking.spool_writer.SpoolWriter` runs a separate process (spawned once
  per study) that replays every spool file into MLflow with a plain
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

Example:
    >>> spool = spool_dir("sqlite:///mlflow.db", "demo")                   # doctest: +SKIP
    >>> from workbench.tracking.spool_writer import SpoolWriter            # doctest: +SKIP
    >>> with SpoolWriter(spool, "sqlite:///mlflow.db"):                    # doctest: +SKIP
    ...     tracker = SpooledTracker("sqlite:///mlflow.db", spool=spool)   # trials log through it
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from functools import partial
from pathlib import Path
from typing import Any

from workbench.infra.diskfull import as_disk_full
from workbench.infra.processes import pid_running
from workbench.infra.stores import sqlite_path
from workbench.tracking.model_store import log_model_file
from workbench.tracking.spool_format import SUFFIX, SpoolFormatError, dumps_entry, read_entry
from workbench.tracking.tracker import Tracker, check_state, now_ms
from workbench.trial.types import TrialResult

__all__ = ["SPOOL_ENV", "SpooledTracker", "pending_runs", "replay", "spool_dir"]

_log = logging.getLogger(__name__)

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
        eval_accuracy: dict[int, float] | None = None,
    ) -> None:
        """Queue what a stopped or failed trial still has (stamped now, as in :meth:`log_result`)."""
        evals = eval_values if eval_values is not None else (eval_accuracy or {})
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
    spool.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns()}-{run_id}"
    tmp = spool / f".{name}.tmp"
    tmp.write_text(dumps_entry(run_id, calls), encoding="utf-8")
    path = spool / f"{name}{SUFFIX}"
    os.replace(tmp, path)
    return path


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
    for path in sorted(spool.glob("*.pkl")):
        _log.warning(
            "spool file %s not loaded: pickle spool files (from an older workbench) can run code and are "
            "never read; its trial's logging is lost, delete the file",
            path,
        )


def replay(spool: str | os.PathLike, tracker: Tracker, *, reclaim: bool = False) -> int:
    """Log every spool file in ``spool`` through ``tracker``, oldest first; returns how many.

    Each file is claimed by renaming it (so two replayers never log it twice), logged, and
    deleted. With ``reclaim`` (at the start of a study), files claimed by a process that no
    longer runs and files that failed before are taken back first, and leftover pickle files are
    named in a warning (never loaded). A malformed file is renamed ``*.bad`` with a warning.

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
