"""Issue 16's "done when": one study on the hf-causal-lm tiny test configuration searches
magnitude, snip_momentum, wanda and sparsegpt together and logs all of them comparably.

The study runs in its own process with ``tests/`` on the path (``family_plugins:tiny_lm``, a
2-layer GPT-2 and synthetic text): a grid over the four criteria at one pattern and target, so
each criterion is one trial. Every trial must be COMPLETE with the task's metric (perplexity),
reach the target sparsity, and carry its wall time and peak memory; the parent run holds the
trials table, the metric-vs-sparsity figure and the cost figure and table.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from helpers.study import search_env

CRITERIA = ["magnitude", "snip_momentum", "wanda", "sparsegpt"]

pytestmark = pytest.mark.slow


def _experiment(folder: Path) -> None:
    data = {
        "name": "tiny-lm-posttraining",
        "benchmark": "family_plugins:tiny_lm",
        "training": {
            "steps": 20,
            "lr": 0.001,
            "optimizer": "adamw",
            "eval_every": 10,
            "pruning_frequency": 5,
            "calibration_samples": 16,
            "calibration_seq_len": 6,
            "finetune_steps": 4,
        },
        "search_space": {"pattern": ["1x1"], "criterion": CRITERIA, "scheduler": ["iterative"], "target_sparsity": 0.5},
        "study": {"n_trials": 4, "sampler": "grid", "objectives": ["perplexity", "sparsity"], "seed": 0},
    }
    (folder / "study.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def test_one_study_compares_training_aware_and_post_training_criteria(tmp_path):
    pytest.importorskip("transformers", reason="the [hf] extra (transformers) is not installed")
    _experiment(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "workbench", "-q", "search", "study.yaml"],
        cwd=tmp_path,
        env=search_env(WORKBENCH_CACHE_DIR=str(tmp_path / "cache")),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    study = optuna.load_study(study_name="tiny-lm-posttraining", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert sorted(t.params["criterion"] for t in study.trials) == sorted(CRITERIA)
    assert {t.state.name for t in study.trials} == {"COMPLETE"}
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("tiny-lm-posttraining").experiment_id])
    parent = next(r for r in runs if "workbench.study" in r.data.tags)
    trials = {r.data.params["criterion"]: r for r in runs if "workbench.study" not in r.data.tags}
    assert sorted(trials) == sorted(CRITERIA)
    for criterion, run in trials.items():
        metrics, params = run.data.metrics, run.data.params
        assert run.info.status == "FINISHED", criterion
        assert metrics["perplexity"] == metrics["perplexity"] and metrics["perplexity"] > 1.0, criterion
        reached = metrics["sparsity/elementwise_over_matmul_gemm_conv"]
        assert abs(reached - 0.5) < 0.03, (criterion, reached)
        assert any(k.startswith("layer_sparsity/") for k in metrics), criterion
        assert metrics["cost/wall_s"] > 0 and metrics["cost/peak_rss_mb"] > 0, criterion
        assert float(params["time.total_s"]) > 0, criterion
        post = criterion in ("wanda", "sparsegpt")
        assert (params["scheduler"] == "none") == post, (criterion, params["scheduler"])
        assert ("cost/prune_s" in metrics) == post, criterion
    folder = Path(client.download_artifacts(parent.info.run_id, "", str(tmp_path / "parent")))
    names = {p.name for p in folder.iterdir()}
    assert {"trials.csv", "perplexity_vs_sparsity.png", "perplexity_vs_cost.png", "cost_by_criterion.csv"} <= names
    with (folder / "cost_by_criterion.csv").open() as handle:
        cost = {row["criterion"]: row for row in csv.DictReader(handle)}
    assert sorted(cost) == sorted(CRITERIA)
    assert {c for c, row in cost.items() if row["posttraining"] == "True"} == {"wanda", "sparsegpt"}
    assert all(float(row["median_peak_memory_mb"]) > 0 and float(row["median_wall_s"]) > 0 for row in cost.values())
