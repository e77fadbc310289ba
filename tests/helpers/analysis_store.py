"""A small hand-made MLflow store in the layout tracking.py writes, with known values (analysis tests)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from workbench.tracking.metric_keys import layer_metric_keys

LAYERS = ("enc.0.fc1", "head:out")  # the second is mapped by metric_keys to "head_out"
T0 = 1_700_000_000_000  # ms

# trial number -> (params, finals, status, series)
TRIALS: dict[int, dict[str, Any]] = {
    0: {
        "params": {"pattern": "4x1", "criterion": "magnitude", "scheduler": "oneshot", "target_sparsity": "0.5"},
        "finals": {"accuracy": 0.9, "dense_accuracy": 0.95, "accuracy_drop": 0.05},
        "status": "FINISHED",
        "state": "COMPLETE",
        "global": {0: 0.0, 10: 0.5, 20: 0.5},
        "layers": {"enc.0.fc1": {0: 0.0, 10: 0.6, 20: 0.6}, "head:out": {0: 0.0, 10: 0.2, 20: 0.2}},
        "blocks": {"enc.0.fc1": {0: 0.0, 10: 0.55, 20: 0.55}, "head:out": {0: 0.0, 10: 0.1, 20: 0.1}},
        "eval": {10: 0.8, 20: 0.9},
    },
    1: {
        "params": {"pattern": "2:4", "criterion": "snip_momentum", "scheduler": "iterative", "target_sparsity": "0.7"},
        "finals": {"accuracy": 0.8, "dense_accuracy": 0.95, "accuracy_drop": 0.15},
        "status": "FINISHED",
        "state": "COMPLETE",
        "global": {0: 0.0, 10: 0.35, 20: 0.7},
        "layers": {"enc.0.fc1": {0: 0.0, 10: 0.4, 20: 0.8}},
        "blocks": {"enc.0.fc1": {0: 0.0, 10: 0.3, 20: 0.75}},
        "eval": {10: 0.7, 20: 0.8},
    },
    2: {
        "params": {"pattern": "1x1", "criterion": "magnitude", "scheduler": "iterative", "target_sparsity": "0.9"},
        "finals": {},
        "status": "KILLED",
        "state": "PRUNED",
        "global": {},
        "layers": {},
        "blocks": {},
        "eval": {10: 0.3},
    },
}
COMMON = {
    "pruner": "basic",
    "pruning_scope": "global",
    "sparsity_decay_type": "exp",
    "seed": "0",
    "benchmark": "mlp-digits",
    "training.steps": "20",
}


def _metrics(spec: dict[str, Any]) -> list[Metric]:
    out = [Metric(k, v, T0, 20) for k, v in spec["finals"].items()]
    out += [Metric("sparsity/elementwise_over_matmul_gemm_conv", v, T0, s) for s, v in spec["global"].items()]
    out += [Metric("sparsity/elementwise_over_all", v / 2, T0, s) for s, v in spec["global"].items()]
    for prefix, curves in (("layer_sparsity", spec["layers"]), ("layer_blockwise_sparsity", spec["blocks"])):
        keys = layer_metric_keys(curves, prefix=prefix)
        out += [Metric(keys[name], v, T0, s) for name, curve in curves.items() for s, v in curve.items()]
    out += [Metric("eval/accuracy", v, T0, s) for s, v in spec["eval"].items()]
    return out


def _run(
    client: MlflowClient,
    exp_id: str,
    *,
    name: str,
    start: int,
    tags: dict[str, str],
    params: dict[str, str],
    metrics: list[Metric],
    status: str,
) -> str:
    run_id = client.create_run(exp_id, start_time=start, tags=tags, run_name=name).info.run_id
    client.log_batch(run_id, metrics=metrics, params=[Param(k, v) for k, v in params.items()])
    client.set_terminated(run_id, status=status, end_time=start + 1000)
    return run_id


_TEMPLATE: list[Path] = []


def empty_store(path: Path) -> str:
    """A fresh MLflow SQLite store at ``path`` (a copy of one migrated once per process: seconds saved)."""
    if not _TEMPLATE:
        folder = Path(tempfile.mkdtemp(prefix="mlflow-template-"))
        atexit.register(shutil.rmtree, folder, True)
        MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").search_experiments()  # runs the migrations
        _TEMPLATE.append(folder / "mlflow.db")
    shutil.copyfile(_TEMPLATE[0], path)
    return f"sqlite:///{path}"


def make_store(folder: Path, *, storage: str = "sqlite:///optuna.db") -> tuple[str, dict[str, str]]:
    """Build the store ``folder/mlflow.db``; returns (tracking URI, {label: run_id})."""
    uri = empty_store(folder / "mlflow.db")
    client = MlflowClient(uri)
    artifacts = (folder / "artifacts").as_uri()  # never MLflow's default ./mlruns in the cwd
    older = client.create_experiment("older", artifact_location=f"{artifacts}/older")
    _run(
        client,
        older,
        name="old-study",
        start=T0 - 10_000,
        tags={"workbench.study": "old", "workbench.kind": "study"},
        params={},
        metrics=[],
        status="FINISHED",
    )
    exp = client.create_experiment("demo", artifact_location=f"{artifacts}/demo")
    ids = {
        "parent": _run(
            client,
            exp,
            name="demo-study",
            start=T0,
            tags={"workbench.study": "demo-study", "workbench.kind": "study", "optuna.study_name": "demo-study"},
            params={"storage": storage},
            metrics=[],
            status="FINISHED",
        )
    }
    for number, spec in TRIALS.items():
        tags = {
            "workbench.kind": "trial",
            "mlflow.parentRunId": ids["parent"],
            "optuna.trial_number": str(number),
            "optuna.study_name": "demo-study",
            "workbench.trial_state": spec["state"],
        }
        ids[f"trial{number}"] = _run(
            client,
            exp,
            name=f"trial-{number}",
            start=T0 + 1000 * (number + 1),
            tags=tags,
            params={**spec["params"], **COMMON},
            metrics=_metrics(spec),
            status=spec["status"],
        )
    # a standalone `workbench run` of trial 0's config with another seed
    spec = dict(TRIALS[0], finals={"accuracy": 0.8, "dense_accuracy": 0.95, "accuracy_drop": 0.15})
    ids["run"] = _run(
        client,
        exp,
        name="run-4x1-magnitude",
        start=T0 + 10_000,
        tags={"workbench.kind": "trial", "workbench.source": "run"},
        params={**spec["params"], **COMMON, "seed": "1"},
        metrics=_metrics(spec),
        status="FINISHED",
    )
    return uri, ids
