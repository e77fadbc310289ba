"""A pruner that selects no layer is an error naming the pruner and why each layer was left out."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState
from torch import nn

from workbench.experiment import parse_experiment
from workbench.pruner import ConfigError, WeightPruningConfig, prepare_pruning
from workbench.study.run import run_study

from helpers.experiments import experiment
from helpers.pruner import MLP


@pytest.mark.parametrize(
    "model, pruning_configs, expected",
    [
        (
            MLP(),
            [{"op_names": ["nomatch.*"]}],
            ["op_names ['nomatch.*']", "'fc1' (Linear [32, 16]): not matched by op_names"],
        ),
        (
            MLP(),
            [{"excluded_op_names": ["fc"]}],
            ["excluded_op_names ['fc']", "'fc2' (Linear [32, 32]): excluded by excluded_op_names 'fc'"],
        ),
        (nn.Sequential(nn.Linear(4, 2)), [{}], ["'0' (Linear [2, 4]): classifier head"]),
        (nn.Sequential(nn.LayerNorm(4)), [{}], ["'0' (LayerNorm [4]): not a prunable type"]),
        (nn.Sequential(nn.ReLU()), [{}], ["candidate layers: none: the model has no module with a weight"]),
        (MLP(), [{"pattern": "5x1"}], ["'fc2' (Linear [32, 32]): 2-D weight view 32x32 is not divisible"]),
        (
            MLP(),
            [{"op_names": ["fc"]}, {"op_names": ["fc2"]}],
            ["pruner 1", "'fc2' (Linear [32, 32]): taken by pruner 0"],
        ),
    ],
    ids=["op_names", "excluded", "only_head", "no_prunable_type", "no_weights", "shape", "taken"],
)
def test_a_pruner_selecting_nothing_names_itself_and_every_reason(model, pruning_configs, expected):
    config = WeightPruningConfig(pruning_configs, target_sparsity=0.5, pruning_type="magnitude", pattern="4x1")
    with pytest.raises(ConfigError) as err:
        prepare_pruning(model, config)
    message = str(err.value)
    index = len(pruning_configs) - 1
    assert message.startswith(f"pruning_configs[{index}]: pruner {index} (pruning_type 'magnitude'")
    assert "selects no layer to prune" in message and isinstance(err.value, ValueError)
    for part in expected:
        assert part in message


def test_a_pruner_selecting_a_layer_raises_nothing():
    config = WeightPruningConfig([{"op_names": ["fc1"]}], target_sparsity=0.5, pruning_type="magnitude")
    pruning = prepare_pruning(MLP(), config)
    assert [info.name for info in pruning.describe() if info.pruned] == ["fc1"]


@pytest.mark.e2e
def test_in_a_study_the_trial_fails_with_that_reason(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = experiment("empty", "mlp-digits", n_trials=1, steps=4)
    data["pruning"] = {"op_names": ["no_such_layer"]}
    study = run_study(parse_experiment(data), tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    (trial,) = study.trials
    assert trial.state == TrialState.FAIL
    reason = trial.user_attrs["failure_reason"]
    assert "selects no layer to prune" in reason and "op_names ['no_such_layer']" in reason
    assert "not matched by op_names" in reason
