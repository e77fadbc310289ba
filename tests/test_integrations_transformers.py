"""``PruningCallback``: an unchanged ``transformers.Trainer`` prunes a tiny BERT to the target and logs it."""

from __future__ import annotations

import logging
import sys

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="the [hf] extra (transformers) is not installed")
pytest.importorskip("accelerate", reason="the [hf] extra (accelerate, which Trainer needs) is not installed")

from workbench.integrations import PruningCallback  # noqa: E402
from workbench.integrations.transformers import STATE_FILE  # noqa: E402
from workbench.pruner import ConfigError, WeightPruningConfig, get_sparsity_ratio  # noqa: E402

from helpers.hf_tiny import BERT_CONFIG, sentiment_splits, tiny_tokenizer  # noqa: E402

STEPS = 40


class Encoded(torch.utils.data.Dataset):
    """Tokenised sentences as the dict items a Trainer collates."""

    def __init__(self, rows: dict[str, list]) -> None:
        tok = tiny_tokenizer()
        self.enc = tok(rows["sentence"], padding="max_length", max_length=12, truncation=True, return_tensors="pt")
        self.labels = torch.tensor(rows["label"])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.enc["input_ids"][i],
            "attention_mask": self.enc["attention_mask"][i],
            "labels": self.labels[i],
        }


class Recorder(transformers.TrainerCallback):
    """Stands for a reporting integration (MLflow's): records what each on_log call received."""

    def __init__(self) -> None:
        self.logs: list[dict] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append(dict(logs or {}))


def trainer_with(callbacks, tmp_path, *, report_to_mlflow: bool = False, **args) -> transformers.Trainer:
    torch.manual_seed(0)
    tok = tiny_tokenizer()
    config = transformers.AutoConfig.for_model(**{**BERT_CONFIG, "vocab_size": tok.vocab_size}, num_labels=2)
    model = transformers.AutoModelForSequenceClassification.from_config(config)
    splits = sentiment_splits(train=64, validation=16)
    arguments = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=STEPS,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        logging_steps=5,
        report_to=["mlflow"] if report_to_mlflow else [],
        use_cpu=True,
        disable_tqdm=True,
        **{"save_strategy": "no", **args},
    )
    return transformers.Trainer(
        model=model,
        args=arguments,
        train_dataset=Encoded(splits["train"]),
        eval_dataset=Encoded(splits["validation"]),
        callbacks=callbacks,
    )


@pytest.mark.parametrize(
    "schedule",
    [
        {"pruning_scope": "global", "start_step": 10, "end_step": 10},  # oneshot at step 10
        {"start_step": 5, "end_step": 25, "pruning_frequency": 5},  # iterative, local
    ],
    ids=["oneshot", "iterative"],
)
def test_an_unchanged_trainer_prunes_to_the_target_and_logs_it(schedule, tmp_path):
    config = WeightPruningConfig(target_sparsity=0.5, pattern="4x1", pruning_type="magnitude", **schedule)
    callback, recorder = PruningCallback(config), Recorder()
    trainer = trainer_with([recorder, callback], tmp_path, eval_strategy="steps", eval_steps=20)
    trainer.train()
    pruning = callback.pruning
    assert pruning is not None and pruning.global_step == STEPS
    elementwise, _, blockwise = get_sparsity_ratio(pruning.pruners, trainer.model)
    assert elementwise == pytest.approx(0.5, abs=0.02) and blockwise == pytest.approx(0.5, abs=0.02)
    assert "classifier" not in pruning.pruners[0].modules  # the head is kept dense
    history = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(history) == STEPS // 5
    curve = [entry["sparsity"] for entry in history]
    assert curve[0] < 0.05 and curve[-1] == pytest.approx(elementwise)  # the curve rises to the target
    assert curve == sorted(curve)
    assert any(key.startswith("layer_sparsity/bert.encoder.layer.0.") for key in history[-1])
    # the callback moved before the "reporting" recorder, which therefore saw the keys too
    assert [entry.get("sparsity") for entry in recorder.logs if "loss" in entry] == curve
    evals = [entry for entry in trainer.state.log_history if "eval_loss" in entry]
    assert evals and all("sparsity" in entry for entry in evals)


def test_the_trainers_reporting_callbacks_run_after_it(tmp_path):
    callback = PruningCallback(WeightPruningConfig(target_sparsity=0.5, pattern="4x1", start_step=0, end_step=0))
    trainer = trainer_with([Recorder(), callback], tmp_path)
    names = [type(cb).__name__ for cb in trainer.callback_handler.callbacks]
    assert names.index("PruningCallback") < names.index("Recorder")
    assert names.index("DefaultFlowCallback") < names.index("PruningCallback")


def test_a_bad_config_fails_when_the_callback_is_made():
    with pytest.raises(ConfigError, match="target_sparsity"):
        PruningCallback({"target_sparsity": 1.5})


