"""``make bench`` section "workers": trials per hour of ``workbench search`` with 1 and 2 workers.

Each measurement runs the real command (``python -m workbench -q search``) in a fresh folder on
``experiments/quick.yaml``-sized trials (``n_trials`` of them, embedded default stores) with a
warm dense-baseline cache, and reports two rates:

* ``wall``: trials / the command's wall time (process start-up, store creation, the tracking
  server and the workers' start, the study summary included);
* ``steady``: the sum over workers of (trials - 1) / (end of its last trial - end of its first),
  the rate a long study approaches (start-up and each worker's warm-up trial left out).

Section "startup" (:func:`startup_table`): the time from ``workbench search``'s start to its
first trial's start (Optuna's ``datetime_start``: the study's own record, no polling) with 1
and 2 workers and a warm baseline cache, against a bare ``python -c "import torch"`` timed in
the same run, and the log writer's seconds per trial (the run's ``time.logging_s``) over the
trial's own seconds.

Nothing is asserted; the numbers go into the README. Example:

    >>> rows = workers_table(repeats=1)   # doctest: +SKIP
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import yaml

from workbench.benchmarks import get_benchmark, load_dense_baseline
from workbench.study.factories import make_storage

__all__ = [
    "CASES",
    "first_trial_after",
    "import_torch_s",
    "measure_search",
    "startup_table",
    "workers_table",
    "writer_ratio",
]

ROOT = Path(__file__).resolve().parent.parent
QUICK = ROOT / "experiments" / "quick.yaml"


def measure_search(
    workers: int, *, n_trials: int, cache_dir: str, storage: str | None = None, experiment: Path = QUICK
) -> dict[str, float]:
    """Run one study of ``n_trials`` with ``workers`` workers; wall and steady trials/hour.

    ``storage`` is the Optuna storage (default: the embedded default for ``workers``).
    """
    data = yaml.safe_load(experiment.read_text())
    data["study"]["n_trials"] = n_trials
    with tempfile.TemporaryDirectory(prefix="workbench-bench-") as tmp:
        Path(tmp, "exp.yaml").write_text(yaml.safe_dump(data))
        env = dict(os.environ, WORKBENCH_CACHE_DIR=cache_dir, PYTHONPATH=str(ROOT))
        for key in ("MLFLOW_TRACKING_URI", "WORKBENCH_STORAGE"):
            env.pop(key, None)
        cmd = [sys.executable, "-m", "workbench", "-q", "search", "exp.yaml", "--workers", str(workers)]
        cmd += ["--storage", storage] if storage else []
        start, started = time.perf_counter(), time.time()
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=1800)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        spec = storage or ("optuna.journal" if workers > 1 else "sqlite:///optuna.db")
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            trials = optuna.load_study(study_name=data["name"], storage=make_storage(spec)).trials
            writer = _writer_over_own(trials, f"sqlite:///{tmp}/mlflow.db")
        finally:
            os.chdir(cwd)
    first = first_trial_after(trials, started)
    steady = 0.0
    for pid in {t.user_attrs["worker"]["pid"] for t in trials}:
        ends = sorted(t.datetime_complete for t in trials if t.user_attrs["worker"]["pid"] == pid)
        if len(ends) > 1:  # from the end of the worker's first trial (warm-up excluded) to its last
            steady += (len(ends) - 1) / (ends[-1] - ends[0]).total_seconds()
    return {
        "wall_s": wall,
        "trials": float(len(trials)),
        "wall_per_hour": 3600 * len(trials) / wall,
        "steady_per_hour": 3600 * steady,
        "first_trial_s": first,
        "writer_over_own": writer,
    }


def first_trial_after(trials: list, started: float) -> float:
    """Seconds from ``started`` (``time.time()``) to the earliest trial start the study recorded
    (Optuna's ``datetime_start``, local wall clock)."""
    return min(t.datetime_start.timestamp() for t in trials if t.datetime_start is not None) - started


def _writer_over_own(trials: list, tracking_uri: str) -> float:
    """:func:`writer_ratio` with the log writer's seconds read from the study's MLflow runs."""
    from workbench.tracking import Tracker  # start-up: MLflow loads only once a study has run

    client = Tracker(tracking_uri).client
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, "tags.`workbench.kind` = 'trial'")
    return writer_ratio(trials, {r.info.run_id: float(r.data.params.get("time.logging_s", "nan")) for r in runs})


