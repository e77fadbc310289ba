"""``make bench`` section ``overhead``: what the workbench adds around a trial's own training.

For each built-in benchmark (mlp-digits, tiny-transformer) one process interleaves, ``repeats``
times: a hand-written loop (the dense weights copied from memory, ``prepare_pruning``, the
optimizer, ``training.steps`` steps with the pruner's hooks, and the evaluations the training
config asks for: every ``eval_every`` steps and at the end), then
:func:`~workbench.trial.run_trial` with the same config, seed and cache (the dense baseline
cached before timing), in alternating order (ABBA). Both see the same machine state, so their
ratio is what the trial runner's own work costs (loading the cached baseline, the curves and
sparsity snapshots, the bookkeeping). ``trial/hand`` is the ratio of the medians. Nothing is asserted.
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time

import torch

from workbench.benchmarks import (
    OnDevice,
    cycle_batches,
    get_benchmark,
    load_dense_baseline,
    make_optimizer,
    resolve_cache_dir,
    seeded,
    torch_settings,
)
from workbench.pruner import prepare_pruning
from workbench.trial import build_pruning_config, run_trial
from workbench.trial.loop import stream_seed
from workbench.trial.types import TrainingConfig

BENCHMARKS = ("mlp-digits", "tiny-transformer")
TYPICAL = {"pattern": "4x1", "criterion": "snip_momentum", "scheduler": "iterative", "target_sparsity": 0.8}


def hand_loop(task, dense: torch.nn.Module, config: dict, training: TrainingConfig, seed: int) -> float:
    """The same training written by hand: hooks, optimizer, the evaluations asked for; returns the metric."""
    with torch_settings(threads=training.threads, deterministic=True), seeded(stream_seed(seed, "torch")):
        model = copy.deepcopy(dense)
        generator = torch.Generator().manual_seed(stream_seed(seed, "batches"))
        batches = task.training_batches(batch_size=training.batch_size, generator=generator)
        pruning = prepare_pruning(model, config)
        optimizer = make_optimizer(
            model.parameters(),
            name=training.optimizer,
            lr=training.lr,
            momentum=training.momentum,
            weight_decay=training.weight_decay,
        )
        model.train()
        pruning.on_train_begin()
        value, last_epoch = float("nan"), -1
        for step, (epoch, local, batch) in enumerate(cycle_batches(batches, training.steps)):
            if epoch != last_epoch:
                if last_epoch >= 0:
                    pruning.on_epoch_end()
                pruning.on_epoch_begin(epoch)
                last_epoch = epoch
            pruning.on_step_begin(local)
            loss = task.loss(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            pruning.on_before_optimizer_step()
            optimizer.step()
            pruning.on_after_optimizer_step()
            pruning.on_step_end()
            if (step + 1) % training.eval_every == 0 or step == training.steps - 1:
                pruning.on_before_eval()
                value = task.evaluate(model, OnDevice(task.eval_batches, "cpu"))[task.metric]
                pruning.on_after_eval()
        pruning.on_epoch_end()
        pruning.on_train_end()
    return value


def measure_overhead(
    name: str, *, repeats: int = 5, training: TrainingConfig | None = None, cache_dir: str | None = None
) -> dict[str, float]:
    """Median seconds of the hand loop and of ``run_trial`` on benchmark ``name``, interleaved.

    ``cache_dir``: the dense-baseline cache (default: the workbench's, so a baseline trained
    before is reused; it is not timed either way).
    """
    training = training or TrainingConfig(threads=1)
    task = get_benchmark(name)
    config = build_pruning_config(TYPICAL, training=training)
    hand, trial = [], []
    cache = str(resolve_cache_dir(cache_dir))
    dense, _ = load_dense_baseline(task, 0, cache_dir=cache)  # trained once, not timed
    run_trial(task, config, training, 0, cache_dir=cache)  # warm-up
    runs = {
        "hand": (hand, lambda: hand_loop(task, dense, config, training, 0)),
        "trial": (trial, lambda: run_trial(task, config, training, 0, cache_dir=cache)),
    }
    for i in range(max(1, repeats)):  # ABBA order: neither always runs first (after the other's garbage)
        for key in ("hand", "trial") if i % 2 == 0 else ("trial", "hand"):
            times, run = runs[key]
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    return {"hand": statistics.median(hand), "trial": statistics.median(trial)}


SHORT_TRIAL_REPEATS = 4
"""mlp-digits' trial takes ~0.4 s, where the machine's noise is a large share: it runs this many
times ``repeats`` pairs (about as long as tiny-transformer's)."""


def overhead_table(*, repeats: int = 5, names: tuple[str, ...] = BENCHMARKS) -> list[dict]:
    """One row per benchmark: hand loop and trial seconds (200 steps, 1 thread) and their ratio."""
    training = TrainingConfig(threads=1)
    rows = []
    for name in names:
        pairs = repeats * (SHORT_TRIAL_REPEATS if name == "mlp-digits" else 1)
        m = measure_overhead(name, repeats=pairs, training=training)
        rows.append(
            {
                "benchmark": f"{name}, {training.steps} steps",
                "hand loop s": m["hand"],
                "trial s": m["trial"],
                "trial/hand": m["trial"] / m["hand"],
            }
        )
    return rows


def measure_study(*, n_trials: int = 6, experiment_path: str = "experiments/default.yaml") -> dict[str, float]:
    """One study of ``n_trials`` trials (the default experiment, one worker) in a scratch folder.

    The dense baseline is cached first (not timed). Returns the study's wall seconds, the sum of
    its trials' own ``seconds`` (what :func:`run_trial` measured), the median of each trial's
    Optuna wall time over its own time, and the median log-writer seconds per trial (param
    ``time.logging_s``) over the trial's own time.
    """
    # start-up: the study layer (Optuna, MLflow) loads only for this section
    import os
    from pathlib import Path

    import optuna  # start-up: see above

    from workbench.experiment import load_experiment  # start-up: see above
    from workbench.study import run_study
    from workbench.tracking import Tracker

    experiment = load_experiment(Path(experiment_path).resolve())
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        saved = {k: os.environ.get(k) for k in ("WORKBENCH_CACHE_DIR", "WORKBENCH_SPOOL_DIR")}
        os.environ.update(WORKBENCH_CACHE_DIR=f"{tmp}/cache", WORKBENCH_SPOOL_DIR=f"{tmp}/spool")
        os.chdir(tmp)
        try:
            for seed in experiment.study.trial_seeds:
                load_dense_baseline(get_benchmark(experiment.benchmark, **experiment.benchmark_params), seed)
            uri = f"sqlite:///{tmp}/mlflow.db"
            start = time.perf_counter()
            study = run_study(experiment, n_trials=n_trials, storage=f"sqlite:///{tmp}/optuna.db", tracking_uri=uri)
            wall = time.perf_counter() - start
            trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
            own = [t.user_attrs["seconds"] for t in trials]
            optuna_wall = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials]
            client = Tracker(uri).client
            experiments = [e.experiment_id for e in client.search_experiments()]
            runs = client.search_runs(experiments, "tags.`workbench.kind` = 'trial'")
            writer = {r.info.run_id: float(r.data.params.get("time.logging_s", "nan")) for r in runs}
            by_run = {t.user_attrs.get("mlflow_run_id"): t.user_attrs["seconds"] for t in trials}
            writer_ratio = [writer[r] / s for r, s in by_run.items() if r in writer]
        finally:
            os.chdir(here)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return {
        "trials": len(trials),
        "wall": wall,
        "own": sum(own),
        "optuna_over_own": statistics.median(w / s for w, s in zip(optuna_wall, own)),
        "writer_over_own": statistics.median(writer_ratio) if writer_ratio else float("nan"),
    }


def study_table(*, repeats: int = 1) -> list[dict]:
    """One row per study run (default experiment, 6 trials, one worker): the study against its trials."""
    rows = []
    for _ in range(max(1, repeats)):
        m = measure_study()
        rows.append(
            {
                "study": f"default.yaml, {m['trials']} trials, 1 worker",
                "study wall s": m["wall"],
                "trials' own s": m["own"],
                "study/own": m["wall"] / m["own"],
                "trial wall/own (median)": m["optuna_over_own"],
                "log writer/own (median)": m["writer_over_own"],
            }
        )
    return rows
