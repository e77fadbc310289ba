"""The winner out: trials keep their pruned model sparse, the front's models are registered, exported.

The codec is checked by property (any zero pattern comes back exactly); the study tests run one
3-trial study per task (module fixture) and check that the front's models come back from MLflow
with the trial's logged metric exactly (CPU), and that the others were dropped.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow.tracking import MlflowClient

from workbench.experiment import parse_experiment
from workbench.pruner import ConfigError
from workbench.trial.model_file import load_sparse_state, pack_mask, save_sparse_model, unpack_mask

from helpers.experiments import experiment

TESTS = Path(__file__).resolve().parent


@settings(max_examples=40, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=200), st.integers(1, 4))
def test_a_packed_mask_unpacks_to_itself(bits, rows):
    mask = torch.tensor(bits * rows).reshape(rows, len(bits))
    assert torch.equal(unpack_mask(pack_mask(mask), mask.shape), mask)


@settings(max_examples=25, deadline=None)
@given(st.floats(0.0, 1.0), st.integers(0, 2**31 - 1))
def test_a_sparse_model_file_gives_the_exact_state_back(tmp_path_factory, sparsity, seed):
    gen = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(33, 17), torch.nn.LayerNorm(17), torch.nn.Linear(17, 5))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(torch.rand(p.shape, generator=gen) >= sparsity)
    path = tmp_path_factory.mktemp("m") / "m.safetensors"
    size = save_sparse_model(model, path, meta={"k": [1, 2]})
    state, meta = load_sparse_state(path)
    assert meta == {"k": [1, 2]} and size == path.stat().st_size
    assert state.keys() == model.state_dict().keys()
    for name, tensor in model.state_dict().items():
        assert torch.equal(state[name], tensor), name


def test_a_sparse_file_is_smaller_than_dense_by_its_sparsity(tmp_path):
    model = torch.nn.Linear(512, 512, bias=False)
    with torch.no_grad():
        model.weight.mul_(torch.rand(model.weight.shape) >= 0.8)
    size = save_sparse_model(model, tmp_path / "m.safetensors")
    dense = 512 * 512 * 4
    assert size / dense < 0.2 + 1 / 32 + 0.02  # 20% values + 1 bit per weight (+ header)


# compressed-tensors 0.12.2 (the last release with the sparse compressors and no transformers<5 pin),
# BitmaskCompressor / Sparse24BitMaskCompressor.compress_weight("m", W): what it wrote for this W
CT_W = [
    [0.0, 1.5, 0.0, -2.0, 3.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.5, 0.0],
    [0.0, 0.0, 0.0, 0.0, 1.0, 2.0] + [0.0] * 5 + [-1.0],
]
CT_BITMASK = {"shape": [2, 12], "compressed": [1.5, -2.0, 3.0, 4.0, 0.5, 1.0, 2.0, -1.0], "bitmask": [[26, 5], [48, 8]],
              "row_offsets": [0, 5]}  # fmt: skip
CT_24 = {"shape": [[2], [12]], "compressed": [[1.5, -2.0, 3.0, 0.0, 4.0, 0.5], [0.0, 0.0, 1.0, 2.0, 0.0, -1.0]],
         "bitmask": [[90, 5], [60, 12]]}  # fmt: skip


def test_the_bitmask_layouts_are_compressed_tensors_own():
    from workbench.study.export_ct import bitmask24_compress, bitmask24_decompress, bitmask_compress, bitmask_decompress

    w = torch.tensor(CT_W)
    ours = bitmask_compress(w)
    assert {k: v.tolist() for k, v in ours.items()} == CT_BITMASK
    assert ours["bitmask"].dtype == torch.uint8 and ours["row_offsets"].dtype == torch.int64
    ours24 = bitmask24_compress(w)
    assert ours24["shape"].tolist() == CT_24["shape"] and ours24["compressed"].tolist() == CT_24["compressed"]
    # a group with fewer than two nonzeros keeps some zeros: which ones is the writer's choice (the library's
    # topk ties); both decompress to W
    theirs = {k: torch.tensor(v, dtype=torch.uint8 if k == "bitmask" else None) for k, v in CT_24.items()}
    assert torch.equal(bitmask24_decompress(theirs), w) and torch.equal(bitmask24_decompress(ours24), w)
    theirs = {k: torch.tensor(v, dtype=torch.uint8 if k == "bitmask" else None) for k, v in CT_BITMASK.items()}
    assert torch.equal(bitmask_decompress(theirs), w)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 5), st.floats(0.0, 1.0), st.integers(0, 2**31 - 1))
def test_both_bitmask_layouts_give_any_weight_of_their_pattern_back_exactly(rows, groups, sparsity, seed):
    from workbench.study.export_ct import (
        bitmask24_compress,
        bitmask24_decompress,
        bitmask_compress,
        bitmask_decompress,
        is_24_rows,
    )

    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, 4 * groups, generator=gen) * (torch.rand(rows, 4 * groups, generator=gen) >= sparsity)
    assert torch.equal(bitmask_decompress(bitmask_compress(w)), w)
    two_four = w.clone().reshape(rows, groups, 4)
    two_four.scatter_(-1, torch.rand(rows, groups, 4, generator=gen).argsort(-1)[..., :2], 0.0)
    two_four = two_four.reshape(rows, -1)
    assert is_24_rows(two_four)
    parts = bitmask24_compress(two_four)
    assert parts["compressed"].shape == (rows, 2 * groups)
    assert torch.equal(bitmask24_decompress(parts), two_four)
    if not is_24_rows(w):
        with pytest.raises(ValueError, match="is not 2:4 along its rows"):
            bitmask24_compress(w)


def test_tracking_log_model_is_validated():
    data = experiment("x", "mlp-digits", n_trials=1)
    assert parse_experiment(data).log_model == "front"
    assert parse_experiment({**data, "tracking": {"log_model": "all"}}).log_model == "all"
    with pytest.raises(ConfigError, match=r"tracking.log_model: 'best' is not allowed; allowed: none, front, all"):
        parse_experiment({**data, "tracking": {"log_model": "best"}})
    with pytest.raises(ConfigError, match=r"tracking.keep"):
        parse_experiment({**data, "tracking": {"keep": 1}})


def _run_study(folder: Path, data: dict):
    from workbench.study.run import run_study

    cwd = os.getcwd()
    os.chdir(folder)
    try:
        return run_study(
            parse_experiment(data),
            tracking_uri=f"sqlite:///{folder}/mlflow.db",
            storage=f"sqlite:///{folder}/optuna.db",
        )
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def mlp_study(tmp_path_factory):
    """A 3-trial mlp-digits study, accuracy vs sparsity (targets 0.5, 0.7, 0.9), models kept for the front."""
    folder = tmp_path_factory.mktemp("mlp")
    data = experiment("winners", "mlp-digits", n_trials=3)
    data["search_space"]["target_sparsity"] = {"low": 0.5, "high": 0.9, "step": 0.2}
    data["study"]["objectives"] = ["accuracy", "sparsity"]
    study = _run_study(folder, data)
    return folder, study, parse_experiment(data)


@pytest.mark.slow
def test_the_front_keeps_its_models_and_they_give_the_logged_metric(mlp_study):
    from workbench.study.models import front_rows, load_trial_model
    from workbench.tracking import Tracker

    folder, study, exp = mlp_study
    tracker = Tracker(f"sqlite:///{folder}/mlflow.db")
    front = {r["run_id"] for r in front_rows(study, exp)}
    assert front
    for trial in study.trials:
        run_id = trial.user_attrs["mlflow_run_id"]
        run = tracker.client.get_run(run_id)
        if run_id in front:
            model, task, _ = load_trial_model(tracker, run_id)
            assert task.evaluate(model, task.eval_batches)["accuracy"] == run.data.metrics["accuracy"]
            assert int(run.data.tags["workbench.model_bytes"]) > 0
        else:
            assert run.data.tags["workbench.model"] == "dropped: off the study's front"
            assert not MlflowClient(tracker.tracking_uri).list_artifacts(run_id, "model")


@pytest.mark.e2e
def test_no_model_is_logged_with_log_model_none(tmp_path, monkeypatch):
    from workbench.study.tracked import TrialRunner

    data = experiment("nomodel", "mlp-digits", n_trials=1)
    data["tracking"] = {"log_model": "none"}
    seen = {}

    def run(task, config, training, seed, on_eval=None, **kwargs):
        seen.update(kwargs)
        from workbench.trial import run_trial

        return run_trial(task, config, training, seed, on_eval, **kwargs)

    from workbench.study.run import run_study

    monkeypatch.chdir(tmp_path)
    study = run_study(
        parse_experiment(data), tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", runner=TrialRunner(run=run)
    )
    assert "on_model" not in seen
    run = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(study.trials[0].user_attrs["mlflow_run_id"])
    assert "workbench.model" not in run.data.tags


def test_spool_files_may_log_a_model_file():
    from workbench.tracking.spool import METHODS, dumps_entry

    assert "log_model_file" in METHODS
    assert "log_model_file" in dumps_entry("r", [("log_model_file", ("r", "/x/sparse_model.safetensors"), {})])


@pytest.mark.slow
def test_the_registry_holds_one_tagged_version_per_front_trial_that_predicts_its_outputs(mlp_study):
    import mlflow
    import numpy as np

    from workbench.study.models import front_rows, load_trial_model
    from workbench.tracking import Tracker

    folder, study, exp = mlp_study
    uri = f"sqlite:///{folder}/mlflow.db"
    tracker = Tracker(uri)
    front = {r["run_id"]: r for r in front_rows(study, exp)}
    versions = tracker.client.search_model_versions("name = 'winners'")
    assert sorted(v.tags["run_id"] for v in versions) == sorted(front)
    parent = tracker.client.get_run(study.user_attrs["mlflow_parent_run_id"])
    assert parent.data.tags["workbench.registered_model"].startswith("winners v")
    assert study.user_attrs["registered_model"] == "winners"
    from workbench.study.summary import summary_text

    text = summary_text(study, multi_objective=True, parent_url="http://ui", experiment="winners")
    assert "workbench export RUN_ID --format torch --to DIR  (the front's models: registered model 'winners')" in text
    mlflow.set_tracking_uri(uri)
    for version in versions:
        row = front[version.tags["run_id"]]
        assert {k: version.tags[k] for k in ("pattern", "criterion", "scheduler", "metric")} == {
            "pattern": "1x1",
            "criterion": "magnitude",
            "scheduler": "oneshot",
            "metric": "accuracy",
        }
        assert float(version.tags["target"]) == pytest.approx(row["target"])
        assert float(version.tags["sparsity"]) == pytest.approx(row["sparsity"], abs=1e-6)
        assert float(version.tags["accuracy"]) == row["accuracy"]
        run_tags = tracker.client.get_run(version.tags["run_id"]).data.tags  # the landing view's column
        assert run_tags["workbench.registered_model"] == f"winners v{version.version}"
        model, task, _ = load_trial_model(tracker, version.tags["run_id"])
        x = next(iter(task.eval_batches))[0][:4]
        expected = model(x).detach()
        uri_v = f"models:/winners/{version.version}"
        assert np.array_equal(mlflow.pyfunc.load_model(uri_v).predict(x.numpy()), expected.numpy())
        assert torch.equal(mlflow.pytorch.load_model(uri_v)(x), expected)


def _front_exports(folder: Path, study, exp, formats: tuple[str, ...]) -> list[tuple[str, str, dict, Path]]:
    """Export every front trial of ``study`` in every format of ``formats``: (run id, format, meta, folder)."""
    import workbench
    from workbench.study.models import front_rows

    out = []
    for row in front_rows(study, exp):
        for fmt in formats:
            to = folder / "exports" / f"{row['run_id']}-{fmt}"
            meta = workbench.export(row["run_id"], fmt, to, tracking_uri=f"sqlite:///{folder}/mlflow.db")
            out.append((row["run_id"], fmt, meta, to))
    return out


@pytest.mark.slow
def test_every_front_trial_exports_as_torch_and_reloads_to_its_logged_metric(mlp_study):
    from safetensors.torch import load_file

    from workbench.study.models import task_of_run
    from workbench.tracking import Tracker

    folder, study, exp = mlp_study
    tracker = Tracker(f"sqlite:///{folder}/mlflow.db")
    exports = _front_exports(folder, study, exp, ("torch",))
    assert exports
    for run_id, _, meta, to in exports:
        assert sorted(p.name for p in to.iterdir()) == [
            "README.md",
            "export.json",
            "masks.safetensors",
            "model.safetensors",
            "pruning_config.yaml",
            "trial.yaml",
        ]
        task, _, run = task_of_run(tracker, run_id)
        model = task.build_model()
        model.load_state_dict(load_file(str(to / "model.safetensors")))
        assert task.evaluate(model, task.eval_batches)["accuracy"] == run.data.metrics["accuracy"]
        masks = load_file(str(to / "masks.safetensors"))
        assert all(torch.equal(model.state_dict()[k] != 0, m) for k, m in masks.items()) and masks
        assert meta["verified"] == {
            "outputs_equal": True,
            "metric": "accuracy",
            "value": run.data.metrics["accuracy"],
            "logged_value": run.data.metrics["accuracy"],
            "metric_equal": True,
            "check": "outputs equal, metric equal",
        }
        assert meta["run_id"] == run_id and meta["study"] == "winners" and meta["config"]["benchmark"] == "mlp-digits"
        own = ("export.json", "README.md")  # written after the size is measured
        assert meta["sizes"]["export_bytes"] == sum(p.stat().st_size for p in to.iterdir() if p.name not in own)
        assert meta["source"] == "logged model"


@pytest.mark.slow
def test_export_bad_input_exits_2_with_one_line(mlp_study, tmp_path):
    import subprocess
    import sys

    from workbench.study.models import front_rows

    from helpers.study import search_env

    folder, study, exp = mlp_study
    run_id = front_rows(study, exp)[0]["run_id"]
    uri = f"sqlite:///{folder}/mlflow.db"
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    cases = {
        "unknown run": (["0" * 32, "--format", "torch", "--to", str(tmp_path / "a")], "run_id: no run"),
        "hf on an MLP": ([run_id, "--format", "hf", "--to", str(tmp_path / "b")], "format: 'hf' does not apply"),
        "compressed-tensors on an MLP": (
            [run_id, "--format", "compressed-tensors", "--to", str(tmp_path / "d")],
            "format: 'compressed-tensors' does not apply to run",
        ),
        "unknown format": ([run_id, "--format", "onnx", "--to", str(tmp_path / "c")], "format: 'onnx' is not allowed"),
        "non-empty folder": ([run_id, "--format", "torch", "--to", str(full)], "exists and is not an empty folder"),
    }
    for case, (args, message) in cases.items():
        done = subprocess.run(
            [sys.executable, "-m", "workbench", "-q", "export", *args, "--tracking-uri", uri],
            env=search_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 2, (case, done.stderr)
        assert done.stderr.count("\n") == 1 and message in done.stderr, (case, done.stderr)
    assert not any((tmp_path / name).exists() for name in "abd") and sorted(full.iterdir()) == [full / "x"]


@pytest.mark.slow
def test_a_dropped_model_is_exported_by_re_running_its_trial(mlp_study, tmp_path):
    import workbench
    from workbench.pruner import ConfigError as Bad

    folder, study, exp = mlp_study
    uri = f"sqlite:///{folder}/mlflow.db"
    client = MlflowClient(uri)
    dropped = [
        t.user_attrs["mlflow_run_id"]
        for t in study.trials
        if client.get_run(t.user_attrs["mlflow_run_id"]).data.tags.get("workbench.model", "").startswith("dropped")
    ]
    if not dropped:
        pytest.skip("every trial of this study is on the front")
    with pytest.raises(Bad, match="has no logged model.*add --rerun"):
        workbench.export(dropped[0], "torch", tmp_path / "no", tracking_uri=uri)
    meta = workbench.export(dropped[0], "torch", tmp_path / "yes", tracking_uri=uri, rerun=True)
    assert meta["source"] == "re-run" and meta["rerun_seconds"] > 0 and meta["verified"]["metric_equal"]


HF_FAMILIES = [("tiny_text", "accuracy"), ("tiny_lm", "perplexity")]
HF_PATTERNS = ["1x1", "4x1", "2:4"]


@pytest.fixture(scope="module", params=HF_FAMILIES, ids=[f[0] for f in HF_FAMILIES])
def hf_study(request, tmp_path_factory):
    """A 3-trial study on a tiny random BERT classifier / GPT-2 (tests/family_plugins.py), metric vs sparsity:
    one trial per pattern of :data:`HF_PATTERNS` at 0.5, every trial's model kept (``log_model: all``)."""
    pytest.importorskip("transformers", reason="the [hf] extra (transformers) is not installed")
    pytest.importorskip("datasets", reason="the [hf] extra (datasets) is not installed")
    plugin, metric = request.param
    folder = tmp_path_factory.mktemp(plugin)
    data = {
        "name": plugin,
        "benchmark": f"family_plugins:{plugin}",
        "training": {"steps": 12, "lr": 0.001, "optimizer": "adamw", "eval_every": 6, "pruning_frequency": 3},
        "search_space": {
            "pattern": HF_PATTERNS,
            "criterion": ["magnitude"],
            "scheduler": ["iterative"],
            "target_sparsity": 0.5,
        },
        "study": {"n_trials": 3, "sampler": "grid", "objectives": [metric, "sparsity"], "pruner": "none", "seed": 0},
        "tracking": {"log_model": "all"},
    }
    study = _run_study(folder, data)  # the task says its direction (perplexity: minimize)
    return folder, study, dataclasses.replace(parse_experiment(data), direction=study.user_attrs["direction"])


