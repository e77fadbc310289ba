"""Calibration: run a model on a bounded set of batches and accumulate the input statistics of chosen layers.

Batches are what a task yields: a dict (``model(**batch)``), a tuple/list ``(inputs, labels, ...)``
(``model(inputs)``) or a tensor (``model(batch)``). Forward pre-hooks see each target layer's
input, flatten it to ``[tokens, in_features]`` and fold it into a running statistic, so nothing
larger than one statistic per hooked layer is kept: :class:`SumSquares` (``in`` floats, Wanda)
or :class:`Hessian` (``in x in`` fp32, SparseGPT). Statistics live on ``stats_device`` (default:
the layer's device; ``"cpu"`` offloads them from a GPU). Every token counts, except padding: a
dict batch's ``attention_mask`` leaves padding tokens out of every layer's statistics, whether
the layer sees its input as ``[batch, seq, in]`` or flattened to ``[batch * seq, in]`` (OPT's
feed-forward layers); an input of any other shape counts every token, with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

import torch
from torch import nn

from ..errors import ConfigError

__all__ = [
    "Hessian",
    "Stop",
    "SumSquares",
    "attention_mask",
    "batch_size",
    "bound_batches",
    "call_order",
    "capture",
    "real_tokens",
    "run_batch",
    "run_batches",
    "to_device",
]

logger = logging.getLogger(__name__)


class SumSquares:
    """Per-input-feature sum of squares over all calibration tokens (``||X_j||_2^2``)."""

    def __init__(self, features: int, device: torch.device | str) -> None:
        self.sum = torch.zeros(features, dtype=torch.float32, device=device)
        self.tokens = 0

    def add(self, x: torch.Tensor) -> None:
        """Fold ``[tokens, in]`` inputs in."""
        x = x.to(self.sum.device, torch.float32)
        self.sum += (x * x).sum(dim=0)
        self.tokens += x.shape[0]

    def norms(self) -> torch.Tensor:
        """``||X_j||_2`` per input feature."""
        return self.sum.sqrt()


class Hessian:
    """``H = 2 X X^T / tokens`` in fp32 (the layer-wise squared error's Hessian, averaged per token)."""

    def __init__(self, features: int, device: torch.device | str) -> None:
        self.sum = torch.zeros(features, features, dtype=torch.float32, device=device)
        self.tokens = 0

    def add(self, x: torch.Tensor) -> None:
        """Fold ``[tokens, in]`` inputs in."""
        x = x.to(self.sum.device, torch.float32)
        self.sum.addmm_(x.t(), x)
        self.tokens += x.shape[0]

    def matrix(self) -> torch.Tensor:
        """``2 X X^T / tokens``."""
        return self.sum * (2.0 / max(self.tokens, 1))


def batch_size(batch) -> int:
    """Samples in a batch: the first dimension of its first tensor."""
    if isinstance(batch, torch.Tensor):
        return batch.shape[0] if batch.dim() else 1
    values = batch.values() if isinstance(batch, Mapping) else batch
    for value in values:
        if isinstance(value, torch.Tensor):
            return batch_size(value)
    raise ConfigError(f"calibration_batches: a batch of type {type(batch).__name__} holds no tensor")


def _take(batch, n: int):
    if isinstance(batch, torch.Tensor):
        return batch[:n]
    if isinstance(batch, Mapping):
        return {k: _take(v, n) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    return type(batch)(_take(v, n) if isinstance(v, torch.Tensor) else v for v in batch)


def bound_batches(batches: Iterable, samples: int | None) -> list:
    """The batches holding the first ``samples`` samples (the last one cut), as a list."""
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
        raise ConfigError(f"calibration_samples: {samples!r} is not allowed; allowed: an int >= 1 or None")
    taken, seen = [], 0
    for batch in batches:
        n = batch_size(batch)
        if samples is not None and seen + n >= samples:
            taken.append(_take(batch, samples - seen) if seen + n > samples else batch)
            break
        taken.append(batch)
        seen += n
    if not taken:
        raise ConfigError("calibration_batches: no batch given; allowed: at least one batch")
    return taken


def to_device(value, device: torch.device | str):
    """``value`` with every tensor in it (nested in dicts, tuples, lists) moved to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, Mapping):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(to_device(v, device) for v in value)
    return value


def run_batch(model: nn.Module, batch) -> None:
    """One forward pass on ``batch`` (moved to the model's device); the output is dropped."""
    param = next(model.parameters(), None)
    batch = to_device(batch, param.device) if param is not None else batch
    if isinstance(batch, Mapping):
        model(**batch)
    elif isinstance(batch, (tuple, list)):
        model(batch[0])
    else:
        model(batch)


def attention_mask(batch) -> torch.Tensor | None:
    """A dict batch's ``attention_mask`` as booleans (padding tokens are left out of the statistics)."""
    mask = batch.get("attention_mask") if isinstance(batch, Mapping) else None
    return mask.bool() if isinstance(mask, torch.Tensor) else None


def real_tokens(x: torch.Tensor, keep: torch.Tensor | None, warned: set | None = None, name: str = "") -> torch.Tensor:
    """A layer input ``x`` as ``[tokens, in]`` without the padding tokens ``keep`` (``[batch, seq]``) marks False.

    ``x`` shaped ``[batch, seq, in]`` or flattened to ``[batch * seq, in]`` (row ``b * seq + s``,
    as ``reshape`` leaves it) is masked; any other shape keeps every token (a warning once per
    ``name`` when ``warned`` is given).

    Example:
        >>> keep = torch.tensor([[True, True, False]])
        >>> real_tokens(torch.ones(1, 3, 4), keep).shape, real_tokens(torch.ones(3, 4), keep).shape
        (torch.Size([2, 4]), torch.Size([2, 4]))
    """
    if keep is not None:
        if tuple(x.shape[:-1]) == tuple(keep.shape):
            return x[keep.to(x.device)]
        if x.dim() == 2 and x.shape[0] == keep.numel():
            return x[keep.reshape(-1).to(x.device)]
        if warned is not None and name not in warned:
            warned.add(name)
            logger.warning(
                "%s: input of shape %s does not line up with the attention mask %s; its padding tokens are counted",
                name,
                tuple(x.shape),
                tuple(keep.shape),
            )
    return x.reshape(-1, x.shape[-1])


class Stop(Exception):
    """Raised by a hook once the rest of the forward pass is not needed (after the last hooked layer)."""


def _stop(_module, _args, _output):
    raise Stop


def run_batches(
    model: nn.Module,
    batches: list,
    before: Callable[[object], None],
    forward: Callable[[nn.Module, object], None] = run_batch,
) -> None:
    """``before(batch)`` then ``forward(model, batch)`` for every batch, without gradients; a
    forward pass a hook ends by raising :class:`Stop` counts as done."""
    with torch.no_grad():
        for batch in batches:
            before(batch)
            try:
                forward(model, batch)
            except Stop:
                pass


def capture(
    model: nn.Module,
    batches: list,
    layers: Mapping[str, nn.Module],
    make_stat: Callable[[str, nn.Module], object],
    stop_after: nn.Module | None = None,
    *,
    forward: Callable[[nn.Module, object], None] = run_batch,
    mask_of: Callable[[object], torch.Tensor | None] = attention_mask,
) -> dict[str, object]:
    """Run every batch once with a statistic (``make_stat(name, module)``) hooked on each layer's input.

    With ``stop_after`` (a module every hooked layer runs before, each once) a forward pass ends
    right after that module has run: later layers' work is skipped. ``forward(model, batch)``
    runs one batch and ``mask_of(batch)`` is its ``[batch, seq]`` token mask (``None``: every
    token counts); by default a task's batch and its ``attention_mask``.
    """
    stats = {name: make_stat(name, module) for name, module in layers.items()}
    tokens: list[torch.Tensor | None] = [None]  # the current batch's attention mask, if it has one
    warned: set[str] = set()

    def hook_for(name, stat):
        def hook(_module, args):
            stat.add(real_tokens(args[0].detach(), tokens[0], warned, name))

        return hook

    handles = [module.register_forward_pre_hook(hook_for(name, stats[name])) for name, module in layers.items()]
    if stop_after is not None:
        handles.append(stop_after.register_forward_hook(_stop))
    try:
        run_batches(model, batches, lambda batch: tokens.__setitem__(0, mask_of(batch)), forward)
    finally:
        for handle in handles:
            handle.remove()
    return stats


def call_order(
    model: nn.Module, batch, layers: Mapping[str, nn.Module], forward: Callable[[nn.Module, object], None] = run_batch
) -> tuple[list[str], bool]:
    """``(names, once)``: layer names in the order of their first call in a forward pass (unseen
    layers last), and whether no layer ran twice (then a pass may stop after its last layer)."""
    order: list[str] = []
    calls = dict.fromkeys(layers, 0)
    by_module = {id(m): n for n, m in layers.items()}

    def hook(module, _args):
        name = by_module[id(module)]
        calls[name] += 1
        if name not in order:
            order.append(name)

    handles = [module.register_forward_pre_hook(hook) for module in layers.values()]
    try:
        with torch.no_grad():
            forward(model, batch)
    finally:
        for handle in handles:
            handle.remove()
    once = len(by_module) == len(layers) and all(c <= 1 for c in calls.values())
    return order + [n for n in layers if n not in order], once
