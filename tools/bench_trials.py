"""``make bench`` sections about whole trials: benchmark costs and MLflow logging overhead."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from workbench.benchmarks import get_benchmark, list_benchmarks, train_dense
from workbench.benchmarks.families import FAMILY_NAMES
from workbench.study.objective import run_tracked_trial
from workbench.tracking import Tracker
from workbench.tracking.spool import SpooledTracker, SpoolWriter, pending_runs
from workbench.trial import build_pruning_config, run_trial
from workbench.trial.types import TrainingConfig

# A typical study trial: 4x1 snip_momentum, iterative, 80% target, 200 fine-tuning steps.
TYPICAL = {"pattern": "4x1", "criterion": "snip_momentum", "scheduler": "iterative", "target_sparsity": 0.8}


def _embedded() -> list[str]:
    """The built-in benchmarks that need no download (not the task families on real models)."""
    return [name for name in list_benchmarks() if name not in FAMILY_NAMES]


def benchmarks_table(*, repeats: int = 1) -> list[dict]:
    """Per built-in benchmark: dense accuracy and training time, and a typical trial's time and accuracy."""
    rows = []
    training = TrainingConfig(threads=1)
    config = build_pruning_config(TYPICAL, training=training)
    for name in _embedded():
        bench = get_benchmark(name)
        start = time.perf_counter()
        dense_accuracy = train_dense(bench, 0)[1][bench.metric]
        dense_seconds = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as cache:
            run_trial(bench, config, training, 0, cache_dir=cache)  # warm the cache: baseline not timed
            times, result = [], None
            for _ in range(max(1, repeats)):
                start = time.perf_counter()
                result = run_trial(bench, config, training, 0, cache_dir=cache)
                times.append(time.perf_counter() - start)
        rows.append(
            {
                "benchmark": name,
                "dense accuracy": dense_accuracy,
                "dense training s": dense_seconds,
                "trial s (200 steps, 1 thread)": min(times),
                "trial accuracy (4x1 @ 0.8)": result.value,
            }
        )
    return rows


def _wait_for_drain(spool: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while pending_runs(spool) and time.monotonic() < deadline:
        time.sleep(0.02)


def measure_logging_overhead(
    benchmark: str, *, repeats: int = 3, training: TrainingConfig | None = None, cache_dir: str | None = None
) -> dict[str, float]:
    """What MLflow logging adds to a study's trial: tracked vs plain trial wall time (medians).

    A study logs through the log writer process (:mod:`workbench.tracking.spool`), so a trial
    pays for creating its run and writing its spool file, and runs while the writer logs the
    trial before it. After one untimed tracked trial (the writer's start-up), each repetition
    times, once the writer has drained: a plain
    :func:`~workbench.trial.run_trial`, then two tracked trials back to back, the second one
    timed (the writer is logging the first meanwhile). ``fraction`` is the time the trial's own
    process spends logging (creating the run, writing the spool file: ``blocking_seconds``) over
    the plain trial; ``end_to_end`` compares the medians directly (it also holds any slowdown
    from the writer working on the other core, and this machine's run-to-run noise of several
    percent). ``writer_seconds`` is the writer's own time per trial (param ``time.logging_s``).
    """

    class _Timed(SpooledTracker):  # the time a trial's own process spends on MLflow and the spool
        blocking: list[float] = []

        def trial_run(self, *args: Any, **kwargs: Any) -> str:
            start = time.perf_counter()
            try:
                return super().trial_run(*args, **kwargs)
            finally:
                self.blocking.append(time.perf_counter() - start)

        def finish(self, *args: Any, **kwargs: Any) -> None:
            start = time.perf_counter()
            super().finish(*args, **kwargs)
            self.blocking[-1] += time.perf_counter() - start

    training = training or TrainingConfig(threads=1)
    with tempfile.TemporaryDirectory() as tmp:
        uri, spool = f"sqlite:///{tmp}/mlflow.db", Path(tmp, "spool")
        tracker = _Timed(uri, spool=spool)
        exp_id = tracker.experiment_id("workbench-logging-overhead", artifact_location=Path(tmp, "art").as_uri())
        parent = tracker.study_run(exp_id, "logging-overhead", params={})
        config = build_pruning_config(TYPICAL, training=training)
        run_trial(benchmark, config, training, 0, cache_dir=cache_dir)  # dense baseline cached, not timed
        plain, tracked = [], []
        with SpoolWriter(spool, uri):
            run_tracked_trial(
                tracker,
                exp_id,
                benchmark=benchmark,
                params=TYPICAL,
                training=training,
                seed=0,
                parent_run_id=parent,
                run_name="warm-up",
            )  # the writer's imports, not timed
            for i in range(max(1, repeats)):
                _wait_for_drain(spool)
                start = time.perf_counter()
                run_trial(benchmark, config, training, 0, cache_dir=cache_dir)
                plain.append(time.perf_counter() - start)
                for j in range(2):
                    start = time.perf_counter()
                    run_tracked_trial(
                        tracker,
                        exp_id,
                        benchmark=benchmark,
                        params=TYPICAL,
                        training=training,
                        seed=0,
                        parent_run_id=parent,
                        run_name=f"overhead-{i}-{j}",
                    )
                    if j:  # the first one only gives the writer something to log meanwhile
                        tracked.append(time.perf_counter() - start)
        runs = Tracker(uri).client.search_runs([exp_id], "tags.`workbench.kind` = 'trial'")
        writer = [float(r.data.params["time.logging_s"]) for r in runs if "time.logging_s" in r.data.params]
    plain_s, tracked_s = statistics.median(plain), statistics.median(tracked)
    blocking = statistics.median(tracker.blocking)
    return {
        "trial_seconds": plain_s,
        "tracked_seconds": tracked_s,
        "end_to_end": tracked_s / plain_s - 1.0,
        "blocking_seconds": blocking,
        "fraction": blocking / plain_s,
        "writer_seconds": statistics.median(writer) if writer else float("nan"),
    }


def tracking_table(*, repeats: int = 5) -> list[dict]:
    """MLflow logging overhead of a typical trial per benchmark, as a fraction of its wall time."""
    training = TrainingConfig(threads=1)
    rows = []
    for name in _embedded():
        with tempfile.TemporaryDirectory() as cache:
            m = measure_logging_overhead(name, repeats=repeats, training=training, cache_dir=cache)
        rows.append(
            {
                "trial": f"{name}, {training.steps} steps",
                "plain trial s": m["trial_seconds"],
                "logging s in the trial": m["blocking_seconds"],
                "logging / trial": m["fraction"],
                "tracked trial s": m["tracked_seconds"],
                "tracked / plain - 1": m["end_to_end"],
                "log writer s (off the path)": m["writer_seconds"],
            }
        )
    return rows
