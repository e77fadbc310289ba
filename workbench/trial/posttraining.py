"""The post-training trial: prune once from calibration data, evaluate, optionally fine-tune with fixed masks.

A trial whose criterion is a post-training method (``wanda``, ``sparsegpt``; its config carries
``posttraining: {method: ...}``, see :func:`workbench.trial.build_pruning_config`) runs
:func:`run_posttraining` instead of the training-aware loop:

1. calibration: the first ``training.calibration_samples`` samples of the task's TRAINING batches
   (a seeded order of their own); dict batches with ``input_ids`` are cut to
   ``training.calibration_seq_len`` tokens (every tensor of the same length with them) when it is > 0;
2. :func:`workbench.pruner.prune_posttraining` at the trial's pattern and target (an N:M pattern
   prunes exactly N/M), with the options the config carries (``layers_per_pass="block"``, the
   authors' drivers, unless ``pruning.posttraining`` says otherwise; the model stays on the
   trial's device: the library's ``execution_device`` onloading is not a trial option);
3. the pruned layers are handed to a ``pattern_lock`` pruner (the INC pruner that keeps the zeros
   the weights have when training begins): the sparsity curves are measured through it, at step 0,
   then the task's metric is evaluated (step 0);
4. with ``training.finetune_steps > 0``, the training-aware loop (:func:`~workbench.trial.loop.finetune`)
   runs that many steps with the ``pattern_lock`` config: the zeros are re-applied after every
   optimizer step, so the masks stay those of the one-shot prune. Its curves are recorded one
   step later than the loop counts (fine-tuning step ``s`` is step ``s + 1``), so step 0 stays
   "pruned, not fine-tuned".

``timings["prune"]`` is the calibration and pruning time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import torch

from workbench.benchmarks import OnDevice, Task, to_device
from workbench.pruner import parse_pattern, prepare_pruning, prune_posttraining
from workbench.pruner.errors import ConfigError
from workbench.pruner.posttraining import LAYERS_PER_PASS
from workbench.pruner.posttraining.calibration import batch_size
from workbench.trial.loop import Recorder, finetune, stream_seed
from workbench.trial.posttraining_config import POSTTRAINING_KEY
from workbench.trial.types import TrainingConfig

__all__ = ["calibration_batches", "lock_config", "run_posttraining", "truncate_batch"]

_log = logging.getLogger(__name__)


def lock_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The INC part of a post-training config (``posttraining`` removed): the pattern_lock pruner."""
    return {k: v for k, v in config.items() if k != POSTTRAINING_KEY}


def truncate_batch(batch: Any, seq_len: int) -> Any:
    """A dict batch with ``input_ids`` cut to ``seq_len`` tokens (and every tensor of the same length); others unchanged.

    Example:
        >>> b = truncate_batch({"input_ids": torch.ones(2, 8), "attention_mask": torch.ones(2, 8)}, 4)
        >>> tuple(b["attention_mask"].shape)
        (2, 4)
    """
    if seq_len <= 0 or not isinstance(batch, Mapping) or not torch.is_tensor(batch.get("input_ids")):
        return batch
    ids = batch["input_ids"]
    if ids.dim() < 2 or ids.shape[1] <= seq_len:
        return batch
    length = ids.shape[1]
    return {
        k: v[:, :seq_len] if torch.is_tensor(v) and v.dim() >= 2 and v.shape[1] == length else v
        for k, v in batch.items()
    }


def calibration_batches(task: Task, training: TrainingConfig, seed: int, device: torch.device) -> list[Any]:
    """At most ``training.calibration_samples`` samples of one pass over the task's training batches, on ``device``."""
    generator = torch.Generator().manual_seed(stream_seed(seed, "calibration"))
    out, seen = [], 0
    for batch in task.training_batches(batch_size=training.batch_size, generator=generator):
        out.append(to_device(truncate_batch(batch, training.calibration_seq_len), device))
        seen += batch_size(out[-1])
        if seen >= training.calibration_samples:
            break
    if not out:
        raise ConfigError(f"task {task.name!r}: its training batches are empty; post-training pruning needs some")
    return out


def _merge(into: Recorder, part: Recorder, offset: int) -> None:
    """Copy ``part``'s curves into ``into`` with every step moved by ``offset``."""
    for key, curve in part.sparsity.items():
        into.sparsity.setdefault(key, {}).update({s + offset: v for s, v in curve.items()})
    for mine, theirs in ((into.layer, part.layer), (into.layer_block, part.layer_block), (into.metrics, part.metrics)):
        for name, curve in theirs.items():
            mine.setdefault(name, {}).update({s + offset: v for s, v in curve.items()})
    into.loss.update({s + offset: v for s, v in part.loss.items()})
    into.values.update({s + offset: v for s, v in part.values.items()})


def run_posttraining(
    task: Task,
    model: torch.nn.Module,
    config: dict[str, Any],
    training: TrainingConfig,
    seed: int,
    on_eval: Callable[[int, float], None] | None,
    rec: Recorder,
    state: dict[str, Any],
    timings: dict[str, float],
    device: torch.device,
) -> dict[str, float]:
    """Prune ``model`` once (see the module docstring), evaluate, fine-tune ``finetune_steps``; returns the final metrics."""
    options = dict(config[POSTTRAINING_KEY])
    method = options.pop("method")
    lock = lock_config(config)
    pattern, target = str(lock["pattern"]), float(lock["target_sparsity"])
    tick = time.perf_counter()
    report = prune_posttraining(
        model,
        calibration_batches(task, training, seed, device),
        method,
        None if parse_pattern(pattern).fixed_sparsity is not None else target,  # N:M prunes its own N/M
        pattern,
        calibration_samples=training.calibration_samples,
        layers_per_pass=options.pop("layers_per_pass", LAYERS_PER_PASS[0]),
        op_names=list(lock.get("op_names") or []) or None,
        skip=list(lock.get("excluded_op_names") or []) or None,
        **options,
    )
    timings["prune"] = time.perf_counter() - tick
    if not report.layers:
        raise ConfigError(f"criterion: {method} pruned no layer of task {task.name!r} (skipped: {report.skipped})")
    # the lock covers every layer a training-aware trial of this config prunes (Conv2d included),
    # so the reached sparsity of both kinds is measured over the same weights; layers the method
    # cannot prune stay dense and count as such
    pruning = prepare_pruning(model, lock)
    pruning.on_train_begin()
    state["layers"] = [info.to_dict() for info in pruning.describe()]
    pruned = {layer.name for layer in report.layers}
    dense = [d["name"] for d in state["layers"] if d["pruned"] and d["name"] not in pruned]
    if dense:
        _log.warning(
            "%s prunes Linear/Conv1D layers only: %s left dense; the reached sparsity counts them "
            "(it is over every layer a training-aware trial prunes)",
            method,
            ", ".join(dense),
        )
    rec.snapshot(0, pruning, model)
    start = time.perf_counter()
    metrics = task.evaluate(model, OnDevice(task.eval_batches, device))
    value = rec.evaluated(0, metrics)
    timings["eval"] += time.perf_counter() - start
    if on_eval is not None:
        on_eval(0, value)
    if training.finetune_steps == 0:
        return metrics
    part = Recorder(task.metric)

    def shifted(step: int, value: float) -> None:
        if on_eval is not None:
            on_eval(step + 1, value)

    try:
        tuned = replace(training, steps=training.finetune_steps)
        return finetune(task, model, lock, tuned, seed, shifted, part, {}, timings, device)
    finally:
        _merge(rec, part, 1)