def test_without_transformers_the_callback_names_the_extra(monkeypatch):
    import workbench.integrations as package

    monkeypatch.setattr(package, "transformers", sys.modules["workbench.integrations.transformers"], raising=False)
    monkeypatch.setitem(sys.modules, "transformers", None)
    monkeypatch.delitem(sys.modules, "workbench.integrations.transformers")
    import workbench.integrations.transformers as module  # reimported without transformers

    with pytest.raises(ConfigError) as err:
        module.PruningCallback({"target_sparsity": 0.5})
    assert "\n" not in str(err.value) and "pip install -e '.[hf]'" in str(err.value)


@pytest.mark.slow
def test_the_trainers_mlflow_integration_records_the_sparsity(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "callback")
    config = WeightPruningConfig(target_sparsity=0.5, pattern="4x1", start_step=10, end_step=10)
    trainer = trainer_with([PruningCallback(config, per_layer=False)], tmp_path, report_to_mlflow=True)
    trainer.train()
    runs = mlflow.search_runs(experiment_names=["callback"], output_format="list")
    client = mlflow.MlflowClient()
    history = client.get_metric_history(runs[0].info.run_id, "sparsity")
    assert [m.value for m in sorted(history, key=lambda m: m.step)][-1] == pytest.approx(0.5, abs=0.02)
    assert min(m.value for m in history) < 0.05  # the curve, not only the final value


def test_a_resumed_run_continues_the_pruning_schedule(tmp_path):
    def config():
        return WeightPruningConfig(target_sparsity=0.5, pattern="4x1", start_step=5, end_step=30, pruning_frequency=5)

    first = PruningCallback(config())
    trainer = trainer_with([first], tmp_path, save_strategy="steps", save_steps=20)
    trainer.train()
    assert (tmp_path / "checkpoint-20" / STATE_FILE).is_file()
    saved = torch.load(tmp_path / "checkpoint-20" / STATE_FILE, weights_only=True)
    assert saved["pruners"][0]["global_step"] == 20
    resumed = PruningCallback(config())
    again = trainer_with([resumed], tmp_path, save_strategy="no")
    again.train(resume_from_checkpoint=str(tmp_path / "checkpoint-20"))
    assert resumed.pruning.global_step == STEPS  # 20 restored + 20 run, not 20 from zero
    assert resumed.pruning.mask_updates == first.pruning.mask_updates
    ours = get_sparsity_ratio(resumed.pruning.pruners, again.model)[0]
    assert (
        ours
        == pytest.approx(get_sparsity_ratio(first.pruning.pruners, trainer.model)[0])
        == pytest.approx(0.5, abs=0.02)
    )
    for name, mask in first.pruning.pruners[0].pruned.items():
        assert torch.equal(resumed.pruning.pruners[0].pruned[name], mask)  # the same data order, the same masks


def _resume_config():
    return WeightPruningConfig(target_sparsity=0.8, pattern="4x1", start_step=4, end_step=24, pruning_frequency=4)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """A run saved at step 8 (folder A) and trained to the end: the reference a resume must match."""
    folder = tmp_path_factory.mktemp("A")
    callback = PruningCallback(_resume_config())
    trainer = trainer_with([callback], folder, save_strategy="steps", save_steps=8)
    trainer.train()
    return folder, callback, trainer


def test_a_resume_from_another_folder_gives_the_masks_and_weights_of_the_uninterrupted_run(uninterrupted, tmp_path):
    folder, first, trainer = uninterrupted
    resumed = PruningCallback(_resume_config())
    again = trainer_with([resumed], tmp_path / "B", save_strategy="no")  # another output_dir
    again.train(resume_from_checkpoint=str(folder / "checkpoint-8"))
    assert resumed.pruning.global_step == STEPS and resumed.pruning.mask_updates == first.pruning.mask_updates
    for name, mask in first.pruning.pruners[0].pruned.items():
        assert torch.equal(resumed.pruning.pruners[0].pruned[name], mask)
    theirs = dict(trainer.model.named_parameters())
    for name, weight in again.model.named_parameters():
        torch.testing.assert_close(weight, theirs[name], rtol=0, atol=1e-6)
    assert get_sparsity_ratio(resumed.pruning.pruners, again.model)[0] == pytest.approx(0.8, abs=0.02)


def test_a_resume_without_the_pruners_state_is_an_error_unless_the_schedule_restarts(uninterrupted, tmp_path, caplog):
    import shutil

    folder, _, _ = uninterrupted
    bare = tmp_path / "bare" / "checkpoint-8"
    shutil.copytree(folder / "checkpoint-8", bare)
    (bare / STATE_FILE).unlink()
    with pytest.raises(
        ConfigError, match=r"training resumes at step 8 but no pruner state was found .*restart_schedule=True"
    ):
        trainer_with([PruningCallback(_resume_config())], tmp_path / "B").train(resume_from_checkpoint=str(bare))
    afresh = PruningCallback(_resume_config(), restart_schedule=True)
    with caplog.at_level(logging.WARNING, logger="workbench.integrations.transformers"):
        trainer_with([afresh], tmp_path / "C").train(resume_from_checkpoint=str(bare))
    assert "restart_schedule=True, so the pruning schedule starts afresh" in caplog.text
    assert afresh.pruning.global_step == STEPS - 8  # the schedule counted from 0 again
