"""``make bench`` section "slim": dense vs channel-pruned (masked) vs slimmed, measured.

The model is a BERT-base-shaped FFN stack (``layers`` blocks of ``LayerNorm(x + down(gelu(up(x))))``
with up 768->3072 and down 3072->768, then a Linear head; 12 blocks, 4 with ``--quick``) on one sequence of 128
tokens. The pruner prunes the down projections with ``channelx1`` (magnitude, local scope, one
shot) at 50% and 80%; :func:`workbench.pruner.slim.slim_model` then removes the dead channels.
Each row is :func:`workbench.pruner.slim.measure`'s median forward latency (``torch.no_grad``)
and the parameter counts; ``speed-up`` is the dense latency over the row's. A second copy of the dense model is timed last
as a control: its distance from 1.00 is the measurement's noise on this machine. On CUDA three more
rows compare the fp16 dense model, its 2:4-masked twin and that twin with semi-structured sparse
weights (:func:`workbench.pruner.slim.to_semi_structured`). Nothing is asserted; the numbers go
into the README. Example:

    >>> rows = slim_table(repeats=1, quick=True)   # doctest: +SKIP
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from workbench.pruner import WeightPruningConfig, prepare_pruning
from workbench.pruner.slim import SpeedRow, measure, slim_model, to_semi_structured

__all__ = ["FfnStack", "slim_table"]

HIDDEN, FFN, TOKENS = 768, 3072, 128


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up, self.down, self.norm = nn.Linear(HIDDEN, FFN), nn.Linear(FFN, HIDDEN), nn.LayerNorm(HIDDEN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.down(nn.functional.gelu(self.up(x))))


class FfnStack(nn.Sequential):
    """``layers`` BERT-base FFN blocks (768 -> 3072 -> 768, residual, LayerNorm) and a 2-way head.

    The head is there so the last block's down projection is not taken for the model's output
    head (which the pruner leaves alone).
    """

    def __init__(self, layers: int = 12) -> None:
        super().__init__(*[_Block() for _ in range(layers)], nn.Linear(HIDDEN, 2))


def _pruned(model: nn.Module, pattern: str, target: float, op_names: list[str]) -> nn.Module:
    model = copy.deepcopy(model)
    config = WeightPruningConfig(
        pruning_configs=[{"op_names": op_names, "pattern": pattern, "pruning_scope": "local"}],
        target_sparsity=target,
        pruning_type="magnitude",
        start_step=0,
        end_step=0,
    )
    pruning = prepare_pruning(model, config)
    pruning.on_train_begin()
    pruning.on_step_begin(0)
    pruning.on_step_end()
    pruning.on_train_end()
    return model


def _row(row: SpeedRow, dense_ms: float) -> dict:
    return {
        "model": row.name,
        "params (M)": row.params / 1e6,
        "non-zero (M)": row.nonzero_params / 1e6,
        "latency ms": row.latency_ms,
        "speed-up": dense_ms / row.latency_ms,
        "device": row.device,
    }


def _semi_structured_rows(dense: nn.Module, x: torch.Tensor, repeats: int) -> list[dict]:
    dense16 = copy.deepcopy(dense).cuda().half().eval()
    masked = _pruned(dense16, "2:4", 0.5, [r"\.(up|down)$"])
    sparse = copy.deepcopy(masked)
    to_semi_structured(sparse, [n for n, m in sparse.named_modules() if n.endswith((".up", ".down"))])
    rows = measure(
        {"dense fp16": dense16, "2:4 masked fp16": masked, "2:4 semi-structured fp16": sparse},
        x.cuda().half(),
        repeats=repeats,
    )
    return [_row(r, rows[0].latency_ms) for r in rows]


def slim_table(*, repeats: int = 20, quick: bool = False) -> list[dict]:
    """Latency and parameters of the dense, masked and slimmed FFN stack (and 2:4 on CUDA)."""
    torch.manual_seed(0)
    dense = FfnStack(4 if quick else 12).eval()
    x = torch.randn(1, TOKENS, HIDDEN)
    repeats = max(repeats, 10)  # a median of fewer forward passes says little; they are cheap
    models = {"dense": dense}
    for target in (0.5, 0.8):
        masked = _pruned(dense, "channelx1", target, [r"\.down$"]).eval()
        slimmed = copy.deepcopy(masked)
        slim_model(slimmed)
        models[f"channelx1 {target:.0%} masked"] = masked
        models[f"channelx1 {target:.0%} slimmed"] = slimmed
    models["dense (again: noise control)"] = copy.deepcopy(dense)
    rows = measure(models, x, warmup=2, repeats=repeats)
    table = [_row(r, rows[0].latency_ms) for r in rows]
    if torch.cuda.is_available():
        table += _semi_structured_rows(dense, x, repeats)
    return table
