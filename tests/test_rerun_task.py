"""``workbench rerun`` builds exactly the task the trial trained: the spec the study ran, not ``trial.yaml``'s name.

``trial.yaml`` records the built task's *name* (``two-blobs`` for ``plugin_bench:named_blobs``,
``hf-text-classification`` for ``family_plugins:tiny_text``); a rerun that built the task from it
ran another task (or none), without the trial's ``benchmark_params``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from workbench.cli import main

QUICK = Path(__file__).resolve().parent.parent / "experiments" / "quick.yaml"


@pytest.mark.slow
def test_a_rerun_builds_the_plugin_task_with_its_params_not_trial_yamls_task_name(tmp_path, monkeypatch, capsys):
    from workbench.study.models import task_of_run
    from workbench.tracking import Tracker

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/runs.db"
    data = yaml.safe_load(QUICK.read_text())
    data.update(benchmark="plugin_bench:named_blobs", benchmark_params={"width": 12})
    data["training"].update(steps=10, eval_every=5)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["run", str(path), "--tracking-uri", uri]) == 0
    client = MlflowClient(uri)
    (source,) = client.search_runs([client.get_experiment_by_name(data["name"]).experiment_id])
    spec, _ = Tracker(uri).trial_spec(source.info.run_id)
    assert spec["benchmark"] == "two-blobs" and spec["benchmark_params"] == {"width": 12}  # the name, not the spec
    task, _, _ = task_of_run(Tracker(uri), source.info.run_id)
    assert task.name == "two-blobs" and task.build_model()[0].out_features == 12  # the spec, with its params
    capsys.readouterr()
    assert main(["rerun", source.info.run_id, "--tracking-uri", uri]) == 0
    assert "reproduced exactly" in capsys.readouterr().out
    (rerun,) = client.search_runs([source.info.experiment_id], f"tags.`workbench.rerun_of` = '{source.info.run_id}'")
    assert rerun.data.params["benchmark"] == "plugin_bench:named_blobs"
    assert rerun.data.params["benchmark.width"] == "12"
    assert rerun.data.metrics["accuracy"] == source.data.metrics["accuracy"]
