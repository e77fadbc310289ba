"""Weight surgery on Linear-like layers: keep some output rows or some input columns.

A Linear-like layer is ``nn.Linear`` (weight ``[out, in]``) or Hugging Face's ``Conv1D``
(weight ``[in, out]``, recognised by duck typing). Every function here works on the
``[out, in]`` view, so callers never care which of the two they hold. Surgery replaces the
layer's ``weight`` (and ``bias``) with new, smaller ``nn.Parameter`` objects on the same device
and dtype, and updates the size attributes the layer's ``forward``/``repr`` read
(``in_features``/``out_features``, or ``nx``/``nf``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..layout import is_transposed_linear

__all__ = ["is_linear_like", "keep_inputs", "keep_outputs", "weight_view"]


def is_linear_like(module: nn.Module | None) -> bool:
    """Whether ``module`` is an ``nn.Linear`` or a Hugging Face ``Conv1D`` (2-D weight)."""
    if module is None:
        return False
    if is_transposed_linear(module):
        return True
    return isinstance(module, nn.Linear) and module.weight.dim() == 2


def weight_view(module: nn.Module) -> torch.Tensor:
    """The layer's weight as ``[out, in]`` (a view: a transpose for ``Conv1D``)."""
    w = module.weight
    return w.t() if is_transposed_linear(module) else w


def _set_weight(module: nn.Module, view: torch.Tensor) -> None:
    """Replace the weight by ``view`` (``[out, in]``) and update the size attributes."""
    transposed = is_transposed_linear(module)  # before the weight changes: the test reads its shape
    old = module.weight
    data = view.t() if transposed else view
    module.weight = nn.Parameter(data.contiguous().clone(), requires_grad=old.requires_grad)
    out_dim, in_dim = view.shape
    if transposed:
        module.nf, module.nx = out_dim, in_dim
    else:
        module.out_features, module.in_features = out_dim, in_dim


@torch.no_grad()
def keep_outputs(module: nn.Module, index: torch.Tensor) -> None:
    """Keep only the output channels ``index`` (rows of the ``[out, in]`` view, and the bias)."""
    index = index.to(module.weight.device)
    _set_weight(module, weight_view(module).index_select(0, index))
    if module.bias is not None:
        old = module.bias
        module.bias = nn.Parameter(old.index_select(0, index).clone(), requires_grad=old.requires_grad)


@torch.no_grad()
def keep_inputs(module: nn.Module, index: torch.Tensor) -> None:
    """Keep only the input positions ``index`` (columns of the ``[out, in]`` view); bias unchanged."""
    index = index.to(module.weight.device)
    _set_weight(module, weight_view(module).index_select(1, index))
