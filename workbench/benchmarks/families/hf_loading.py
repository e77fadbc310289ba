"""Loading for the Hugging Face families: data splits, the tokenizer, the model, the dense recipe.

Every loader takes what a user writes in an experiment file (a hub name) or, for tests and
notebooks, the object itself, through the same code path:

* ``dataset``: a ``datasets`` hub name (``"glue"`` with ``dataset_config="sst2"``), loaded with
  ``datasets.load_dataset``; or in memory: a ``datasets.DatasetDict``, or a dict ``{split:
  datasets.Dataset | {column: list}}``;
* ``tokenizer``: a hub name (``None``: the model's), or a tokenizer object (e.g. one built
  locally with the ``tokenizers`` library and wrapped in ``PreTrainedTokenizerFast``);
* ``model`` / ``model_config``: a checkpoint loaded with ``from_pretrained``; or, with
  ``model_config`` (a dict of config fields), a randomly initialised model from
  ``AutoConfig.for_model(**model_config)`` when it names a ``model_type``, else from the
  checkpoint's config with those fields overridden (nothing but the config is downloaded).

:func:`fingerprint` records an injected object in the task's params (part of the dense-cache key)
by its content, so two different in-memory datasets never share a cached baseline.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from workbench.pruner.errors import ConfigError

from ..base import DenseRecipe
from .extras import require

__all__ = [
    "column",
    "dense_recipe",
    "fingerprint",
    "load_model",
    "load_split",
    "load_tokenizer",
    "split_length",
    "subset_indices",
]


INLINE_CHARS = 300
"""A JSON-able param longer than this (as JSON) is recorded by its digest, not inline."""


def fingerprint(value: Any) -> Any:
    """``value`` when it is short JSON, else a content digest such as ``"<Dataset 1a2b3c4d5e6f7a8b>"``."""
    try:
        text = json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        text = None
    if text is not None:
        if len(text) <= INLINE_CHARS:
            return value
        data = text.encode()
    elif isinstance(value, Mapping):
        data = json.dumps({str(key): fingerprint(item) for key, item in value.items()}, sort_keys=True).encode()
    elif isinstance(value, (list, tuple)):
        data = json.dumps([fingerprint(item) for item in value]).encode()
    elif isinstance(value, torch.Tensor):
        data = value.detach().cpu().contiguous().flatten().view(torch.uint8).numpy().tobytes()
    elif hasattr(value, "_fingerprint"):  # a datasets.Dataset: content-based fingerprint
        data = str(value._fingerprint).encode()
    elif hasattr(value, "backend_tokenizer"):  # a fast tokenizer: its whole definition
        data = value.backend_tokenizer.to_str().encode()
    elif callable(value):
        data = f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', repr(value))}".encode()
    else:
        data = repr(value).encode()
    return f"<{type(value).__name__} {hashlib.sha256(data).hexdigest()[:16]}>"


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]


def load_split(dataset: Any, dataset_config: str | None, split: str, *, family: str) -> Any:
    """One split of ``dataset`` (a hub name or in-memory splits), as a ``datasets.Dataset`` or dict of columns."""
    if isinstance(dataset, str):
        datasets = require("datasets", extra="hf", family=family)
        try:
            return datasets.load_dataset(dataset, dataset_config, split=split)
        except ValueError as err:  # an unknown split or config of a set that exists
            raise ConfigError(
                f"dataset: {dataset!r} (config {dataset_config!r}) has no split {split!r}: {_first_line(err)}"
            ) from None
        except OSError as err:  # not on the hub (DatasetNotFoundError is a FileNotFoundError), or offline
            raise ConfigError(f"dataset: {dataset!r} cannot be loaded: {_first_line(err)}") from None
    if isinstance(dataset, Mapping):
        if split not in dataset:
            raise ConfigError(f"dataset: the in-memory dataset has no split {split!r}; it has {sorted(dataset)}")
        part = dataset[split]
        if isinstance(part, Mapping) or hasattr(part, "column_names"):
            return part
        raise ConfigError(
            f"dataset[{split!r}]: expected a datasets.Dataset or a dict of columns, got {type(part).__name__}"
        )
    raise ConfigError(f"dataset: expected a hub name or a dict of splits (in memory), got {type(dataset).__name__}")


def split_length(split: Any) -> int:
    """The number of rows of a split (a ``datasets.Dataset`` or a dict of equal-length columns)."""
    if hasattr(split, "num_rows"):
        return int(split.num_rows)
    lengths = {len(column) for column in split.values()}
    if len(lengths) != 1:
        raise ConfigError(f"dataset: the columns of an in-memory split differ in length: {sorted(lengths)}")
    return lengths.pop()


def column(split: Any, name: str, indices: Sequence[int] | None = None) -> list[Any]:
    """The values of column ``name`` (optionally at ``indices``) as a list."""
    names = split.column_names if hasattr(split, "column_names") else list(split)
    if name not in names:
        raise ConfigError(f"dataset: no column {name!r}; columns: {sorted(names)}")
    if indices is not None and hasattr(split, "select"):
        return list(split.select(indices)[name])
    values = list(split[name])
    return values if indices is None else [values[i] for i in indices]


def subset_indices(total: int, size: int | None, seed: int, key: str) -> list[int] | None:
    """``size`` rows of ``total`` drawn by a permutation seeded with ``seed`` (``None``: all, in order)."""
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"{key}: must be an integer >= 1 or null (all rows), got {size!r}")
    generator = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(total, generator=generator)[: min(size, total)].tolist())


def load_tokenizer(tokenizer: Any, model: str, *, family: str) -> Any:
    """The tokenizer: ``tokenizer`` itself when it is an object, else ``AutoTokenizer.from_pretrained``."""
    if tokenizer is not None and not isinstance(tokenizer, str):
        if not callable(tokenizer):
            raise ConfigError(f"tokenizer: expected a hub name or a tokenizer object, got {type(tokenizer).__name__}")
        return tokenizer
    transformers = require("transformers", extra="hf", family=family)
    try:
        return transformers.AutoTokenizer.from_pretrained(tokenizer or model)
    except OSError as err:  # not on the hub, or offline
        raise ConfigError(f"tokenizer: {tokenizer or model!r} cannot be loaded: {_first_line(err)}") from None


def load_model(auto_class: str, model: str, model_config: Mapping[str, Any] | None, *, family: str, **fields: Any):
    """``transformers.<auto_class>`` from the checkpoint ``model``, or randomly initialised from ``model_config``."""
    transformers = require("transformers", extra="hf", family=family)
    auto = getattr(transformers, auto_class)
    if model_config is None:
        try:
            return auto.from_pretrained(model, **fields)
        except OSError as err:  # not on the hub, or offline
            raise ConfigError(f"model: {model!r} cannot be loaded: {_first_line(err)}") from None
    if not isinstance(model_config, Mapping):
        raise ConfigError(f"model_config: expected a dict of config fields or null, got {type(model_config).__name__}")
    overrides = {**dict(model_config), **fields}
    if "model_type" in overrides:
        config = transformers.AutoConfig.for_model(**overrides)
    else:
        config = transformers.AutoConfig.from_pretrained(model, **overrides)
    return auto.from_config(config)


def dense_recipe(dense_steps: int, batch_size: int, lr: float) -> DenseRecipe | None:
    """``None`` (the built model is the dense model) for 0 steps, else AdamW with warm-up and cosine decay."""
    if isinstance(dense_steps, bool) or not isinstance(dense_steps, int) or dense_steps < 0:
        raise ConfigError(
            f"dense_steps: must be an integer >= 0 (0: the checkpoint is the dense model), got {dense_steps!r}"
        )
    if dense_steps == 0:
        return None
    return DenseRecipe(
        steps=dense_steps, batch_size=batch_size, lr=lr, optimizer="adamw", weight_decay=0.01, schedule="cosine"
    )
