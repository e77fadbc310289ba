"""scikit-learn's bundled 8x8 digits (1797 images, 10 classes) with a fixed stratified split.

The data ships inside scikit-learn, so nothing is downloaded. The split is fixed (stratified,
25 % test, ``random_state=0``) and independent of the trial seed, so every trial and every seed
is scored on the same 450 test images.

Importing scikit-learn and splitting takes about two seconds, more than a short trial, so the
split is kept in the cache folder (:func:`~workbench.infra.cache_dir.resolve_cache_dir`) as
``digits-split-sklearn<version>.pt`` with a checksum; later processes read it in milliseconds and
never import scikit-learn. A file that is missing, unreadable or fails its checksum is computed
again and rewritten; a cache folder that cannot be written only costs the two seconds.
"""

from __future__ import annotations

import functools
import logging
import os
from importlib import metadata
from pathlib import Path

import torch

from workbench.infra.cache_dir import resolve_cache_dir
from workbench.infra.durable import write_durably

from .base import BenchmarkData
from .cache import state_checksum

__all__ = ["digits_data", "split_cache_path"]

_log = logging.getLogger(__name__)

_PARTS = ("x_train", "y_train", "x_test", "y_test")
_SHAPES = {"x_train": (1347, 64), "y_train": (1347,), "x_test": (450, 64), "y_test": (450,)}
_DTYPES = {"x_train": torch.float32, "y_train": torch.long, "x_test": torch.float32, "y_test": torch.long}

Split = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def split_cache_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the split is cached: named by scikit-learn's version, whose data and split it is."""
    return resolve_cache_dir(cache_dir) / f"digits-split-sklearn{metadata.version('scikit-learn')}.pt"


def _compute() -> Split:
    # start-up: scikit-learn loads only when no cached split can be read
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
    as_x = lambda a: torch.tensor(a, dtype=torch.float32) / 16.0  # noqa: E731 - pixel values are 0..16
    as_y = lambda a: torch.tensor(a, dtype=torch.long)  # noqa: E731
    return as_x(x_tr), as_y(y_tr), as_x(x_te), as_y(y_te)


def _read(path: Path) -> Split | None:
    """The cached split at ``path``, or ``None`` when it is missing or not exactly what was written."""
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        return None
    except Exception as err:  # noqa: BLE001 - any damage means: compute it again
        _log.warning("digits split cache %s unreadable (%s): computing it again", path, type(err).__name__)
        return None
    parts = entry.get("parts") if isinstance(entry, dict) else None
    if (
        not isinstance(parts, dict)
        or any(
            not isinstance(parts.get(k), torch.Tensor)
            or tuple(parts[k].shape) != _SHAPES[k]
            or parts[k].dtype != _DTYPES[k]
            for k in _PARTS
        )
        or entry.get("checksum") != state_checksum(parts)
    ):
        _log.warning("digits split cache %s fails its checks: computing it again", path)
        return None
    return tuple(parts[k] for k in _PARTS)  # type: ignore[return-value]


@functools.lru_cache(maxsize=1)
def _split() -> Split:
    path = split_cache_path()
    cached = _read(path)
    if cached is not None:
        return cached
    split = _compute()
    parts = dict(zip(_PARTS, split))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_durably(path, lambda handle: torch.save({"parts": parts, "checksum": state_checksum(parts)}, handle))
    except OSError as err:  # a read-only or full cache folder: the split is still right, only slower next time
        _log.debug("digits split not cached at %s: %s", path, err)
    return split


def digits_data(*, images: bool = False) -> BenchmarkData:
    """Train/test tensors; ``x`` is ``[N, 64]`` in [0, 1], or ``[N, 1, 8, 8]`` with ``images=True``."""
    x_tr, y_tr, x_te, y_te = _split()
    if images:
        x_tr, x_te = x_tr.view(-1, 1, 8, 8), x_te.view(-1, 1, 8, 8)
    return BenchmarkData(x_tr.clone(), y_tr.clone(), x_te.clone(), y_te.clone())
