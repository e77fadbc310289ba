"""Sequential onloading: calibrate a model bigger than the device one numbered block at a time.

With ``execution_device`` set, :func:`~workbench.pruner.prune_posttraining` leaves the model where
it is (the CPU) and works as the authors' drivers do: the model runs up to its first block once
per calibration batch (on the model's own device), the first block's inputs (hidden states and
keyword arguments such as the attention mask and position embeddings) are kept on the execution
device, and then for each block in turn the block is moved to the execution device, its layers
are calibrated and pruned on the cached inputs (in passes, as ``layers_per_pass`` says), the
pruned block's outputs become the next block's inputs, and the block is moved back. Peak device
memory is one block, the cached inputs and outputs of all calibration samples, and the pass's
statistics.

Blocks are the numbered submodules holding the targets (``model.layers.3``); they must be
siblings (one ``ModuleList``) called one after another, each taking the previous one's first
output as its first input, as decoder stacks do. Key/value caches are switched off.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .calibration import Stop, attention_mask, run_batches, to_device

__all__ = ["Record", "block_key", "blocks_of", "first_block_inputs", "move", "run_blocks"]


def block_key(name: str) -> str:
    """The repeated block a layer belongs to: its name up to the first numeric part ("h.3.attn.c_attn" -> "h.3")."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return name


@dataclass
class Record:
    """One calibration batch at a block's input: positional and keyword arguments, and its token mask."""

    args: tuple
    kwargs: dict[str, Any]
    keep: torch.Tensor | None = field(default=None)

    def with_hidden(self, hidden: torch.Tensor) -> Record:
        """The same call with ``hidden`` as the hidden states (the first argument)."""
        if self.args:
            return Record((hidden, *self.args[1:]), self.kwargs, self.keep)
        return Record((), dict(self.kwargs, hidden_states=hidden), self.keep)


def call_block(block: nn.Module, record: Record) -> Any:
    """``block(*record.args, **record.kwargs)``."""
    return block(*record.args, **record.kwargs)


def move(module: nn.Module, device: torch.device | str) -> None:
    """Move ``module``'s parameters and buffers to ``device`` (the one place blocks are onloaded and offloaded)."""
    module.to(device)


def blocks_of(model: nn.Module, targets: Mapping[str, nn.Module]) -> dict[str, list[str]]:
    """The numbered blocks holding ``targets`` (block name -> its targets), in registration order.

    Raises:
        ConfigError: A target outside a numbered block, or blocks that are not siblings.
    """
    blocks: dict[str, list[str]] = {}
    for name in targets:
        key = block_key(name)
        if key == name:
            raise ConfigError(
                f"execution_device: layer {name} is not inside a numbered block; allowed with onloading: "
                "targets inside the blocks of one ModuleList (skip the others)"
            )
        blocks.setdefault(key, []).append(name)
    parents = {key.rsplit(".", 1)[0] if "." in key else "" for key in blocks}
    if len(parents) > 1:
        raise ConfigError(
            f"execution_device: the targets lie in blocks of {sorted(parents)}; allowed with onloading: "
            "the blocks of one ModuleList (skip the others)"
        )
    names = [n for n, _ in model.named_modules()]
    return dict(sorted(blocks.items(), key=lambda item: names.index(item[0])))


def _no_cache(kwargs: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in kwargs.items():
        if key == "use_cache":
            value = False
        elif "past_key" in key or key == "layer_past":
            value = None
        out[key] = value
    return out


def first_block_inputs(model: nn.Module, block: nn.Module, batches: list, device: torch.device | str) -> list[Record]:
    """Each batch's call of ``block`` (the first block), captured and moved to ``device``; the model runs where it is."""
    records: list[Record] = []
    keep: list[torch.Tensor | None] = [None]

    def hook(_module, args, kwargs):
        mask = keep[0]
        records.append(
            Record(
                to_device(tuple(args), device),
                to_device(_no_cache(dict(kwargs)), device),
                None if mask is None else mask.to(device),
            )
        )
        raise Stop  # the rest of the model is not needed

    config = getattr(model, "config", None)
    cached = getattr(config, "use_cache", None)
    if cached is not None:
        config.use_cache = False
    handle = block.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        run_batches(model, batches, lambda batch: keep.__setitem__(0, attention_mask(batch)))
    finally:
        handle.remove()
        if cached is not None:
            config.use_cache = cached
    if len(records) != len(batches):
        raise ConfigError("execution_device: a calibration batch never reached the first block")
    return records


def _hidden(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


def run_blocks(
    model: nn.Module,
    blocks: Mapping[str, list[str]],
    batches: list,
    device: torch.device | str,
    visit: Callable[[str, nn.Module, list[Record]], None],
) -> None:
    """For each block from the first to the last of ``blocks`` (those between included): onload it
    to ``device``, ``visit(name, block, records)`` if it holds targets, run it on the records to
    get the next block's inputs, and move it back to where it was."""
    first, last = next(iter(blocks)), list(blocks)[-1]
    parent, _, start = first.rpartition(".")
    stop = int(last.rpartition(".")[2])
    names = [f"{parent}.{i}" if parent else str(i) for i in range(int(start), stop + 1)]
    records = first_block_inputs(model, model.get_submodule(first), batches, device)
    for name in names:
        block = model.get_submodule(name)
        param = next(block.parameters(), None)
        home = param.device if param is not None else torch.device("cpu")
        move(block, device)
        try:
            if name in blocks:
                visit(name, block, records)
            with torch.no_grad():
                records = [r.with_hidden(_hidden(call_block(block, r))) for r in records]
        finally:
            move(block, home)
