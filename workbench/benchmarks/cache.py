"""Dense baselines: trained (or evaluated) once per (task, params, seed, code version), cached on disk.

Every trial fine-tunes from the same dense model, as pruning research does, so the dense model is
trained once and its weights and every dense metric are kept in a cache folder: the ``cache_dir``
argument, else the environment variable ``WORKBENCH_CACHE_DIR``, else ``.workbench-cache/`` in
the working directory (ignored by git). A task whose ``dense`` is ``None`` (a pretrained
checkpoint) is not trained: the built model is the dense model, and only its dense metrics are
cached, with a checksum of the built weights (a checkpoint that changed is evaluated again), so
a study evaluates it once.

One entry is one ``.pt`` file named ``<task>-seed<seed>-<key>.pt``, where ``key`` hashes the
task name, its params, the seed, its dense recipe, its metric, a digest of the source file that
defines it, :data:`TRAINING_CODE_VERSION` and the torch version. The file holds the weights (CPU
tensors: an entry does not depend on the device that trained it, and the first device to train
it wins), the metrics, that metadata and a SHA-256 of the weights; it is read with
``torch.load(weights_only=True)``. An entry that cannot be read, lacks a key, carries other
metadata, fails its checksum or does not fit the model is logged as a warning and rebuilt, never
used; so is something other than a file (a folder) in the place of an entry or of its lock: a
warning names it and the entry (or lock) goes to a free name beside it (``<name>.1.pt``).
Writes go to a temporary file that is renamed into place, and an exclusive file lock per entry
makes parallel workers wait for the one training the baseline instead of training it twice.

Each process keeps the last two entries with weights it read (or wrote) and checked in memory:
the next trial of a worker loads them from there, without reading and checksumming the file
again, as long as the file is the same one (same inode, size, modification and change times;
a file modified in the last two seconds is not remembered, since file times tick coarsely). A
file that changed in any way is read and checked again.

Example:
    >>> from workbench.benchmarks import get_benchmark, load_dense_baseline
    >>> model, metrics = load_dense_baseline(get_benchmark("mlp-digits"), seed=0)  # doctest: +SKIP
    >>> metrics["accuracy"] > 0.95                                                # doctest: +SKIP
    True
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from workbench.infra.cache_dir import CACHE_ENV, DEFAULT_CACHE_DIR, resolve_cache_dir
from workbench.infra.durable import write_durably
from workbench.infra.locks import file_lock
from workbench.pruner.errors import ConfigError

from .base import make_optimizer, seeded, torch_settings
from .batches import OnDevice, cycle_batches, to_device
from .registry import get_benchmark
from .task import Task

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

TRAINING_CODE_VERSION = 1
"""Bump when :func:`train_dense` changes what it produces: every cached baseline is rebuilt."""
DENSE_THREADS = 1
"""torch threads of dense training. CPU kernels give different bits with different thread counts,
so a fixed count makes the cached baseline independent of the worker that happened to train it
(these models are too small to gain much from a second thread)."""
_FORMAT = 2
_ENTRY_KEYS = ("format", "key", "meta", "metrics", "state_dict", "checksum")


def _material(task: Task, seed: int) -> tuple[str, str]:
    meta = dict(task.cache_material(seed), training_code=TRAINING_CODE_VERSION)
    text = json.dumps(meta, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest(), text


def cache_path(task: Task, seed: int, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the dense baseline of ``task`` and ``seed`` is (or would be) cached."""
    key, _ = _material(task, seed)
    slug = re.sub(r"[^\w.-]+", "_", task.name).strip("_.")[:60] or "benchmark"
    return resolve_cache_dir(cache_dir) / f"{slug}-seed{int(seed)}-{key[:16]}.pt"


