"""N:M patterns with ``*_progressive`` pruning (issue 20, point 2).

Expectations derived from INC 3.7.1 (its progressive pruner, patterns/ninm.py and
ProgressivePatternUtils), written as our own: INC accepts N:M with a progressive pruning type;
with ``pruning_frequency >= progressive_steps`` the newly pruned elements are zeroed over
``progressive_steps`` sub-steps, lowest scores first ("scores" order; INC fixed the type to
"scores"), and the run reaches the N:M target; otherwise it prunes like the basic pruner.
"""

from __future__ import annotations

import logging

import pytest
import torch

from workbench.pruner import WeightPruningConfig, get_sparsity_ratio, resolve_config

from helpers.pruner import MLP, seeded, train


def _config(**overrides) -> WeightPruningConfig:
    keys = dict(pattern="6:8", target_sparsity=0.75, pruning_type="magnitude_progressive", start_step=1, end_step=17)
    keys.update(pruning_frequency=8)
    keys.update(overrides)
    return WeightPruningConfig(**keys)


@pytest.mark.parametrize("pruning_type", ["magnitude_progressive", "snip_momentum_progressive", "snip_progressive"])
def test_nm_progressive_is_a_valid_config(pruning_type):
    (resolved,) = resolve_config(_config(pruning_type=pruning_type, pattern="2:4", target_sparsity=0.5))
    assert resolved.pruner_type == "progressive" and resolved.pattern == "2:4"


@pytest.mark.parametrize("progressive_type", ["scores", "linear"])
def test_new_elements_fade_out_over_the_sub_steps_and_the_target_is_reached(progressive_type, caplog):
    model = seeded(MLP)
    zeros: dict[int, torch.Tensor] = {}

    def record(step, pruning):
        zeros[step] = torch.cat([model.fc1.weight.detach().view(-1), model.fc2.weight.detach().view(-1)]) == 0

    with caplog.at_level(logging.WARNING):
        pruning, _ = train(model, _config(progressive_type=progressive_type), 20, record=record)
    assert ("zeroes its new elements by 'scores'" in caplog.text) == (progressive_type == "linear")
    # pruning step 9 aims at some ratio; sub-steps at 9, 11, 13 and the full masks at 15
    counts = [int(zeros[s].sum()) for s in (9, 11, 13, 15)]
    assert counts[-1] > 0 and counts == [round(counts[-1] * j / 4) for j in (1, 2, 3, 4)]
    for earlier, later in zip((9, 11, 13), (11, 13, 15)):
        assert bool((zeros[later] | ~zeros[earlier]).all())  # what is zeroed stays zeroed
    assert int(zeros[16].sum()) == counts[-1]  # nothing changes until the next pruning step
    # the end: every group of 8 holds exactly 6 zeros, the target
    for name in ("fc1", "fc2"):
        per_group = (getattr(model, name).weight.detach() == 0).view(-1, 8).sum(1)
        assert bool((per_group == 6).all())
    elementwise, _, blockwise = get_sparsity_ratio(pruning.pruners, model)
    assert elementwise == pytest.approx(0.75) and blockwise == 1.0


def test_scores_order_zeroes_the_lowest_magnitudes_first():
    model = seeded(MLP)
    seen: dict[int, torch.Tensor] = {}
    weights: dict[int, torch.Tensor] = {}

    def record(step, pruning):
        seen[step] = model.fc1.weight.detach() == 0
        if step == 8:  # magnitudes the pruning step 9 ranks (weights after step 8's update)
            weights[8] = model.fc1.weight.detach().abs().clone()

    train(model, _config(use_global=False), 12, record=record)
    first, final = seen[9], seen[11]
    later = final & ~first  # zeroed on the second sub-step
    assert int(first.sum()) > 0 and int(later.sum()) > 0
    assert float(weights[8][first].max()) <= float(weights[8][later].min())


def test_too_small_a_frequency_prunes_like_the_basic_pruner_with_a_warning(caplog):
    model = seeded(MLP)
    per_group: set[int] = set()

    def record(step, pruning):
        per_group.update((model.fc1.weight.detach() == 0).view(-1, 4).sum(1).tolist())

    with caplog.at_level(logging.WARNING):
        pruning, _ = train(
            model, _config(pattern="2:4", target_sparsity=0.5, pruning_frequency=2, end_step=9), 10, record=record
        )
    assert "progressive_steps" in caplog.text
    assert per_group == {0, 2}  # whole groups at every step: no group was ever partly pruned
    assert get_sparsity_ratio(pruning.pruners, model)[0] == pytest.approx(0.5)
