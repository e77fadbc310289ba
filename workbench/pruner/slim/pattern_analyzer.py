"""Find what can be slimmed: FFN Linear pairs and attention head groups.

*FFN pairs* (up projection -> elementwise activation -> down projection) are found two ways:

* by the names Hugging Face models give them (duck typing; transformers is never imported):
  BERT-style ``intermediate.dense`` (activation ``intermediate.intermediate_act_fn``) followed by
  the sibling ``output.dense``, and GPT-2-style ``mlp.c_fc`` -> ``mlp.act`` -> ``mlp.c_proj``;
* by a ``torch.fx`` trace of any other model: a Linear whose only user is a chain of
  elementwise activations (or none) ending in another Linear, every node used once, each module
  called once. A model that does not trace contributes only its named pairs.

Gated FFNs (LLaMA's ``gate_proj``/``up_proj``/``down_proj``), convolutions and anything else are
not pairs; :func:`find_ffn_pairs` does not return them.

*Attention groups*: a BERT-style ``attention`` module (``self.query``/``key``/``value`` +
``output.dense``, ``num_attention_heads``, ``attention_head_size``) or a GPT-2-style self
attention (fused ``c_attn`` + ``c_proj``, ``num_heads``, ``head_dim``, ``split_size``; cross
attention with ``q_attn`` is not supported).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from .layers import is_linear_like

__all__ = ["AttentionGroup", "FfnPair", "find_attention_groups", "find_ffn_pairs"]

ELEMENTWISE_MODULES = (nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.ELU, nn.Identity, nn.ReLU6)
"""Activation modules an FFN pair may have between its Linears (each maps a value to a value)."""
ELEMENTWISE_FUNCTIONS = (F.relu, F.gelu, F.silu, torch.relu, torch.tanh, torch.sigmoid, F.leaky_relu, F.elu)
"""Activation functions an FFN pair may have between its Linears (traced as ``call_function``)."""


@dataclass(frozen=True)
class FfnPair:
    """An up projection whose outputs feed only an elementwise ``act`` and then ``down``.

    Attributes:
        up: Module name of the up projection (its output channels are the hidden channels).
        down: Module name of the down projection (its input positions are the hidden channels).
        act: The elementwise activation between them (identity when there is none); ``None``
            when it cannot be evaluated outside the model (then constant channels cannot be folded).
        source: ``"names"`` (Hugging Face naming) or ``"fx"`` (traced).
    """

    up: str
    down: str
    act: Callable[[torch.Tensor], torch.Tensor] | None
    source: str


@dataclass(frozen=True)
class AttentionGroup:
    """A self-attention block whose heads can be removed together.

    Attributes:
        name: Module name of the module holding the head-count attributes.
        style: ``"bert"`` (separate query/key/value Linears) or ``"gpt2"`` (fused ``c_attn``).
        qkv: Names of the projections whose output rows are per head (one fused name for GPT-2).
        out: Name of the output projection whose input positions are per head.
    """

    name: str
    style: str
    qkv: tuple[str, ...]
    out: str


def _compose(fns: list[Callable]) -> Callable[[torch.Tensor], torch.Tensor]:
    def act(x: torch.Tensor) -> torch.Tensor:
        for fn in fns:
            x = fn(x)
        return x

    return act


def _named_pairs(model: nn.Module) -> list[FfnPair]:
    modules = dict(model.named_modules())
    pairs = []
    for name, module in modules.items():
        prefix = f"{name}." if name else ""
        inter, out = getattr(module, "intermediate", None), getattr(module, "output", None)
        if (
            isinstance(inter, nn.Module)
            and is_linear_like(getattr(inter, "dense", None))
            and is_linear_like(getattr(out, "dense", None))
            and callable(getattr(inter, "intermediate_act_fn", None))
        ):
            pairs.append(
                FfnPair(f"{prefix}intermediate.dense", f"{prefix}output.dense", inter.intermediate_act_fn, "names")
            )
        if all(is_linear_like(getattr(module, n, None)) for n in ("c_fc", "c_proj")) and callable(
            getattr(module, "act", None)
        ):
            pairs.append(FfnPair(f"{prefix}c_fc", f"{prefix}c_proj", module.act, "names"))
    return pairs


def _fx_step(node, modules: dict) -> Callable | None:
    """The elementwise callable of ``node`` if it is an allowed activation applied to its one input."""
    if node.op == "call_module" and isinstance(modules.get(node.target), ELEMENTWISE_MODULES):
        return modules[node.target] if len(node.args) == 1 and not node.kwargs else None
    if node.op == "call_function" and node.target in ELEMENTWISE_FUNCTIONS:
        rest, kwargs = node.args[1:], dict(node.kwargs)
        if any(isinstance(a, torch.fx.Node) for a in (*rest, *kwargs.values())):
            return None
        fn = node.target
        return lambda x: fn(x, *rest, **kwargs)
    if node.op == "call_method" and node.target in ("relu", "sigmoid", "tanh") and len(node.args) == 1:
        return operator.methodcaller(node.target)
    return None


def _fx_pairs(model: nn.Module) -> list[FfnPair]:
    try:
        import torch.fx  # start-up: torch.fx loads only when a model is slimmed

        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # noqa: BLE001 - an untraceable model contributes only its named pairs
        return []
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not is_linear_like(modules.get(node.target)):
            continue
        fns, cur = [], node
        while len(cur.users) == 1:
            (user,) = cur.users
            if user.op == "call_module" and is_linear_like(modules.get(user.target)) and user.args == (cur,):
                if calls[node.target] == 1 and calls[user.target] == 1 and user.target != node.target:
                    pairs.append(FfnPair(node.target, user.target, _compose(fns), "fx"))
                break
            step = _fx_step(user, modules)
            if step is None:
                break
            fns.append(step)
            cur = user
    return pairs


def find_ffn_pairs(model: nn.Module) -> list[FfnPair]:
    """The model's FFN pairs: named (Hugging Face) ones first, then traced ones not already found.

    Example:
        >>> import torch
        >>> m = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        >>> [(p.up, p.down, p.source) for p in find_ffn_pairs(m)]
        [('0', '2', 'fx')]
    """
    pairs = _named_pairs(model)
    seen = {(p.up, p.down) for p in pairs}
    return pairs + [p for p in _fx_pairs(model) if (p.up, p.down) not in seen]


def find_attention_groups(model: nn.Module) -> list[AttentionGroup]:
    """The model's self-attention blocks in the supported (BERT-style, GPT-2-style) layouts."""
    groups = []
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        inner, out = getattr(module, "self", None), getattr(module, "output", None)
        if (
            isinstance(inner, nn.Module)
            and all(is_linear_like(getattr(inner, n, None)) for n in ("query", "key", "value"))
            and is_linear_like(getattr(out, "dense", None))
            and all(isinstance(getattr(inner, a, None), int) for a in ("num_attention_heads", "attention_head_size"))
        ):
            qkv = tuple(f"{prefix}self.{n}" for n in ("query", "key", "value"))
            groups.append(AttentionGroup(f"{prefix}self", "bert", qkv, f"{prefix}output.dense"))
        if (
            all(is_linear_like(getattr(module, n, None)) for n in ("c_attn", "c_proj"))
            and all(isinstance(getattr(module, a, None), int) for a in ("num_heads", "head_dim", "split_size"))
            and getattr(module, "q_attn", None) is None
        ):
            groups.append(AttentionGroup(name, "gpt2", (f"{prefix}c_attn",), f"{prefix}c_proj"))
    return groups
