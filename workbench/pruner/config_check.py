"""Validation of one pruner config: :func:`check_config` and :func:`check_key_validity`.

Allowed values of the extension points come from the registries (patterns, pruners and their
criteria, schedulers, decays, regularisers), and what a pattern can do from its spec
(``max_sparsity``, ``features``), so a registered extension is accepted -- and listed in the
errors -- without an edit here. Every error is a :class:`~workbench.pruner.ConfigError` naming
the key, the bad value and what is allowed. The keys and defaults live in
:mod:`workbench.pruner.config_types` (re-exported here).

Example:
    >>> check_config({"target_sparsity": 1.2})
    Traceback (most recent call last):
    ...
    workbench.pruner.errors.ConfigError: target_sparsity: 1.2 is out of range; allowed: 0 <= target_sparsity < 1
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .config_types import DEFAULT_CONFIG, DEFAULT_GLOBAL_CONFIG, DEFAULT_LOCAL_CONFIG, DERIVED_KEYS, VALID_KEYS
from .criteria import CRITERIA
from .errors import ConfigError
from .patterns import PATTERNS, PatternSpec, parse_pattern
from .pruners import PRUNERS, parse_pruning_type, parse_valid_pruner_types
from .registry import Registry, did_you_mean, unknown_key_message
from .regs import REGS
from .schedulers import DECAYS, SCHEDULERS

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_GLOBAL_CONFIG",
    "DEFAULT_LOCAL_CONFIG",
    "DERIVED_KEYS",
    "PARAMETER_KEYS",
    "PROGRESSIVE_TYPES",
    "REDUCE_TYPES",
    "SCOPES",
    "VALID_KEYS",
    "check_config",
    "check_key_validity",
    "parse_pruning_type",
    "parse_valid_pruner_types",
]

SCOPES = ("global", "local")
REDUCE_TYPES = ("mean", "sum", "max")
PROGRESSIVE_TYPES = ("scores", "linear")
PARAMETER_KEYS: tuple[str, ...] = ("reg_coeff",)


def check_key_validity(template_config: Iterable[str], user_config: Any) -> None:
    """Raise for a key of ``user_config`` (a dict or a list of dicts) not in the template.

    Example:
        >>> check_key_validity(VALID_KEYS, {"end_stp": 5})
        Traceback (most recent call last):
        ...
        workbench.pruner.errors.ConfigError: unknown pruning config key 'end_stp'; did you mean 'end_step'?
    """
    valid = list(template_config)
    configs = user_config if isinstance(user_config, list) else [user_config]
    for cfg in configs:
        cfg = getattr(cfg, "pruner_config", cfg)
        for key in cfg:
            if key not in valid:
                raise ConfigError(unknown_key_message(key, valid))


def _fail(key: str, value: Any, allowed: str, why: str = "is not valid") -> None:
    raise ConfigError(f"{key}: {value!r} {why}; allowed: {allowed}")


def _number(cfg: Mapping, key: str, low: float, high: float, *, high_open: bool = False) -> float:
    value, top = cfg[key], "<" if high_open else "<="
    allowed = f"{low:g} <= {key} {top} {high:g}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(key, value, f"a number, {allowed}", "is not a number")
    if not (low <= value < high if high_open else low <= value <= high):
        _fail(key, value, allowed, "is out of range")
    return float(value)


def _integer(cfg: Mapping, key: str, low: int) -> int:
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(key, value, f"an integer >= {low}", "is not an integer")
    if value < low:
        _fail(key, value, f"an integer >= {low}", "is out of range")
    return value


def _choice(cfg: Mapping, key: str, choices: Iterable[Any]) -> Any:
    choices = list(choices)
    if isinstance(cfg[key], bool) or cfg[key] not in choices:
        _fail(key, cfg[key], f"{choices}{did_you_mean(cfg[key], choices)}", "is not known")
    return cfg[key]


def _registered(cfg: Mapping, key: str, registry: Registry, *, optional: bool = False) -> Any:
    return _choice(cfg, key, [None, *registry] if optional else list(registry))


def _flag(cfg: Mapping, key: str) -> None:
    if not isinstance(cfg[key], bool):
        _fail(key, cfg[key], "True or False", "is not a bool")


def _strings(cfg: Mapping, key: str, *, regex: bool = False) -> None:
    value = cfg[key]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        _fail(key, value, "a list of strings", "is not a list of strings")
    for text in value if regex else ():
        try:
            re.compile(text)
        except re.error as exc:
            _fail(key, value, "a list of valid regular expressions", f"holds the bad regex {text!r} ({exc})")


def _patterns_with(required: frozenset[str]) -> list[str]:
    """An example pattern of every registered family that has the ``required`` features."""
    out = []
    for family in PATTERNS.values():
        for example in family.examples:
            spec = family.parse(example)
            if spec is not None and not spec.missing(required):
                out.append(example)
                break
    return out


def _requires(key: str, value: Any, spec: PatternSpec, required: frozenset[str]) -> None:
    missing = spec.missing(required)
    if missing:
        _fail(
            key,
            value,
            f"a pattern with {', '.join(missing)}, e.g. {_patterns_with(required)}",
            f"does not work with pattern {spec.text!r} (it lacks {', '.join(missing)})",
        )


def _check_reachable(spec: PatternSpec, target: float, low: float, prunes_to_target: bool) -> None:
    cap = spec.max_sparsity
    where = f"for pattern {spec.text!r}"
    if prunes_to_target and target > cap:
        _fail(
            "target_sparsity",
            target,
            f"target_sparsity <= {cap:g} {where}",
            f"is above {cap:g}, the most pattern {spec.text!r} can reach",
        )
    if low > cap:
        _fail(
            "min_sparsity_ratio_per_op",
            low,
            f"<= {cap:g} {where}",
            f"is above {cap:g}, the most pattern {spec.text!r} can reach",
        )


def check_config(prune_config: Mapping[str, Any]) -> None:
    """Validate one pruner dict; missing keys count as their defaults. Returns ``None`` or raises.

    Example:
        >>> check_config({"pattern": "2:4", "target_sparsity": 0.5, "pruning_type": "magnitude"})
    """
    check_key_validity(VALID_KEYS, prune_config)
    cfg = {**DEFAULT_CONFIG, "reg_coeff": 0.0, **prune_config}
    target = _number(cfg, "target_sparsity", 0, 1, high_open=True)
    low = _number(cfg, "min_sparsity_ratio_per_op", 0, 1)
    high = _number(cfg, "max_sparsity_ratio_per_op", 0, 1)
    if low > high:
        _fail(
            "min_sparsity_ratio_per_op",
            low,
            f"0 <= min_sparsity_ratio_per_op <= max_sparsity_ratio_per_op ({high!r}) <= 1",
            f"is greater than max_sparsity_ratio_per_op {high!r}",
        )
    start, end = _integer(cfg, "start_step", 0), _integer(cfg, "end_step", 0)
    if end < start:
        _fail("end_step", end, f"end_step >= start_step ({start})", f"is smaller than start_step {start}")
    _integer(cfg, "pruning_frequency", 1)
    pruning_type = cfg["pruning_type"]
    pruner_type, criterion = parse_pruning_type(pruning_type)
    for key, derived in (("pruner_type", pruner_type), ("criterion_type", criterion)):
        if key in prune_config and prune_config[key] != derived:
            _fail(key, prune_config[key], repr(derived), f"contradicts pruning_type {pruning_type!r}")
    pruner = PRUNERS.lookup(pruner_type)
    spec = parse_pattern(cfg["pattern"])
    _check_reachable(spec, target, low, pruner.prunes_to_target)
    _requires("pattern", spec.text, spec, pruner.requires)
    if criterion is not None:
        _requires("pattern", spec.text, spec, getattr(CRITERIA[criterion], "requires", frozenset()))
    _registered(cfg, "sparsity_decay_type", DECAYS)
    _registered(cfg, "scheduler", SCHEDULERS, optional=True)
    _choice(cfg, "pruning_scope", SCOPES)
    _choice(cfg, "criterion_reduce_type", REDUCE_TYPES)
    reg_type = _registered(cfg, "reg_type", REGS, optional=True)
    if reg_type is not None:
        _requires("reg_type", reg_type, spec, getattr(REGS[reg_type], "requires", frozenset()))
    params = cfg["parameters"]
    if not isinstance(params, Mapping):
        _fail("parameters", params, "a dict such as {'reg_coeff': 0.0}", "is not a dict")
    check_key_validity(PARAMETER_KEYS, params)
    _number({**cfg, **params}, "reg_coeff", 0, float("inf"))
    _choice(cfg, "progressive_type", PROGRESSIVE_TYPES)
    _integer(cfg, "progressive_steps", 1)
    _integer(cfg, "progressive_interval", 1)
    for key in ("low_memory_usage", "resume_from_pruned_checkpoint", "lock_init_sparsity", "use_global"):
        _flag(cfg, key)
    _strings(cfg, "op_names", regex=True)
    _strings(cfg, "excluded_op_names", regex=True)
    _strings(cfg, "pruning_op_types")
