"""``workbench export --format compressed-tensors``: the Hugging Face folder in compressed-tensors' sparse formats.

The folder is a ``save_pretrained`` folder whose ``config.json`` carries the compressed-tensors
``quantization_config`` (``quant_method: compressed-tensors``, a ``sparsity_config`` and no
quantization) and whose safetensors hold every sparse ``Linear`` (or GPT-2 ``Conv1D``) weight in
one of the two sparse layouts of the compressed-tensors library, the layouts llm-compressor wrote
and vLLM read:

* ``sparse-bitmask`` (unstructured and block patterns): ``<module>.compressed`` (the nonzeros,
  row-major, 1-D), ``<module>.bitmask`` (``uint8``, ``[rows, ceil(cols / 8)]``, bit ``j % 8`` of
  byte ``j // 8`` is column ``j``: numpy's ``packbits(bitorder="little")``), ``<module>.row_offsets``
  (``int64``: where each row starts in ``compressed``) and ``<module>.shape`` (``int64``, ``[2]``);
* ``sparse-24-bitmask`` (the ``2:4`` pattern): ``<module>.compressed`` (``[rows, cols / 2]``: the
  two kept values of every group of four along a row, in order), ``<module>.bitmask`` (as above:
  which two) and ``<module>.shape`` (``int64``, ``[2, 1]``). Every group keeps exactly two
  entries, so a group with fewer than two nonzeros keeps a zero (the lowest-index zeros).

Only the layout is written here: compressed-tensors 0.15 and later (the releases transformers 5
accepts) dropped the sparse compressors (0.20.1 keeps the two format names and their configs, which
:func:`sparsity_config` uses to write and validate ``sparsity_config``), and transformers 5's
compressed-tensors loader decompresses quantization only. The folder is therefore loaded back with
:func:`load_compressed_tensors`, which decompresses the weights and hands them to the model's
transformers class. A tensor is compressed when it is at least :data:`SPARSE_MIN_ZEROS` zeros (the
bitmask costs one bit per weight); the 2:4 layout is used only when every compressed weight holds at
most two nonzeros in every group of four along its stored rows (a GPT-2 ``Conv1D`` weight is stored
``[in, out]``, so its 2:4 groups run down the columns: such a model is written ``sparse-bitmask``).

Example:
    >>> w = torch.tensor([[0.0, 1.5, 0.0, -2.0, 3.0, 0.0, 0.0, 0.0, 4.0]])
    >>> parts = bitmask_compress(w)
    >>> parts["compressed"].tolist(), parts["bitmask"].tolist(), parts["row_offsets"].tolist()
    ([1.5, -2.0, 3.0, 4.0], [[26, 1]], [0])
    >>> torch.equal(bitmask_decompress(parts), w)
    True
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

__all__ = [
    "BITMASK",
    "BITMASK_24",
    "SPARSE_MIN_ZEROS",
    "bitmask24_compress",
    "bitmask24_decompress",
    "bitmask_compress",
    "bitmask_decompress",
    "is_24_rows",
    "load_compressed_tensors",
    "sparsity_config",
    "write_compressed_tensors",
]

_log = logging.getLogger(__name__)

BITMASK = "sparse-bitmask"
"""compressed-tensors' format name for unstructured (and block) sparsity."""
BITMASK_24 = "sparse-24-bitmask"
"""compressed-tensors' format name for 2:4 sparsity."""
SPARSE_MIN_ZEROS = 1 / 16
"""A weight with at least this fraction of zeros is compressed (below it, the bitmask costs more)."""
_PARTS = {BITMASK: ("compressed", "bitmask", "row_offsets", "shape"), BITMASK_24: ("compressed", "bitmask", "shape")}


def _pack_rows(mask: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.packbits(mask.numpy(), axis=-1, bitorder="little"))


def _unpack_rows(packed: torch.Tensor, shape: list[int]) -> torch.Tensor:
    bits = np.unpackbits(packed.numpy(), axis=-1, count=shape[-1], bitorder="little")
    return torch.from_numpy(bits.reshape(shape).astype(bool))


def bitmask_compress(weight: torch.Tensor) -> dict[str, torch.Tensor]:
    """``sparse-bitmask`` parts of a 2-D ``weight``: ``compressed``, ``bitmask``, ``row_offsets``, ``shape``."""
    kept = weight != 0
    counts = kept.sum(dim=-1)
    return {
        "compressed": weight[kept].contiguous(),
        "bitmask": _pack_rows(kept),
        "row_offsets": torch.cumsum(counts, 0) - counts,
        "shape": torch.tensor(list(weight.shape)),
    }


