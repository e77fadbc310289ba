"""The retrain-free pruner (INC 3.7.1's ``pruning_type: retrain_free``): channels pruned from calibration batches.

After Kwon et al., "A Fast Post-Training Pruning Framework for Transformers" (arXiv:2204.09656),
as INC 3.7.1 implemented it: the weights stay fixed; each channel of a Linear layer has a mask
``m`` (the weight used is ``W * m``), and every calibration batch's loss gradient with respect to
the masks is recorded. A channel's score is its empirical Fisher information, the sum over batches
of ``(dL/dm)^2``; on each pruning step the lowest-scoring channels are chosen (scope, schedule and
per-op bounds as for the basic pruner) and then, per layer, *rearranged*: keeping each layer's
count, a greedy pass swaps channels so that the summed mask gradient of the pruned set, whose
square approximates the loss increase, is small.
"""

from __future__ import annotations

import logging

import torch

from .. import _backend
from ..config_types import PrunerConfig
from ..patterns.spec import BLOCKS, CHANNELS
from . import register_pruner
from .base import BasePruner
from .block_mask import linear_layers

logger = logging.getLogger(__name__)


@register_pruner("retrain_free")
class RetrainFreePruner(BasePruner):
    """Channel pruning from calibration batches, without fine-tuning (``channelx1`` / ``1xchannel``).

    Run it as INC did, with ``prepare_pruning(model, config, dataloader=batches, loss_func=loss)``:
    each batch is one step (``on_step_begin``, forward, backward, ``on_step_end``; no optimizer).
    The gradient of each channel's mask is ``sum over the channel of W * dL/dW`` with ``W`` the
    unmasked weights (pruned weights are held aside, so a channel pruned on one step can come back
    on the next, as in INC). It is recorded on every step up to ``end_step - 1`` (the steps that feed
    a mask update); a pruning step before any gradient ranks channels by magnitude and warns.
    In a training loop it works too (gradients are taken before the optimizer step), but INC's
    meaning is that the weights are not trained.

    Attributes:
        scores: ``{layer: Fisher information per channel}`` on the pattern's unit grid.
        grads: ``{layer: [mask gradient per channel] per recorded step}``.
    """

    pruning_type_form = "retrain_free"
    requires = frozenset({BLOCKS, CHANNELS})
    calibrates = True
    """``prepare_pruning`` with a ``dataloader`` runs the calibration loop for this pruner."""

    def __init__(self, config: PrunerConfig, modules: dict) -> None:
        linear, left = linear_layers(modules, "retrain_free")
        super().__init__(config, linear)
        self.pattern.invalid_layers.update(left)
        self.scores: dict[str, torch.Tensor] = {}
        self.grads: dict[str, list[torch.Tensor]] = {name: [] for name in self.modules}
        self._held: dict[str, torch.Tensor] = {}  # unmasked weights while some channels are pruned
        self._recorded = self._counted = False

    # ---- the unmasked weights ---------------------------------------------------------------
    def full_weight(self, name: str) -> torch.Tensor:
        """The layer's weights with its pruned channels put back (what ``W`` is under the mask)."""
        weight = self.modules[name].weight.detach()
        held = self._held.get(name)
        return weight if held is None else torch.where(self.pattern.expand(name, self.pruned[name]), held, weight)

    def _install(self, pruned: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, module in self.modules.items():
                full = self.full_weight(name)
                self._held[name] = full.clone()
                module.weight.data.copy_(full)
        self.pruned = pruned
        self.mask_weights()

    # ---- masks ------------------------------------------------------------------------------
    def update_masks(self) -> None:
        step = self.global_step
        if step == self._last_update or not self.check_is_pruned_step(step):
            return
        self._last_update = step
        scores = self.scores
        if len(scores) < len(self.modules):
            logger.warning("retrain_free: no calibration gradient before step %d; ranking channels by magnitude", step)
            scores = {
                n: self.pattern.reduce(n, self.pattern.layouts[n].to_2d(self.full_weight(n).abs()))
                for n in self.modules
            }
        ratio = self.scheduler.update_sparsity_ratio(
            self.target_sparsity_ratio,
            self.prune_step_index(step),
            self.total_prune_steps,
            init_ratio=self.init_sparsity_ratio,
        )
        pruned = self.pattern.select_pruned(scores, ratio, self.pruned)
        pruned = {n: self.rearrange(n, p) for n, p in pruned.items()}
        self.current_sparsity_ratio = ratio
        self.mask_updates += 1
        self._install(pruned)

    def rearrange(self, name: str, pruned: torch.Tensor) -> torch.Tensor:
        """The layer's pruned channels after the greedy rearrangement (same count).

        Channels are taken in increasing Fisher information; the first ``count`` form the pruned
        set, and each further channel joins it in turn, after which the member whose removal
        leaves the smallest squared norm of the set's summed gradient (over the recorded steps)
        leaves. Without recorded gradients the mask is returned unchanged.
        """
        count = int(torch.count_nonzero(pruned))
        if not count or not self.grads[name]:
            return pruned
        grads = torch.stack(self.grads[name], dim=1).double()  # [channels, steps]
        order = torch.argsort(grads.pow(2).sum(dim=1), stable=True).tolist()
        chosen = order[:count]
        for index in order[count:]:
            chosen.append(index)
            vectors = grads[chosen]
            rest = vectors.sum(dim=0) - vectors  # for each member: the sum of the others
            del chosen[int(rest.pow(2).sum(dim=1).argmin())]
        out = torch.zeros(pruned.numel(), dtype=torch.bool, device=pruned.device)
        out[chosen] = True
        return out.view(pruned.shape)

    # ---- gradients and steps ----------------------------------------------------------------
    def _record(self) -> None:
        if self._recorded or self.global_step > self.end_step - 1:
            return
        self._recorded = True
        with torch.no_grad():
            for name, module in self.modules.items():
                if module.weight.grad is None:
                    continue
                product = self.full_weight(name).float() * module.weight.grad.float()  # fp32 for half weights
                grad = _backend.reduce_blocks(
                    self.pattern.layouts[name].to_2d(product), *self.pattern.block(name), "sum"
                )
                self.grads[name].append(grad.reshape(-1).clone())
                old = self.scores.get(name)
                self.scores[name] = grad.pow(2) if old is None else old.add_(grad.pow(2))

    def _advance(self) -> None:
        self._record()
        self.mask_weights()
        self.global_step += 1
        self._recorded = False

    def on_before_optimizer_step(self) -> None:
        """In a training loop: record the mask gradients before the optimizer changes anything."""
        self._record()

    def on_after_optimizer_step(self) -> None:
        """In a training loop the step ends here (``on_step_end`` then does nothing)."""
        self._advance()
        self._counted = True

    def on_step_end(self) -> None:
        """End of a calibration step (no optimizer): record the mask gradients, count the step."""
        if self._counted:
            self._counted = False
            return
        self._advance()

    # ---- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = super().state_dict()
        state["retrain_free"] = {
            "scores": {n: s.clone() for n, s in self.scores.items()},
            "grads": {n: [g.clone() for g in gs] for n, gs in self.grads.items()},
            "held": {n: h.clone() for n, h in self._held.items()},
        }
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        extra = state.get("retrain_free", {})
        self.scores = {n: s.clone() for n, s in extra.get("scores", {}).items()}
        self.grads = {n: [g.clone() for g in extra.get("grads", {}).get(n, [])] for n in self.modules}
        self._held = {n: h.clone() for n, h in extra.get("held", {}).items()}
