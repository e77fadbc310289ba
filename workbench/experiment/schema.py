"""The experiment YAML: schema, validation and the points a trial runs.

An experiment file says which benchmark to fine-tune, how (``training``), which pruning keys are
fixed (``pruning``), what the study searches (``search_space``) and how (``study``). The full
schema is in ``docs/experiment-schema.md``. Files are read with ``yaml.safe_load`` only, and every
mistake is a ``ValueError`` whose message starts with the dotted key (``study.sampler: ...``) and
names the bad value and the allowed ones; the CLI turns it into exit status 2.

Infeasible combinations are handled by the search space, not by crashing: an N:M pattern cannot
prune more than N/M of the weights, so a sampled ``target_sparsity`` above N/M is clipped to N/M
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

import yaml

from workbench.infra.plugins import import_plugins
from workbench.pruner import ConfigError, did_you_mean, parse_pattern
from workbench.trial import TrainingConfig
from workbench.trial.space import RANGE_DIMS, REQUIRED_DIMS, SEARCH_DIMS, allowed_values

__all__ = ["Experiment", "FloatRange", "StudySettings", "check_choice", "load_experiment", "parse_experiment",
           "parse_range", "parse_training"]

SAMPLERS = ("tpe", "random", "nsga2", "grid")
STUDY_PRUNERS = ("median", "hyperband", "none")
OBJECTIVES = (["accuracy"], ["accuracy", "sparsity"])
_TOP_KEYS = ("name", "description", "plugins", "benchmark", "training", "pruning", "search_space", "study")


@dataclass(frozen=True)
class FloatRange:
    """A float dimension: ``low <= value <= high``, on a ``step`` grid or a ``log`` scale."""

    low: float
    high: float
    step: float | None = None
    log: bool = False

    def grid(self) -> list[float]:
        """Every value of a stepped range (the grid sampler needs them)."""
        count = int(math.floor((self.high - self.low) / self.step + 1e-9)) if self.step else 0
        return [round(self.low + i * self.step, 10) for i in range(count + 1)] if self.step else [self.low]

    def midpoint(self) -> float:
        """The middle of the range (geometric on a log scale), snapped to the step grid."""
        mid = math.sqrt(self.low * self.high) if self.log else (self.low + self.high) / 2
        if self.step:
            mid = min(self.grid(), key=lambda v: abs(v - mid))
        return mid


@dataclass(frozen=True)
class StudySettings:
    """How the study searches: trial budget, sampler, objectives, early stopping and seed."""

    n_trials: int = 20
    sampler: str = "tpe"
    objectives: tuple[str, ...] = ("accuracy",)
    pruner: str = "none"
    seed: int = 0
    study_name: str | None = None


@dataclass(frozen=True)
class Experiment:
    """A validated experiment file.

    ``search_space`` maps each dimension to a list of choices (categorical dims) or a
    :class:`FloatRange`; dimensions absent from the file are absent here. ``pruning`` holds the
    fixed INC keys given to every trial. The trial seed is ``study.seed`` for every trial, so two
    trials differ only by their sampled configuration.
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

    @property
    def study_name(self) -> str:
        """The Optuna study name (``study.study_name``, else the experiment ``name``)."""
        return self.study.study_name or self.name

    @property
    def multi_objective(self) -> bool:
        return len(self.study.objectives) > 1

    def searched_dims(self) -> list[str]:
        """Dimensions with more than one possible value (the ones Optuna samples)."""
        return [k for k, v in self.search_space.items()
                if (isinstance(v, FloatRange) and v.high > v.low) or (isinstance(v, list) and len(v) > 1)]

    def default_point(self) -> dict[str, Any]:
        """The point ``workbench run`` uses: first choice of each list, midpoint of each range."""
        return {k: v.midpoint() if isinstance(v, FloatRange) else v[0] for k, v in self.search_space.items()}


def _fail(key: str, message: str) -> ConfigError:
    return ConfigError(f"{key}: {message}")


