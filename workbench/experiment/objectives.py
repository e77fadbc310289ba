"""``study.objectives`` and ``benchmark_params``: what a study optimises, and how its task is built.

A study optimises its task's metric (``Task.metric``: accuracy for the built-in benchmarks,
perplexity for a causal language model), alone, against the sparsity reached, or against the
measured speed-up of the slimmed model: ``study.objectives`` is ``[<metric>]``,
``[<metric>, sparsity]`` or ``[<metric>, speedup]``. Which way the metric is better
(``Task.direction``) comes from the task too; sparsity and speed-up are always maximised. Without
the key, the study optimises the task's metric alone. ``speedup`` needs the trial to measure
speed: :func:`with_speed` turns ``training.measure_speed`` on (an explicit ``false`` is an error).

The file is parsed without building the task (:func:`parse_objectives` checks the shape); once the
task is built, :func:`with_task` fills in the metric and direction and rejects an objective that
names another metric than the task's.

Example:
    >>> parse_objectives(["perplexity", "sparsity"])
    ('perplexity', 'sparsity')
    >>> with_task_objectives((), "perplexity")
    ('perplexity',)
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from workbench.benchmarks.direction import check_direction
from workbench.experiment.dims import fail, mapping

Training = TypeVar("Training")
"""A :class:`workbench.trial.types.TrainingConfig` (a dataclass with ``measure_speed``)."""
Experiment = TypeVar("Experiment")
"""A :class:`workbench.experiment.Experiment` (not imported: the schema imports this module)."""

__all__ = [
    "SECOND_OBJECTIVES",
    "parse_benchmark_params",
    "parse_objectives",
    "with_speed",
    "with_task",
    "with_task_objectives",
]

SECOND_OBJECTIVES = ("sparsity", "speedup")
"""What a study may optimise beside the task's metric (both maximised)."""
_ALLOWED = (
    "[<metric>], [<metric>, sparsity] or [<metric>, speedup], "
    "<metric> being the task's metric (accuracy for the built-in benchmarks)"
)


def parse_objectives(raw: Any) -> tuple[str, ...]:
    """``study.objectives`` as read from the file: ``()`` when absent (the task's metric)."""
    if raw is None:
        return ()
    ok = isinstance(raw, list) and len(raw) in (1, 2) and all(isinstance(v, str) and v.strip() for v in raw)
    if not ok or raw[0] in SECOND_OBJECTIVES or (len(raw) == 2 and raw[1] not in SECOND_OBJECTIVES):
        raise fail("study.objectives", f"{raw!r} is not allowed; allowed: {_ALLOWED}")
    return tuple(raw)


def with_task_objectives(objectives: tuple[str, ...], metric: str) -> tuple[str, ...]:
    """``objectives`` for a task optimising ``metric``: ``(metric,)`` when none were given.

    Raises:
        ConfigError: An objective names another metric than the task's.
    """
    if not objectives:
        return (metric,)
    if objectives[0] != metric:
        allowed = f"[{metric}], [{metric}, sparsity] or [{metric}, speedup] (the task's metric is {metric!r})"
        raise fail("study.objectives", f"{list(objectives)!r} is not allowed; allowed: {allowed}")
    return objectives


def with_speed(training: Training, objectives: tuple[str, ...], raw: Any) -> Training:
    """``training`` with ``measure_speed`` on when ``objectives`` hold ``speedup``.

    ``raw`` is the file's ``training`` section (or ``None``): an explicit ``measure_speed: false``
    beside a ``speedup`` objective is refused.

    Raises:
        ConfigError: ``training.measure_speed`` is false while ``study.objectives`` holds speedup.
    """
    if "speedup" not in objectives:
        return training
    if isinstance(raw, dict) and raw.get("measure_speed") is False:
        raise fail(
            "training.measure_speed",
            "false is not allowed with study.objectives [<metric>, speedup]; allowed: true (or leave it out)",
        )
    return dataclasses.replace(training, measure_speed=True)


def with_task(experiment: Experiment, metric: str, direction: str) -> Experiment:
    """``experiment`` with its objectives and direction those of a task optimising ``metric``.

    Raises:
        ConfigError: ``study.objectives`` names another metric, or ``direction`` is unknown.
    """
    check_direction(direction)
    study = dataclasses.replace(experiment.study, objectives=with_task_objectives(experiment.study.objectives, metric))
    return dataclasses.replace(experiment, study=study, direction=direction)


def parse_benchmark_params(raw: Any) -> dict[str, Any]:
    """``benchmark_params:``: a mapping of keyword arguments for the benchmark function (``{}`` when absent)."""
    params = mapping(raw, "benchmark_params")
    for key in params:
        if not isinstance(key, str) or not key.isidentifier():
            raise fail(f"benchmark_params.{key}", "expected a keyword argument name (a Python identifier)")
    return dict(params)
