"""Layers a pruner leaves alone by default: the model's output head and weights tied to another module.

*Heads.* The classifier (or LM) head maps features to the model's outputs; pruning it costs more
accuracy than it saves, so INC and this library leave it out unless ``op_names`` names it. It is
found two ways (:func:`find_heads`): the last Linear on the path to the model's output, from a
``torch.fx`` trace (:func:`parse_last_linear`), and by the names real models give their heads:
``lm_head``, ``classifier``, ``score``, ``qa_outputs`` anywhere in the model (Hugging Face), and
``fc`` or ``head`` at the top level (torchvision, timm) when no Linear outside it is registered
after it (else it is a hidden layer that happens to be called so). Where such a name is a container (a
``Sequential`` classifier, RoBERTa's ``classifier.dense`` / ``classifier.out_proj``), its last
Linear is the head.

*Tied weights.* A module whose ``weight`` is the same tensor as another module's (GPT-2's
``lm_head`` and token embedding ``transformer.wte``) cannot be pruned alone: zeroing it zeroes the
other too. :func:`tied_weights` finds them by identity (or shared storage) of the weight tensor.

Hugging Face classes are recognised by duck typing: this package does not import transformers.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["HEAD_NAMES", "TOP_LEVEL_HEAD_NAMES", "find_heads", "parse_last_linear", "tied_weights"]

HEAD_NAMES = ("lm_head", "classifier", "score", "qa_outputs")
"""Module names of output heads wherever they sit (Hugging Face ``*For*`` models)."""
TOP_LEVEL_HEAD_NAMES = ("fc", "head")
"""Names of output heads only at the top level of the model (torchvision's ``fc``, timm's
``head``); deeper, such names are ordinary hidden layers (``mlp.fc`` in many blocks)."""

FX_HEAD = "classifier head (last Linear before the output)"


def _is_linear(module: nn.Module | None) -> bool:
    return module is not None and "Linear" in type(module).__name__


def parse_last_linear(model: nn.Module) -> str | None:
    """Name of the classifier head: the last Linear on the path to the model's output.

    Traces the model with ``torch.fx`` and walks back from the output to the nearest Linear;
    if the model cannot be traced, falls back to the last Linear in registration order.

    Example:
        >>> import torch
        >>> parse_last_linear(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)))
        '2'
    """
    linears = [n for n, m in model.named_modules() if n and _is_linear(m)]
    if not linears:
        return None
    try:
        import torch.fx  # start-up: torch.fx loads only when a classifier head is looked for

        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # noqa: BLE001 - any tracing failure means "use the fallback"
        return linears[-1]
    modules = dict(model.named_modules())
    frontier = [n for n in graph.nodes if n.op == "output"]
    seen = set()
    while frontier:
        nxt = []
        for node in frontier:
            for arg in node.all_input_nodes:
                if arg in seen:
                    continue
                seen.add(arg)
                if arg.op == "call_module" and _is_linear(modules.get(arg.target)):
                    return arg.target
                nxt.append(arg)
        frontier = nxt
    return linears[-1]


def find_heads(model: nn.Module) -> dict[str, str]:
    """``{module name: why it is a head}`` for every output head of ``model`` (see the module docstring).

    Example:
        >>> import torch
        >>> class Net(torch.nn.Module):  # two heads: a value head and an LM head
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.encoder, self.lm_head, self.value = (torch.nn.Linear(4, n) for n in (4, 8, 1))
        ...     def forward(self, x):
        ...         h = self.encoder(x)
        ...         return self.value(h) + self.lm_head(h).sum(-1, keepdim=True)
        >>> find_heads(Net())
        {'value': 'classifier head (last Linear before the output)', 'lm_head': "classifier head (named 'lm_head', a Hugging Face output head)"}
    """
    heads: dict[str, str] = {}
    last = parse_last_linear(model)
    if last is not None:
        heads[last] = FX_HEAD
    modules = dict(model.named_modules())
    linears = [n for n, m in modules.items() if n and _is_linear(m)]
    for name, module in modules.items():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in HEAD_NAMES:
            why = f"classifier head (named {leaf!r}, a Hugging Face output head)"
        elif name in TOP_LEVEL_HEAD_NAMES and not _linear_after(name, linears):
            why = f"classifier head (named {leaf!r}, the output layer's name in torchvision)"
        else:
            continue
        if _is_linear(module):
            heads.setdefault(name, why)
            continue
        inner = [n for n, m in module.named_modules() if n and _is_linear(m)]
        if inner:
            heads.setdefault(f"{name}.{inner[-1]}", f"{why[:-1]}: its last Linear)")
    return heads


def _linear_after(name: str, linears: list[str]) -> bool:
    """Whether a Linear outside module ``name`` is registered after it (then it is a hidden layer)."""
    inside = [n for n in linears if n == name or n.startswith(name + ".")]
    if not inside:
        return False
    return any(not (n == name or n.startswith(name + ".")) for n in linears[linears.index(inside[-1]) + 1 :])


def _storage_key(weight: torch.Tensor) -> object:
    """What two tied weights share: the tensor itself, or (for views of one storage) its memory."""
    if weight.is_meta:
        return id(weight)
    try:
        ptr = weight.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):  # a tensor subclass without storage: identity only
        return id(weight)
    return (ptr, weight.storage_offset(), tuple(weight.shape), weight.stride())


def tied_weights(model: nn.Module) -> dict[str, list[str]]:
    """``{module name: the other modules sharing its weight}`` for every module whose ``weight``
    is tied to another's (GPT-2's ``lm_head`` and ``transformer.wte``); others are absent.

    Example:
        >>> import torch
        >>> emb, head = torch.nn.Embedding(10, 4), torch.nn.Linear(4, 10, bias=False)
        >>> head.weight = emb.weight
        >>> tied_weights(torch.nn.ModuleDict({"wte": emb, "lm_head": head}))
        {'wte': ['lm_head'], 'lm_head': ['wte']}
    """
    groups: dict[object, list[str]] = {}
    for name, module in model.named_modules():  # a module registered twice is shared, not tied
        weight = getattr(module, "weight", None)
        if name and isinstance(weight, torch.Tensor):
            members = groups.setdefault(_storage_key(weight), [])
            if name not in members:
                members.append(name)
    return {n: [o for o in names if o != n] for names in groups.values() if len(names) > 1 for n in names}