def _check_keys(section: dict, allowed: tuple[str, ...], where: str) -> None:
    for key in section:
        if key not in allowed:
            raise _fail(f"{where}{key}", f"unknown key{did_you_mean(key, allowed)} allowed: {', '.join(allowed)}")


def _mapping(value: Any, key: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(key, f"expected a mapping, got {type(value).__name__} {value!r}")
    return value


def _number(value: Any, key: str, *, integer: bool = False) -> float | int:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or (not integer and not math.isfinite(value)):
        raise _fail(key, f"expected {'an integer' if integer else 'a number'}, got {value!r}")
    return value


def check_choice(dim: str, value: Any, key: str) -> str:
    """Validate one value of a categorical dimension; returns it (patterns lower-cased)."""
    if dim == "pattern":
        if isinstance(value, int) and not isinstance(value, bool):
            raise _fail(key, f"got the number {value!r}: YAML reads an unquoted N:M pattern such "
                             f"as 2:4 as a base-60 number; quote it ('2:4')")
        try:
            return parse_pattern(value).text
        except ValueError as err:
            raise _fail(key, str(err).removeprefix("pattern: ")) from None
    allowed = allowed_values(dim)
    if value not in allowed:
        raise _fail(key, f"{value!r} is not allowed; allowed: {', '.join(allowed)}")
    return value


def _parse_categorical(dim: str, raw: Any, key: str) -> list[str]:
    values = raw if isinstance(raw, list) else [raw]
    if isinstance(raw, dict) or not values:
        raise _fail(key, f"expected a non-empty list of choices or a single value, got {raw!r}")
    checked = [check_choice(dim, v, f"{key}[{i}]") for i, v in enumerate(values)]
    if len(set(checked)) != len(checked):
        raise _fail(key, f"duplicate choices in {raw!r}")
    return checked


def parse_range(dim: str, raw: Any, key: str) -> FloatRange:
    if not isinstance(raw, dict):
        value = float(_number(raw, key))
        raw = {"low": value, "high": value}
    _check_keys(raw, ("low", "high", "step", "log"), f"{key}.")
    for required in ("low", "high"):
        if required not in raw:
            raise _fail(f"{key}.{required}", "missing; a range needs low and high")
    low, high = float(_number(raw["low"], f"{key}.low")), float(_number(raw["high"], f"{key}.high"))
    step = raw.get("step")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise _fail(f"{key}.log", f"expected true or false, got {log!r}")
    if low > high:
        raise _fail(key, f"low ({low}) must be <= high ({high})")
    if dim == "target_sparsity" and not (0.0 <= low and high < 1.0):
        raise _fail(key, f"low and high must lie in [0, 1), got [{low}, {high}]")
    if dim == "lr" and low <= 0:
        raise _fail(f"{key}.low", f"a learning rate must be > 0, got {low}")
    if step is not None:
        step = float(_number(step, f"{key}.step"))
        if step <= 0 or (high > low and step > (high - low) * (1 + 1e-9)):  # 0.6 - 0.5 < 0.1 in floats
            raise _fail(f"{key}.step", f"must be > 0 and <= high - low ({high - low:g}), got {step}")
        if log:
            raise _fail(f"{key}.log", "a range cannot have both step and log")
    return FloatRange(low, high, step, log)


def parse_training(raw: Any) -> TrainingConfig:
    section = _mapping(raw, "training")
    fields = {f.name: f for f in dataclasses.fields(TrainingConfig)}
    _check_keys(section, tuple(fields), "training.")
    # YAML integers are fine where a float is expected (lr: 1 is 1.0); TrainingConfig checks the rest
    values = {key: float(value) if isinstance(fields[key].default, float) and type(value) is int else value
              for key, value in section.items()}
    return TrainingConfig(**values)


def _parse_study(raw: Any) -> StudySettings:
    section = _mapping(raw, "study")
    _check_keys(section, tuple(f.name for f in dataclasses.fields(StudySettings)), "study.")
    n_trials = int(_number(section.get("n_trials", 20), "study.n_trials", integer=True))
    if n_trials < 1:
        raise _fail("study.n_trials", f"must be >= 1, got {n_trials}")
    seed = int(_number(section.get("seed", 0), "study.seed", integer=True))
    sampler, pruner = section.get("sampler", "tpe"), section.get("pruner", "none")
    if sampler not in SAMPLERS:
        raise _fail("study.sampler", f"{sampler!r} is not allowed; allowed: {', '.join(SAMPLERS)}")
    if pruner not in STUDY_PRUNERS:
        raise _fail("study.pruner", f"{pruner!r} is not allowed; allowed: {', '.join(STUDY_PRUNERS)}")
    objectives = section.get("objectives", ["accuracy"])
    if objectives not in OBJECTIVES:
        raise _fail("study.objectives", f"{objectives!r} is not allowed; allowed: [accuracy] or [accuracy, sparsity]")
    if len(objectives) > 1 and pruner != "none":
        raise _fail("study.pruner", f"{pruner!r} needs a single objective; Optuna's pruners do not "
                                    f"support multi-objective studies (use pruner: none)")
    study_name = section.get("study_name")
    if study_name is not None and (not isinstance(study_name, str) or not study_name.strip()):
        raise _fail("study.study_name", f"expected a non-empty string, got {study_name!r}")
    return StudySettings(n_trials, sampler, tuple(objectives), pruner, seed, study_name)


def parse_experiment(data: Any, *, source: str = "experiment") -> Experiment:
    """Validate a loaded experiment mapping; ``ValueError`` names the first bad key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a YAML mapping at the top level, got {type(data).__name__}")
    _check_keys(data, _TOP_KEYS, "")
    plugins = _parse_plugins(data.get("plugins"))
    for key in ("name", "benchmark", "search_space"):
        if key not in data:
            raise _fail(key, "missing; an experiment needs name, benchmark and search_space")
    for key in ("name", "benchmark"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise _fail(key, f"expected a non-empty string, got {data[key]!r}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise _fail("description", f"expected a string, got {description!r}")
    space_raw = _mapping(data["search_space"], "search_space")
    _check_keys(space_raw, SEARCH_DIMS, "search_space.")
    for dim in REQUIRED_DIMS:
        if dim not in space_raw:
            raise _fail(f"search_space.{dim}", f"missing; the core dimensions are {', '.join(REQUIRED_DIMS)}")
    space = {dim: (parse_range if dim in RANGE_DIMS else _parse_categorical)(dim, raw, f"search_space.{dim}")
             for dim, raw in space_raw.items()}
    pruning = _mapping(data.get("pruning"), "pruning")
    for key in pruning:
        if key in space:
            raise _fail(f"pruning.{key}", "is also a search_space dimension; set it in one place only")
    study = _parse_study(data.get("study"))
    if study.sampler == "grid":
        for dim, value in space.items():
            if isinstance(value, FloatRange) and value.high > value.low and value.step is None:
                raise _fail(f"search_space.{dim}.step", "required by sampler grid (a range needs a step)")
    return Experiment(name=data["name"], benchmark=data["benchmark"], training=parse_training(data.get("training")),
                      pruning=dict(pruning), search_space=space, study=study, description=description,
                      plugins=plugins)


def _parse_plugins(raw: Any) -> tuple[str, ...]:
    """``plugins:``: a list of module names, imported now so validation sees their registrations."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(m, str) and m.strip() for m in raw):
        raise _fail("plugins", f"expected a list of module names, got {raw!r}")
    import_plugins(raw)
    return tuple(m.strip() for m in raw)


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment file (``yaml.safe_load`` only).

    Example:
        >>> load_experiment("experiments/quick.yaml").benchmark  # doctest: +SKIP
        'mlp-digits'
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"experiment: no such file {str(path)!r}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise ConfigError(f"experiment: {path} is not valid YAML{line}") from None
    return parse_experiment(data, source=str(path))
