"""The extension contract: a plug-in module registering a pattern family, criterion, scheduler
with its decay, pruner type and regulariser is all a config needs to use them."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

from workbench import pruner as lib
from workbench.pruner import ConfigError, WeightPruningConfig, process_config, resolve_config

from helpers.pruner import MLP, seeded, train

REGISTRIES = (lib.PATTERNS, lib.CRITERIA, lib.SCHEDULERS, lib.DECAYS, lib.PRUNERS, lib.REGS)
PLUGIN = "toy_pruner_plugin"
PLUGIN_DIR = str(Path(__file__).parent / "plugins")
TOY = dict(
    pattern="stripe2",
    pruning_type="toy_square_counted",
    scheduler="toy_staircase",
    sparsity_decay_type="toy_sqrt",
    reg_type="toy_shrink",
    parameters={"reg_coeff": 0.001},
    target_sparsity=0.6,
    start_step=1,
    end_step=9,
    pruning_frequency=2,
)


@pytest.fixture
def plugin():
    """Import the plug-in (registering its extensions); restore every registry afterwards."""
    saved = [dict(registry) for registry in REGISTRIES]
    sys.modules.pop(PLUGIN, None)
    sys.path.insert(0, PLUGIN_DIR)
    try:
        yield importlib.import_module(PLUGIN)
    finally:
        sys.path.remove(PLUGIN_DIR)
        sys.modules.pop(PLUGIN, None)
        for registry, entries in zip(REGISTRIES, saved):
            registry.clear()
            registry.update(entries)


def test_the_queries_list_every_registration(plugin):
    assert lib.list_pattern_families()[-2:] == ["stripe", "NofM"]
    assert lib.list_pattern_examples()["stripe"] == ("stripe2", "stripe4")
    assert "toy_square" in lib.list_criteria() and "toy_sqrt" in lib.list_decays()
    assert "toy_staircase" in lib.list_schedulers() and "toy_counting" in lib.list_pruner_types()
    assert "toy_shrink" in lib.list_regs()
    types = lib.list_pruning_types()
    # the new criterion takes every pruner's form; the new pruner's form takes every criterion
    assert {"toy_square", "toy_square_progressive", "toy_square_counted", "magnitude_counted"} <= set(types)


def test_configs_accept_the_registrations(plugin):
    spec = lib.parse_pattern("Stripe2")
    assert (spec.family, spec.text, spec.max_sparsity) == ("stripe", "stripe2", plugin.STRIPE_MAX)
    (cfg,) = resolve_config(WeightPruningConfig(**TOY))
    assert (cfg.pattern, cfg.criterion_type, cfg.pruner_type) == ("stripe2", "toy_square", "toy_counting")
    assert (cfg.scheduler, cfg.sparsity_decay_type, cfg.reg_type, cfg.reg_coeff) == (
        "toy_staircase",
        "toy_sqrt",
        "toy_shrink",
        0.001,
    )
    assert cfg.max_sparsity_ratio_per_op == plugin.STRIPE_MAX  # capped at what the family says it reaches
    assert process_config(TOY)[0] == cfg.as_dict()


@pytest.mark.parametrize(
    "key, bad, listed",
    [
        ("pattern", "stripes", "'stripeK'"),
        ("pruning_type", "toy_squares", "'toy_square_counted'"),
        ("scheduler", "staircase", "'toy_staircase'"),
        ("sparsity_decay_type", "sqrt", "'toy_sqrt'"),
        ("reg_type", "shrink", "'toy_shrink'"),
    ],
)
def test_errors_list_the_registrations_among_allowed_values(plugin, key, bad, listed):
    with pytest.raises(ConfigError) as info:
        process_config({**TOY, key: bad})
    message = str(info.value)
    assert message.startswith(f"{key}: {bad!r}") and listed in message


def test_the_pattern_states_its_own_limit(plugin):
    with pytest.raises(ConfigError, match="target_sparsity: 0.8 is above 0.75"):
        process_config({**TOY, "target_sparsity": 0.8})


def test_pruning_with_the_registrations_reaches_the_target(plugin):
    model = seeded(MLP)
    ratios = []
    pruning, _ = train(
        model, WeightPruningConfig(**TOY), 12, record=lambda s, p: ratios.append(p.pruners[0].current_sparsity_ratio)
    )
    (pruner,) = pruning.pruners
    assert type(pruner).__name__ == "CountingPruner" and type(pruner.criterion).__name__ == "SquareCriterion"
    assert type(pruner.scheduler).__name__ == "StaircaseScheduler" and pruner.reg.calls == 9  # steps 1..9
    # pruning steps 1, 3, 5, 7, 9: floor(10 * 0.6 * sqrt(k / 4)) / 10, then the target
    assert sorted(set(ratios)) == [0.0, 0.3, 0.4, 0.5, 0.6] and pruner.counted == 5
    assert lib.get_sparsity_ratio(pruning.pruners, model)[2] == pytest.approx(0.6, abs=0.01)
    for name, keep in pruner.masks.items():
        assert bool((pruner.modules[name].weight[~keep] == 0).all())


def test_the_registries_hold_only_the_builtins_without_the_plugin():
    assert lib.list_pattern_families() == ["NxM", "N:M"] and lib.list_regs() == ["group_lasso"]
    assert "toy_square" not in lib.list_criteria() and "toy_sqrt" not in lib.list_decays()
    assert "toy_staircase" not in lib.list_schedulers() and "toy_counting" not in lib.list_pruner_types()


# ---- a pattern family that subclasses no built-in one (``NofM``: N of every M output rows) ----


def test_a_plugin_family_with_its_own_syntax_gets_its_effective_target_from_its_spec(plugin):
    """``"2of4"`` has a fixed sparsity of 1/2 and no ``":"``: every layer that decides an effective
    target or a metric name asks the spec, so a copy of the rule that tested the syntax breaks here."""
    from workbench.trial.space import effective_params, max_sparsity

    spec = lib.parse_pattern("2of4")
    assert (spec.family, spec.max_sparsity, spec.fixed_sparsity) == ("NofM", 0.5, 0.5)
    assert max_sparsity("2of4") == 0.5
    assert effective_params({"pattern": "2of4", "target_sparsity": 0.8})["target_sparsity"] == 0.5
    assert effective_params({"pattern": "2of4", "target_sparsity": 0.3})["target_sparsity"] == 0.3
    # one-shot (post-training) pruning of a fixed-sparsity pattern prunes exactly N/M, whatever the target
    one_shot = effective_params({"pattern": "2of4", "target_sparsity": 0.3, "criterion": "wanda"})
    assert one_shot["target_sparsity"] == 0.5
    # a block family without a fixed sparsity keeps the target below its maximum
    assert (
        effective_params({"pattern": "stripe2", "target_sparsity": 0.3, "criterion": "wanda"})["target_sparsity"] == 0.3
    )


def test_a_plugin_family_of_fixed_sparsity_logs_the_satisfied_group_metrics(plugin):
    from workbench.tracking.artifacts import result_metrics, run_description

    from helpers.results import make_result

    for pattern, satisfied in (("2of4", True), ("stripe2", False)):
        result = make_result(layers=("net.0", "net.2"))
        result.pruning_config["pruning_configs"][0]["pattern"] = pattern
        keys = {m.key for m in result_metrics(result)}
        nm = {"layer_nm_satisfied/net.0", "layer_nm_satisfied/net.2", "sparsity/nm_groups_satisfied"}
        assert (nm <= keys) == satisfied and bool(nm & keys) == satisfied, keys
        note = run_description(result, {"pattern": pattern, "criterion": "magnitude", "target_sparsity": 0.5})
        assert ("nm_groups_satisfied" in note) == satisfied


def test_post_training_pruning_refuses_the_family_by_its_own_declaration(plugin):
    from workbench.trial.space import check_posttraining_pattern

    model = seeded(MLP)
    batches = [torch.randn(4, 16)]
    with pytest.raises(ConfigError, match=r"'2of4' \(family 'NofM'\) is not supported by post-training pruning"):
        lib.prune_posttraining(model, batches, "wanda", None, "2of4")
    with pytest.raises(ConfigError, match="search_space.pattern: '2of4' cannot be used with post-training"):
        check_posttraining_pattern("wanda", "2of4", "search_space.pattern")
    # a family may declare a post-training form; the stripe family does not either
    assert lib.parse_pattern("2of4").posttraining_form() is None
    assert lib.parse_pattern("2:4").posttraining_form() == ("nm", 2, 4)


@pytest.mark.parametrize("scope", ["local", "global"])
@pytest.mark.parametrize("pruning_type", ["magnitude", "snip_momentum", "snip_momentum_progressive"])
def test_training_aware_pruning_with_the_family_prunes_n_of_every_m_output_rows(plugin, scope, pruning_type):
    model = seeded(MLP)
    config = WeightPruningConfig(
        pattern="2of4",
        pruning_type=pruning_type,
        pruning_scope=scope,
        target_sparsity=0.5,
        start_step=1,
        end_step=7,
        pruning_frequency=2,
    )
    pruning, _ = train(model, config, 10)
    (pruner,) = pruning.pruners
    assert type(pruner.pattern).__mro__[1] is lib.BasePattern
    elementwise, _, blockwise = lib.get_sparsity_ratio(pruning.pruners, model)
    assert elementwise == pytest.approx(0.5) and blockwise == pytest.approx(1.0)  # every group satisfied
    for name, module in pruner.modules.items():
        rows, cols = module.weight.shape
        zeros = (module.weight.detach() == 0).reshape(rows // 4, 4, cols).sum(dim=1)
        assert bool((zeros == 2).all()), name  # exactly N of every M output rows in each column


@pytest.mark.parametrize("scope", ["local", "global"])
@pytest.mark.parametrize("seed", range(3))
def test_a_family_stating_only_its_block_prunes_as_the_builtin_family_of_that_block(plugin, scope, seed):
    """``stripe2`` defines parse and block only; the defaults derived from its 2 x 1 block (unit
    scores, masks, counts, zeroing) give the built-in ``2x1`` results bit for bit."""
    gen = torch.Generator().manual_seed(seed)
    layers = {"a": torch.nn.Linear(24, 16), "b": torch.nn.Conv2d(8, 12, 3), "c": torch.nn.Conv2d(6, 4, 1)}
    config = {"target_sparsity": 0.4, "pruning_scope": scope}
    mine, builtin = (lib.get_pattern({**config, "pattern": p}, layers) for p in ("stripe2", "2x1"))
    assert type(mine).__mro__[1] is lib.BasePattern and mine.invalid_layers == builtin.invalid_layers == {}
    scores = {n: torch.rand(mine.grid(n, mine.layouts[n].rows)[::2], generator=gen) for n in layers}
    masks = mine.select_pruned(scores, 0.4, {})
    want = builtin.select_pruned(scores, 0.4, {})
    for name, module in layers.items():
        assert torch.equal(masks[name], want[name]), name
        weight, expected = module.weight.detach().clone(), module.weight.detach().clone()
        mine.apply(name, weight, masks[name])
        builtin.apply(name, expected, want[name])
        assert torch.equal(weight, expected) and bool((weight[mine.expand(name, masks[name])] == 0).all())
        assert mine.zero_units(name, weight) == builtin.zero_units(name, expected)
        assert torch.equal(mine.pruned_from_weight(name, weight), masks[name])  # random weights: no other zeros


def test_a_family_written_against_the_old_names_still_works_with_a_future_warning():
    """Names before 0.1.0 read as kept masks; they stay as aliases until OLD_NAMES_REMOVED_IN."""
    from workbench.pruner.patterns.base import OLD_NAMES_REMOVED_IN

    with pytest.warns(FutureWarning, match=rf"mask_from_units is deprecated .* removed in {OLD_NAMES_REMOVED_IN}"):

        class OldRows(lib.BasePattern):  # every other row pruned, whatever the scores
            @classmethod
            def parse(cls, text):
                return lib.get_pattern({"pattern": "1x1"}, {}).spec if text == "1x1" else None

            def mask_from_units(self, name, units, detail):
                return torch.arange(units.shape[0]).unsqueeze(1).expand_as(units) % 2 == 0

    layer = torch.nn.Linear(4, 6)
    pattern = OldRows(resolve_config({"pattern": "1x1", "target_sparsity": 0.5})[0], {"l": layer})
    new = pattern.select_pruned({"l": torch.rand(6, 4)}, 0.5, {})["l"]
    assert torch.equal(new[:, 0], torch.tensor([True, False] * 3))  # the old override is the one used
    with pytest.warns(FutureWarning, match="get_masks is deprecated .* use select_pruned"):
        old = pattern.get_masks({"l": torch.rand(6, 4)}, 0.5, {})["l"]
    assert torch.equal(old, new)
    with pytest.warns(FutureWarning, match="empty_mask is deprecated .* use nothing_pruned"):
        assert not bool(pattern.empty_mask("l").any())
