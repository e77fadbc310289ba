"""The pruner on CUDA (issue 19, point 3): the same masks as on the CPU for every pattern family
and criterion, and no weight-sized CPU allocation in a pruning step. Skipped without CUDA; run
with ``make test-gpu`` on a GPU machine."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from workbench.pruner import WeightPruningConfig, list_criteria, list_pattern_examples, prepare_pruning

from helpers.profiling import cpu_allocations

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (make test-gpu)"),
]

WIDTH = 256


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(WIDTH, WIDTH), nn.ReLU(), nn.Linear(WIDTH, WIDTH), nn.ReLU(), nn.Linear(WIDTH, 4)
    )  # fmt: skip


def _conv_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(16 * 4 * 4, 4),
    )  # fmt: skip


def _drive(model: nn.Module, config: WeightPruningConfig, grads: list[dict[str, torch.Tensor]], device: str):
    """The hooks over fixed gradients (the same numbers on both devices: no matmul rounding in play)."""
    model = model.to(device)
    pruning = prepare_pruning(model, config)
    pruning.on_train_begin()
    params = dict(model.named_parameters())
    for step, grad in enumerate(grads):
        pruning.on_step_begin(step)
        for name, g in grad.items():
            params[name].grad = g.to(device)
        pruning.on_before_optimizer_step()
        pruning.on_after_optimizer_step()
        pruning.on_step_end()
    return pruning


COMBOS = [
    (t, p)
    for t in [*list_criteria(), "snip_momentum_progressive"]
    for ps in list_pattern_examples().values()
    for p in ps
    if not (t == "snip_momentum_block" and ":" in p)
]


@pytest.mark.parametrize("build", [_model, _conv_model], ids=["linear", "conv"])
@pytest.mark.parametrize(("pruning_type", "pattern"), COMBOS)
def test_cuda_masks_equal_cpu_masks(pruning_type, pattern, build):
    config = WeightPruningConfig(
        pruning_type=pruning_type,
        pattern=pattern,
        target_sparsity=0.25 if ":" in pattern else 0.5,
        start_step=1,
        end_step=4,
    )
    model = build()
    gen = torch.Generator().manual_seed(1)
    grads = [{n: torch.randn(p.shape, generator=gen) for n, p in model.named_parameters()} for _ in range(6)]
    cpu = _drive(copy.deepcopy(model), config, grads, "cpu")
    cuda = _drive(copy.deepcopy(model), config, grads, "cuda")
    cpu_masks, cuda_masks = cpu.pruners[0].masks, cuda.pruners[0].masks
    assert set(cpu_masks) == set(cuda_masks) and cpu_masks
    for name, mask in cuda_masks.items():
        assert mask.device.type == "cuda"
        assert torch.equal(mask.cpu(), cpu_masks[name]), (pruning_type, pattern, name)


@pytest.mark.parametrize(("pruning_type", "pattern"), [("snip_momentum", "4x1"), ("magnitude", "2:4")])
def test_a_pruning_step_on_cuda_allocates_nothing_weight_sized_on_the_cpu(pruning_type, pattern):
    model = _model().cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    config = WeightPruningConfig(
        pruning_type=pruning_type, pattern=pattern, target_sparsity=0.25, start_step=1, end_step=8
    )
    prepare_pruning(model, config, opt)
    model.train()
    x, y = torch.randn(8, WIDTH, device="cuda"), torch.randint(0, 4, (8,), device="cuda")

    def step():
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad(set_to_none=False)

    step()  # step 0: warm-up (first hook, lazy state)
    allocations = cpu_allocations(lambda: [step() for _ in range(3)])  # steps 1-3 update masks
    mask_bytes = WIDTH * WIDTH // 4  # a 4x1 block mask of one layer: the smallest buffer a step could need
    assert max(allocations, default=0) < mask_bytes // 16, sorted(allocations)[-5:]
    assert sum(allocations) < mask_bytes, sorted(allocations)[-5:]


@pytest.mark.parametrize("pattern", ["4x1", "2:4"])
def test_gpt2_prunes_on_cuda_like_on_the_cpu(pattern):
    """Conv1D layers, a tied head and an untraceable model, on CUDA: the CPU's masks."""
    pytest.importorskip("transformers")
    from helpers.real_models import tiny_gpt2_lm

    config = WeightPruningConfig(
        pruning_type="snip_momentum", pattern=pattern, target_sparsity=0.5, start_step=1, end_step=3
    )
    model = tiny_gpt2_lm()
    gen = torch.Generator().manual_seed(1)
    grads = [{n: torch.randn(p.shape, generator=gen) for n, p in model.named_parameters()} for _ in range(5)]
    cpu = _drive(copy.deepcopy(model), config, grads, "cpu").pruners[0].masks
    cuda = _drive(copy.deepcopy(model), config, grads, "cuda").pruners[0].masks
    assert set(cpu) == set(cuda) and "lm_head" not in cuda
    for name, mask in cuda.items():
        assert torch.equal(mask.cpu(), cpu[name]), name
