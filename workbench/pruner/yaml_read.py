"""Reading a user's YAML file safely: bounded, strict, and every failure names the file.

Pruning configs and experiment files are small hand-written mappings, so a file that is not one
is refused with a :class:`~workbench.pruner.ConfigError` naming the file (and the key or line):

- larger than :data:`MAX_FILE_BYTES`, unreadable (permissions, a folder), or not UTF-8 text;
- not valid YAML (with the line);
- a mapping that repeats a key (YAML would silently keep the last value);
- a document whose aliases expand to more than :data:`MAX_NODES` values (a "billion laughs"
  alias bomb would take minutes and gigabytes to build), or an alias that contains itself.

Only YAML's safe tags are built (``yaml.SafeLoader`` or a subclass of it).

Example:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "twice.yaml"
    >>> _ = path.write_text("a: 1\\nb: 2\\na: 3\\n")
    >>> read_yaml_file(path, "config path")
    Traceback (most recent call last):
        ...
    workbench.pruner.errors.ConfigError: config path: ... line 3: duplicate key 'a' (first at line 1); a key may appear once
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

__all__ = ["MAX_FILE_BYTES", "MAX_NODES", "check_yaml_node", "read_yaml_file", "read_yaml_text"]

MAX_FILE_BYTES = 1 << 20
"""Largest YAML file read (1 MiB): experiment files and pruning configs are a few KiB."""
MAX_NODES = 100_000
"""Most values (scalars, lists and mappings, aliases counted as expanded) one document may hold."""


def read_yaml_file(path: str | Path, what: str, *, loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> Any:
    """The document of the YAML file ``path``; ``what`` (e.g. ``"experiment"``) starts every message.

    Raises:
        ConfigError: for a missing, unreadable, oversized, non-UTF-8 or invalid file, a repeated
            key or an alias bomb; the message names ``what``, the file and the problem.
    """
    path = Path(path)
    name = repr(str(path))
    try:
        if not path.is_file():
            raise ConfigError(f"{what}: no such file {name}" + (" (it is a folder)" if path.is_dir() else ""))
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(f"{what}: {name} is {size} bytes; allowed: at most {MAX_FILE_BYTES} bytes (1 MiB)")
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"{what}: cannot read {name} ({err.strerror or type(err).__name__})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{what}: {name} is not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start}); save it as UTF-8"
        ) from None
    return read_yaml_text(text, f"{what}: {name}", loader=loader)


def read_yaml_text(text: str, where: str, *, loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> Any:
    """The document of ``text``, with :func:`check_yaml_node`'s checks; ``where`` starts messages."""
    parser = loader(text)
    try:
        node = parser.get_single_node()
        if node is None:
            return None
        check_yaml_node(node, where)
        return parser.construct_document(node)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{where} is not valid YAML{line}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{where} is nested too deeply; allowed: a few levels of mappings and lists") from None
    finally:
        parser.dispose()


def check_yaml_node(node: yaml.Node, where: str, *, max_nodes: int = MAX_NODES) -> None:
    """Refuse repeated mapping keys, and documents over ``max_nodes`` values once aliases expand.

    Each node's expanded size is computed once (aliases share node objects), so the check is
    linear in the file even when the document it describes is exponentially large.
    """
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()

    def size(n: yaml.Node) -> int:
        key = id(n)
        if key in sizes:
            return sizes[key]
        if key in in_progress:
            raise ConfigError(f"{where} line {n.start_mark.line + 1}: an alias refers to a value that contains it")
        in_progress.add(key)
        total = 1
        if isinstance(n, yaml.MappingNode):
            _check_keys(n, where)
            for k, v in n.value:
                total += size(k) + size(v)
        elif isinstance(n, yaml.SequenceNode):
            for item in n.value:
                total += size(item)
        in_progress.discard(key)
        sizes[key] = min(total, max_nodes + 1)
        if total > max_nodes:
            raise ConfigError(
                f"{where} line {n.start_mark.line + 1}: the document expands to more than {max_nodes} values "
                f"(aliases counted as copies); allowed: at most {max_nodes}"
            )
        return sizes[key]

    size(node)


def _check_keys(node: yaml.MappingNode, where: str) -> None:
    seen: dict[tuple[str, str], int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        line = key.start_mark.line + 1
        if (key.tag, key.value) in seen:
            first = seen[(key.tag, key.value)]
            raise ConfigError(
                f"{where} line {line}: duplicate key {key.value!r} (first at line {first}); a key may appear once"
            )
        seen[(key.tag, key.value)] = line