def writer_ratio(trials: list, writer_s: dict[str, float]) -> float:
    """Median over the trials of the log writer's seconds for the trial's run (``writer_s``: run
    id -> the run's param ``time.logging_s``) over the trial's own ``seconds``; NaN where none
    can be paired.

    Example:
        >>> from types import SimpleNamespace as T
        >>> writer_ratio([T(user_attrs={"mlflow_run_id": "a", "seconds": 2.0})], {"a": 0.5})
        0.25
    """
    ratios = [
        writer_s[t.user_attrs["mlflow_run_id"]] / t.user_attrs["seconds"]
        for t in trials
        if t.user_attrs.get("mlflow_run_id") in writer_s and t.user_attrs.get("seconds")
    ]
    return statistics.median(ratios) if ratios else float("nan")


def import_torch_s() -> float:
    """Wall seconds of a bare ``python -c "import torch"`` (the floor of any trial's start)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True, timeout=600)
    return time.perf_counter() - start


def startup_table(*, repeats: int = 3) -> list[dict]:
    """Time to first trial of ``workbench search`` with 1 and 2 workers (dense baseline cached):
    from the command's start to its first trial's start as the study recorded it, against a
    bare ``import torch`` timed in the same run (interleaved, medians of ``repeats``), and the
    log writer's seconds per trial over the trial's own seconds. ``quick.yaml`` with as many
    trials as workers."""
    runs: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    torch_s: list[float] = []
    with tempfile.TemporaryDirectory(prefix="workbench-bench-cache-") as cache:
        quick = yaml.safe_load(QUICK.read_text())
        load_dense_baseline(get_benchmark(quick["benchmark"]), int(quick["study"]["seed"]), cache_dir=cache)
        for _ in range(max(1, repeats)):
            for workers in runs:
                torch_s.append(import_torch_s())
                runs[workers].append(measure_search(workers, n_trials=workers, cache_dir=cache))
    floor = statistics.median(torch_s)
    rows = []
    for workers, samples in runs.items():
        first = statistics.median(s["first_trial_s"] for s in samples)
        rows.append(
            {
                "workers": workers,
                "import torch s": floor,
                "first trial s": first,
                "first trial / import torch": statistics.median(
                    s["first_trial_s"] / t for s, t in zip(samples, torch_s[workers - 1 :: 2])
                ),
                "first trial s (range)": f"{min(s['first_trial_s'] for s in samples):.2f}-"
                f"{max(s['first_trial_s'] for s in samples):.2f}",
                "log writer / trial": statistics.median(s["writer_over_own"] for s in samples),
            }
        )
    return rows


CASES = (("1", 1, None), ("1 (journal storage)", 1, "optuna.journal"), ("2", 2, None))
"""(label, workers, Optuna storage): the defaults of one and two workers, and one worker on the
journal file that two workers use, which separates the storage's cost from the parallel speed-up."""


def workers_table(*, repeats: int = 3, n_trials: int = 16) -> list[dict]:
    """One row per case of :data:`CASES`: medians over ``min(repeats, 2)`` runs, speed-ups vs the first."""
    runs: dict[str, list[dict[str, float]]] = {label: [] for label, _, _ in CASES}
    with tempfile.TemporaryDirectory(prefix="workbench-bench-cache-") as cache:
        quick = yaml.safe_load(QUICK.read_text())
        load_dense_baseline(get_benchmark(quick["benchmark"]), int(quick["study"]["seed"]), cache_dir=cache)
        for _ in range(max(1, min(repeats, 2))):  # interleaved, so every case sees the same machine load
            for label, workers, storage in CASES:
                runs[label].append(measure_search(workers, n_trials=n_trials, cache_dir=cache, storage=storage))
    rows: list[dict] = []
    base: dict[str, float] = {}
    for label, samples in runs.items():
        med = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
        base = base or med
        rows.append(
            {
                "workers": label,
                "trials": int(med["trials"]),
                "wall s": med["wall_s"],
                "trials/hour (wall)": med["wall_per_hour"],
                "trials/hour (steady)": med["steady_per_hour"],
                "speed-up (wall)": med["wall_per_hour"] / base["wall_per_hour"],
                "speed-up (steady)": med["steady_per_hour"] / base["steady_per_hour"],
            }
        )
    return rows


if __name__ == "__main__":  # pragma: no cover
    from tools.bench import format_table

    print(format_table(workers_table(repeats=int(sys.argv[1]) if len(sys.argv) > 1 else 1)))
