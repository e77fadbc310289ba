"""``make bench`` sections about whole trials: benchmark costs and MLflow logging overhead."""
from __future__ import annotations

import tempfile
import time

from workbench.benchmarks import get_benchmark, list_benchmarks, train_dense
from workbench.trial import build_pruning_config, run_trial
from workbench.trial_types import TrainingConfig

# A typical study trial: 4x1 snip_momentum, iterative, 80% target, 200 fine-tuning steps.
TYPICAL = {"pattern": "4x1", "criterion": "snip_momentum", "scheduler": "iterative", "target_sparsity": 0.8}


def benchmarks_table(*, repeats: int = 1) -> list[dict]:
    """Per built-in benchmark: dense accuracy and training time, and a typical trial's time and accuracy."""
    rows = []
    training = TrainingConfig(threads=1)
    config = build_pruning_config(TYPICAL, training=training)
    for name in list_benchmarks():
        bench = get_benchmark(name)
        start = time.perf_counter()
        _, dense_accuracy = train_dense(bench, 0)
        dense_seconds = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as cache:
            run_trial(bench, config, training, 0, cache_dir=cache)  # warm the cache: baseline not timed
            times, result = [], None
            for _ in range(max(1, repeats)):
                start = time.perf_counter()
                result = run_trial(bench, config, training, 0, cache_dir=cache)
                times.append(time.perf_counter() - start)
        rows.append({"benchmark": name, "dense accuracy": dense_accuracy, "dense training s": dense_seconds,
                     "trial s (200 steps, 1 thread)": min(times), "trial accuracy (4x1 @ 0.8)": result.accuracy})
    return rows


def tracking_table(*, repeats: int = 3) -> list[dict]:
    """MLflow logging cost of one typical trial per benchmark, as a fraction of its wall time.

    The study logs each trial synchronously after it ends, so this fraction is what logging
    adds to a study's wall time.
    """
    from workbench.tracking import measure_logging_overhead

    training = TrainingConfig(threads=1)
    config = build_pruning_config(TYPICAL, training=training)
    rows = []
    for name in list_benchmarks():
        with tempfile.TemporaryDirectory() as cache:
            run_trial(name, config, training, 0, cache_dir=cache)  # baseline, not timed
            result = run_trial(name, config, training, 0, cache_dir=cache)
        overhead = measure_logging_overhead(result, repeats=repeats)
        rows.append({"trial": f"{name}, {training.steps} steps", "metrics logged": overhead.get("metrics", 0),
                     "trial s": overhead["trial_seconds"], "logging s": overhead["logging_seconds"],
                     "logging / trial": overhead["fraction"]})
    return rows
