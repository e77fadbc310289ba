"""Pruner behaviour: reached sparsity, pattern lock, progressive, hooks, resume, optimizer mode."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from workbench.pruner import WeightPruningConfig, get_sparsity_ratio, layer_counts, layer_sparsity, prepare_pruning

from helpers.pruner import MLP, ConvNet, batches, seeded, train

ITERATIVE = dict(start_step=1, end_step=13, pruning_frequency=4)


@pytest.mark.parametrize("criterion", ["magnitude", "snip", "snip_momentum", "gradient"])
@pytest.mark.parametrize("pattern,target", [("4x1", 0.8), ("1x1", 0.7), ("2:4", 0.5), ("channelx1", 0.5)])
@pytest.mark.parametrize("scope", ["global", "local"])
def test_reached_blockwise_sparsity_equals_target(criterion, pattern, target, scope):
    model = seeded(MLP)
    config = WeightPruningConfig(
        pattern=pattern, target_sparsity=target, pruning_type=criterion, pruning_scope=scope, **ITERATIVE
    )
    pruning, _ = train(model, config, 16)
    units = sum(p.pattern.num_units(n) for p in pruning.pruners for n in p.modules)
    pruned = sum(p.pattern.pruned_units(n, m) for p in pruning.pruners for n, m in p.pruned.items())
    assert abs(pruned - target * pattern_units_ratio(pattern) * units) <= 1 * len(pruning.pruners[0].modules)
    # masks hold on the weights themselves
    for p in pruning.pruners:
        for name, keep in p.masks.items():
            assert bool((p.modules[name].weight[~keep] == 0).all())


def pattern_units_ratio(pattern: str) -> float:
    return 2.0 if pattern == "2:4" else 1.0  # 2:4 prunes the fraction target * M / N of its groups


def test_iterative_sparsity_is_monotone_and_changes_only_on_pruning_steps():
    model = seeded(MLP)
    config = WeightPruningConfig(target_sparsity=0.8, pruning_type="magnitude", **ITERATIVE)
    seen = []
    train(model, config, 18, record=lambda step, p: seen.append((step, get_sparsity_ratio(p.pruners, model)[2])))
    values = [v for _, v in seen]
    assert all(a <= b + 1e-9 for a, b in zip(values, values[1:]))
    changes = {step for (step, v), (_, prev) in zip(seen[1:], seen) if v != prev}
    assert changes <= {5, 9, 13}
    assert values[-1] == pytest.approx(0.8, abs=0.01)


def test_pattern_lock_keeps_existing_zeros_and_adds_none():
    model = seeded(MLP)
    with torch.no_grad():
        model.fc1.weight[model.fc1.weight.abs() < 0.1] = 0.0
    before = model.fc1.weight.detach() == 0
    pruning, _ = train(model, WeightPruningConfig(pruning_type="pattern_lock"), 10)
    after = model.fc1.weight.detach() == 0
    assert torch.equal(before, after)
    assert int(before.sum()) > 0
    assert bool((model.fc2.weight != 0).all())


@pytest.mark.parametrize("ptype", ["scores", "linear"])
def test_progressive_reaches_pure_block_sparsity(ptype):
    model = seeded(MLP)
    config = WeightPruningConfig(
        pattern="4x1",
        target_sparsity=0.75,
        pruning_type="snip_momentum_progressive",
        start_step=1,
        end_step=17,
        pruning_frequency=8,
        progressive_type=ptype,
    )
    partial_seen = []

    def record(step, p):
        w = model.fc1.weight.detach().view(8, 4, 16) == 0
        partial_seen.append(bool((w.any(1) & ~w.all(1)).any()))

    pruning, _ = train(model, config, 20, record=record)
    assert any(partial_seen), "progressive pruning never zeroed part of a block"
    assert not partial_seen[-1]
    for name in ("fc1", "fc2"):
        w = getattr(model, name).weight.detach() == 0
        blocks = w.view(w.shape[0] // 4, 4, w.shape[1])
        assert torch.equal(blocks.all(1), blocks.any(1))
    assert get_sparsity_ratio(pruning.pruners, model)[2] == pytest.approx(0.75, abs=0.01)


def test_repeated_on_step_begin_changes_nothing():
    model = seeded(MLP)
    pruning = prepare_pruning(
        model,
        WeightPruningConfig(
            pruning_type="magnitude", target_sparsity=0.5, start_step=0, end_step=4, pruning_frequency=2
        ),
    )
    pruning.on_train_begin()
    pruning.on_step_begin(0)
    masks = {n: m.clone() for n, m in pruning.pruners[0].pruned.items()}
    with torch.no_grad():
        model.fc1.weight.mul_(-3.0)  # would change a magnitude ranking if masks were recomputed
    pruning.on_step_begin(0)
    assert all(torch.equal(masks[n], m) for n, m in pruning.pruners[0].pruned.items())
    assert pruning.mask_updates == 1


@pytest.mark.parametrize("how", ["setter", "load_state_dict"])
def test_masks_set_after_an_empty_masking_are_applied(how):
    # mask_weights does nothing until masks are first set; setting them must end that
    config = WeightPruningConfig(pattern="1x1", target_sparsity=0.5, start_step=5, end_step=9)
    model = seeded(MLP)
    pruner = prepare_pruning(model, config).pruners[0]
    before = model.fc1.weight.detach().clone()
    pruner.mask_weights()  # nothing pruned yet: weights untouched
    assert torch.equal(model.fc1.weight, before)
    pruned = {
        n: torch.rand(p.shape, generator=torch.Generator().manual_seed(1)) < 0.5 for n, p in pruner.pruned.items()
    }
    if how == "setter":
        pruner.pruned = pruned
    else:
        pruner.load_state_dict({**pruner.state_dict(), "pruned": pruned})
    pruner.mask_weights()
    assert torch.equal(model.fc1.weight == 0, pruned["fc1"] | (before == 0))
    assert torch.equal(model.fc1.weight[~pruned["fc1"]], before[~pruned["fc1"]])


@pytest.mark.parametrize(
    "ptype, pattern",
    [
        ("snip_momentum", "4x1"),
        ("magnitude_progressive", "4x1"),
        ("gradient", "4x1"),
        ("block_mask", "4x1"),
        ("retrain_free", "channelx1"),
    ],
)
def test_state_dict_round_trip_mid_schedule_equals_uninterrupted(ptype, pattern):
    config = WeightPruningConfig(
        pattern=pattern,
        target_sparsity=0.75,
        pruning_type=ptype,
        start_step=1,
        end_step=17,
        pruning_frequency=8,
        max_sparsity_ratio_per_op=0.9,
    )
    full = seeded(MLP)
    train(full, config, 20)

    first = seeded(MLP)
    pruning, opt = train(first, config, 11)
    checkpoint = copy.deepcopy({"model": first.state_dict(), "opt": opt.state_dict(), "pruning": pruning.state_dict()})
    resumed = seeded(MLP, seed=123)  # different init: everything must come from the checkpoint
    resumed.load_state_dict(checkpoint["model"])
    opt2 = torch.optim.SGD(resumed.parameters(), lr=0.05, momentum=0.9)
    opt2.load_state_dict(checkpoint["opt"])
    pruning2 = prepare_pruning(resumed, config)
    pruning2.load_state_dict(checkpoint["pruning"])
    train(resumed, config, 20, pruning=pruning2, optimizer=opt2, start=11)
    for a, b in zip(full.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_conv_and_linear_layers_are_pruned_in_one_pruner():
    model = seeded(ConvNet)
    config = WeightPruningConfig(pattern="4x1", target_sparsity=0.5, pruning_type="snip_momentum", **ITERATIVE)
    pruning, _ = train(model, config, 14)
    names = set(pruning.pruners[0].modules)
    assert names == {"conv1", "conv2", "fc"}
    for name in ("conv1", "conv2"):
        w = getattr(model, name).weight.detach()
        view = (w.permute(0, 2, 3, 1).reshape(8, -1) == 0).view(2, 4, -1)
        assert torch.equal(view.all(1), view.any(1)), "conv blocks must span 4 output channels"
    assert get_sparsity_ratio(pruning.pruners, model)[2] == pytest.approx(0.5, abs=0.01)


def test_several_pruners_each_reach_their_own_target():
    model = seeded(MLP)
    config = WeightPruningConfig(
        [
            {"op_names": ["fc1"], "target_sparsity": 0.25, "pattern": "1x1"},
            {"op_names": ["fc2"], "target_sparsity": 0.5, "pattern": "2:4"},
        ],
        pruning_type="magnitude",
        target_sparsity=0.75,
        **ITERATIVE,
    )
    pruning, _ = train(model, config, 15)
    assert len(pruning.pruners) == 2
    assert float((model.fc1.weight == 0).float().mean()) == pytest.approx(0.25, abs=0.01)
    assert float((model.fc2.weight == 0).float().mean()) == pytest.approx(0.5, abs=0.01)


def test_optimizer_wrapping_equals_explicit_hooks():
    config = WeightPruningConfig(pattern="4x1", target_sparsity=0.75, pruning_type="snip_momentum", **ITERATIVE)
    explicit = seeded(MLP)
    train(explicit, config, 16)
    wrapped = seeded(MLP)
    opt = torch.optim.SGD(wrapped.parameters(), lr=0.05, momentum=0.9)
    pruning = prepare_pruning(wrapped, config, opt)
    for x, y in batches(wrapped, 16):
        nn.functional.cross_entropy(wrapped(x), y).backward()
        opt.step()
        opt.zero_grad()
    assert pruning.global_step == 16
    for a, b in zip(explicit.parameters(), wrapped.parameters()):
        assert torch.equal(a, b)


def test_min_and_max_sparsity_per_op_in_a_real_run():
    model = seeded(MLP)
    with torch.no_grad():
        model.fc2.weight.mul_(0.01)  # fc2 would take nearly all the global pruning
    config = WeightPruningConfig(
        pattern="1x1",
        target_sparsity=0.6,
        pruning_type="magnitude",
        max_sparsity_ratio_per_op=0.7,
        min_sparsity_ratio_per_op=0.2,
        **ITERATIVE,
    )
    pruning, _ = train(model, config, 15)
    fc1 = float((model.fc1.weight == 0).float().mean())
    fc2 = float((model.fc2.weight == 0).float().mean())
    assert fc2 == pytest.approx(0.7, abs=1 / 1024)
    assert fc1 >= 0.2
    assert pruning.pruners[0].pattern.keep_mask_layers.get("fc2")


def test_group_lasso_shrinks_each_block_by_coeff_over_its_gradient_norm():
    model = seeded(MLP)
    config = WeightPruningConfig(
        pattern="4x1",
        target_sparsity=0.5,
        pruning_type="magnitude",
        reg_type="group_lasso",
        parameters={"reg_coeff": 0.02},
        start_step=0,
        end_step=4,
    )
    pruning = prepare_pruning(model, config)
    pruning.on_train_begin()
    grad = torch.full_like(model.fc1.weight, 0.1)
    grad[4:8] = 0.0  # a block with a zero gradient: r is capped as the formula says (inf -> 0 only)
    model.fc1.weight.grad = grad
    model.fc2.weight.grad = torch.full_like(model.fc2.weight, 0.5)
    before = model.fc1.weight.detach().clone()
    pruning.on_before_optimizer_step()
    pruning.on_after_optimizer_step()
    r = 0.02 / (0.1 * 2 + 1e-12)  # the block norm of four 0.1 entries is 0.2
    assert torch.allclose(model.fc1.weight[:4], before[:4] * (1 - r))
    reg = pruning.pruners[0].reg
    assert reg.reg_terms["fc1"][1, 0] == pytest.approx(0.02 / 1e-12)


def test_group_lasso_only_acts_between_start_and_end():
    model = seeded(MLP)
    config = WeightPruningConfig(
        pattern="4x1",
        target_sparsity=0.5,
        pruning_type="magnitude",
        reg_type="group_lasso",
        parameters={"reg_coeff": 0.02},
        start_step=3,
        end_step=4,
    )
    pruning = prepare_pruning(model, config)
    pruning.on_train_begin()
    model.fc1.weight.grad = torch.full_like(model.fc1.weight, 0.1)
    model.fc2.weight.grad = torch.full_like(model.fc2.weight, 0.1)
    before = model.fc1.weight.detach().clone()
    pruning.on_before_optimizer_step()
    pruning.on_after_optimizer_step()  # step 0: outside start..end
    assert torch.equal(model.fc1.weight.detach(), before)


def test_gradient_criterion_at_step_zero_falls_back_to_magnitude(caplog):
    model = seeded(MLP)
    train(model, WeightPruningConfig(pruning_type="snip", target_sparsity=0.5, start_step=0, end_step=0), 2)
    assert "magnitude" in caplog.text
    pruning, _ = train(
        model, WeightPruningConfig(pruning_type="snip", target_sparsity=0.5, start_step=0, end_step=0), 1
    )
    assert get_sparsity_ratio(pruning.pruners, model)[0] == pytest.approx(0.5, abs=0.01)


def test_describe_explains_every_weighted_layer():
    model = nn.Sequential()
    model.add_module("enc", nn.Linear(16, 16))
    model.add_module("norm", nn.LayerNorm(16))
    model.add_module("skip", nn.Linear(16, 16))
    model.add_module("odd", nn.Linear(16, 6))
    model.add_module("head", nn.Linear(6, 2))
    pruning = prepare_pruning(model, WeightPruningConfig(pruning_type="magnitude", excluded_op_names=["sk.p"]))
    reasons = {info.name: (info.pruned, info.reason) for info in pruning.describe()}
    assert reasons["enc"][0] is True
    assert "not a prunable type" in reasons["norm"][1]
    assert "excluded_op_names" in reasons["skip"][1]
    assert "not divisible" in reasons["odd"][1] and reasons["odd"][0] is False
    assert "classifier head" in reasons["head"][1]


def test_sparsity_ratio_reports_three_views():
    model = seeded(MLP)
    pruning = prepare_pruning(model, WeightPruningConfig(pruning_type="magnitude", pattern="4x1", target_sparsity=0.5))
    pruning.on_train_begin()
    pruning.on_step_begin(0)
    mm, overall, blockwise = get_sparsity_ratio(pruning.pruners, model)
    pruned_params = 32 * 16 + 32 * 32
    assert mm == pytest.approx(0.5, abs=1e-3)
    assert overall == pytest.approx(0.5 * pruned_params / sum(p.numel() for p in model.parameters()))
    assert blockwise == pytest.approx(0.5, abs=1e-3)


def test_layer_counts_are_what_both_sparsity_views_are_computed_from():
    model = seeded(MLP)
    pruning = prepare_pruning(model, WeightPruningConfig(pruning_type="magnitude", pattern="4x1", target_sparsity=0.5))
    pruning.on_train_begin()
    pruning.on_step_begin(0)
    name, module = next(iter(pruning.pruners[0].modules.items()))
    before = pruning.layer_sparsity()[name]
    with torch.no_grad():  # one more zero in a kept block: elementwise moves, blockwise does not
        flat = module.weight.view(-1)
        flat[int(torch.nonzero(flat).view(-1)[0])] = 0.0
    counts = layer_counts(pruning.pruners)
    assert counts[name][:2] == (int((module.weight == 0).sum()), module.weight.numel())
    assert get_sparsity_ratio(pruning.pruners, model, counts=counts) == get_sparsity_ratio(pruning.pruners, model)
    assert layer_sparsity(pruning.pruners, counts=counts) == pruning.layer_sparsity()
    elementwise, blockwise = pruning.layer_sparsity()[name]
    assert elementwise == pytest.approx(before[0] + 1 / module.weight.numel()) and blockwise == before[1]


def test_progressive_with_too_small_a_frequency_degrades_to_basic_pruning(caplog):
    model = seeded(MLP)
    config = WeightPruningConfig(
        pattern="4x1",
        target_sparsity=0.5,
        pruning_type="magnitude_progressive",
        start_step=1,
        end_step=9,
        pruning_frequency=2,
    )
    pruning, _ = train(model, config, 10)
    assert "progressive_steps" in caplog.text
    assert get_sparsity_ratio(pruning.pruners, model)[2] == pytest.approx(0.5, abs=0.01)


def test_every_registered_criterion_is_a_valid_pruning_type():
    from workbench.pruner import CRITERIA, parse_valid_pruner_types

    assert {"magnitude", "gradient", "snip", "snip_momentum"} <= set(CRITERIA)
    valid = parse_valid_pruner_types()
    assert all(c in valid for c in CRITERIA)
    assert all(f"{c}_progressive" in valid for c, cls in CRITERIA.items() if cls.pruner_types is None)
    assert "pattern_lock" in valid


def test_lock_init_sparsity_starts_the_schedule_from_existing_zeros():
    model = seeded(MLP)
    with torch.no_grad():  # prune a quarter of fc1's 4x1 blocks and of fc2's by hand
        model.fc1.weight.view(8, 4, 16)[:2] = 0.0
        model.fc2.weight.view(8, 4, 32)[:2] = 0.0
    locked = model.fc1.weight.detach() == 0
    config = WeightPruningConfig(
        pattern="4x1",
        target_sparsity=0.75,
        pruning_type="magnitude",
        sparsity_decay_type="linear",
        lock_init_sparsity=True,
        **ITERATIVE,
    )
    ratios = []
    pruning, _ = train(model, config, 14, record=lambda s, p: ratios.append(p.pruners[0].current_sparsity_ratio))
    assert pruning.pruners[0].init_sparsity_ratio == pytest.approx(0.25)
    assert ratios[1] == pytest.approx(0.25)  # k = 0: the schedule starts at s0, not at 0
    assert ratios[-1] == pytest.approx(0.75)
    assert bool((model.fc1.weight.detach()[locked] == 0).all())