def _check_provenance(meta: dict, to: Path, tracker, run_id: str) -> None:
    """export.json and README.md name the run, the study, the commit and the config (the run's trial.yaml)."""
    import json

    run = tracker.client.get_run(run_id)
    spec, _ = tracker.trial_spec(run_id)
    assert json.loads((to / "export.json").read_text()) == json.loads(json.dumps(meta, default=str))
    assert meta["run_id"] == run_id and meta["config"] == spec
    assert meta["study"] == run.data.tags["optuna.study_name"] and meta["run_name"] == run.info.run_name
    assert meta["commit"] == run.data.tags.get("workbench.git_commit")
    assert meta["benchmark"] == run.data.params["benchmark"] and meta["task"] == spec["benchmark"]
    assert meta["benchmark"].startswith("family_plugins:")  # the spec the study ran, not the task's name
    readme = (to / "README.md").read_text()
    for fact in (run_id, f"study: `{meta['study']}`", f"commit: `{meta['commit']}`", meta["benchmark"], "trial.yaml"):
        assert str(fact) in readme, (fact, readme)


@pytest.mark.slow
def test_hf_trials_export_in_every_format_reload_to_the_logged_metric_with_provenance(hf_study):
    import mlflow
    import numpy as np
    import transformers

    from workbench.study.models import front_rows, load_trial_model
    from workbench.tracking import Tracker
    from workbench.tracking.mlflow_model import model_input, servable

    folder, study, exp = hf_study
    uri = f"sqlite:///{folder}/mlflow.db"
    tracker = Tracker(uri)
    front = front_rows(study, exp)
    versions = tracker.client.search_model_versions(f"name = '{exp.study_name}'")
    assert sorted(v.tags["run_id"] for v in versions) == sorted(r["run_id"] for r in front)
    exports = _front_exports(folder, study, exp, ("torch", "hf", "slim"))
    assert len(exports) == 3 * len(front)
    for run_id, fmt, meta, to in exports:
        logged = tracker.client.get_run(run_id).data.metrics[exp.metric]
        _check_provenance(meta, to, tracker, run_id)
        if fmt == "slim":  # slimming reorders sums: outputs and metric close, and checked on the exported module
            assert meta["verified"]["outputs_equal"] and meta["speed"]["slim_params"] <= meta["speed"]["dense_params"]
            assert meta["verified"]["value"] == pytest.approx(logged, rel=1e-4)
            continue
        assert meta["verified"]["metric_equal"] and meta["verified"]["value"] == logged, (fmt, meta["verified"])
        if fmt == "hf":
            config = transformers.AutoConfig.from_pretrained(to)
            auto = (
                transformers.AutoModelForCausalLM
                if exp.metric == "perplexity"
                else transformers.AutoModelForSequenceClassification
            )
            _, task, _ = load_trial_model(tracker, run_id)
            reloaded = auto.from_pretrained(to, config=config).eval()
            assert task.evaluate(reloaded, task.eval_batches)[exp.metric] == logged
    mlflow.set_tracking_uri(uri)
    for version in versions:
        model, task, _ = load_trial_model(tracker, version.tags["run_id"])
        x, fields = model_input(next(iter(task.eval_batches)))
        expected = servable(model, fields)(x).detach()
        got = mlflow.pyfunc.load_model(f"models:/{exp.study_name}/{version.version}").predict(x.numpy())
        assert np.array_equal(got, expected.numpy())


