"""What one trial leaves in MLflow, as data: its params, its metrics and its artifact files.

Pure functions of a :class:`~workbench.trial.TrialResult`; :class:`~workbench.tracking.Tracker`
sends what they build. Params are the pruning dimensions of :mod:`workbench.trial.space`;
metrics are the finals and every curve (keys from :mod:`.metric_keys`); the files are the
pruning config, ``trial.yaml`` (what ``rerun`` reads), two CSV tables and the sparsity figure.

Example:
    >>> from workbench.trial import TrialResult
    >>> r = TrialResult(benchmark="b", seed=0, params={}, pruning_config={}, training={}, value=0.9,
    ...                 dense_value=1.0, sparsity={"elementwise_over_all": {0: 0.0, 5: 0.5}})
    >>> sorted({m.key for m in result_metrics(r, ts=1)})[:3]
    ['accuracy', 'accuracy_drop', 'dense_accuracy']
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from mlflow.entities import Metric

from workbench.pruner.errors import ConfigError
from workbench.tracking.metric_keys import layer_metric_keys, sanitize_name
from workbench.tracking.speed_metrics import speed_metrics
from workbench.trial.posttraining_config import posttraining_params
from workbench.trial.space import INACTIVE, PRUNING_DIMS, is_active
from workbench.trial.types import SPARSITY_KEYS, TrialResult

__all__ = [
    "BENCHMARK_PARAM",
    "COST_PREFIX",
    "DIRECTION_TAG",
    "METRIC_TAG",
    "NM_GLOBAL_KEY",
    "NM_LAYER_PREFIX",
    "benchmark_params_of",
    "config_label",
    "cost_metrics",
    "curve_metrics",
    "is_nm",
    "metric_name",
    "now_ms",
    "result_metrics",
    "run_description",
    "task_curves",
    "task_finals",
    "timing_params",
    "trial_params",
    "write_csv",
    "write_trial_artifacts",
]


BENCHMARK_PARAM = "benchmark."
"""Prefix of the child-run params holding the experiment's ``benchmark_params`` (``benchmark.hidden``)."""
METRIC_TAG, DIRECTION_TAG = "workbench.metric", "workbench.direction"
"""Run tags naming the task's metric and which way it is better (``maximize`` / ``minimize``)."""


def benchmark_params_of(params: dict[str, Any]) -> dict[str, Any]:
    """The ``benchmark_params`` inside logged ``params`` (the ``benchmark.<key>`` entries, prefix removed)."""
    return {k[len(BENCHMARK_PARAM) :]: v for k, v in params.items() if k.startswith(BENCHMARK_PARAM)}


