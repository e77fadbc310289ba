"""The fine-tuning loop of one trial: the task's batches, loss and metrics around the pruner's hooks.

:func:`finetune` runs ``training.steps`` optimizer steps over the task's training batches,
epoch after epoch (the pruner's epoch hooks at each pass), on the trial's device and precision,
evaluating every ``eval_every`` steps and at the end; :class:`Recorder` keeps the curves.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import torch

from workbench.benchmarks import OnDevice, Task, cycle_batches, make_optimizer, to_device
from workbench.pruner import get_sparsity_ratio, layer_counts, layer_sparsity, prepare_pruning
from workbench.trial.devices import autocast
from workbench.trial.types import SPARSITY_KEYS, TrainingConfig, TrialDiverged

__all__ = ["Recorder", "finetune", "stream_seed"]

logger = logging.getLogger(__name__)
_ANNOUNCED: set[str] = set()
"""Tasks whose ignored ``training.batch_size`` was already logged in this process."""


def stream_seed(seed: int, purpose: str) -> int:
    """A seed for one random stream of a trial, derived from the trial seed (stable across runs)."""
    return int.from_bytes(hashlib.sha256(f"{int(seed)}:{purpose}".encode()).digest()[:8], "little") >> 1


class Recorder:
    """The curves of one trial, filled step by step."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.sparsity: dict[str, dict[int, float]] = {k: {} for k in SPARSITY_KEYS}
        self.layer: dict[str, dict[int, float]] = {}
        self.layer_block: dict[str, dict[int, float]] = {}
        self.loss: dict[int, float] = {}
        self.values: dict[int, float] = {}
        """The task's metric at each evaluation."""
        self.metrics: dict[str, dict[int, float]] = {}
        """Every metric at each evaluation: ``{name: {step: value}}``."""

    def snapshot(self, step: int, pruning: Any, model: torch.nn.Module) -> None:
        """Record the global and per-layer sparsity at ``step``."""
        counts = layer_counts(pruning.pruners)  # the weights read once for both
        for key, value in zip(SPARSITY_KEYS, get_sparsity_ratio(pruning.pruners, model, counts=counts)):
            self.sparsity[key][step] = float(value)
        for name, (elementwise, blockwise) in layer_sparsity(pruning.pruners, counts=counts).items():
            self.layer.setdefault(name, {})[step] = float(elementwise)
            self.layer_block.setdefault(name, {})[step] = float(blockwise)

    def carry(self, step: int, pruning: Any, model: torch.nn.Module) -> None:
        """Record at ``step`` the sparsity of the latest snapshot: the masks have not changed since,
        and masked weights stay zero, so the weights would give the same counts (a kept weight
        landing exactly on 0.0 is counted at the next snapshot). Measures when there is none yet."""
        latest = max(self.sparsity[SPARSITY_KEYS[0]], default=None)
        if latest is None:
            self.snapshot(step, pruning, model)
            return
        for curve in (*self.sparsity.values(), *self.layer.values(), *self.layer_block.values()):
            curve[step] = curve[latest]

    def evaluated(self, step: int, metrics: dict[str, float]) -> float:
        """Record an evaluation at ``step``; returns the task's metric."""
        for name, value in metrics.items():
            self.metrics.setdefault(name, {})[step] = value
        self.values[step] = metrics[self.metric]
        return self.values[step]

    def last_metrics(self) -> dict[str, float]:
        """Every metric of the latest evaluation (empty before the first)."""
        if not self.values:
            return {}
        step = max(self.values)
        return {name: curve[step] for name, curve in self.metrics.items() if step in curve}


def _training_batches(task: Task, training: TrainingConfig, seed: int) -> Any:
    """The task's training batches: tensors re-batched with ``training.batch_size`` in a seeded order."""
    generator = torch.Generator().manual_seed(stream_seed(seed, "batches"))
    if not task.rebatchable and task.name not in _ANNOUNCED:
        _ANNOUNCED.add(task.name)
        logger.info(
            "task %s: its train_batches (%s) keep their own batch size; training.batch_size (%d) does not apply",
            task.name,
            type(task.train_batches).__name__,
            training.batch_size,
        )
    return task.training_batches(batch_size=training.batch_size, generator=generator)


def finetune(
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
    """The fine-tuning loop with the pruner's hooks on ``device``; returns the final metrics.

    ``state["layers"]`` receives the pruner's per-layer decisions; ``timings`` accumulates
    ``finetune`` and ``eval`` seconds. The forward pass and loss run under
    :func:`~workbench.trial.devices.autocast` (bf16 when ``training.precision`` says so);
    evaluation runs in fp32.
    """
    tick = time.perf_counter()
    batches = _training_batches(task, training, seed)
    eval_batches = OnDevice(task.eval_batches, device)
    pruning = prepare_pruning(model, config)
    state["layers"] = [info.to_dict() for info in pruning.describe()]
    optimizer = make_optimizer(
        model.parameters(),
        name=training.optimizer,
        lr=training.lr,
        momentum=training.momentum,
        weight_decay=training.weight_decay,
    )
    model.train()
    pruning.on_train_begin()
    epoch_open, last_epoch, updates = False, -1, pruning.mask_updates
    final = training.steps - 1

    def evaluate(step: int) -> dict[str, float]:
        nonlocal tick
        timings["finetune"] += time.perf_counter() - tick
        start = time.perf_counter()
        pruning.on_before_eval()
        metrics = task.evaluate(model, eval_batches)
        pruning.on_after_eval()
        value = rec.evaluated(step, metrics)
        timings["eval"] += time.perf_counter() - start
        if on_eval is not None:
            on_eval(step, value)
        tick = time.perf_counter()
        return metrics

    for step, (epoch, local, batch) in enumerate(cycle_batches(batches, training.steps)):
        if epoch != last_epoch:
            if epoch_open:
                pruning.on_epoch_end()
            pruning.on_epoch_begin(epoch)
            epoch_open, last_epoch = True, epoch
        pruning.on_step_begin(local)
        batch = to_device(batch, device)
        with autocast(device, training.precision):
            loss = task.loss(model, batch)
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
        if changed:
            rec.snapshot(step, pruning, model)
        elif periodic:
            rec.carry(step, pruning, model)
        if periodic:
            evaluate(step)
    if epoch_open:
        pruning.on_epoch_end()
    pruning.on_train_end()
    rec.snapshot(final, pruning, model)
    metrics = evaluate(final)
    timings["finetune"] += time.perf_counter() - tick
    return metrics
