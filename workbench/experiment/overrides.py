"""``workbench run --set key=value``: one trial's point, from an experiment plus overrides.

Without overrides the point is the experiment's default (first choice of every list, midpoint of
every range; :meth:`~workbench.experiment.Experiment.default_point`) and the seed is
``study.seed``. Keys:

* a search-space dimension (``pattern``, ``criterion``, ``scheduler``, ``target_sparsity``,
  ``pruner``, ``pruning_scope``, ``sparsity_decay_type``, ``lr``) fixes that value; it must be a
  valid value, not necessarily one of the file's choices;
* ``seed``, ``benchmark``, ``benchmark_params.<key>`` (a keyword argument of the benchmark);
* ``training.<field>`` and ``pruning.<INC key>`` set a training field or a fixed pruning key.

Values are read as safe YAML, bounded like experiment files (so ``0.5`` is a number and
``[a, b]`` a list), except the categorical dimensions, which stay strings (``pattern=2:4`` is the
pattern, not 124).

Example:
    >>> from workbench.experiment import parse_experiment
    >>> exp = parse_experiment({"name": "d", "benchmark": "mlp-digits", "search_space": {
    ...     "pattern": ["4x1"], "criterion": "magnitude", "scheduler": "oneshot",
    ...     "target_sparsity": {"low": 0.5, "high": 0.9}}})
    >>> exp2, point, seed = apply_overrides(exp, ["pattern=2:4", "training.steps=5", "seed=3"])
    >>> point["pattern"], point["target_sparsity"], exp2.training.steps, seed
    ('2:4', 0.7, 5, 3)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from workbench.experiment.dims import check_choice, check_seed, parse_range
from workbench.experiment.objectives import parse_benchmark_params
from workbench.experiment.schema import Experiment, parse_training
from workbench.pruner.errors import ConfigError
from workbench.pruner.registry import did_you_mean
from workbench.pruner.yaml_read import read_yaml_text
from workbench.trial.space import CHOICE_DIMS, RANGE_DIMS, SEARCH_DIMS

__all__ = ["apply_overrides"]

_KEYS = SEARCH_DIMS + ("seed", "benchmark", "benchmark_params.<key>", "training.<field>", "pruning.<key>")


def _value(raw: str, key: str) -> Any:
    """The YAML value of ``raw`` (safe, bounded, no repeated keys: :func:`read_yaml_text`)."""
    try:
        return read_yaml_text(raw, f"--set {key}")
    except ConfigError as err:
        if "is not valid YAML" in str(err):
            raise ConfigError(f"--set {key}: {raw!r} is not a valid YAML value") from None
        raise


def apply_overrides(experiment: Experiment, sets: Sequence[str]) -> tuple[Experiment, dict[str, Any], int]:
    """Apply ``key=value`` overrides; returns (experiment, point, seed). ``ValueError`` on bad input."""
    point = experiment.default_point()
    seed, benchmark = experiment.study.seed, experiment.benchmark
    training, pruning = experiment.training.to_dict(), dict(experiment.pruning)
    bench_params = dict(experiment.benchmark_params)
    for item in sets:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set: expected key=value, got {item!r}")
        where = f"--set {key}"
        if key in CHOICE_DIMS:
            point[key] = check_choice(key, raw.strip(), where)
        elif key in RANGE_DIMS:
            point[key] = parse_range(key, _value(raw, key), where).low
        elif key == "seed":
            seed = check_seed(_value(raw, key), where)
        elif key == "benchmark":
            if not raw.strip():
                raise ConfigError(f"{where}: expected a benchmark name")
            benchmark = raw.strip()
        elif key.startswith("benchmark_params.") and key != "benchmark_params.":
            bench_params.update(parse_benchmark_params({key.removeprefix("benchmark_params."): _value(raw, key)}))
        elif key.startswith("training."):
            training[key.removeprefix("training.")] = _value(raw, key)
        elif key.startswith("pruning.") and key != "pruning.":
            name = key.removeprefix("pruning.")
            if name in experiment.search_space or name in SEARCH_DIMS:
                raise ConfigError(f"{where}: {name!r} is a search-space dimension; use --set {name}=...")
            pruning[name] = _value(raw, key)
        else:
            raise ConfigError(f"{where}: unknown key{did_you_mean(key, _KEYS)} allowed: {', '.join(_KEYS)}")
    try:
        new_training = parse_training(training)
    except ValueError as err:
        raise ConfigError(f"--set {err}") from None
    updated = dataclasses.replace(
        experiment, benchmark=benchmark, benchmark_params=bench_params, training=new_training, pruning=pruning
    )
    return updated, point, seed
