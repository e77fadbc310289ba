"""Pruning configs: INC 3.7.1's keys and defaults, resolution per pruner, and validation.

A config is a list of per-pruner dicts (``pruning_configs``) plus global keys. Each key of a
pruner resolves in this order: the pruner's own dict, then the global value (a keyword of
:class:`WeightPruningConfig` or a top-level key of a dict/YAML config), then :data:`DEFAULT_CONFIG`.
``None`` counts as "not given". An empty ``pruning_configs`` means one pruner made of the
globals. ``reg_coeff`` is read from ``parameters`` (``{"reg_coeff": c}``); ``criterion_type`` and
``pruner_type`` are derived from ``pruning_type``; ``max_sparsity_ratio_per_op`` is capped at
what the pattern can reach (N/M for N:M, as INC does); ``scheduler`` left out is INC's choice
(oneshot when ``start_step == end_step``, else iterative). Every resolved dict is checked by
:func:`check_config` (rules in :mod:`workbench.pruner.config_check`, keys, defaults and the typed
:class:`PrunerConfig` in :mod:`workbench.pruner.config_types`, YAML in
:mod:`workbench.pruner.config_io`). :func:`resolve_config` gives typed configs,
:func:`process_config` INC's plain dicts.

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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config_check import (
    DEFAULT_CONFIG,
    DEFAULT_GLOBAL_CONFIG,
    DEFAULT_LOCAL_CONFIG,
    DERIVED_KEYS,
    VALID_KEYS,
    check_config,
    check_key_validity,
    parse_pruning_type,
    parse_valid_pruner_types,
)
from .config_io import dump_yaml, load_mapping, pruner_list, split_layout
from .config_types import PrunerConfig, default_scheduler
from .errors import ConfigError
from .patterns import parse_pattern

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


__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_GLOBAL_CONFIG",
    "DEFAULT_LOCAL_CONFIG",
    "DERIVED_KEYS",
    "PrunerConfig",
    "VALID_KEYS",
    "WeightPruningConfig",
    "check_config",
    "check_key_validity",
    "generate_pruner_config",
    "parse_pruning_type",
    "parse_valid_pruner_types",
    "process_and_check_config",
    "process_config",
    "process_weight_config",
    "process_yaml_config",
    "resolve_config",
    "reset_none_to_default",
    "update_params",
]