def state_checksum(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and raw bytes of every tensor (sorted by name)."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def train_dense(
    task: Task, seed: int, *, device: torch.device | str | None = None
) -> tuple[nn.Module, dict[str, float]]:
    """Train the dense model of ``task`` with its recipe; returns ``(model, dense metrics)``.

    Deterministic: the init, the batch order (a generator seeded with ``seed`` shuffles
    :class:`~workbench.benchmarks.batches.TensorBatches`) and any other torch randomness are
    functions of ``seed``. Runs on :data:`DENSE_THREADS` threads, so the weights do not depend on
    the caller's thread setting either. The model is trained and evaluated on ``device`` (default
    CPU) in fp32, and returned there.

    Raises:
        ValueError: The task has no dense recipe (``dense=None``: its built model is the dense model).
    """
    recipe = task.dense
    if recipe is None:
        raise ConfigError(f"task {task.name!r}: dense is None (the built model is the dense model); nothing to train")
    device = torch.device(device or "cpu")
    batches = task.training_batches(batch_size=recipe.batch_size, generator=torch.Generator().manual_seed(int(seed)))
    model = task.build_model(seed).to(device)
    model.train()
    optimizer = make_optimizer(
        model.parameters(),
        name=recipe.optimizer,
        lr=recipe.lr,
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
    )
    with seeded(seed), torch_settings(threads=DENSE_THREADS, deterministic=True, device=device):
        for step, (_, _, batch) in enumerate(cycle_batches(batches, recipe.steps)):
            for group in optimizer.param_groups:
                group["lr"] = recipe.lr * recipe.lr_factor(step)
            loss = task.loss(model, to_device(batch, device))
            if not torch.isfinite(loss):
                raise RuntimeError(f"dense training of {task.name!r} (seed {seed}) diverged: loss {loss.item()}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        metrics = task.evaluate(model, OnDevice(task.eval_batches, device))
    return model, metrics


def _metrics_problem(metrics: Any, task: Task) -> str:
    """Why ``metrics`` (read from an entry) is unusable, or ''."""
    if not isinstance(metrics, dict) or task.metric not in metrics:
        return f"no {task.metric!r} among the metrics"
    for name, value in metrics.items():
        if not isinstance(name, str) or not isinstance(value, float) or math.isnan(value):
            return f"bad metric {name!r}: {value!r}"
        if name == "accuracy" and not 0.0 <= value <= 1.0:
            return f"bad accuracy {value!r}"
    return ""


def _read(path: Path, model: nn.Module, key: str, meta: str, task: Task) -> tuple[dict[str, float] | None, str]:
    """Load ``path`` into ``model``; returns ``(metrics, "")`` or ``(None, why it is unusable)``.

    An entry of a pretrained task (``state_dict`` None) holds the checksum of the built weights
    instead: ``model`` must still have them.
    """
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
        return None, "stale metadata (task, params, seed or code version differ)"
    problem = _metrics_problem(entry["metrics"], task)
    if problem:
        return None, problem
    state = entry["state_dict"]
    if state is None:
        if task.dense is not None or state_checksum(model.state_dict()) != entry["checksum"]:
            return None, "checksum mismatch (the built model's weights are not the evaluated ones)"
        return dict(entry["metrics"]), ""
    if not isinstance(state, dict) or state_checksum(state) != entry["checksum"]:
        return None, "checksum mismatch"
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError) as err:
        return None, f"weights do not fit the model ({str(err)[:120]})"
    return dict(entry["metrics"]), ""


def _write(path: Path, entry: dict[str, Any]) -> None:
    write_durably(path, lambda handle: torch.save(entry, handle))


def _beside(path: Path) -> Path:
    """``path``, or, when something other than a file sits there (a folder), a free name beside it."""
    candidate, n = path, 0
    while candidate.exists() and not candidate.is_file():
        n += 1
        candidate = path.with_name(f"{path.stem}.{n}{path.suffix}")
    if candidate != path:
        logger.warning("dense baseline cache: %s is not a file; using %s beside it", path, candidate)
    return candidate


_MEMORY: dict[Path, tuple[tuple[int, ...], str, dict[str, float], dict[str, torch.Tensor]]] = {}
_MEMORY_ENTRIES = 2
"""Verified entries kept in memory per process (a study's worker runs one task, usually one seed)."""


_SETTLED_NS = 2_000_000_000
"""An entry modified less than this long ago is not remembered (the racy-git rule: file times tick
coarsely, so a second write soon after could leave them unchanged)."""


