"""2:4-pruned Linear weights in PyTorch's semi-structured sparse format (CUDA only).

``torch.sparse.to_sparse_semi_structured`` stores a weight with at most 2 non-zeros in every 4
consecutive inputs of a row compactly and multiplies it with sparse tensor cores (Ampere and
later). :func:`is_two_four` checks the pattern; :func:`to_semi_structured` converts the named
``nn.Linear`` layers in place and refuses, with a ``ValueError`` naming the layer, weights that are
not 2:4, layers that are not ``nn.Linear`` (Hugging Face ``Conv1D`` is not converted), and
weights that are not on a CUDA device. PyTorch adds its own limits (dtype float16/bfloat16 for
the CUTLASS kernels, minimum shapes); its error is passed on with the layer's name.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError

__all__ = ["is_two_four", "to_semi_structured"]


def is_two_four(weight: torch.Tensor) -> bool:
    """Whether every 4 consecutive inputs of each row of ``weight`` (``[out, in]``) hold <= 2 non-zeros.

    Example:
        >>> import torch
        >>> is_two_four(torch.tensor([[1.0, 0.0, 2.0, 0.0]])), is_two_four(torch.tensor([[1.0, 1.0, 2.0, 0.0]]))
        (True, False)
    """
    if weight.dim() != 2 or weight.shape[1] % 4:
        return False
    return bool(((weight.detach().reshape(weight.shape[0], -1, 4) != 0).sum(dim=2) <= 2).all())


def to_semi_structured(model: nn.Module, names: list[str] | None = None) -> list[str]:
    """Convert the 2:4 weights of ``model``'s ``nn.Linear`` layers ``names`` (default: all that are 2:4).

    Returns the converted names. With explicit ``names``, every one must exist, be an
    ``nn.Linear``, hold a 2:4 weight and sit on CUDA, else ``ValueError``; without, non-2:4 layers
    are left as they are (and CUDA is still required if any qualifies).
    """
    modules = dict(model.named_modules())
    if names is None:
        names = [n for n, m in modules.items() if isinstance(m, nn.Linear) and is_two_four(m.weight)]
    for name in names:
        module = modules.get(name)
        if not isinstance(module, nn.Linear):
            found = type(module).__name__ if module is not None else "no module"
            raise ConfigError(f"names: {name!r} is {found}; only torch.nn.Linear layers can be made semi-structured")
        if not is_two_four(module.weight):
            raise ConfigError(
                f"names: {name!r} has a weight of shape {tuple(module.weight.shape)} that is not 2:4 "
                "(at most 2 non-zeros in every 4 consecutive inputs); prune it with pattern '2:4' first"
            )
        if module.weight.device.type != "cuda":
            raise ConfigError(
                f"names: {name!r} is on {module.weight.device}; semi-structured sparsity needs a CUDA device"
            )
    for name in names:
        module = modules[name]
        try:
            sparse = torch.sparse.to_sparse_semi_structured(module.weight.detach())
        except (RuntimeError, ValueError) as err:
            raise ConfigError(f"names: {name!r} could not be converted by PyTorch: {err}") from err
        module.weight = nn.Parameter(sparse, requires_grad=False)
    return list(names)
