"""Experiment files: the YAML schema, its validation, and ``--set`` overrides.

Owns :class:`Experiment` (what a study searches and how it trains) and turning a user's YAML
into one, with a :class:`~workbench.pruner.ConfigError` naming the key, the value and what is
allowed. The allowed values come from the registries (:mod:`workbench.trial.space`). May import
:mod:`workbench.trial`, :mod:`workbench.pruner` and :mod:`workbench.infra`; knows nothing of
Optuna or MLflow.
"""

from workbench.experiment.objectives import with_task
from workbench.experiment.overrides import apply_overrides
from workbench.experiment.schema import Experiment, FloatRange, StudySettings, load_experiment, parse_experiment
from workbench.trial.space import effective_params

__all__ = [
    "Experiment",
    "FloatRange",
    "StudySettings",
    "apply_overrides",
    "effective_params",
    "load_experiment",
    "parse_experiment",
    "with_task",
]