@pytest.mark.slow
def test_hf_trials_export_as_compressed_tensors_reload_with_transformers_to_the_logged_metric(hf_study):
    import json

    import workbench
    from workbench.study.export_ct import load_compressed_tensors
    from workbench.study.models import load_trial_model
    from workbench.tracking import Tracker

    folder, study, exp = hf_study
    uri = f"sqlite:///{folder}/mlflow.db"
    tracker = Tracker(uri)
    seen = set()
    for trial in study.trials:
        run_id, pattern = trial.user_attrs["mlflow_run_id"], trial.params["pattern"]
        to = folder / "ct" / run_id
        meta = workbench.export(run_id, "compressed-tensors", to, tracking_uri=uri)
        _check_provenance(meta, to, tracker, run_id)
        logged = tracker.client.get_run(run_id).data.metrics[exp.metric]
        assert meta["verified"]["metric_equal"] and meta["verified"]["value"] == logged
        layout = meta["compression"]["format"]
        # BERT's Linear weights are [out, in]: 2:4 along their rows; GPT-2's Conv1D stores [in, out]
        want = "sparse-24-bitmask" if pattern == "2:4" and exp.metric == "accuracy" else "sparse-bitmask"
        assert layout == want, (pattern, meta["compression"])
        ct = json.loads((to / "config.json").read_text())["quantization_config"]
        assert ct["quant_method"] == "compressed-tensors" and ct["sparsity_config"]["format"] == layout
        assert ct["sparsity_config"]["sparsity_structure"] == (
            "2:4" if layout == "sparse-24-bitmask" else "unstructured"
        )
        assert meta["compression"]["compressed_tensors"] >= 8  # every pruned attention / FFN weight of 2 layers
        assert meta["sizes"]["export_bytes"] < meta["sizes"]["dense_fp32_bytes"]
        model, task, _ = load_trial_model(tracker, run_id)
        reloaded = load_compressed_tensors(to)  # the class config.json names, from transformers
        assert type(reloaded) is type(model)
        assert task.evaluate(reloaded, task.eval_batches)[exp.metric] == logged
        for name, tensor in model.state_dict().items():
            assert torch.equal(reloaded.state_dict()[name], tensor), name
        seen.add(pattern)
    assert seen == set(HF_PATTERNS)


