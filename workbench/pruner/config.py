"""Pruning configs: INC 3.7.1's keys and defaults, resolution per pruner, and validation.

A config is a list of per-pruner dicts (``pruning_configs``) plus global keys. Each key of a
pruner resolves in this order: the pruner's own dict, then the global value (a keyword of
:class:`WeightPruningConfig` or a top-level key of a dict/YAML config), then :data:`DEFAULT_CONFIG`.
``None`` counts as "not given". An empty ``pruning_configs`` means one pruner made of the
globals. ``reg_coeff`` is read from ``parameters`` (``{"reg_coeff": c}``); ``criterion_type`` and
``pruner_type`` are derived from ``pruning_type``; ``max_sparsity_ratio_per_op`` is capped at
what the pattern can reach (N/M for N:M, as INC does); ``scheduler`` left out is INC's choice
(oneshot when ``start_step == end_step``, else iterative). Every resolved dict is checked by
:func:`check_config` (keys, defaults and the typed :class:`PrunerConfig` live in
:mod:`workbench.pruner.config_types`, which the patterns, criteria and pruners import).
:func:`resolve_config` gives typed configs, :func:`process_config` INC's plain dicts.

Validation (:func:`check_config`) takes the allowed values of the extension points from the
registries (patterns, pruners and their criteria, schedulers, decays, regularisers), and what a
pattern can do from its spec (``max_sparsity``, ``features``), so a registered extension is
accepted -- and listed in the errors -- without an edit here. Every error is a
:class:`~workbench.pruner.ConfigError` naming the key, the bad value and what is allowed.

Loading YAML (:func:`load_yaml`) never executes or imports anything: :class:`ConfigLoader` is
PyYAML's ``SafeLoader`` with two additions that INC-era config files need:

* the ``!Pruner`` tag of INC's legacy ``pruners:`` lists is read as a plain mapping
  (``SafeLoader`` would otherwise refuse the whole file);
* numbers in exponent notation without a dot (``1e-4``), which YAML 1.1 -- and so PyYAML --
  reads as strings, are read as floats, so ``reg_coeff: 1e-4`` means what it says.

Accepted inputs: a :class:`WeightPruningConfig`; a dict ``{"pruning_configs": [...], **globals}``;
INC's YAML layout ``{"pruning": {"approach": {"weight_compression_v2": {**globals, "pruners":
[...]}}}}`` (pruners as dicts, ``!Pruner`` mappings or ``{"pruner_config": {...}}``); or the
path of a YAML file holding either dict.

Example:
    >>> cfg = WeightPruningConfig([{"op_names": ["fc1"], "pattern": "2:4", "target_sparsity": 0.5},
    ...                            {"op_names": ["fc2"]}], pruning_type="magnitude", target_sparsity=0.8)
    >>> [(c["pattern"], c["target_sparsity"], c["pruner_type"]) for c in process_config(cfg)]
    [('2:4', 0.5, 'basic'), ('4x1', 0.8, 'basic')]
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from .config_types import (
    DEFAULT_CONFIG,
    DEFAULT_GLOBAL_CONFIG,
    DEFAULT_LOCAL_CONFIG,
    DERIVED_KEYS,
    VALID_KEYS,
    PrunerConfig,
    default_scheduler,
)
from .criteria import CRITERIA
from .errors import ConfigError
from .patterns import PATTERNS, PatternSpec, parse_pattern
from .pruners import PRUNERS, parse_pruning_type, parse_valid_pruner_types
from .registry import Registry, did_you_mean, unknown_key_message
from .regs import REGS
from .schedulers import DECAYS, SCHEDULERS
from .yaml_read import read_yaml_file

logger = logging.getLogger(__name__)


class WeightPruningConfig:
    """INC's ``WeightPruningConfig``: per-pruner dicts plus global keys (see the module docstring).

    ``None`` for a list argument means a fresh empty list (``[{}]`` for ``pruning_configs``);
    every argument is deep-copied, so instances never share mutable state. Extra keywords
    (``reg_type``, ``parameters``, ``criterion_reduce_type``, ...) join the global keys; an
    unknown one raises :class:`~workbench.pruner.ConfigError` suggesting the nearest valid key.

    Example:
        >>> WeightPruningConfig(target_sparsity=0.7, reg_type="group_lasso").weight_compression.reg_type
        'group_lasso'
    """

    def __init__(
        self,
        pruning_configs: list[dict] | None = None,
        target_sparsity: float = 0.9,
        pruning_type: str = "snip_momentum",
        pattern: str = "4x1",
        op_names: list[str] | None = None,
        excluded_op_names: list[str] | None = None,
        backend: str | None = None,
        start_step: int = 0,
        end_step: int = 0,
        pruning_scope: str = "global",
        pruning_frequency: int = 1,
        min_sparsity_ratio_per_op: float = 0.0,
        max_sparsity_ratio_per_op: float = 0.98,
        sparsity_decay_type: str = "exp",
        pruning_op_types: list[str] | None = None,
        low_memory_usage: bool = False,
        **kwargs: Any,
    ) -> None:
        self.backend = backend
        self.pruning_configs = pruner_list([{}] if pruning_configs is None else pruning_configs)
        given = dict(
            target_sparsity=target_sparsity,
            pruning_type=pruning_type,
            pattern=pattern,
            op_names=[] if op_names is None else op_names,
            excluded_op_names=[] if excluded_op_names is None else excluded_op_names,
            start_step=start_step,
            end_step=end_step,
            pruning_scope=pruning_scope,
            pruning_frequency=pruning_frequency,
            min_sparsity_ratio_per_op=min_sparsity_ratio_per_op,
            max_sparsity_ratio_per_op=max_sparsity_ratio_per_op,
            sparsity_decay_type=sparsity_decay_type,
            pruning_op_types=["Conv", "Linear"] if pruning_op_types is None else pruning_op_types,
            low_memory_usage=low_memory_usage,
            **kwargs,
        )
        self.weight_compression = _AttrDict(copy.deepcopy(given))
        check_key_validity(VALID_KEYS, self.pruning_configs)
        check_key_validity(VALID_KEYS, self.weight_compression)

    def to_dict(self) -> dict[str, Any]:
        """A YAML-safe dict ``{"pruning_configs": [...], **globals}`` that :meth:`from_dict` reads back."""
        out: dict[str, Any] = {"pruning_configs": copy.deepcopy(self.pruning_configs)}
        out.update(copy.deepcopy(dict(self.weight_compression)))
        if self.backend is not None:
            out["backend"] = self.backend
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WeightPruningConfig:
        """Build a config from a dict in any accepted layout (flat or INC's ``pruning: approach:``)."""
        global_config, local_configs = split_layout(data)
        return cls(local_configs, **global_config)

    @classmethod
    def from_yaml(cls, path: str | Path) -> WeightPruningConfig:
        """Read a YAML file written by :meth:`to_yaml` or in INC's layout."""
        return cls.from_dict(load_mapping(path))

    def to_yaml(self, path: str | Path) -> None:
        """Write :meth:`to_dict` to ``path`` as YAML."""
        dump_yaml(self.to_dict(), path)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WeightPruningConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"WeightPruningConfig({self.to_dict()!r})"


class _AttrDict(dict):
    """INC's ``weight_compression``: a dict of the global keys, also readable as attributes."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


def reset_none_to_default(obj: Any, key: str, default: Any) -> Any:
    """``obj[key]`` (or ``obj.key``) unless missing or ``None``, else ``default``; ``None`` if obj is None."""
    if obj is None:
        return None
    value = obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)
    return default if value is None else value


def update_params(info: dict) -> dict:
    """Copy every entry of ``info["parameters"]`` up into ``info`` (in place; also returned)."""
    params = info.get("parameters")
    if isinstance(params, Mapping):
        info.update(copy.deepcopy(dict(params)))
    return info


def _level_reg_coeff(cfg: Mapping) -> Any:
    params = cfg.get("parameters")
    if isinstance(params, Mapping) and params.get("reg_coeff") is not None:
        return params["reg_coeff"]
    return cfg.get("reg_coeff")


def _resolve(local: Mapping, global_all: Mapping, raw_global: Mapping, defaults: Mapping) -> PrunerConfig:
    out = {key: copy.deepcopy(reset_none_to_default(local, key, global_all[key])) for key in defaults}
    coeff = next((c for c in (_level_reg_coeff(local), _level_reg_coeff(raw_global)) if c is not None), 0.0)
    if isinstance(out["parameters"], Mapping):
        out["parameters"] = {**out["parameters"], "reg_coeff": coeff}
    out["reg_coeff"] = coeff
    update_params(out)
    if isinstance(out.get("pruning_op_types"), str):  # INC takes one type as a bare string: "Linear"
        out["pruning_op_types"] = [out["pruning_op_types"]]
    pruning_type = out["pruning_type"]
    known = isinstance(pruning_type, str) and pruning_type in parse_valid_pruner_types()
    pruner_type, criterion = parse_pruning_type(pruning_type) if known else (None, None)
    given = reset_none_to_default(local, "criterion_type", raw_global.get("criterion_type"))
    if given is not None and given != criterion:
        logger.warning("criterion_type %r ignored: pruning_type %r implies %r", given, pruning_type, criterion)
    out["criterion_type"], out["pruner_type"] = criterion, pruner_type
    check_config(out)
    out["reg_coeff"] = out["parameters"]["reg_coeff"] = float(coeff)
    # the per-layer maximum is capped at what the pattern can reach (N/M for N:M, as INC does)
    cap = parse_pattern(out["pattern"]).max_sparsity
    out["max_sparsity_ratio_per_op"] = min(float(out["max_sparsity_ratio_per_op"]), cap)
    out["scheduler"] = out["scheduler"] or default_scheduler(out["start_step"], out["end_step"])
    return PrunerConfig(**out)


def _resolve_all(global_config: Mapping, local_configs: list, default_config: Mapping) -> list[PrunerConfig]:
    defaults = {**DEFAULT_CONFIG, **{k: v for k, v in default_config.items() if k not in DERIVED_KEYS}}
    global_all = {key: reset_none_to_default(global_config, key, defaults[key]) for key in defaults}
    locals_ = pruner_list(local_configs) or [{}]
    check_key_validity(VALID_KEYS, locals_)
    check_key_validity(VALID_KEYS, global_config)
    return [_resolve(local, global_all, global_config, defaults) for local in locals_]


def process_weight_config(global_config: Mapping, local_configs: list, default_config: Mapping) -> list[dict]:
    """Resolve each per-pruner dict against the globals and defaults; inputs are not modified."""
    return [cfg.as_dict() for cfg in _resolve_all(global_config, local_configs, default_config)]


def process_yaml_config(global_config: Mapping, local_configs: list, default_config: Mapping) -> list[dict]:
    """As :func:`process_weight_config`, for INC's YAML pruners (dicts or objects with ``.pruner_config``)."""
    global_config = {k: v for k, v in global_config.items() if k != "pruners"}
    return process_weight_config(global_config, local_configs, default_config)


def _split_input(val: WeightPruningConfig | Mapping) -> tuple[dict, list]:
    if isinstance(val, WeightPruningConfig):
        global_config, local_configs = dict(val.weight_compression), val.pruning_configs
    else:
        global_config, local_configs = split_layout(val)
    global_config.pop("backend", None)
    return global_config, local_configs


def process_and_check_config(val: WeightPruningConfig | Mapping) -> list[dict]:
    """Check keys, resolve and validate a ``WeightPruningConfig`` or dict config (any layout)."""
    return process_weight_config(*_split_input(val), DEFAULT_CONFIG)


def resolve_config(config: WeightPruningConfig | Mapping | str | Path) -> list[PrunerConfig]:
    """One resolved, validated :class:`PrunerConfig` per pruner, from any accepted config form.

    Example:
        >>> cfg = resolve_config({"target_sparsity": 0.5, "pruning_type": "snip_progressive", "end_step": 8})[0]
        >>> cfg.criterion_type, cfg.pruner_type, cfg.scheduler
        ('snip', 'progressive', 'iterative')
    """
    if isinstance(config, (str, Path)):
        config = load_mapping(config)
    if not isinstance(config, (WeightPruningConfig, Mapping)):
        raise ConfigError(
            f"config: {type(config).__name__} is not supported; allowed: WeightPruningConfig, dict, YAML path"
        )
    return _resolve_all(*_split_input(config), DEFAULT_CONFIG)


def process_config(config: WeightPruningConfig | Mapping | str | Path) -> list[dict]:
    """INC's form of :func:`resolve_config`: one resolved, validated plain dict per pruner.

    Example:
        >>> process_config({"target_sparsity": 0.5, "pruning_type": "snip_progressive"})[0]["criterion_type"]
        'snip'
    """
    return [cfg.as_dict() for cfg in resolve_config(config)]


def generate_pruner_config(info: Mapping) -> PrunerConfig:
    """A :class:`PrunerConfig` of one resolved pruner dict (deep-copied), read as ``cfg.key`` or ``cfg["key"]``."""
    return PrunerConfig.from_mapping(info)


# Validation of one resolved pruner dict

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
        >>> check_config({"target_sparsity": 1.2})
        Traceback (most recent call last):
        ...
        workbench.pruner.errors.ConfigError: target_sparsity: 1.2 is out of range; allowed: 0 <= target_sparsity < 1
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


# YAML, read safely, and the layouts a config may come in

_EXP_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


class ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``!Pruner`` mappings and ``1e-4``-style floats."""


def _construct_tagged_mapping(loader: yaml.SafeLoader, node: yaml.Node) -> dict:
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"!Pruner: expected a mapping of pruner keys, got {node.value!r}")
    return loader.construct_mapping(node, deep=True)


ConfigLoader.add_constructor("!Pruner", _construct_tagged_mapping)
ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:float", _EXP_FLOAT, list("-+0123456789"))


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file with :class:`ConfigLoader` (no arbitrary objects).

    Example:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "prune.yaml"
        >>> dump_yaml({"target_sparsity": 0.8, "parameters": {"reg_coeff": 1e-4}}, path)
        >>> load_yaml(path)["parameters"]["reg_coeff"]
        0.0001

    Raises:
        ConfigError: if the file is missing, unreadable, not UTF-8, not valid YAML, repeats a key
            or is an alias bomb (the message names the path; see :mod:`.yaml_read`).
    """
    return read_yaml_file(path, "config path", loader=ConfigLoader)


def dump_yaml(data: Any, path: str | Path) -> None:
    """Write plain data (dicts, lists, str, numbers, bool, None) to ``path`` as YAML, keys in order."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        yaml.safe_dump(data, handle, sort_keys=False, default_flow_style=False)


_INC_APPROACHES = ("weight_compression_v2", "weight_compression_pytorch", "weight_compression")


def pruner_list(value: Any) -> list[dict]:
    """The per-pruner dicts of ``pruning_configs`` (dicts, ``!Pruner`` objects or ``{pruner_config: ...}``), copied."""
    if isinstance(value, Mapping) or not isinstance(value, Iterable) or isinstance(value, str):
        raise ConfigError(f"pruning_configs: expected a list of dicts (one per pruner), got {value!r}")
    out = []
    for item in value:
        item = getattr(item, "pruner_config", item)  # INC's legacy Pruner objects
        if isinstance(item, Mapping) and set(item) == {"pruner_config"}:
            item = item["pruner_config"]
        if not isinstance(item, Mapping):
            raise ConfigError(f"pruning_configs: every entry must be a dict of pruner keys, got {item!r}")
        out.append(copy.deepcopy(dict(item)))
    return out


def split_layout(data: Any) -> tuple[dict[str, Any], list[dict]]:
    """A dict config in any accepted layout -> ``(global keys, per-pruner dicts)``, both copies."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"config: expected a mapping of pruning keys, got {data!r}")
    if "pruning" in data:
        approach = data["pruning"].get("approach") if isinstance(data["pruning"], Mapping) else None
        found = [k for k in _INC_APPROACHES if isinstance(approach, Mapping) and k in approach]
        if not found:
            raise ConfigError(
                f"pruning: {data['pruning']!r} is not INC's layout; allowed: "
                f"pruning: {{approach: {{<one of {list(_INC_APPROACHES)}>: {{<global keys>, pruners: [...]}}}}}}"
            )
        inner = dict(approach[found[0]] or {})
        locals_ = inner.pop("pruners", None) or []
    else:
        inner = dict(data)
        locals_ = inner.pop("pruning_configs", [{}])
    return copy.deepcopy(inner), pruner_list(locals_)


def load_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML file holding a mapping of pruning keys, as a dict."""
    data = load_yaml(path)
    if not isinstance(data, Mapping):
        raise ConfigError(f"config path: {str(path)!r} must hold a mapping of pruning keys, got {data!r}")
    return dict(data)


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
    "ConfigLoader",
    "PrunerConfig",
    "WeightPruningConfig",
    "check_config",
    "check_key_validity",
    "dump_yaml",
    "generate_pruner_config",
    "load_mapping",
    "load_yaml",
    "parse_pruning_type",
    "parse_valid_pruner_types",
    "process_and_check_config",
    "process_config",
    "process_weight_config",
    "process_yaml_config",
    "pruner_list",
    "reset_none_to_default",
    "resolve_config",
    "split_layout",
    "update_params",
]