def trial_params(
    params: dict[str, Any],
    pruning_config: dict[str, Any],
    *,
    seed: int,
    benchmark: str,
    benchmark_params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The child-run params: the seven pruning knobs, seed and benchmark (+ lr when searched), a
    post-training trial's options (``posttraining.<key>``) and ``benchmark.<key>`` of ``benchmark_params``.

    Knobs the search space leaves out are read from the effective pruning config, so every child
    run carries all seven; a knob without effect in this trial (the decay of a one-step schedule)
    is logged as ``none``.
    """
    # start-up: the log writer imports this module; the pruner (and torch) load with the first config
    from workbench.pruner.config import DEFAULT_CONFIG, parse_pruning_type

    first = {**DEFAULT_CONFIG, **pruning_config, **(pruning_config.get("pruning_configs") or [{}])[0]}
    first.pop("pruning_configs", None)
    out: dict[str, Any] = {}
    for key in PRUNING_DIMS:
        if not is_active(key, out):
            out[key] = INACTIVE  # e.g. the decay of a oneshot schedule: no effect, not "exp"
        elif key in params:
            out[key] = params[key]
        elif key == "pruner":
            out[key] = parse_pruning_type(first["pruning_type"])[0]
        else:
            out[key] = first.get(key)
    out.update(seed=seed, benchmark=benchmark, **posttraining_params(pruning_config))
    for key in ("lr", "requested_target_sparsity"):
        if key in params:
            out[key] = params[key]
    out.update({f"{BENCHMARK_PARAM}{k}": v for k, v in (benchmark_params or {}).items()})
    return out


COST_PREFIX = "cost/"
"""Metrics of what a trial cost: ``cost/wall_s`` (seconds of the trial without its dense baseline,
which is trained once and cached: pruning, fine-tuning, evaluation), ``cost/prune_s`` (a
post-training trial's calibration and pruning), ``cost/<memory key>`` (:attr:`TrialResult.memory`, MiB)."""


def cost_metrics(result: TrialResult) -> dict[str, float]:
    """The trial's cost as final metrics: wall time, pruning time (post-training) and peak memory."""
    t = result.timings
    out = {f"{COST_PREFIX}wall_s": float(t["total"] - t.get("baseline", 0.0))} if "total" in t else {}
    if "prune" in result.timings:
        out[f"{COST_PREFIX}prune_s"] = float(result.timings["prune"])
    out.update({f"{COST_PREFIX}{k}": float(v) for k, v in result.memory.items()})
    return out


def now_ms() -> int:
    """Now, in milliseconds since the epoch (MLflow's metric timestamps)."""
    return int(time.time() * 1000)


def curve_metrics(key: str, curve: dict[int, float], ts: int) -> Iterable[Metric]:
    """One metric per step of ``curve`` under ``key``, stamped ``ts``."""
    return (Metric(key, float(v), ts, int(s)) for s, v in sorted(curve.items()))


NM_GLOBAL_KEY = "sparsity/nm_groups_satisfied"
"""For an N:M pattern (any of fixed sparsity), the global fraction of groups satisfied (not a sparsity)."""
NM_LAYER_PREFIX = "layer_nm_satisfied"
"""For an N:M pattern, each layer's fraction of groups satisfied."""


def is_nm(result: TrialResult) -> bool:
    """Whether the (first) pruner's pattern has a fixed sparsity (N:M), as its spec says, so its
    blockwise figure counts satisfied groups; ``False`` for a pattern no family parses."""
    # start-up: the log writer imports this module; the pattern registry (and torch) load with the first result
    from workbench.pruner import parse_pattern

    entries = result.pruning_config.get("pruning_configs") or [{}]
    try:
        return parse_pattern(entries[0].get("pattern", result.pruning_config.get("pattern"))).fixed_sparsity is not None
    except ConfigError:
        return False


def _differs(a: dict[int, float], b: dict[int, float] | None) -> bool:
    return b is None or any(abs(a[s] - b[s]) > 1e-9 for s in a.keys() & b.keys()) or a.keys() != b.keys()


def metric_name(name: str) -> str:
    """A metric name of the task as one MLflow key segment (``f1``, ``perplexity``; odd characters mapped)."""
    return sanitize_name(str(name))


def task_finals(result: TrialResult) -> dict[str, float]:
    """The final metrics: ``<name>`` and ``dense_<name>`` of every metric of the task's ``evaluate``,
    and ``<metric>_drop`` (direction-aware, :attr:`TrialResult.drop`) for the metric the study optimises.

    Only the task's own metric has a known direction, so only it gets a drop; a result without
    ``metrics`` (a plain accuracy result) logs ``accuracy``, ``dense_accuracy``, ``accuracy_drop``.
    """
    finals = {result.metric: result.value, **result.metrics}
    dense = {result.metric: result.dense_value, **result.dense_metrics}
    out: dict[str, float] = {}
    for name, value in finals.items():
        out[metric_name(name)] = value
        if name in dense:
            out[f"dense_{metric_name(name)}"] = dense[name]
    out[f"{metric_name(result.metric)}_drop"] = result.drop
    return out


def task_curves(result: TrialResult) -> dict[str, dict[int, float]]:
    """Every metric of the task at every evaluation, ``{name: {step: value}}`` (logged as ``eval/<name>``)."""
    curves = {metric_name(k): v for k, v in result.eval_metrics.items()}
    if result.eval_values or metric_name(result.metric) not in curves:
        curves[metric_name(result.metric)] = dict(result.eval_values)
    return {k: v for k, v in curves.items() if v}


def result_metrics(result: TrialResult, *, ts: int | None = None) -> list[Metric]:
    """Every metric of a trial: finals, global/per-layer sparsity series, eval and loss series.

    Blockwise series are logged only where they say something the elementwise ones do not: for a
    block pattern, a layer's ``layer_blockwise_sparsity/<layer>`` only when it differs from its
    ``layer_sparsity/<layer>`` (the global blockwise series likewise); for an N:M pattern the
    figure is the fraction of N:M groups satisfied, logged as ``sparsity/nm_groups_satisfied`` and
    ``layer_nm_satisfied/<layer>`` so that 1.0 is not read as "fully pruned". Timings are params
    (:func:`timing_params`), and the cost again as metrics (:func:`cost_metrics`: ``cost/wall_s``,
    ``cost/peak_rss_mb``, ...) so a chart or a frame can put it on an axis; measured speed as
    ``speed/<key>`` (:mod:`.speed_metrics`).
    """
    ts = ts or now_ms()
    evals = task_curves(result)
    last = max([0, *(s for c in evals.values() for s in c), *result.train_loss])
    finals = {**task_finals(result), **cost_metrics(result), **speed_metrics(result)}
    out = [Metric(k, float(v), ts, last) for k, v in finals.items()]
    nm = is_nm(result)
    elementwise, blockwise = SPARSITY_KEYS[0], SPARSITY_KEYS[2]
    for key in SPARSITY_KEYS:
        curve = result.sparsity.get(key, {})
        if key != blockwise:
            out.extend(curve_metrics(f"sparsity/{key}", curve, ts))
        elif nm:
            out.extend(curve_metrics(NM_GLOBAL_KEY, curve, ts))
        elif _differs(curve, result.sparsity.get(elementwise)):
            out.extend(curve_metrics(f"sparsity/{key}", curve, ts))
    keys = layer_metric_keys(result.layer_sparsity, prefix="layer_sparsity")
    for name, curve in result.layer_sparsity.items():
        out.extend(curve_metrics(keys[name], curve, ts))
    block = result.layer_blockwise_sparsity
    shown = {n: c for n, c in block.items() if nm or _differs(c, result.layer_sparsity.get(n))}
    keys = layer_metric_keys(shown, prefix=NM_LAYER_PREFIX if nm else "layer_blockwise_sparsity")
    for name, curve in shown.items():
        out.extend(curve_metrics(keys[name], curve, ts))
    for name, curve in evals.items():
        out.extend(curve_metrics(f"eval/{name}", curve, ts))
    out.extend(curve_metrics("train/loss", result.train_loss, ts))
    return out


def timing_params(result: TrialResult) -> dict[str, str]:
    """The trial's timings as params ``time.<phase>_s`` (seconds, 3 decimals): one place, no charts."""
    return {f"time.{k}_s": f"{v:.3f}" for k, v in result.timings.items()}


def config_label(params: dict[str, Any]) -> str:
    """``4x1 snip_momentum iterative 0.80``: pattern, criterion, scheduler and effective target."""
    target = params.get("target_sparsity")
    words = [params.get("pattern"), params.get("criterion"), params.get("scheduler")]
    words.append(f"{float(target):.2f}" if target is not None else None)
    return " ".join(str(w) for w in words if w is not None)


def run_description(result: TrialResult, params: dict[str, Any]) -> str:
    """The run's description (MLflow's note): configuration, outcome and how to read its series."""
    reached = result.final_sparsity.get(SPARSITY_KEYS[0])
    lines = [
        f"**{config_label(params)}**: {result.metric} {result.value:.4f} (dense {result.dense_value:.4f}, "
        f"{'lower' if result.direction == 'minimize' else 'higher'} is better)"
        + (f", sparsity reached {reached:.3f}" if reached is not None else ""),
        "",
        "`sparsity/elementwise_over_matmul_gemm_conv`: fraction of zero weights in the prunable layers; "
        f"`layer_sparsity/<layer>`: the same per layer; `eval/{metric_name(result.metric)}`, `train/loss`: fine-tuning. "
        "Figure `sparsity_overview.png`: every layer over steps. Timings: params `time.*`.",
    ]
    if is_nm(result):
        lines.append(
            "N:M pattern: `sparsity/nm_groups_satisfied` and `layer_nm_satisfied/<layer>` are the fraction of "
            "N:M groups (M consecutive weights) holding at least N zeros. 1.0 means every group meets the "
            "pattern, not that the layer is fully pruned; a 2:4 layer at 1.0 is 50% sparse."
        )
    elif not any(_differs(c, result.layer_sparsity.get(n)) for n, c in result.layer_blockwise_sparsity.items()):
        lines.append("Block pattern: the blockwise series equal the elementwise ones here, so only those are logged.")
    return "\n".join(lines)


def write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """``rows`` as a CSV table with ``columns`` (other keys left out)."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_trial_artifacts(
    folder: Path, result: TrialResult, *, title: str = "", benchmark_params: dict[str, Any] | None = None
) -> None:
    """pruning_config.yaml, trial.yaml (what rerun needs, ``benchmark_params`` included), layers.csv,
    layer_sparsity.csv and ``sparsity_overview.png`` (every layer over steps, titled ``title``)."""
    (folder / "pruning_config.yaml").write_text(yaml.safe_dump(result.pruning_config, sort_keys=False))
    spec = {
        "benchmark": result.benchmark,
        **({"benchmark_params": dict(benchmark_params)} if benchmark_params else {}),
        "seed": result.seed,
        "params": result.params,
        "training": result.training,
        "pruning_config": result.pruning_config,
    }
    (folder / "trial.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    write_csv(
        folder / "layers.csv",
        [dict(r, shape="x".join(map(str, r.get("shape", ())))) for r in result.layers],
        ("name", "type", "shape", "pruned", "reason", "pruner"),
    )
    keys = layer_metric_keys(result.layer_sparsity, prefix="layer_sparsity")
    block = "nm_groups_satisfied" if is_nm(result) else "blockwise_sparsity"
    rows = [
        {
            "layer": name,
            "metric_key": keys[name],
            "elementwise_sparsity": curve[max(curve)] if curve else "",
            block: _last(result.layer_blockwise_sparsity.get(name)),
        }
        for name, curve in sorted(result.layer_sparsity.items())
    ]
    write_csv(folder / "layer_sparsity.csv", rows, ("layer", "metric_key", "elementwise_sparsity", block))
    from workbench.tracking.figures import plot_trial_overview  # start-up: matplotlib loads with the first figure

    plot_trial_overview(result, title=title).savefig(folder / "sparsity_overview.png")


def _last(curve: dict[int, float] | None) -> float | str:
    return curve[max(curve)] if curve else ""
