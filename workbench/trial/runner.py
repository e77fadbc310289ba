"""One trial: fine-tune a task's cached dense model under one pruning config, record everything.

:func:`build_pruning_config` turns the workbench's search dimensions into an INC-style config;
:func:`run_trial` loads the task (a :class:`~workbench.benchmarks.Task`: the built-in tensor
benchmarks are ones) and its dense baseline, fine-tunes ``training.steps`` optimizer steps over
the task's training batches (epoch after epoch) on ``training.device`` calling the pruner's hooks
explicitly (loop: :mod:`.loop`), and returns a :class:`~workbench.trial.types.TrialResult` (plain
data: no MLflow or Optuna here) carrying the task's metric, its direction and every metric of
the task's ``evaluate``.

Steps are numbered as the pruner counts them (0 .. ``steps``-1, the numbering of ``start_step`` /
``end_step``). A curve value at step ``s`` is taken after the optimizer update of step ``s``
(masks change in ``on_step_begin(s)``); ``train_loss[s]`` is the loss of step ``s``'s batch.
Evaluation runs after every ``eval_every`` steps (steps ``eval_every-1``, ``2*eval_every-1``, ...)
and after the last step; sparsity curves are recorded at every step where masks changed and at
every evaluation (measured on the weights where masks changed and after the last step; at an
evaluation between mask changes the latest measurement is carried, since masked weights stay zero).

A config with a ``posttraining`` key (criterion ``wanda`` / ``sparsegpt``) runs the post-training
trial instead (:mod:`.posttraining`: prune once from calibration data, evaluate at step 0, then
``training.finetune_steps`` steps with the masks fixed). Every trial measures the peak memory of
its pruning and fine-tuning (after the dense baseline is loaded; :mod:`.cost`) into
:attr:`TrialResult.memory`. With ``training.measure_speed``, the dense, pruned and slimmed models
are timed after the final evaluation (:mod:`.speed`) into :attr:`TrialResult.speed`.

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
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from workbench.benchmarks import Task, get_benchmark, load_dense_baseline, seeded, torch_settings
from workbench.pruner import WeightPruningConfig, process_config
from workbench.pruner.errors import ConfigError
from workbench.trial.config import search_params
from workbench.trial.cost import PeakMemory
from workbench.trial.devices import check_precision, resolve_device
from workbench.trial.loop import Recorder, finetune, stream_seed
from workbench.trial.posttraining import lock_config, run_posttraining
from workbench.trial.posttraining_config import POSTTRAINING_KEY
from workbench.trial.speed import example_inputs, measure_trial_speed
from workbench.trial.types import TrainingConfig, TrialDiverged, TrialResult, TrialStopped

__all__ = ["run_trial"]


def _yaml_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _yaml_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_yaml_safe(v) for v in value]
    return value


def _check_training(training: TrainingConfig) -> None:
    if not isinstance(training, TrainingConfig):  # a TrainingConfig validated its own fields
        raise ConfigError(f"training: expected a TrainingConfig, got {type(training).__name__}")


def run_trial(
    benchmark: Task | str,
    pruning_config: Mapping[str, Any] | WeightPruningConfig,
    training: TrainingConfig,
    seed: int,
    on_eval: Callable[[int, float], None] | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    on_model: Callable[[Any], None] | None = None,
) -> TrialResult:
    """Fine-tune ``benchmark``'s dense baseline for ``training.steps`` steps while pruning.

    Args:
        benchmark: A :class:`~workbench.benchmarks.Task` (a :class:`~workbench.benchmarks.Benchmark`
            is one) or a spec for :func:`~workbench.benchmarks.get_benchmark` (name or
            ``"package.module:function"``).
        pruning_config: INC-style config (see :func:`build_pruning_config`) or a ``WeightPruningConfig``.
        training: Fine-tuning settings; ``threads > 0`` bounds torch's threads during the trial;
            ``device`` and ``precision`` say where and how (see
            :func:`~workbench.trial.devices.resolve_device`). ``batch_size`` applies to tensor
            batches; a task's own loader keeps its batch size (logged once).
        seed: Seeds the dense baseline (init and dense batch order) and the fine-tuning batch order.
        on_eval: Called as ``on_eval(step, value)`` with the task's metric after each evaluation;
            it may raise :class:`~workbench.trial.types.TrialStopped` to stop the trial
            (propagated, with the partial :class:`TrialResult` attached as ``.result``).
        cache_dir: Dense-baseline cache folder (default ``$WORKBENCH_CACHE_DIR`` or ``.workbench-cache``).
        on_model: Called once with the pruned model (on the trial's device) after the final
            evaluation of a completed trial (the study logs it: ``tracking.log_model``).

    Returns:
        The :class:`TrialResult`: the final and dense value of the task's metric (and every
        metric), curves keyed by step, the effective pruning config, the candidate layers and
        timings (seconds: baseline, finetune, eval, total).

    Raises:
        TrialDiverged: The training loss became NaN or infinite (partial result as ``.result``).
        TrialStopped: Raised by ``on_eval``.
        ValueError: Bad benchmark spec, config or training settings, or a device this machine
            lacks (raised before any training).

    Same inputs on the same machine give bit-identical results on the CPU: the batch order comes
    from a generator seeded from ``seed``, other torch randomness is seeded too, and
    deterministic algorithms are on for the trial (torch's previous settings are restored
    afterwards). On CUDA they are ``warn_only`` (see :func:`~workbench.benchmarks.torch_settings`).
    """
    started = time.perf_counter()
    _check_training(training)
    device = resolve_device(training.device)
    check_precision(training.precision, device)
    task = benchmark if isinstance(benchmark, Task) else get_benchmark(benchmark)
    config = _yaml_safe(
        pruning_config.to_dict()
        if isinstance(pruning_config, WeightPruningConfig)
        else copy.deepcopy(dict(pruning_config))
    )
    posttraining = POSTTRAINING_KEY in config
    process_config(lock_config(config) if posttraining else config)  # validate before spending time on the baseline
    timings = {"baseline": 0.0, "finetune": 0.0, "eval": 0.0, "total": 0.0}
    peak = PeakMemory(device)
    rec = Recorder(task.metric)
    state: dict[str, Any] = {"dense": {}, "layers": [], "speed": {}}

    def result(metrics: dict[str, float], value: float) -> TrialResult:
        timings["total"] = time.perf_counter() - started
        return TrialResult(
            benchmark=task.name,
            seed=int(seed),
            params=search_params(config),
            pruning_config=config,
            training=training.to_dict(),
            value=float(value),
            dense_value=float(state["dense"].get(task.metric, float("nan"))),
            sparsity=rec.sparsity,
            layer_sparsity=rec.layer,
            layer_blockwise_sparsity=rec.layer_block,
            train_loss=rec.loss,
            eval_values=rec.values,
            layers=state["layers"],
            timings=dict(timings),
            metric=task.metric,
            direction=task.direction,
            metrics=dict(metrics),
            dense_metrics=dict(state["dense"]),
            eval_metrics=rec.metrics,
            memory=peak.result(),
            speed=dict(state["speed"]),
        )

    try:
        with (
            torch_settings(threads=training.threads, deterministic=True, device=device),
            seeded(stream_seed(seed, "torch")),
        ):
            tick = time.perf_counter()
            model, state["dense"] = load_dense_baseline(task, seed, cache_dir=cache_dir, device=device)
            model.to(device)
            timings["baseline"] = time.perf_counter() - tick
            dense = copy.deepcopy(model) if training.measure_speed else None
            run = run_posttraining if posttraining else finetune
            with peak:
                metrics = run(task, model, config, training, seed, on_eval, rec, state, timings, device)
            if dense is not None:  # after the final evaluation, outside the trial's cost
                inputs = example_inputs(task.eval_batches, device)
                state["speed"] = measure_trial_speed(dense, model, inputs, repeats=training.speed_repeats)
            if on_model is not None:
                on_model(model)
    except (TrialStopped, TrialDiverged) as err:
        last = rec.last_metrics()
        value = err.value if isinstance(err, TrialStopped) else last.get(task.metric, float("nan"))
        err.result = result(last, value)  # type: ignore[attr-defined]
        raise
    return result(metrics, metrics[task.metric])
