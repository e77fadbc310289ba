"""The extension contract, end to end: registrations in ONE user module reach the whole workbench.

``tests/plugins/toy_pruner_plugin.py`` registers two pattern families that subclass no built-in
one (``stripeK``: a block shape and the generic defaults; ``NofM``: N of every M output rows, its
own units, a fixed sparsity N/M in a syntax without ``":"`` and no post-training form), a criterion
(``toy_square``), a scheduler (``toy_staircase``), a decay (``toy_sqrt``), a pruner type
(``toy_counting``) and a regulariser (``toy_shrink``), and nothing else is edited. An experiment
that names it under ``plugins:`` validates with them, ``workbench run`` and a 2-trial
``workbench search`` prune with them, and MLflow records them. Each command runs in its own
process, so the registrations never leak into other tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = Path(__file__).resolve().parent / "plugins"

TOY = {
    "pattern": "stripe2",
    "criterion": "toy_square",
    "scheduler": "toy_staircase",
    "pruner": "toy_counting",
    "sparsity_decay_type": "toy_sqrt",
}

pytestmark = pytest.mark.slow


def _experiment(folder: Path, *, plugins: bool = True, **space) -> Path:
    data = {
        "name": "toy",
        **({"plugins": ["toy_pruner_plugin"]} if plugins else {}),
        "benchmark": "mlp-digits",
        "training": {"steps": 40, "eval_every": 20, "pruning_frequency": 5, "threads": 1},
        "pruning": {"reg_type": "toy_shrink", "parameters": {"reg_coeff": 0.001}},
        "search_space": {
            **{k: [v] for k, v in TOY.items()},
            "target_sparsity": {"low": 0.5, "high": 0.6, "step": 0.1},
            **space,
        },
        "study": {"n_trials": 2, "sampler": "grid", "seed": 0},
    }
    path = folder / "toy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _workbench(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(PLUGINS), str(ROOT)]), WORKBENCH_CACHE_DIR=str(folder / "cache")
    )
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("WORKBENCH_STORAGE", None)
    return subprocess.run(
        [sys.executable, "-m", "workbench", "-q", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _finished(folder: Path):
    """The study (two complete trials), the MLflow client and the three finished trial runs (the
    ``workbench run``, then the study's two)."""
    study = optuna.load_study(study_name="toy", storage=f"sqlite:///{folder}/optuna.db")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    client = MlflowClient(f"sqlite:///{folder}/mlflow.db")
    exp_id = client.get_experiment_by_name("toy").experiment_id
    trials = [r for r in client.search_runs([exp_id]) if "workbench.study" not in r.data.tags]
    assert len(trials) == 3 and all(run.info.status == "FINISHED" for run in trials)
    return study, client, trials


@pytest.mark.parametrize(
    "key, value, listed",
    [
        ("criterion", "nope", "toy_square"),
        ("scheduler", "nope", "toy_staircase"),
        ("pruner", "nope", "toy_counting"),
        ("sparsity_decay_type", "nope", "toy_sqrt"),
        ("pattern", "nope", "stripeK"),
    ],
)
def test_validation_lists_the_plugins_registrations_among_the_allowed_values(tmp_path, key, value, listed):
    _experiment(tmp_path, **{key: [value]})
    done = _workbench(tmp_path, "run", "toy.yaml")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: search_space.{key}") and listed in lines[0], lines


def test_without_the_plugin_its_names_are_unknown(tmp_path):
    _experiment(tmp_path, plugins=False)
    done = _workbench(tmp_path, "run", "toy.yaml")
    assert done.returncode == 2 and "stripe2" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_plugin_that_cannot_be_imported_is_one_line_naming_it(tmp_path):
    path = _experiment(tmp_path)
    path.write_text(path.read_text().replace("toy_pruner_plugin", "no_such_plugin_module"))
    done = _workbench(tmp_path, "run", "toy.yaml")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "plugins[0]" in done.stderr and "no_such_plugin_module" in done.stderr


def test_run_and_search_prune_with_every_registered_extension_and_mlflow_records_them(tmp_path):
    _experiment(tmp_path)
    done = _workbench(tmp_path, "run", "toy.yaml", "--set", "target_sparsity=0.5")
    assert done.returncode == 0, done.stderr
    done = _workbench(tmp_path, "search", "toy.yaml")
    assert done.returncode == 0, done.stderr

    study, client, trials = _finished(tmp_path)
    assert sorted(t.params["target_sparsity"] for t in study.trials) == [0.5, 0.6]
    for run in trials:
        assert run.info.status == "FINISHED"
        assert {k: run.data.params[k] for k in TOY} == TOY
        assert run.data.tags["workbench.plugins"] == "toy_pruner_plugin"
        target = float(run.data.params["target_sparsity"])
        reached = run.data.metrics["sparsity/elementwise_over_matmul_gemm_conv"]
        assert abs(reached - target) < 0.02, (target, reached)  # the toy pruner reached its target
        config = yaml.safe_load(
            Path(client.download_artifacts(run.info.run_id, "pruning_config.yaml", str(tmp_path))).read_text()
        )
        assert config["scheduler"] == "toy_staircase" and config["pruning_type"] == "toy_square_counted"
        assert config["reg_type"] == "toy_shrink" and config["sparsity_decay_type"] == "toy_sqrt"


def test_a_family_of_its_own_units_runs_searches_and_post_training_refuses_it_by_its_declaration(tmp_path):
    """``NofM`` is not a subclass of a built-in family. Its spec states the effective target (the
    target capped at N/M) and that its blockwise figure counts satisfied groups; its family
    declares no post-training form, so a post-training criterion is refused naming the family."""
    most = {"2of4": 0.5, "1of4": 0.25}
    _experiment(tmp_path, pattern=list(most), target_sparsity=0.8)
    done = _workbench(tmp_path, "run", "toy.yaml")
    assert done.returncode == 0, done.stderr
    done = _workbench(tmp_path, "search", "toy.yaml")
    assert done.returncode == 0, done.stderr

    study, _, trials = _finished(tmp_path)
    assert sorted(t.params["pattern"] for t in study.trials) == sorted(most)
    for run in trials:
        target = most[run.data.params["pattern"]]
        assert float(run.data.params["target_sparsity"]) == target  # the effective target, from the spec
        metrics = run.data.metrics
        assert abs(metrics["sparsity/elementwise_over_matmul_gemm_conv"] - target) < 0.02, metrics
        assert metrics["sparsity/nm_groups_satisfied"] == 1.0  # every group holds N zeros
        assert any(k.startswith("layer_nm_satisfied/") for k in metrics)
        assert not any(k.startswith(("layer_blockwise_sparsity/", "sparsity/blockwise")) for k in metrics)

    _experiment(tmp_path, pattern=["2of4"], criterion=["wanda"])
    done = _workbench(tmp_path, "run", "toy.yaml")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "'2of4' (family 'NofM') is not supported by post-training pruning" in done.stderr
