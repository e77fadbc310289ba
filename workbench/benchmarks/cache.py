"""Dense baselines: trained once per (benchmark, params, seed, code version), cached on disk.

Every trial fine-tunes from the same dense model, as pruning research does, so the dense model is
trained once and its weights and test accuracy are kept in a cache folder: the ``cache_dir``
argument, else the environment variable ``WORKBENCH_CACHE_DIR``, else ``.workbench-cache/`` in
the working directory (ignored by git).

One entry is one ``.pt`` file named ``<benchmark>-seed<seed>-<key>.pt``, where ``key`` hashes the
benchmark name, its params, the seed, its dense recipe, a digest of the source file that defines
it, :data:`TRAINING_CODE_VERSION` and the torch version. The file holds the weights, the accuracy,
that metadata and a SHA-256 of the weights; it is read with ``torch.load(weights_only=True)``. An
entry that cannot be read, lacks a key, carries other metadata, fails its checksum or does not fit
the model is logged as a warning and rebuilt, never used; so is something other than a file (a
folder) in the place of an entry or of its lock: a warning names it and the entry (or lock) goes
to a free name beside it (``<name>.1.pt``). Writes go to a temporary file that is
renamed into place, and an exclusive file lock per entry makes parallel workers wait for the one
training the baseline instead of training it twice.

Example:
    >>> from workbench.benchmarks import get_benchmark, load_dense_baseline
    >>> model, acc = load_dense_baseline(get_benchmark("mlp-digits"), seed=0)  # doctest: +SKIP
    >>> acc > 0.95                                                            # doctest: +SKIP
    True
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from workbench.infra.locks import file_lock

from .base import Benchmark, iterate_batches, make_optimizer, seeded, torch_settings
from .registry import get_benchmark

__all__ = [
    "CACHE_ENV",
    "DEFAULT_CACHE_DIR",
    "DENSE_THREADS",
    "TRAINING_CODE_VERSION",
    "cache_path",
    "load_dense_baseline",
    "resolve_cache_dir",
    "state_checksum",
    "train_dense",
]

logger = logging.getLogger(__name__)

CACHE_ENV = "WORKBENCH_CACHE_DIR"
DEFAULT_CACHE_DIR = ".workbench-cache"
TRAINING_CODE_VERSION = 1
"""Bump when :func:`train_dense` changes what it produces: every cached baseline is rebuilt."""
DENSE_THREADS = 1
"""torch threads of dense training. CPU kernels give different bits with different thread counts,
so a fixed count makes the cached baseline independent of the worker that happened to train it
(these models are too small to gain much from a second thread)."""
_FORMAT = 1
_ENTRY_KEYS = ("format", "key", "meta", "accuracy", "state_dict", "checksum")


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``cache_dir``, else ``$WORKBENCH_CACHE_DIR``, else ``./.workbench-cache``."""
    return Path(cache_dir or os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR)