def bitmask_decompress(parts: dict[str, torch.Tensor]) -> torch.Tensor:
    """The dense weight of :func:`bitmask_compress`'s parts."""
    shape = [int(s) for s in parts["shape"].flatten().tolist()]
    out = torch.zeros(shape, dtype=parts["compressed"].dtype)
    out[_unpack_rows(parts["bitmask"], shape)] = parts["compressed"]
    return out


def is_24_rows(weight: torch.Tensor) -> bool:
    """Whether every group of four consecutive entries of each row of 2-D ``weight`` has at most two nonzeros."""
    if weight.dim() != 2 or weight.shape[-1] % 4:
        return False
    return bool(((weight != 0).reshape(weight.shape[0], -1, 4).sum(-1) <= 2).all())


def bitmask24_compress(weight: torch.Tensor) -> dict[str, torch.Tensor]:
    """``sparse-24-bitmask`` parts of a 2-D ``weight`` that :func:`is_24_rows`: ``compressed``, ``bitmask``, ``shape``.

    Each group of four keeps its nonzeros and, when it has fewer than two, its first zeros.
    """
    if not is_24_rows(weight):
        raise ValueError(f"weight of shape {tuple(weight.shape)} is not 2:4 along its rows; allowed: a 2:4 weight")
    rows, cols = weight.shape
    groups = (weight != 0).reshape(rows, -1, 4)
    # rank the entries of a group: nonzeros first, then by position; keep the first two
    order = torch.argsort((~groups).to(torch.int8) * 4 + torch.arange(4), dim=-1)
    kept = torch.zeros_like(groups).scatter_(-1, order[..., :2], True).reshape(rows, cols)
    return {
        "compressed": weight[kept].reshape(rows, cols // 2).contiguous(),
        "bitmask": _pack_rows(kept),
        "shape": torch.tensor([rows, cols]).reshape(-1, 1),
    }


def bitmask24_decompress(parts: dict[str, torch.Tensor]) -> torch.Tensor:
    """The dense weight of :func:`bitmask24_compress`'s parts."""
    shape = [int(s) for s in parts["shape"].flatten().tolist()]
    out = torch.zeros(shape, dtype=parts["compressed"].dtype)
    out[_unpack_rows(parts["bitmask"], shape)] = parts["compressed"].flatten()
    return out


def _target_weights(model: torch.nn.Module) -> dict[str, tuple[str, torch.Tensor]]:
    """``<module>`` -> (its class name, its weight) for every Linear / Conv1D weight sparse enough to compress."""
    out = {}
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        kind = type(module).__name__
        if kind not in ("Linear", "Conv1D") or not isinstance(weight, torch.Tensor) or weight.dim() != 2:
            continue
        if weight.is_floating_point() and float((weight == 0).float().mean()) >= SPARSE_MIN_ZEROS:
            out[name] = (kind, weight.detach().to("cpu"))
    return out


def sparsity_config(fmt: str, targets: list[str], global_sparsity: float, structure: str) -> dict[str, Any]:
    """The ``sparsity_config`` entry, validated by compressed-tensors' own config model where it is installed."""
    data = {
        "format": fmt,
        "targets": targets,
        "ignore": [],
        "global_sparsity": global_sparsity,
        "sparsity_structure": structure,
    }
    try:  # optional (the [hf] extra), and slow to import: only when an export writes a config
        from compressed_tensors.config import SparsityCompressionConfig
    except ImportError:  # the layout does not need the library
        return data
    dumped = SparsityCompressionConfig.load_from_registry(fmt, **data).model_dump()
    return {k: dumped[k] for k in data}  # its model_dump adds the registry's own fields


def write_compressed_tensors(model: torch.nn.Module, folder: Path, pattern: str) -> dict[str, Any]:
    """Write ``model`` (a Hugging Face model) into ``folder`` in compressed-tensors' sparse format.

    ``pattern`` is the trial's pruning pattern: ``2:4`` gives ``sparse-24-bitmask`` when every
    compressed weight is 2:4 along its stored rows (else ``sparse-bitmask``, and the returned
    ``reason`` says why); every other pattern gives ``sparse-bitmask``. Returns the written
    ``sparsity_config`` with ``compressed_tensors`` (how many weights were compressed) and ``reason``.
    """
    model.save_pretrained(str(folder))
    targets = _target_weights(model)
    fmt, reason = BITMASK, f"pattern {pattern}: sparse-bitmask holds any zero pattern"
    if pattern == "2:4":
        if targets and all(is_24_rows(w) for _, w in targets.values()):
            fmt, reason = BITMASK_24, "pattern 2:4, 2:4 along every compressed weight's rows"
        else:
            reason = "pattern 2:4, but not along the stored rows of every weight (Conv1D: [in, out]): sparse-bitmask"
    compress = bitmask24_compress if fmt == BITMASK_24 else bitmask_compress
    files = sorted(folder.glob("*.safetensors"))
    written: dict[str, str] = {}
    done: set[str] = set()  # the modules whose weight was compressed (a tied weight is saved once)
    for path in files:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no items()
        out: dict[str, torch.Tensor] = {}
        for key, tensor in state.items():
            module = key[: -len(".weight")] if key.endswith(".weight") else None
            if module in targets and torch.equal(tensor, targets[module][1]):
                for part, value in compress(tensor).items():
                    out[f"{module}.{part}"] = value
                done.add(module)
            else:
                out[key] = tensor
        save_file(out, str(path), metadata=meta)
        written.update(dict.fromkeys(out, path.name))
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        data = json.loads(index.read_text())
        data["weight_map"] = written
        index.write_text(json.dumps(data, indent=2, sort_keys=True))
    targets = {name: targets[name] for name in sorted(done)}
    numel = sum(w.numel() for _, w in targets.values())
    zeros = sum(int((w == 0).sum()) for _, w in targets.values())
    structure = "2:4" if fmt == BITMASK_24 else "unstructured"  # the names readers parse (SparsityStructure)
    config = sparsity_config(
        fmt, sorted({kind for kind, _ in targets.values()}), round(zeros / numel, 6) if numel else 0.0, structure
    )
    config_path = folder / "config.json"
    data = json.loads(config_path.read_text())
    data["quantization_config"] = {  # the keys compressed-tensors' ModelCompressor.update_config wrote
        "quant_method": "compressed-tensors",
        "version": _library_version(),
        "sparsity_config": config,
        "transform_config": {},
    }
    config_path.write_text(json.dumps(data, indent=2, sort_keys=True))
    return {**config, "compressed_tensors": len(targets), "reason": reason}


def _library_version() -> str:
    from importlib.metadata import version  # only an export needs it

    try:
        return version("compressed-tensors")
    except Exception:  # noqa: BLE001 - not installed: the layout needs no library
        return "none (written by the workbench)"


def load_compressed_tensors(folder: str | os.PathLike, model_class: Any = None) -> torch.nn.Module:
    """Load a compressed-tensors sparse folder back with transformers: the dense model, in eval mode.

    The weights are decompressed (:func:`bitmask_decompress` / :func:`bitmask24_decompress`) and
    loaded into ``model_class`` (default: the class ``config.json``'s ``architectures`` names,
    from transformers) built from the folder's config without its ``quantization_config``. A
    folder whose ``sparsity_config`` names another format is a ValueError naming it.
    """
    import transformers  # the optional [hf] extra, slow to import: only a load needs it

    folder = Path(folder)
    config = transformers.AutoConfig.from_pretrained(str(folder))
    ct = getattr(config, "quantization_config", None) or {}
    ct = ct if isinstance(ct, dict) else ct.to_dict()
    fmt = (ct.get("sparsity_config") or {}).get("format")
    if fmt not in _PARTS:
        raise ValueError(
            f"sparsity_config.format: {fmt!r} in {folder / 'config.json'} is not allowed; allowed: {', '.join(_PARTS)}"
        )
    decompress = bitmask24_decompress if fmt == BITMASK_24 else bitmask_decompress
    del config.quantization_config
    state: dict[str, torch.Tensor] = {}
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118
                module, _, last = key.rpartition(".")
                if last in _PARTS[fmt] and not key.endswith(".weight"):
                    parts.setdefault(module, {})[last] = f.get_tensor(key)
                else:
                    state[key] = f.get_tensor(key)
    for module, pieces in parts.items():
        state[f"{module}.weight"] = decompress(pieces)
    cls = model_class or getattr(transformers, config.architectures[0])
    model = cls.from_pretrained(None, config=config, state_dict=state)
    return model.eval()
