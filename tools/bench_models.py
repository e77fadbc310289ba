"""``make bench`` sections on model shapes: what the pruner's hooks add to a training step.

Sections (``python -m tools.bench --only models`` / ``--only sweep``; ``--quick`` for a run of a
few minutes):

- ``models``: a ResNet-50-shaped conv stack (batches of 8 images of 3x64x64) with the patterns
  users pick for convolutions (2x2, channelx1, 4x1) and a BERT-base-shaped encoder (12 layers,
  one sequence of 128 tokens) with those they pick for transformers (4x1, 1x1, 2:4,
  channelx1); shapes in :mod:`tools.bench_shapes`. ``snip_momentum``, global scope, target 0.8
  (2:4: 0.5), SGD, the bench's threads.
- ``sweep``: the BERT-shaped encoder at 1/4, 1/2, 1 and 2x the weights (3, 6, 12, 24 layers;
  one sequence of 128 tokens, as in ``models``), 4x1 ``snip_momentum``: how a pruning step's
  cost grows with the weights (linearly, when ``hook ms per M weights`` stays flat). The hooks'
  cost depends on the weights only, the dense step's on the batch too: a shorter sequence makes
  their share larger than here, a real fine-tuning batch smaller.

How it is timed: every step runs the pruner's hooks around an ordinary forward, backward and
optimizer step; the hooks (``on_step_begin``, ``on_before_optimizer_step``,
``on_after_optimizer_step``) are timed apart from the rest, in the same process. The schedule
starts at step 1, prunes every 3 steps up to step 7 (``--quick``: up to step 4) and runs 3 steps
past the end (``--quick``: 1). Columns:

- ``weights M``: prunable weights (Linear and Conv2d) in millions.
- ``dense ms``: median forward + backward + optimizer step + ``zero_grad``, hooks excluded
  (what a dense training step of the same model costs: sparse weights do not change dense
  kernels' time).
- ``pruning/dense``, ``non-pruning/dense``, ``after-end/dense``: ``(dense + hooks) / dense`` for
  the steps that update masks (step 1, where nothing is ranked yet, left out), for the other
  steps inside the schedule (scores are updated and masks applied) and for the steps after it
  (masks applied only); medians of the hook times over steps and repetitions.
- ``non-pruning hook ms per M weights`` (models): what the hooks of a non-pruning step cost per
  million prunable weights. It does not depend on the batch, while the dense step grows with it:
  with ``H`` this figure and ``D`` your dense step in ms, a non-pruning step costs
  ``1 + H * weights M / D`` dense steps. (Batch 8 for the conv stack: at batch 4 its dense step is
  ~200 ms, and its non-pruning steps read 1.10-1.11.)
- ``pruning hook ms`` (sweep): the median hook time of a pruning step; ``hook ms per M
  weights`` divides it by ``weights M``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from tools.bench_device import move, now
from tools.bench_shapes import ConvStack, Encoder, prunable_weights
from workbench.pruner import WeightPruningConfig, prepare_pruning


@dataclass(frozen=True)
class Schedule:
    """When the pruner runs: ``start_step``, ``end_step``, ``pruning_frequency``, steps in all."""

    start: int
    end: int
    freq: int
    steps: int


FULL, QUICK = Schedule(1, 7, 3, 11), Schedule(1, 4, 3, 6)
CONV_PATTERNS = [("2x2", 0.8), ("channelx1", 0.8), ("4x1", 0.8)]
TRANSFORMER_PATTERNS = [("4x1", 0.8), ("1x1", 0.8), ("2:4", 0.5), ("channelx1", 0.8)]
MODELS: dict[str, tuple[Callable[[], nn.Module], Callable[[], tuple], list[tuple[str, float]]]] = {
    "resnet50 convs": (ConvStack, lambda: ConvStack.batch(8), CONV_PATTERNS),
    "bert-base encoder": (Encoder, lambda: Encoder.batch(1, 128), TRANSFORMER_PATTERNS),
}
SWEEP = [("1/4", 3), ("1/2", 6), ("1", 12), ("2", 24)]


@dataclass
class HookTimes:
    """Median seconds: the dense part of a step, and the hooks of each kind of step."""

    dense: float
    pruning: float
    non_pruning: float
    after_end: float


def time_hooks(
    make_model: Callable[[], nn.Module],
    batch: tuple[torch.Tensor, torch.Tensor],
    pattern: str,
    target: float,
    schedule: Schedule,
    *,
    criterion: str = "snip_momentum",
    repeats: int = 1,
) -> HookTimes:
    """Train a fresh ``make_model()`` under the schedule ``repeats`` times, timing hooks apart."""
    x, y = move(batch[0]), move(batch[1])
    kinds: dict[str, list[float]] = {"dense": [], "pruning": [], "non_pruning": [], "after_end": []}
    config = WeightPruningConfig(
        pattern=pattern,
        target_sparsity=target,
        pruning_type=criterion,
        pruning_scope="global",
        start_step=schedule.start,
        end_step=schedule.end,
        pruning_frequency=schedule.freq,
    )
    for _ in range(repeats):
        torch.manual_seed(0)
        model = move(make_model())
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        pruning = prepare_pruning(model, config)
        pruning.on_train_begin()
        for step in range(schedule.steps):
            hooks, dense = _step(model, opt, x, y, pruning, step)
            kinds["dense"].append(dense)
            if step <= schedule.start:
                continue
            if step > schedule.end:
                kinds["after_end"].append(hooks)
            elif (step - schedule.start) % schedule.freq == 0:
                kinds["pruning"].append(hooks)
            else:
                kinds["non_pruning"].append(hooks)
    return HookTimes(**{k: statistics.median(v) if v else float("nan") for k, v in kinds.items()})


def _step(model, opt, x, y, pruning, step: int) -> tuple[float, float]:
    """One training step; ``(seconds in the hooks, seconds in the rest)``."""
    t0 = now()
    pruning.on_step_begin(step)
    t1 = now()
    nn.functional.cross_entropy(model(x), y).backward()
    t2 = now()
    pruning.on_before_optimizer_step()
    t3 = now()
    opt.step()
    t4 = now()
    pruning.on_after_optimizer_step()
    t5 = now()
    opt.zero_grad(set_to_none=False)  # part of the dense step, as in any training loop
    t6 = now()
    return (t1 - t0) + (t3 - t2) + (t5 - t4), (t2 - t1) + (t4 - t3) + (t6 - t5)


def models_table(*, repeats: int = 2, quick: bool = False) -> list[dict]:
    """One row per (model, pattern): hook cost of each kind of step against the dense step."""
    rows = []
    schedule = QUICK if quick else FULL
    for name, (make_model, make_batch, patterns) in MODELS.items():
        weights = prunable_weights(make_model()) / 1e6
        torch.manual_seed(0)
        batch = make_batch()
        for pattern, target in patterns:
            t = time_hooks(make_model, batch, pattern, target, schedule, repeats=1 if quick else repeats)
            rows.append(
                {
                    "model": name,
                    "pattern": pattern,
                    "weights M": weights,
                    "dense ms": t.dense * 1e3,
                    "pruning/dense": 1 + t.pruning / t.dense,
                    "non-pruning/dense": 1 + t.non_pruning / t.dense,
                    "after-end/dense": 1 + t.after_end / t.dense,
                    "non-pruning hook ms per M weights": t.non_pruning * 1e3 / weights,
                }
            )
    return rows


def sweep_table(*, repeats: int = 2, quick: bool = False) -> list[dict]:
    """The encoder at 1/4 to 2x BERT-base's weights (``--quick``: up to 1x): pruning hook cost."""
    rows = []
    schedule = QUICK if quick else FULL
    torch.manual_seed(0)
    batch = Encoder.batch(1, 128)
    for scale, layers in SWEEP[:-1] if quick else SWEEP:
        weights = prunable_weights(Encoder(layers)) / 1e6
        t = time_hooks(lambda n=layers: Encoder(n), batch, "4x1", 0.8, schedule, repeats=1 if quick else repeats)
        rows.append(
            {
                "size": scale,
                "weights M": weights,
                "dense ms": t.dense * 1e3,
                "pruning hook ms": t.pruning * 1e3,
                "hook ms per M weights": t.pruning * 1e3 / weights,
                "pruning/dense": 1 + t.pruning / t.dense,
                "non-pruning/dense": 1 + t.non_pruning / t.dense,
            }
        )
    return rows
