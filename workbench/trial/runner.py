"""One trial: fine-tune a benchmark's cached dense model under one pruning config, record everything.

:func:`build_pruning_config` turns the workbench's search dimensions into an INC-style config;
:func:`run_trial` loads the benchmark and its dense baseline, fine-tunes ``training.steps``
optimizer steps calling the pruner's hooks explicitly, and returns a
:class:`~workbench.trial.types.TrialResult` (plain data: no MLflow or Optuna here).

Steps are numbered as the pruner counts them (0 .. ``steps``-1, the numbering of ``start_step`` /
``end_step``). A curve value at step ``s`` is taken after the optimizer update of step ``s``
(masks change in ``on_step_begin(s)``); ``train_loss[s]`` is the loss of step ``s``'s batch.
Evaluation runs after every ``eval_every`` steps (steps ``eval_every-1``, ``2*eval_every-1``, ...)
and after the last step; sparsity curves are recorded at every step where masks changed and at
every evaluation.

Example:
    >>> from workbench.trial import build_pruning_config, run_trial
    >>> from workbench.trial.types import TrainingConfig
    >>> training = TrainingConfig(steps=40, eval_every=20, pruning_frequency=5, threads=1)
    >>> config = build_pruning_config({"pattern": "4x1", "criterion": "magnitude",
    ...                                "scheduler": "iterative", "target_sparsity": 0.8}, training=training)
    >>> result = run_trial("mlp-digits", config, training, seed=0)                # doctest: +SKIP
    >>> round(result.final_sparsity["blockwise_over_matmul_gemm_conv"], 2)       # doctest: +SKIP
    0.8
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch

from workbench.benchmarks import (
    Benchmark,
    get_benchmark,
    iterate_batches,
    load_dense_baseline,
    make_optimizer,
    seeded,
    torch_settings,
)
from workbench.pruner import ConfigError, WeightPruningConfig, get_sparsity_ratio, prepare_pruning, process_config
from workbench.trial.config import search_params
from workbench.trial.types import SPARSITY_KEYS, TrainingConfig, TrialDiverged, TrialResult, TrialStopped

__all__ = ["run_trial"]


def _stream_seed(seed: int, purpose: str) -> int:
    """A seed for one random stream of a trial, derived from the trial seed (stable across runs)."""
    return int.from_bytes(hashlib.sha256(f"{int(seed)}:{purpose}".encode()).digest()[:8], "little") >> 1


def _yaml_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _yaml_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_yaml_safe(v) for v in value]
    return value


class _Recorder:
    """The curves of one trial, filled step by step."""

    def __init__(self) -> None:
        self.sparsity: dict[str, dict[int, float]] = {k: {} for k in SPARSITY_KEYS}
        self.layer: dict[str, dict[int, float]] = {}
        self.layer_block: dict[str, dict[int, float]] = {}
        self.loss: dict[int, float] = {}
        self.accuracy: dict[int, float] = {}

    def snapshot(self, step: int, pruning: Any, model: torch.nn.Module) -> None:
        for key, value in zip(SPARSITY_KEYS, get_sparsity_ratio(pruning.pruners, model)):
            self.sparsity[key][step] = float(value)
        for name, (elementwise, blockwise) in pruning.layer_sparsity().items():
            self.layer.setdefault(name, {})[step] = float(elementwise)
            self.layer_block.setdefault(name, {})[step] = float(blockwise)


def _check_training(training: TrainingConfig) -> None:
    if not isinstance(training, TrainingConfig):  # a TrainingConfig validated its own fields
        raise ConfigError(f"training: expected a TrainingConfig, got {type(training).__name__}")


def run_trial(
    benchmark: Benchmark | str,
    pruning_config: Mapping[str, Any] | WeightPruningConfig,
    training: TrainingConfig,
    seed: int,
    on_eval: Callable[[int, float], None] | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
) -> TrialResult:
    """Fine-tune ``benchmark``'s dense baseline for ``training.steps`` steps while pruning.

    Args:
        benchmark: A :class:`~workbench.benchmarks.Benchmark` or a spec for
            :func:`~workbench.benchmarks.get_benchmark` (name or ``"package.module:function"``).
        pruning_config: INC-style config (see :func:`build_pruning_config`) or a ``WeightPruningConfig``.
        training: Fine-tuning settings; ``threads > 0`` bounds torch's threads during the trial.
        seed: Seeds the dense baseline (init and dense batch order) and the fine-tuning batch order.
        on_eval: Called as ``on_eval(step, accuracy)`` after each evaluation; it may raise
            :class:`~workbench.trial.types.TrialStopped` to stop the trial (propagated, with the
            partial :class:`TrialResult` attached as ``.result``).
        cache_dir: Dense-baseline cache folder (default ``$WORKBENCH_CACHE_DIR`` or ``.workbench-cache``).

    Returns:
        The :class:`TrialResult`: final and dense accuracy, curves keyed by step, the effective
        pruning config, the candidate layers and timings (seconds: baseline, finetune, eval, total).

    Raises:
        TrialDiverged: The training loss became NaN or infinite (partial result as ``.result``).
        TrialStopped: Raised by ``on_eval``.
        ValueError: Bad benchmark spec, config or training settings.

    Same inputs on the same machine give bit-identical results: the batch order comes from a
    generator seeded from ``seed``, other torch randomness is seeded too, and deterministic
    algorithms are on for the trial (torch's previous settings are restored afterwards).
    """
    started = time.perf_counter()
    _check_training(training)
    bench = benchmark if isinstance(benchmark, Benchmark) else get_benchmark(benchmark)
    config = _yaml_safe(
        pruning_config.to_dict()
        if isinstance(pruning_config, WeightPruningConfig)
        else copy.deepcopy(dict(pruning_config))
    )
    process_config(config)  # validate before spending time on the baseline
    timings = {"baseline": 0.0, "finetune": 0.0, "eval": 0.0, "total": 0.0}
    rec = _Recorder()
    state: dict[str, Any] = {"dense_accuracy": float("nan"), "layers": []}

    def result(accuracy: float) -> TrialResult:
        timings["total"] = time.perf_counter() - started
        return TrialResult(
            benchmark=bench.name,
            seed=int(seed),
            params=search_params(config),
            pruning_config=config,
            training=training.to_dict(),
            value=float(accuracy),
            dense_value=state["dense_accuracy"],
            sparsity=rec.sparsity,
            layer_sparsity=rec.layer,
            layer_blockwise_sparsity=rec.layer_block,
            train_loss=rec.loss,
            eval_values=rec.accuracy,
            layers=state["layers"],
            timings=dict(timings),
        )

    try:
        with torch_settings(threads=training.threads, deterministic=True), seeded(_stream_seed(seed, "torch")):
            tick = time.perf_counter()
            model, state["dense_accuracy"] = load_dense_baseline(bench, seed, cache_dir=cache_dir)
            timings["baseline"] = time.perf_counter() - tick
            accuracy = _finetune(bench, model, config, training, seed, on_eval, rec, state, timings)
    except (TrialStopped, TrialDiverged) as err:
        last = (
            err.value
            if isinstance(err, TrialStopped)
            else (rec.accuracy[max(rec.accuracy)] if rec.accuracy else float("nan"))
        )
        err.result = result(last)  # type: ignore[attr-defined]
        raise
    return result(accuracy)


def _finetune(
    bench: Benchmark,
    model: torch.nn.Module,
    config: dict[str, Any],
    training: TrainingConfig,
    seed: int,
    on_eval: Callable[[int, float], None] | None,
    rec: _Recorder,
    state: dict[str, Any],
    timings: dict[str, float],
) -> float:
    """The fine-tuning loop with the pruner's hooks; returns the final accuracy."""
    tick = time.perf_counter()
    data = bench.data
    pruning = prepare_pruning(model, config)
    state["layers"] = [info.to_dict() for info in pruning.describe()]
    optimizer = make_optimizer(
        model.parameters(),
        name=training.optimizer,
        lr=training.lr,
        momentum=training.momentum,
        weight_decay=training.weight_decay,
    )
    generator = torch.Generator().manual_seed(_stream_seed(seed, "batches"))
    model.train()
    pruning.on_train_begin()
    epoch_open, last_epoch, updates = False, -1, pruning.mask_updates
    final = training.steps - 1

    def evaluate(step: int) -> float:
        nonlocal tick
        timings["finetune"] += time.perf_counter() - tick
        start = time.perf_counter()
        pruning.on_before_eval()
        accuracy = float(bench.evaluate(model))
        pruning.on_after_eval()
        rec.accuracy[step] = accuracy
        timings["eval"] += time.perf_counter() - start
        if on_eval is not None:
            on_eval(step, accuracy)
        tick = time.perf_counter()
        return accuracy

    for step, (epoch, local, idx) in enumerate(
        iterate_batches(data.x_train.shape[0], training.batch_size, training.steps, generator)
    ):
        if epoch != last_epoch:
            if epoch_open:
                pruning.on_epoch_end()
            pruning.on_epoch_begin(epoch)
            epoch_open, last_epoch = True, epoch
        pruning.on_step_begin(local)
        loss = bench.loss(model(data.x_train[idx]), data.y_train[idx])
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrialDiverged(step, value)
        rec.loss[step] = value
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        pruning.on_before_optimizer_step()
        optimizer.step()
        pruning.on_after_optimizer_step()
        pruning.on_step_end()
        changed, updates = pruning.mask_updates != updates, pruning.mask_updates
        if step == final:
            break
        periodic = (step + 1) % training.eval_every == 0
        if changed or periodic:
            rec.snapshot(step, pruning, model)
        if periodic:
            evaluate(step)
    if epoch_open:
        pruning.on_epoch_end()
    pruning.on_train_end()
    rec.snapshot(final, pruning, model)
    accuracy = evaluate(final)
    timings["finetune"] += time.perf_counter() - tick
    return accuracy