def _stamp(path: Path) -> tuple[int, ...] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _remember(path: Path, key: str, metrics: dict[str, float], state: dict[str, torch.Tensor]) -> None:
    """Keep a verified entry's metrics and weights (CPU copies) for this process's next trials."""
    stamp = _stamp(path)
    if stamp is None or stamp[2] > time.time_ns() - _SETTLED_NS:
        return  # written just now: a rewrite within the file system's clock tick could keep these times
    state = {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
    _MEMORY.pop(path, None)
    while len(_MEMORY) >= _MEMORY_ENTRIES:
        _MEMORY.pop(next(iter(_MEMORY)))
    _MEMORY[path] = (stamp, key, {str(k): float(v) for k, v in metrics.items()}, state)


def _recall(path: Path, key: str) -> tuple[dict[str, float], dict[str, torch.Tensor]] | None:
    """The remembered metrics and weights of ``path``, if the file is the one read (same inode,
    size and times) under the same key; else ``None`` (the file is read and checked again)."""
    held = _MEMORY.get(path)
    if held is None or held[1] != key or _stamp(path) != held[0]:
        return None
    return held[2], held[3]


def load_dense_baseline(
    task: Task | str, seed: int, *, cache_dir: str | os.PathLike | None = None, device: torch.device | str | None = None
) -> tuple[nn.Module, dict[str, float]]:
    """The dense model of ``task`` for ``seed`` and its dense metrics, trained (or evaluated) at most once.

    Args:
        task: A :class:`~workbench.benchmarks.task.Task` (or a spec string for :func:`get_benchmark`).
        seed: Seed of the model init and of the dense training's batch order.
        cache_dir: Cache folder (default: ``$WORKBENCH_CACHE_DIR`` or ``.workbench-cache``).
        device: Where a baseline that is not cached yet is trained or evaluated (default CPU).

    Returns:
        A model holding the dense weights and every metric of the task's ``evaluate`` on it. With a
        recipe: a freshly built CPU model loaded with the cached weights (identical whether the
        entry was just trained or read back). With ``dense=None``: the built model itself (on
        ``device`` when it was evaluated now, else where ``build_model`` put it).
    """
    if not isinstance(task, Task):
        task = get_benchmark(task)
    key, meta = _material(task, seed)
    path = cache_path(task, seed, cache_dir=cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(_beside(path.with_name(path.name + ".lock"))):
        path = _beside(path)
        model = task.build_model(seed)
        remembered = _recall(path, key)
        if remembered is not None:
            model.load_state_dict(remembered[1], strict=True)
            logger.debug("dense baseline of %s seed %d from memory (%s unchanged)", task.name, seed, path)
            return model, dict(remembered[0])
        if path.exists():
            metrics, problem = _read(path, model, key, meta, task)
            if metrics is not None:
                logger.debug("dense baseline of %s seed %d from %s", task.name, seed, path)
                if task.dense is not None:  # a pretrained task's checkpoint is checked on every load
                    _remember(path, key, metrics, model.state_dict())
                return model, metrics
            logger.warning("dense baseline cache entry %s is unusable: %s; retraining", path, problem)
        start = time.perf_counter()
        if task.dense is None:
            logger.info(
                "evaluating the dense (built) model of %s (seed %d) once; later trials reuse it", task.name, seed
            )
            checksum = state_checksum(model.state_dict())
            model.to(device or "cpu")
            with seeded(seed), torch_settings(threads=0, deterministic=True, device=device or "cpu"):
                metrics = task.evaluate(model, OnDevice(task.eval_batches, device or "cpu"))
            state = None
        else:
            logger.info(
                "training the dense baseline of %s (seed %d), once per benchmark and seed; later trials reuse it",
                task.name,
                seed,
            )
            trained, metrics = train_dense(task, seed, device=device)
            state = {k: v.detach().to("cpu", copy=True) for k, v in trained.state_dict().items()}
            checksum = state_checksum(state)
        _write(
            path,
            {
                "format": _FORMAT,
                "key": key,
                "meta": meta,
                "metrics": {str(k): float(v) for k, v in metrics.items()},
                "state_dict": state,
                "checksum": checksum,
            },
        )
        if state is not None:
            _remember(path, key, metrics, state)
        logger.info(
            "dense baseline of %s seed %d in %.1fs: %s %.4f -> %s",
            task.name,
            seed,
            time.perf_counter() - start,
            task.metric,
            metrics[task.metric],
            path,
        )
    if state is not None:
        model.load_state_dict(state, strict=True)
    return model, dict(metrics)
