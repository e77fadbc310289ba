"""Small ones of issue 29, point 8: an empty layer, a path as a plug-in, full-disk reports."""

from __future__ import annotations

import logging

import pytest
from torch import nn

from workbench.experiment import parse_experiment
from workbench.infra.diskfull import quiet_disk_full_reports
from workbench.pruner import ConfigError, prepare_pruning


@pytest.mark.parametrize("pattern", ["4x1", "2:4", "1x1", "1xchannel"])
def test_a_layer_with_no_weights_is_skipped_with_a_reason(pattern):
    model = nn.Sequential(nn.Linear(0, 8), nn.ReLU(), nn.Linear(8, 8), nn.Linear(8, 2))
    config = {"pruning_configs": [{}], "pattern": pattern, "target_sparsity": 0.5, "start_step": 0, "end_step": 0}
    config["pruning_type"] = "magnitude"
    pruning = prepare_pruning(model, config)
    pruning.on_train_begin()
    pruning.on_step_begin(0)
    pruning.on_after_optimizer_step()
    info = {i.name: i for i in pruning.describe()}
    assert not info["0"].pruned and info["0"].reason == "no weights (empty weight of shape [8, 0])"
    assert info["2"].pruned and float((model[2].weight == 0).float().mean()) == pytest.approx(0.5)


@pytest.mark.parametrize("name", ["../evil", "./mod", ".relative", "a/b", "my-module", "mod.py/x"])
def test_a_plugin_that_is_not_a_module_name_is_refused_by_name(name):
    data = {"name": "x", "benchmark": "mlp-digits", "plugins": [name], "search_space": {}}
    with pytest.raises(ConfigError) as err:
        parse_experiment(data)
    assert str(err.value).startswith(f"plugins[0]: {name!r} is not a module name; allowed: a dotted Python module")
    assert not isinstance(err.value, TypeError) and "package" not in str(err.value)


def test_a_library_report_of_a_full_disk_is_silenced_and_others_are_not(caplog):
    quiet_disk_full_reports()
    quiet_disk_full_reports()  # idempotent
    logger = logging.getLogger("mlflow.store.db.utils")
    assert len(logger.filters) == 1
    with caplog.at_level(logging.ERROR, logger="mlflow.store.db.utils"):
        try:
            raise OSError(28, "No space left on device")
        except OSError:
            logger.exception("SQLAlchemy database error. The following exception is caught.")
        logger.error("(sqlite3.OperationalError) database or disk is full")
        logger.error("a different error")
    assert [r.getMessage() for r in caplog.records] == ["a different error"]