def _material(benchmark: Benchmark, seed: int) -> tuple[str, str]:
    meta = dict(benchmark.cache_material(seed), training_code=TRAINING_CODE_VERSION)
    text = json.dumps(meta, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest(), text


def cache_path(benchmark: Benchmark, seed: int, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the dense baseline of ``benchmark`` and ``seed`` is (or would be) cached."""
    key, _ = _material(benchmark, seed)
    slug = re.sub(r"[^\w.-]+", "_", benchmark.name).strip("_.")[:60] or "benchmark"
    return resolve_cache_dir(cache_dir) / f"{slug}-seed{int(seed)}-{key[:16]}.pt"


def state_checksum(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and raw bytes of every tensor (sorted by name)."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def train_dense(benchmark: Benchmark, seed: int) -> tuple[nn.Module, float]:
    """Train the dense model of ``benchmark`` with its recipe; returns ``(model, test accuracy)``.

    Deterministic: the init, the batch order (a generator seeded with ``seed``) and any other torch
    randomness are functions of ``seed``. Runs on :data:`DENSE_THREADS` threads, so the weights do
    not depend on the caller's thread setting either.
    """
    recipe, data = benchmark.recipe, benchmark.data
    model = benchmark.build_model(seed)
    model.train()
    optimizer = make_optimizer(
        model.parameters(),
        name=recipe.optimizer,
        lr=recipe.lr,
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
    )
    generator = torch.Generator().manual_seed(int(seed))
    with seeded(seed), torch_settings(threads=DENSE_THREADS, deterministic=True):
        for step, (_, _, idx) in enumerate(
            iterate_batches(data.x_train.shape[0], recipe.batch_size, recipe.steps, generator)
        ):
            for group in optimizer.param_groups:
                group["lr"] = recipe.lr * recipe.lr_factor(step)
            loss = benchmark.loss(model(data.x_train[idx]), data.y_train[idx])
            if not torch.isfinite(loss):
                raise RuntimeError(f"dense training of {benchmark.name!r} (seed {seed}) diverged: loss {loss.item()}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        accuracy = benchmark.evaluate(model)
    return model, accuracy


def _read(path: Path, model: nn.Module, key: str, meta: str) -> tuple[float | None, str]:
    """Load ``path`` into ``model``; returns ``(accuracy, "")`` or ``(None, why it is unusable)``."""
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is a corrupt entry
        return None, f"unreadable ({type(err).__name__}: {str(err)[:120]})"
    if not isinstance(entry, dict):
        return None, f"not a cache entry ({type(entry).__name__})"
    missing = [k for k in _ENTRY_KEYS if k not in entry]
    if missing:
        return None, f"missing keys {missing}"
    if entry["format"] != _FORMAT or entry["key"] != key or entry["meta"] != meta:
        return None, "stale metadata (benchmark, params, seed or code version differ)"
    state = entry["state_dict"]
    if not isinstance(state, dict) or state_checksum(state) != entry["checksum"]:
        return None, "checksum mismatch"
    accuracy = entry["accuracy"]
    if not isinstance(accuracy, float) or not math.isfinite(accuracy) or not 0.0 <= accuracy <= 1.0:
        return None, f"bad accuracy {accuracy!r}"
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError) as err:
        return None, f"weights do not fit the model ({str(err)[:120]})"
    return accuracy, ""


def _write(path: Path, entry: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(entry, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _beside(path: Path) -> Path:
    """``path``, or, when something other than a file sits there (a folder), a free name beside it."""
    candidate, n = path, 0
    while candidate.exists() and not candidate.is_file():
        n += 1
        candidate = path.with_name(f"{path.stem}.{n}{path.suffix}")
    if candidate != path:
        logger.warning("dense baseline cache: %s is not a file; using %s beside it", path, candidate)
    return candidate


def load_dense_baseline(
    benchmark: Benchmark, seed: int, *, cache_dir: str | os.PathLike | None = None
) -> tuple[nn.Module, float]:
    """The dense model of ``benchmark`` for ``seed`` and its test accuracy, trained at most once.

    Args:
        benchmark: A :class:`Benchmark` (or a spec string for :func:`get_benchmark`).
        seed: Seed of the model init and of the dense training's batch order.
        cache_dir: Cache folder (default: ``$WORKBENCH_CACHE_DIR`` or ``.workbench-cache``).

    Returns:
        A freshly built model holding the cached dense weights (identical whether the entry was
        just trained or read back), and the dense test accuracy.
    """
    if not isinstance(benchmark, Benchmark):
        benchmark = get_benchmark(benchmark)
    key, meta = _material(benchmark, seed)
    path = cache_path(benchmark, seed, cache_dir=cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(_beside(path.with_name(path.name + ".lock"))):
        path = _beside(path)
        if path.exists():
            model = benchmark.build_model(seed)
            accuracy, problem = _read(path, model, key, meta)
            if accuracy is not None:
                logger.debug("dense baseline of %s seed %d from %s", benchmark.name, seed, path)
                return model, accuracy
            logger.warning("dense baseline cache entry %s is unusable: %s; retraining", path, problem)
        logger.info(
            "training the dense baseline of %s (seed %d), once per benchmark and seed; later trials reuse it",
            benchmark.name,
            seed,
        )
        start = time.perf_counter()
        trained, accuracy = train_dense(benchmark, seed)
        state = {k: v.detach().clone() for k, v in trained.state_dict().items()}
        _write(
            path,
            {
                "format": _FORMAT,
                "key": key,
                "meta": meta,
                "accuracy": float(accuracy),
                "state_dict": state,
                "checksum": state_checksum(state),
            },
        )
        logger.info(
            "trained dense baseline of %s seed %d in %.1fs: accuracy %.4f -> %s",
            benchmark.name,
            seed,
            time.perf_counter() - start,
            accuracy,
            path,
        )
    model = benchmark.build_model(seed)
    model.load_state_dict(state, strict=True)
    return model, float(accuracy)
