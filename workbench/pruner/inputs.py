"""Checks of what a caller hands the pruning library: the model, and a saved state.

Each failure is a :class:`~workbench.pruner.ConfigError` whose message starts with the argument's
name (``model``, ``state``), so a wrong object is reported by name instead of surfacing as an
``AttributeError`` or ``KeyError`` deep inside a pruner.

Example:
    >>> check_model(None)
    Traceback (most recent call last):
        ...
    workbench.pruner.errors.ConfigError: model: None (NoneType) is not a torch.nn.Module; allowed: a torch.nn.Module
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .errors import ConfigError

__all__ = ["check_model", "check_pruner_state", "check_state", "check_weights_have_data"]

_COUNTERS = {
    "global_step": int,
    "mask_updates": int,
    "last_update": int,
    "current_sparsity_ratio": float,
    "init_sparsity_ratio": float,
    "begun": bool,
}


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_model(model: object) -> nn.Module:
    """``model`` itself if it is a ``torch.nn.Module``, else a ConfigError naming the argument."""
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"model: {_short(model)} ({type(model).__name__}) is not a torch.nn.Module; allowed: a torch.nn.Module"
        )
    return model


def check_weights_have_data(modules: Mapping[str, nn.Module]) -> None:
    """Refuse layers whose weight lives on the ``meta`` device (shapes only, no values).

    A model built under ``torch.device("meta")`` can be planned (``Pruning.describe()``), but
    its weights cannot be scored or masked; the message names the first such layer.
    """
    meta = [name for name, module in modules.items() if module.weight.is_meta]
    if meta:
        more = f" (and {len(meta) - 1} more)" if len(meta) > 1 else ""
        raise ConfigError(
            f"model: layer {meta[0]!r}{more} has its weight on the meta device (shapes, no values); "
            "allowed: weights with data (materialise the model, e.g. model.to_empty(device='cpu') and "
            "load its weights, before training; describe() works on a meta model)"
        )


def check_state(state: object, pruners: int) -> list[Mapping]:
    """The per-pruner states of a ``Pruning.state_dict()``-shaped ``state``, or a ConfigError."""
    if not isinstance(state, Mapping):
        raise ConfigError(
            f"state: {_short(state)} ({type(state).__name__}) is not a Pruning.state_dict(); "
            "allowed: a mapping {'pruners': [one state per pruner]}"
        )
    states = state.get("pruners")
    if not isinstance(states, list | tuple) or not all(isinstance(s, Mapping) for s in states):
        raise ConfigError(f"state['pruners']: {_short(states)} is not a list of pruner states (mappings)")
    if len(states) != pruners:
        raise ConfigError(f"state['pruners']: holds {len(states)} pruner states; this config builds {pruners}")
    return list(states)


def check_pruner_state(state: Mapping, where: str, pruned: Mapping[str, torch.Tensor]) -> None:
    """Check the keys every pruner's state holds: counters, and one mask per layer of ``pruned``
    (same shape and dtype as the pruner's own masks). ``where`` names the state in messages."""
    for key, kind in _COUNTERS.items():
        if key not in state:
            raise ConfigError(f"{where}[{key!r}]: missing; allowed: a state saved by state_dict()")
        value = state[key]
        ok = isinstance(value, bool) if kind is bool else isinstance(value, int | float) and not isinstance(value, bool)
        if kind is int and ok and float(value) != int(value):
            ok = False
        if not ok:
            raise ConfigError(f"{where}[{key!r}]: {_short(value)} is not of type {kind.__name__}")
    masks = state.get("pruned")
    if not isinstance(masks, Mapping):
        raise ConfigError(f"{where}['pruned']: {_short(masks)} is not a mapping of layer name -> mask")
    missing = sorted(set(pruned) - set(masks))
    if missing:
        raise ConfigError(f"{where}['pruned']: no masks for layers {missing}")
    for name, own in pruned.items():
        mask = masks[name]
        if not isinstance(mask, torch.Tensor) or mask.shape != own.shape or mask.dtype != own.dtype:
            got = f"{mask.dtype} {tuple(mask.shape)}" if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ConfigError(
                f"{where}['pruned'][{name!r}]: {got} does not match this pruner's mask; "
                f"allowed: {own.dtype} {tuple(own.shape)}"
            )
    if not isinstance(state.get("keep_mask_layers"), Mapping):
        raise ConfigError(f"{where}['keep_mask_layers']: {_short(state.get('keep_mask_layers'))} is not a mapping")
