"""The schema of pruning configs: keys, defaults, allowed values, and :func:`check_config`.

Dependency-free on purpose (stdlib and the pattern parser only), so that registries elsewhere
in :mod:`workbench.pruner` can be checked against :data:`CRITERION_NAMES` without import cycles.
:mod:`workbench.pruner.config` re-exports every public name here.

Example:
    >>> check_config({"target_sparsity": 1.2})
    Traceback (most recent call last):
    ...
    ValueError: target_sparsity: 1.2 is out of range; allowed: 0 <= target_sparsity < 1
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .patterns.spec import parse_pattern

CRITERION_NAMES: tuple[str, ...] = ("magnitude", "gradient", "snip", "snip_momentum")
PRUNER_NAMES: tuple[str, ...] = ("basic", "progressive", "pattern_lock")
DECAY_TYPES = ("exp", "cos", "linear", "cube")
SCOPES = ("global", "local")
REDUCE_TYPES = ("mean", "sum", "max")
REG_TYPES = (None, "group_lasso")
PROGRESSIVE_TYPES = ("scores", "linear")

#: The keyword arguments of ``WeightPruningConfig`` (INC's global keys) and their defaults.
DEFAULT_GLOBAL_CONFIG: dict[str, Any] = {
    "target_sparsity": 0.9, "pruning_type": "snip_momentum", "pattern": "4x1", "op_names": [],
    "excluded_op_names": [], "start_step": 0, "end_step": 0, "pruning_scope": "global",
    "pruning_frequency": 1, "min_sparsity_ratio_per_op": 0.0, "max_sparsity_ratio_per_op": 0.98,
    "sparsity_decay_type": "exp", "pruning_op_types": ["Conv", "Linear"], "low_memory_usage": False,
}
#: Further keys, accepted globally (as keyword) and per pruner.
DEFAULT_LOCAL_CONFIG: dict[str, Any] = {
    "criterion_reduce_type": "mean", "reg_type": None, "parameters": {"reg_coeff": 0.0},
    "resume_from_pruned_checkpoint": False, "lock_init_sparsity": False, "progressive_steps": 4,
    "progressive_type": "scores", "progressive_interval": 1, "use_global": True,
}
DEFAULT_CONFIG: dict[str, Any] = {**DEFAULT_GLOBAL_CONFIG, **DEFAULT_LOCAL_CONFIG}
#: Keys computed during resolution; accepted as input so a resolved dict can be fed back.
DERIVED_KEYS: tuple[str, ...] = ("reg_coeff", "criterion_type", "pruner_type")
VALID_KEYS: tuple[str, ...] = (*DEFAULT_CONFIG, *DERIVED_KEYS)
PARAMETER_KEYS: tuple[str, ...] = ("reg_coeff",)


def parse_valid_pruner_types() -> list[str]:
    """Every accepted ``pruning_type``, in INC's order: each registered criterion, plain and
    ``_progressive``, then ``pattern_lock``. A newly registered criterion is valid at once.

    Example:
        >>> parse_valid_pruner_types()[:2], parse_valid_pruner_types()[-1]
        (['magnitude', 'magnitude_progressive'], 'pattern_lock')
    """
    from .criteria import CRITERIA  # late import: criteria.py needs torch, this module must not

    return [c + s for c in CRITERIA for s in ("", "_progressive")] + ["pattern_lock"]


def parse_pruning_type(pruning_type: str) -> tuple[str, str | None]:
    """``pruning_type`` -> ``(pruner_type, criterion_type)``.

    Example:
        >>> parse_pruning_type("snip_progressive"), parse_pruning_type("pattern_lock")
        (('progressive', 'snip'), ('pattern_lock', None))
    """
    if pruning_type not in parse_valid_pruner_types():
        raise ValueError(f"pruning_type: {pruning_type!r} is not known; allowed: {parse_valid_pruner_types()}")
    if pruning_type == "pattern_lock":
        return "pattern_lock", None
    if pruning_type.endswith("_progressive"):
        return "progressive", pruning_type[: -len("_progressive")]
    return "basic", pruning_type


def check_key_validity(template_config: Iterable[str], user_config: Any) -> None:
    """Raise ``ValueError`` for a key of ``user_config`` (a dict or a list of dicts) not in the template.

    Example:
        >>> check_key_validity(VALID_KEYS, {"target_sparsty": 0.5})
        Traceback (most recent call last):
        ...
        ValueError: unknown pruning config key 'target_sparsty'; did you mean 'target_sparsity'?
    """
    valid = list(template_config)
    configs = user_config if isinstance(user_config, list) else [user_config]
    for cfg in configs:
        cfg = getattr(cfg, "pruner_config", cfg)
        for key in cfg:
            if key in valid:
                continue
            near = difflib.get_close_matches(str(key), [str(k) for k in valid], n=1)
            hint = f"did you mean {near[0]!r}?" if near else f"valid keys: {sorted(map(str, valid))}"
            raise ValueError(f"unknown pruning config key {key!r}; {hint}")


def _fail(key: str, value: Any, allowed: str, why: str = "is not valid") -> None:
    raise ValueError(f"{key}: {value!r} {why}; allowed: {allowed}")


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
    if cfg[key] not in choices or isinstance(cfg[key], bool):
        _fail(key, cfg[key], str(choices), "is not known")
    return cfg[key]


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


def check_config(prune_config: Mapping[str, Any]) -> None:
    """Validate one pruner dict; missing keys count as their defaults. Returns ``None`` or raises.

    Every rule raises ``ValueError`` naming the key, the bad value and what is allowed.

    Example:
        >>> check_config({"pattern": "2:4", "target_sparsity": 0.5, "pruning_type": "magnitude"})
    """
    check_key_validity(VALID_KEYS, prune_config)
    cfg = {**DEFAULT_CONFIG, "reg_coeff": 0.0, **prune_config}
    target = _number(cfg, "target_sparsity", 0, 1, high_open=True)
    low = _number(cfg, "min_sparsity_ratio_per_op", 0, 1)
    high = _number(cfg, "max_sparsity_ratio_per_op", 0, 1)
    if low > high:
        _fail("min_sparsity_ratio_per_op", low, f"0 <= min_sparsity_ratio_per_op <= max_sparsity_ratio_per_op "
              f"({high!r}) <= 1", f"is greater than max_sparsity_ratio_per_op {high!r}")
    start, end = _integer(cfg, "start_step", 0), _integer(cfg, "end_step", 0)
    if end < start:
        _fail("end_step", end, f"end_step >= start_step ({start})", f"is smaller than start_step {start}")
    _integer(cfg, "pruning_frequency", 1)
    pruning_type = cfg["pruning_type"]
    if not isinstance(pruning_type, str):
        _fail("pruning_type", pruning_type, str(parse_valid_pruner_types()), "is not a string")
    pruner_type, criterion = parse_pruning_type(pruning_type)
    for key, derived in (("pruner_type", pruner_type), ("criterion_type", criterion)):
        if key in prune_config and prune_config[key] != derived:
            _fail(key, prune_config[key], repr(derived), f"contradicts pruning_type {pruning_type!r}")
    spec = parse_pattern(cfg["pattern"])
    if spec.kind == "N:M":
        cap = spec.max_sparsity
        if pruner_type != "pattern_lock" and target > cap:
            _fail("target_sparsity", target, f"target_sparsity <= N/M = {cap:g} for pattern {spec.text!r}",
                  f"is above {cap:g}, the most pattern {spec.text!r} can reach")
        if low > cap:
            _fail("min_sparsity_ratio_per_op", low, f"<= N/M = {cap:g} for pattern {spec.text!r}",
                  f"is above {cap:g}, the most pattern {spec.text!r} can reach")
    _choice(cfg, "sparsity_decay_type", DECAY_TYPES)
    _choice(cfg, "pruning_scope", SCOPES)
    _choice(cfg, "criterion_reduce_type", REDUCE_TYPES)
    reg_type = _choice(cfg, "reg_type", REG_TYPES)
    if reg_type is not None and spec.kind != "NxM":
        _fail("reg_type", reg_type, f"None for the N:M pattern {spec.text!r}; 'group_lasso' needs an NxM pattern",
              f"does not work with pattern {spec.text!r}")
    params = cfg["parameters"]
    if not isinstance(params, Mapping):
        _fail("parameters", params, "a dict such as {'reg_coeff': 0.0}", "is not a dict")
    check_key_validity(PARAMETER_KEYS, params)
    _number({**cfg, **params}, "reg_coeff", 0, float("inf"))
    _choice(cfg, "progressive_type", PROGRESSIVE_TYPES)
    _integer(cfg, "progressive_steps", 1)
    _integer(cfg, "progressive_interval", 1)
    if pruner_type == "progressive":
        if spec.kind != "NxM":
            _fail("pattern", spec.text, "an NxM pattern such as '4x1'", f"does not work with {pruning_type!r}")
    for key in ("low_memory_usage", "resume_from_pruned_checkpoint", "lock_init_sparsity", "use_global"):
        _flag(cfg, key)
    _strings(cfg, "op_names", regex=True)
    _strings(cfg, "excluded_op_names", regex=True)
    _strings(cfg, "pruning_op_types")
