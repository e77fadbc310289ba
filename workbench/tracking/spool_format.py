"""The spool file format: JSON lines that can hold a trial's logging calls and nothing executable.

One spool file holds the logging calls of one run: a header line
``{"format": "workbench-spool", "version": 1, "run_id": ...}``, then one line per call,
``{"method": ..., "args": [...], "kwargs": {...}}``. Values are tagged JSON, so reading a file
back gives exactly what was written (int keys stay ints, tuples stay tuples, NaN stays NaN):

* ``null``, booleans, numbers, strings and arrays (lists) are themselves;
* every JSON object is a tag: ``{"dict": [[key, value], ...]}``, ``{"tuple": [...]}`` or
  ``{"trial_result": {field: value, ...}}`` (a :class:`~workbench.trial.TrialResult`).

Reading builds only these types, and a call's method must be one of :data:`METHODS`: a file
dropped in the spool folder cannot run anything (the old pickle files could). Anything else is a
:class:`SpoolFormatError`.

Example:
    >>> decode(json.loads(json.dumps(encode({1: (0.5, float("inf")), "a": [None, True]}))))
    {1: (0.5, inf), 'a': [None, True]}
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from workbench.trial.types import TrialResult

__all__ = ["METHODS", "SUFFIX", "SpoolFormatError", "decode", "dumps_entry", "encode", "read_entry"]

SUFFIX = ".jsonl"
FORMAT, VERSION = "workbench-spool", 1
METHODS = frozenset({"log_result", "log_partial", "log_model_file", "finish"})
"""The only tracker methods a spool file may call."""
_RESULT_FIELDS = frozenset(f.name for f in dataclasses.fields(TrialResult))
_REQUIRED_FIELDS = frozenset(
    f.name
    for f in dataclasses.fields(TrialResult)
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
)
_LEGACY_FIELDS = {"accuracy": "value", "dense_accuracy": "dense_value", "eval_accuracy": "eval_values"}
"""Fields of results spooled before tasks had their own metric (always accuracy then)."""


class SpoolFormatError(ValueError):
    """A spool file that is not a well-formed workbench spool file (it is never replayed)."""


def encode(value: Any) -> Any:
    """``value`` (plain data and TrialResults) as tagged JSON data (module docstring)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, tuple):
        return {"tuple": [encode(v) for v in value]}
    if isinstance(value, dict):
        return {"dict": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, TrialResult):
        return {"trial_result": {f: encode(getattr(value, f)) for f in sorted(_RESULT_FIELDS)}}
    raise TypeError(f"cannot spool a {type(value).__name__}: {value!r}")


def _key(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        raise SpoolFormatError(f"unhashable dict key {value!r}") from None
    return value


def decode(data: Any) -> Any:
    """The value :func:`encode` made ``data`` from; SpoolFormatError for anything else."""
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict) or len(data) != 1:
        raise SpoolFormatError(f"expected a tagged value, got {data!r:.80}")
    ((tag, body),) = data.items()
    if tag == "tuple" and isinstance(body, list):
        return tuple(decode(v) for v in body)
    if tag == "dict" and isinstance(body, list) and all(isinstance(p, list) and len(p) == 2 for p in body):
        return {_key(decode(k)): decode(v) for k, v in body}
    if tag == "trial_result" and isinstance(body, dict):
        body = {_LEGACY_FIELDS.get(f, f): v for f, v in body.items()}
        if set(body) <= _RESULT_FIELDS and _REQUIRED_FIELDS <= set(body):
            return TrialResult(**{f: decode(v) for f, v in body.items()})
    raise SpoolFormatError(f"unknown or malformed tag {tag!r}")


def dumps_entry(run_id: str, calls: list[tuple[str, tuple, dict]]) -> str:
    """The text of the spool file of ``run_id`` holding ``calls`` (method, args, kwargs)."""
    lines = [json.dumps({"format": FORMAT, "version": VERSION, "run_id": run_id})]
    for method, args, kwargs in calls:
        if method not in METHODS:
            raise ValueError(f"method: {method!r} cannot be spooled; allowed: {', '.join(sorted(METHODS))}")
        lines.append(json.dumps({"method": method, "args": encode(list(args)), "kwargs": encode(dict(kwargs))}))
    return "\n".join(lines) + "\n"


def read_entry(path: str | Path) -> tuple[str, list[tuple[str, tuple, dict]]]:
    """The run id and calls of the spool file ``path``; SpoolFormatError if it is not one."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        header = json.loads(lines[0]) if lines else None
        if not (isinstance(header, dict) and header.get("format") == FORMAT and header.get("version") == VERSION):
            raise SpoolFormatError("no workbench spool header")
        run_id, calls = header.get("run_id"), []
        if not isinstance(run_id, str):
            raise SpoolFormatError("the header has no run id")
        for line in lines[1:]:
            call = json.loads(line)
            if not isinstance(call, dict) or set(call) != {"method", "args", "kwargs"}:
                raise SpoolFormatError(f"not a call: {line:.80}")
            method, args, kwargs = call["method"], decode(call["args"]), decode(call["kwargs"])
            if method not in METHODS or not isinstance(args, list) or not isinstance(kwargs, dict):
                raise SpoolFormatError(f"not an allowed call: {line:.80}")
            if not all(isinstance(k, str) for k in kwargs):
                raise SpoolFormatError(f"keyword names must be strings: {line:.80}")
            calls.append((method, tuple(args), kwargs))
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError, RecursionError) as err:
        raise SpoolFormatError(str(err)) from None
    return run_id, calls
