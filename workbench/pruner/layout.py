"""The 2-D view of a weight that every pattern works on: ``[out, in]``, the Linear orientation.

Linear ``[out, in]`` is used as is; Conv ``[out, in, kh, kw]`` is viewed channels-last as
``[out, kh*kw*in]``; a 3-D ``[out, in, k]`` weight as ``[out, k*in]``. Hugging Face's ``Conv1D``
(GPT-2) stores its weight transposed, ``[in, out]``; its view is the transpose (a view, no copy),
so every pattern means the same on it as on ``nn.Linear``: "4x1" is 4 outputs x 1 input and N:M
groups run along the input dimension. Only 2-D weights get a true view (no copy): those are the
large ones, so the hot path never copies a weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


def is_transposed_linear(module: nn.Module) -> bool:
    """Whether ``module`` is a Linear whose 2-D weight is stored ``[in, out]``, as Hugging Face's
    ``Conv1D`` (GPT-2) stores it. The one place that decides it: the training-aware pruner, the
    post-training methods and slimming all ask this function.

    Decided by what the module is, never by its class name alone:

    * Hugging Face's ``Conv1D`` (``transformers.pytorch_utils.Conv1D``) or a subclass, recognised by
      the class's defining package without importing transformers (a model holding one has
      already imported it);
    * any other module that declares the layout as Hugging Face's does: integer attributes ``nx``
      (inputs) and ``nf`` (outputs) and a weight of shape ``[nx, nf]``.

    A module of your own named ``Conv1D`` whose weight is ``[out, in]`` (without ``nx``/``nf``
    describing an ``[in, out]`` weight) is not transposed: it is pruned as stored, as ``nn.Linear``.

    Example:
        >>> is_transposed_linear(torch.nn.Linear(4, 2))
        False
        >>> class Conv1D(torch.nn.Module):  # a layer of your own, weight [out, in]
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.nf, self.weight = 2, torch.nn.Parameter(torch.zeros(2, 4))
        >>> is_transposed_linear(Conv1D())
        False
    """
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        return False
    if any(cls.__name__ == "Conv1D" and cls.__module__.split(".")[0] == "transformers" for cls in type(module).__mro__):
        return True
    nx, nf = getattr(module, "nx", None), getattr(module, "nf", None)
    return (
        isinstance(nx, int)
        and isinstance(nf, int)
        and not isinstance(nx, bool)
        and not isinstance(nf, bool)
        and tuple(weight.shape) == (nx, nf)
    )


def layout_of(module: nn.Module) -> Layout:
    """The :class:`Layout` of ``module``'s weight (transposed for a Hugging Face ``Conv1D``; with
    the convolution's ``groups``)."""
    groups = getattr(module, "groups", 1)
    groups = groups if isinstance(groups, int) and groups > 1 and module.weight.dim() > 2 else 1
    return Layout(tuple(module.weight.shape), transposed=is_transposed_linear(module), groups=groups)


@dataclass(frozen=True)
class Layout:
    """How one weight maps to its 2-D view ``[rows, cols]`` (``[out, in]``).

    Attributes:
        shape: The weight's shape as stored.
        transposed: The weight is stored ``[in, out]`` (Hugging Face ``Conv1D``); the view is its
            transpose.
        groups: A grouped convolution's groups (depthwise: as many as channels): output channel
            ``o`` sees only the inputs of group ``o // (rows // groups)``, ``shape[1]`` of them.
    """

    shape: tuple[int, ...]
    transposed: bool = False
    groups: int = 1

    @property
    def rows(self) -> int:
        return self.shape[1] if self.transposed else self.shape[0]

    @property
    def cols(self) -> int:
        if self.transposed:
            return self.shape[0]
        n = 1
        for d in self.shape[1:]:
            n *= d
        return n

    @property
    def is_2d(self) -> bool:
        """Whether the weight is its own 2-D view (a Linear weight: not transposed, not a Conv)."""
        return len(self.shape) == 2 and not self.transposed

    def memory_view(self, t: torch.Tensor) -> torch.Tensor | None:
        """``t`` (the weight or its gradient) as its 2-D view ``[rows, cols]`` without a copy,
        where the view is its memory read row by row: a contiguous Linear weight, or a
        contiguous convolution whose kernel has one element (1x1). ``None`` elsewhere (a larger
        kernel, a transposed ``Conv1D``, another memory format): compiled passes that write in
        place must not be handed a copy.

        Example:
            >>> Layout((8, 4, 1, 1)).memory_view(torch.zeros(8, 4, 1, 1)).shape
            torch.Size([8, 4])
            >>> Layout((8, 4, 3, 3)).memory_view(torch.zeros(8, 4, 3, 3)) is None
            True
        """
        if self.transposed or any(d != 1 for d in self.shape[2:]) or not t.is_contiguous():
            return None
        return t.view(self.rows, self.cols)

    def to_2d(self, t: torch.Tensor) -> torch.Tensor:
        """The 2-D view of ``t`` (a view for 2-D weights, a channels-last copy otherwise)."""
        if t.dim() == 2:
            return t.t() if self.transposed else t
        if t.dim() == 1:
            return t.view(self.rows, 1)
        perm = (0, *range(2, t.dim()), 1)
        return t.permute(perm).reshape(self.rows, self.cols)

    def from_2d(self, t2d: torch.Tensor) -> torch.Tensor:
        """Map a ``[rows, cols]`` tensor back to the weight's shape (a strided view)."""
        if len(self.shape) == 2:
            return t2d.t() if self.transposed else t2d
        if len(self.shape) == 1:
            return t2d.reshape(self.shape)
        channels_last = (self.shape[0], *self.shape[2:], self.shape[1])
        inverse = (0, len(self.shape) - 1, *range(1, len(self.shape) - 1))
        return t2d.reshape(channels_last).permute(inverse)
