"""Reading and writing pruning configs as YAML, safely, and the layouts a config may come in.

Loading never executes or imports anything: :class:`ConfigLoader` is PyYAML's ``SafeLoader``
with two additions that INC-era config files need:

* the ``!Pruner`` tag of INC's legacy ``pruners:`` lists is read as a plain mapping
  (``SafeLoader`` would otherwise refuse the whole file);
* numbers in exponent notation without a dot (``1e-4``), which YAML 1.1 -- and so PyYAML --
  reads as strings, are read as floats, so ``reg_coeff: 1e-4`` means what it says.

Example:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "prune.yaml"
    >>> dump_yaml({"target_sparsity": 0.8, "parameters": {"reg_coeff": 1e-4}}, path)
    >>> load_yaml(path)["parameters"]["reg_coeff"]
    0.0001
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .yaml_read import read_yaml_file

__all__ = ["ConfigLoader", "dump_yaml", "load_mapping", "load_yaml", "pruner_list", "split_layout"]

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
