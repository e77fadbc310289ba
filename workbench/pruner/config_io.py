"""Reading and writing pruning configs as YAML, safely.

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

import re
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

__all__ = ["ConfigLoader", "dump_yaml", "load_yaml"]

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
        ConfigError: if the file does not exist or is not valid YAML (the message names the path).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config path: {str(path)!r} does not exist or is not a file")
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.load(handle, Loader=ConfigLoader)  # noqa: S506  (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config path: {str(path)!r} is not valid YAML: {exc}") from exc


def dump_yaml(data: Any, path: str | Path) -> None:
    """Write plain data (dicts, lists, str, numbers, bool, None) to ``path`` as YAML, keys in order."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        yaml.safe_dump(data, handle, sort_keys=False, default_flow_style=False)
