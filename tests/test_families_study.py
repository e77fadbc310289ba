"""A 2-trial ``workbench search`` on each task family at test size (``tests/family_plugins.py``).

Each study runs in its own process with ``tests/`` on the path, fine-tunes the family's tiny model
(dense baseline trained once by the family's recipe, then cached), and must log the task's
metric, the per-layer sparsity curves and the parent run's trials table and Pareto figure.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from helpers.study import search_env

pytestmark = pytest.mark.slow

FAMILIES = [("tiny_text", "accuracy", True), ("tiny_lm", "perplexity", True), ("tiny_vision", "accuracy", False)]


def _experiment(folder: Path, plugin: str, metric: str) -> dict:
    data = {
        "name": plugin,
        "benchmark": f"family_plugins:{plugin}",
        "training": {"steps": 30, "lr": 0.001, "optimizer": "adamw", "eval_every": 10, "pruning_frequency": 5},
        "search_space": {
            "pattern": ["4x1"],
            "criterion": ["magnitude"],
            "scheduler": ["iterative"],
            "target_sparsity": {"low": 0.5, "high": 0.6, "step": 0.1},
        },
        "study": {"n_trials": 2, "sampler": "grid", "objectives": [metric, "sparsity"], "pruner": "none", "seed": 0},
    }
    (folder / "family.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return data


@pytest.mark.parametrize("plugin, metric, needs_hf", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_a_two_trial_study_on_each_family_logs_its_metric_curves_and_front(tmp_path, plugin, metric, needs_hf):
    if needs_hf:
        pytest.importorskip("transformers", reason="the [hf] extra (transformers) is not installed")
    _experiment(tmp_path, plugin, metric)
    done = subprocess.run(
        [sys.executable, "-m", "workbench", "-q", "search", "family.yaml"],
        cwd=tmp_path,
        env=search_env(WORKBENCH_CACHE_DIR=str(tmp_path / "cache")),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    study = optuna.load_study(study_name=plugin, storage=f"sqlite:///{tmp_path}/optuna.db")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name(plugin).experiment_id])
    parents = [r for r in runs if "workbench.study" in r.data.tags]
    trials = [r for r in runs if "workbench.study" not in r.data.tags]
    assert len(parents) == 1 and len(trials) == 2
    for run in trials:
        metrics = run.data.metrics
        assert run.info.status == "FINISHED" and metric in metrics
        target, reached = (
            float(run.data.params["target_sparsity"]),
            metrics["sparsity/elementwise_over_matmul_gemm_conv"],
        )
        assert abs(reached - target) < 0.03, (target, reached)
        layers = [k for k in metrics if k.startswith("layer_sparsity/")]
        assert layers and len(client.get_metric_history(run.info.run_id, layers[0])) > 1  # a curve, not a value
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert "trials.csv" in artifacts and any(p.endswith("_vs_sparsity.png") for p in artifacts), artifacts
