"""What one trial leaves in MLflow, as data: its params, its metrics and its artifact files.

Pure functions of a :class:`~workbench.trial.TrialResult`; :class:`~workbench.tracking.Tracker`
sends what they build. Params are the pruning dimensions of :mod:`workbench.trial.space`;
metrics are the finals and every curve (keys from :mod:`.metric_keys`); the files are the
pruning config, ``trial.yaml`` (what ``rerun`` reads), two CSV tables and the sparsity figure.

Example:
    >>> from workbench.trial import TrialResult
    >>> r = TrialResult(benchmark="b", seed=0, params={}, pruning_config={}, training={}, accuracy=0.9,
    ...                 dense_accuracy=1.0, sparsity={"elementwise_over_all": {0: 0.0, 5: 0.5}})
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

from workbench.pruner.config_check import DEFAULT_CONFIG, parse_pruning_type
from workbench.tracking.figures import plot_sparsity_curves
from workbench.tracking.metric_keys import layer_metric_keys
from workbench.trial.space import INACTIVE, PRUNING_DIMS, is_active
from workbench.trial.types import SPARSITY_KEYS, TrialResult

__all__ = ["curve_metrics", "now_ms", "result_metrics", "trial_params", "write_csv", "write_trial_artifacts"]


def trial_params(
    params: dict[str, Any], pruning_config: dict[str, Any], *, seed: int, benchmark: str
) -> dict[str, Any]:
    """The child-run params: the seven pruning knobs, seed and benchmark (+ lr when searched).

    Knobs the search space leaves out are read from the effective pruning config, so every child
    run carries all seven; a knob without effect in this trial (the decay of a one-step schedule)
    is logged as ``none``.
    """
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
    out.update(seed=seed, benchmark=benchmark)
    for key in ("lr", "requested_target_sparsity"):
        if key in params:
            out[key] = params[key]
    return out


def now_ms() -> int:
    """Now, in milliseconds since the epoch (MLflow's metric timestamps)."""
    return int(time.time() * 1000)


def curve_metrics(key: str, curve: dict[int, float], ts: int) -> Iterable[Metric]:
    """One metric per step of ``curve`` under ``key``, stamped ``ts``."""
    return (Metric(key, float(v), ts, int(s)) for s, v in sorted(curve.items()))


def result_metrics(result: TrialResult, *, ts: int | None = None) -> list[Metric]:
    """Every metric of a trial: finals, global/per-layer sparsity series, eval and loss series."""
    ts = ts or now_ms()
    last = max([0, *result.eval_accuracy, *result.train_loss])
    out = [
        Metric(k, float(v), ts, last)
        for k, v in (
            ("accuracy", result.accuracy),
            ("dense_accuracy", result.dense_accuracy),
            ("accuracy_drop", result.accuracy_drop),
        )
    ]
    for key in SPARSITY_KEYS:
        out.extend(curve_metrics(f"sparsity/{key}", result.sparsity.get(key, {}), ts))
    for prefix, curves in (
        ("layer_sparsity", result.layer_sparsity),
        ("layer_blockwise_sparsity", result.layer_blockwise_sparsity),
    ):
        keys = layer_metric_keys(curves, prefix=prefix)
        for name, curve in curves.items():
            out.extend(curve_metrics(keys[name], curve, ts))
    out.extend(curve_metrics("eval/accuracy", result.eval_accuracy, ts))
    out.extend(curve_metrics("train/loss", result.train_loss, ts))
    out.extend(Metric(f"time/{k}_seconds", float(v), ts, 0) for k, v in result.timings.items())
    return out


def write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """``rows`` as a CSV table with ``columns`` (other keys left out)."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_trial_artifacts(folder: Path, result: TrialResult) -> None:
    """pruning_config.yaml, trial.yaml (what rerun needs), layers.csv, layer_sparsity.csv, PNG."""
    (folder / "pruning_config.yaml").write_text(yaml.safe_dump(result.pruning_config, sort_keys=False))
    spec = {
        "benchmark": result.benchmark,
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
    rows = [
        {
            "layer": name,
            "metric_key": keys[name],
            "elementwise_sparsity": curve[max(curve)] if curve else "",
            "blockwise_sparsity": _last(result.layer_blockwise_sparsity.get(name)),
        }
        for name, curve in sorted(result.layer_sparsity.items())
    ]
    write_csv(
        folder / "layer_sparsity.csv", rows, ("layer", "metric_key", "elementwise_sparsity", "blockwise_sparsity")
    )
    plot_sparsity_curves(result).savefig(folder / "sparsity_curves.png")


def _last(curve: dict[int, float] | None) -> float | str:
    return curve[max(curve)] if curve else ""