@pytest.mark.slow
def test_a_slim_export_whose_metric_cannot_be_checked_is_refused_and_leaves_nothing(hf_study, monkeypatch):
    import workbench
    import workbench.study.export as export_module
    from workbench.pruner import ConfigError as Bad

    folder, study, exp = hf_study
    if exp.metric != "perplexity":
        pytest.skip("a classifier's accuracy needs only the logits, which the exported program gives")
    run_id = study.trials[0].user_attrs["mlflow_run_id"]
    monkeypatch.setattr(export_module, "hf_loss", lambda model: None)  # the program's loss unknown
    to = folder / "slim-unchecked"
    with pytest.raises(Bad, match=r"format: 'slim' cannot be checked on run .*perplexity cannot be computed"):
        workbench.export(run_id, "slim", to, tracking_uri=f"sqlite:///{folder}/mlflow.db")
    assert not to.exists() and not list(folder.glob(".slim-unchecked-*"))


@pytest.mark.slow
def test_the_slim_export_loads_without_the_workbench_and_records_its_speed(mlp_study):
    import subprocess
    import sys

    folder, study, exp = mlp_study
    ((run_id, _, meta, to),) = _front_exports(folder, study, exp, ("slim",))[:1]
    assert meta["verified"]["outputs_equal"] and meta["verified"]["metric_equal"]
    speed = meta["speed"]
    assert speed["slim_params"] <= speed["dense_params"] and speed["param_ratio"] == pytest.approx(
        speed["slim_params"] / speed["dense_params"]
    )
    assert speed["dense_ms"] > 0 and speed["slim_ms"] > 0
    code = (
        "import sys, torch; sys.modules['workbench'] = None; "
        f"m = torch.export.load({str(to / 'model.pt2')!r}).module(); print(tuple(m(torch.zeros(3, 64)).shape))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=folder)
    assert done.returncode == 0 and done.stdout.strip() == "(3, 10)", done.stderr
