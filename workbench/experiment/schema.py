"""The experiment YAML: schema, validation and the points a trial runs.

An experiment file says which benchmark to fine-tune, how (``training``), which pruning keys are
fixed (``pruning``), what the study searches (``search_space``) and how (``study``). The full
schema is in ``docs/experiment-schema.md``. Files are read as safe YAML only (bounded in size, no repeated keys), and every
mistake is a ``ValueError`` whose message starts with the dotted key (``study.sampler: ...``) and
names the bad value and the allowed ones; the CLI turns it into exit status 2.

Infeasible combinations are handled by the search space, not by crashing: an N:M pattern cannot
prune more than N/M of the weights, so a study samples its ``target_sparsity`` only up to N/M
(:func:`workbench.study.factories.suggest_params`); a target above N/M (the grid sampler, ``--set``) is clipped to N/M
(see :func:`workbench.trial.space.effective_params`). The sampled value stays in Optuna; the clipped value is what the
trial prunes to and what MLflow shows as ``target_sparsity`` (the sampled one goes to
``requested_target_sparsity``).

Example:
    >>> exp = parse_experiment({
    ...     "name": "demo", "benchmark": "mlp-digits",
    ...     "search_space": {"pattern": ["4x1", "2:4"], "criterion": "magnitude",
    ...                      "scheduler": "oneshot", "target_sparsity": {"low": 0.5, "high": 0.9}},
    ... })
    >>> exp.study.n_trials, exp.searched_dims()
    (20, ['pattern', 'target_sparsity'])
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.experiment.dims import (
    MAX_GRID_VALUES,
    FloatRange,
    check_choice,
    check_keys,
    check_posttraining_space,
    check_seed,
    fail,
    mapping,
    number,
    parse_categorical,
    parse_range,
)
from workbench.experiment.objectives import parse_benchmark_params, parse_objectives, with_speed
from workbench.infra.plugins import import_plugins
from workbench.pruner.errors import ConfigError
from workbench.pruner.yaml_read import read_yaml_file
from workbench.trial.posttraining_config import POSTTRAINING_KEY, check_posttraining_options
from workbench.trial.space import RANGE_DIMS, REQUIRED_DIMS, SEARCH_DIMS
from workbench.trial.types import TrainingConfig

__all__ = [
    "LOG_MODEL",
    "Experiment",
    "FloatRange",
    "StudySettings",
    "check_choice",
    "load_experiment",
    "parse_experiment",
    "parse_range",
    "parse_training",
]

SAMPLERS = ("tpe", "random", "nsga2", "grid")
STUDY_PRUNERS = ("median", "hyperband", "none")
_TOP_KEYS = (
    "name",
    "description",
    "plugins",
    "benchmark",
    "benchmark_params",
    "training",
    "pruning",
    "search_space",
    "study",
    "tracking",
)
LOG_MODEL = ("none", "front", "all")
"""Allowed ``tracking.log_model``: which trials keep their pruned model (docs/export.md)."""
DEFAULT_LOG_MODEL = "front"


@dataclass(frozen=True)
class StudySettings:
    """How the study searches: trial budget, sampler, objectives, early stopping and seed.

    ``objectives`` is ``(metric,)``, ``(metric, "sparsity")`` or ``(metric, "speedup")``; empty until the task is known
    (:func:`workbench.experiment.objectives.with_task` fills in the task's metric).
    """

    n_trials: int = 20
    sampler: str = "tpe"
    objectives: tuple[str, ...] = ()
    pruner: str = "none"
    seed: int = 0
    study_name: str | None = None
    seeds: tuple[int, ...] = ()
    """Seeds every sampled configuration is trained with (explicit repeats); empty: ``(seed,)``."""
    sweep_target: bool = False
    """Train every sampled configuration at every target of ``search_space.target_sparsity``'s grid
    (up to N/M for an N:M pattern), so every compared pattern is at the same sparsities."""

    @property
    def trial_seeds(self) -> tuple[int, ...]:
        """The trial seeds: ``seeds`` when given, else ``(seed,)``."""
        return self.seeds or (self.seed,)


@dataclass(frozen=True)
class Experiment:
    """A validated experiment file.

    ``search_space`` maps each dimension to a list of choices (categorical dims) or a
    :class:`FloatRange`; dimensions absent from the file are absent here. ``pruning`` holds the
    fixed INC keys given to every trial. Every sampled configuration is trained once per seed of
    ``study.trial_seeds`` (``study.seeds``, else ``study.seed``).
    """

    name: str
    benchmark: str
    training: TrainingConfig = field(default_factory=TrainingConfig)
    pruning: dict[str, Any] = field(default_factory=dict)
    search_space: dict[str, Any] = field(default_factory=dict)
    study: StudySettings = field(default_factory=StudySettings)
    description: str = ""
    plugins: tuple[str, ...] = ()
    """Modules imported before validation (their registrations: patterns, criteria, ...)."""
    benchmark_params: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the benchmark (task) function: ``get_benchmark(benchmark, **benchmark_params)``."""
    log_model: str = DEFAULT_LOG_MODEL
    """``tracking.log_model``: ``none``, ``front`` (every completed trial logs its sparse model; those
    off the final front are dropped when the study ends) or ``all`` (kept)."""
    direction: str = "maximize"
    """Which way the task's metric is better (not a key of the file: set from the task by ``with_task``)."""

    @property
    def study_name(self) -> str:
        """The Optuna study name (``study.study_name``, else the experiment ``name``)."""
        return self.study.study_name or self.name

    @property
    def metric(self) -> str:
        """The task's metric the study optimises (``study.objectives[0]``; accuracy before the task is known)."""
        return self.study.objectives[0] if self.study.objectives else "accuracy"

    @property
    def multi_objective(self) -> bool:
        return len(self.study.objectives) > 1

    def searched_dims(self) -> list[str]:
        """Dimensions with more than one possible value (the ones Optuna samples)."""
        return [
            k
            for k, v in self.search_space.items()
            if (isinstance(v, FloatRange) and v.high > v.low) or (isinstance(v, list) and len(v) > 1)
        ]

    def default_point(self) -> dict[str, Any]:
        """The point ``workbench run`` uses: first choice of each list, midpoint of each range."""
        return {k: v.midpoint() if isinstance(v, FloatRange) else v[0] for k, v in self.search_space.items()}


def parse_training(raw: Any) -> TrainingConfig:
    section = mapping(raw, "training")
    fields = {f.name: f for f in dataclasses.fields(TrainingConfig)}
    check_keys(section, tuple(fields), "training.")
    # YAML integers are fine where a float is expected (lr: 1 is 1.0); TrainingConfig checks the rest
    # (an integer beyond float range stays an int, which TrainingConfig rejects by name)
    values = {
        key: float(value)
        if isinstance(fields[key].default, float) and type(value) is int and abs(value) < 1e308
        else value
        for key, value in section.items()
    }
    return TrainingConfig(**values)


def _parse_study(raw: Any) -> StudySettings:
    section = mapping(raw, "study")
    check_keys(section, tuple(f.name for f in dataclasses.fields(StudySettings)), "study.")
    n_trials = int(number(section.get("n_trials", 20), "study.n_trials", integer=True))
    if n_trials < 1:
        raise fail("study.n_trials", f"must be >= 1, got {n_trials}")
    seed = check_seed(section.get("seed", 0), "study.seed")
    sampler, pruner = section.get("sampler", "tpe"), section.get("pruner", "none")
    if sampler not in SAMPLERS:
        raise fail("study.sampler", f"{sampler!r} is not allowed; allowed: {', '.join(SAMPLERS)}")
    if pruner not in STUDY_PRUNERS:
        raise fail("study.pruner", f"{pruner!r} is not allowed; allowed: {', '.join(STUDY_PRUNERS)}")
    objectives = parse_objectives(section.get("objectives"))
    if len(objectives) > 1 and pruner != "none":
        raise fail(
            "study.pruner",
            f"{pruner!r} needs a single objective; Optuna's pruners do not "
            f"support multi-objective studies (use pruner: none)",
        )
    seeds = _parse_seeds(section.get("seeds"))
    study_name = section.get("study_name")
    if study_name is not None and (not isinstance(study_name, str) or not study_name.strip()):
        raise fail("study.study_name", f"expected a non-empty string, got {study_name!r}")
    sweep_target = section.get("sweep_target", False)
    if not isinstance(sweep_target, bool):
        raise fail("study.sweep_target", f"{sweep_target!r} is not allowed; allowed: true, false")
    return StudySettings(n_trials, sampler, tuple(objectives), pruner, seed, study_name, seeds, sweep_target)


def _check_sweep(target: Any, sampler: str) -> None:
    """``study.sweep_target: true`` needs a stepped ``target_sparsity`` range and a sampler that does not walk a grid."""
    if sampler == "grid":
        raise fail(
            "study.sweep_target",
            "true is not allowed with sampler grid (the grid already trains every target); allowed: false, "
            "or sampler tpe, random or nsga2",
        )
    if not (isinstance(target, FloatRange) and target.step is not None and target.high > target.low):
        shown: Any = target
        if isinstance(target, FloatRange):
            shown = target.low if target.high == target.low else {"low": target.low, "high": target.high}
        raise fail(
            "study.sweep_target",
            f"true needs search_space.target_sparsity as a range with a step (the targets swept), got {shown!r}; "
            "allowed: {low: 0.5, high: 0.9, step: 0.1}",
        )


def _parse_seeds(raw: Any) -> tuple[int, ...]:
    """``study.seeds``: a non-empty list of distinct integers (or absent)."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw or not all(isinstance(s, int) and not isinstance(s, bool) for s in raw):
        raise fail("study.seeds", f"expected a non-empty list of integers, got {raw!r}")
    for i, seed in enumerate(raw):
        check_seed(seed, f"study.seeds[{i}]")
    if len(set(raw)) != len(raw):
        raise fail("study.seeds", f"seeds must be distinct, got {raw!r}")
    return tuple(raw)


def parse_experiment(data: Any, *, source: str = "experiment") -> Experiment:
    """Validate a loaded experiment mapping; ``ValueError`` names the first bad key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a YAML mapping at the top level, got {type(data).__name__}")
    check_keys(data, _TOP_KEYS, "")
    plugins = _parse_plugins(data.get("plugins"))
    for key in ("name", "benchmark", "search_space"):
        if key not in data:
            raise fail(key, "missing; an experiment needs name, benchmark and search_space")
    for key in ("name", "benchmark"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise fail(key, f"expected a non-empty string, got {data[key]!r}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise fail("description", f"expected a string, got {description!r}")
    space_raw = mapping(data["search_space"], "search_space")
    check_keys(space_raw, SEARCH_DIMS, "search_space.")
    for dim in REQUIRED_DIMS:
        if dim not in space_raw:
            raise fail(f"search_space.{dim}", f"missing; the core dimensions are {', '.join(REQUIRED_DIMS)}")
    # what needs no registry first: a mistake there is reported before torch loads (the pattern
    # families, criteria and schedulers the search space is checked against are torch modules)
    study = _parse_study(data.get("study"))
    training = with_speed(parse_training(data.get("training")), study.objectives, data.get("training"))
    benchmark_params = parse_benchmark_params(data.get("benchmark_params"))
    pruning = mapping(data.get("pruning"), "pruning")
    space = {
        dim: (parse_range if dim in RANGE_DIMS else parse_categorical)(dim, raw, f"search_space.{dim}")
        for dim, raw in space_raw.items()
    }
    if POSTTRAINING_KEY in pruning:  # the post-training options' values, before any trial runs
        check_posttraining_options(pruning[POSTTRAINING_KEY])
    check_posttraining_space(space, pruning.get(POSTTRAINING_KEY))
    for key in pruning:
        if key in space:
            raise fail(f"pruning.{key}", "is also a search_space dimension; set it in one place only")
    if study.sampler == "grid":
        for dim, value in space.items():
            if isinstance(value, FloatRange) and value.high > value.low and value.step is None:
                raise fail(f"search_space.{dim}.step", "required by sampler grid (a range needs a step)")
        points = math.prod(len(v.grid()) if isinstance(v, FloatRange) else len(v) for v in space.values())
        if points > MAX_GRID_VALUES:
            raise fail(
                "study.sampler", f"grid over {points} points; allowed: at most {MAX_GRID_VALUES} (coarser steps)"
            )
    if study.sweep_target:
        _check_sweep(space.get("target_sparsity"), study.sampler)
    return Experiment(
        log_model=_parse_tracking(data.get("tracking")),
        name=data["name"],
        benchmark=data["benchmark"],
        training=training,
        pruning=dict(pruning),
        search_space=space,
        study=study,
        description=description,
        plugins=plugins,
        benchmark_params=benchmark_params,
    )


def _parse_tracking(raw: Any) -> str:
    """``tracking.log_model`` (the only key of ``tracking``); default :data:`DEFAULT_LOG_MODEL`."""
    tracking = mapping(raw, "tracking")
    check_keys(tracking, ("log_model",), "tracking.")
    value = tracking.get("log_model", DEFAULT_LOG_MODEL)
    if value not in LOG_MODEL:
        raise fail("tracking.log_model", f"{value!r} is not allowed; allowed: {', '.join(LOG_MODEL)}")
    return value


def _parse_plugins(raw: Any) -> tuple[str, ...]:
    """``plugins:``: a list of module names, imported now so validation sees their registrations."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(m, str) and m.strip() for m in raw):
        raise fail("plugins", f"expected a list of module names, got {raw!r}")
    import_plugins(raw)
    return tuple(m.strip() for m in raw)


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment file (safe YAML only, bounded: see ``workbench.pruner.yaml_read``).

    Example:
        >>> load_experiment("experiments/quick.yaml").benchmark  # doctest: +SKIP
        'mlp-digits'
    """
    data = read_yaml_file(path, "experiment")
    return parse_experiment(data, source=str(path))
