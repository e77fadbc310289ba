"""``make bench``: the performance table, as ratios against a dense training step.

The pruner section times the reference model of the pruner issue (6 residual blocks of
Linear(768->3072) + Linear(3072->768), a Linear head, batch 2x32 tokens, SGD, 2 threads) under
a schedule that starts at step 2, ends at step 14 and prunes every 4 steps, and runs 9 steps
past the end (as many as there are non-pruning steps inside the schedule, so the after-end
median is as steady as the non-pruning one). Dense steps and pruned steps are interleaved in one
process, so both see the same machine state; each figure is a median over repetitions. Nothing
here is asserted: the numbers go into the README. Its columns: ``dense ms``, ``non-pruning ms``
and ``pruning ms`` are median step times of the dense model and of the pruned model's steps
inside the schedule that do not and that do update masks; ``x/dense`` divides them by the dense
step; ``pruning-dense (dense steps)`` is what a pruning step adds, in dense steps; ``after-end/dense``
is for the steps after the schedule (masks applied only).

The ``models`` and ``sweep`` sections (a ResNet-50-shaped conv stack, a BERT-base-shaped encoder,
and that encoder at 1/4 to 2x the weights) time the pruner's hooks apart from the rest of each
step instead: see :mod:`tools.bench_models` for their columns. ``--only SECTION`` runs one
section (``--criterion snip_momentum``: the pruner section's rows of that criterion); ``--quick`` takes one repetition per measurement, shorter schedules and no 2x model (a
few minutes for ``--only models --quick`` on two cores). ``--device`` (default ``auto``: CUDA when
present) is where the pruner, models and sweep sections run (:mod:`tools.bench_device`); ``make
test-gpu`` prints the pruner, models and slim tables on a GPU machine.
The ``overhead`` section times a hand-written loop with the pruner's hooks against the workbench
trial on the same config, interleaved in one process; ``study`` runs the default experiment
(6 trials) against its trials' own time and the log writer's (:mod:`tools.bench_overhead`).
The ``startup`` section times ``workbench search`` from its start to its first trial's start
with 1 and 2 workers against a bare ``import torch``, and the log writer's time per trial
(:mod:`tools.bench_workers`). The ``slim`` section measures dense vs channel-pruned vs slimmed forward latency and parameters
(:mod:`tools.bench_slim`). The ``posttraining`` section times one-shot Wanda and SparseGPT in the
authors' block mode against true-sequential calibration, with each one's peak memory
(:mod:`tools.bench_posttraining`).
"""

from __future__ import annotations

import argparse
import importlib
import statistics
from dataclasses import dataclass

import torch
from torch import nn

from tools import bench_device
from tools.bench_device import move, now
from workbench.pruner import WeightPruningConfig, prepare_pruning

START, END, FREQ, STEPS = 2, 14, 4, 24
CASES = [
    ("4x1", "snip_momentum", 0.8),
    ("1x1", "snip_momentum", 0.8),
    ("2:4", "snip_momentum", 0.5),
    ("4x1", "magnitude", 0.8),
    ("1x1", "magnitude", 0.8),
    ("2:4", "magnitude", 0.5),
]


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(768, 3072), nn.Linear(3072, 768)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(nn.functional.gelu(self.fc1(x)))


class ReferenceModel(nn.Module):
    """The pruner issue's reference: 6 residual MLP blocks (28M prunable weights) and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[_Block() for _ in range(6)])
        self.head = nn.Linear(768, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x).mean(dim=1))


@dataclass
class StepTimes:
    """Median seconds of each kind of step, and the dense step measured alongside."""

    dense: float
    pruning: float
    non_pruning: float
    after_end: float


def _step(model, opt, x, y, pruning=None, step=0) -> float:
    t0 = now()
    if pruning is not None:
        pruning.on_step_begin(step)
    nn.functional.cross_entropy(model(x), y).backward()
    if pruning is not None:
        pruning.on_before_optimizer_step()
    opt.step()
    if pruning is not None:
        pruning.on_after_optimizer_step()
    opt.zero_grad(set_to_none=False)
    return now() - t0


def time_pruner(pattern: str, criterion: str, target: float, *, repeats: int = 3) -> StepTimes:
    """Interleave dense and pruned steps over the schedule ``repeats`` times; return medians."""
    torch.manual_seed(0)
    x, y = move(torch.randn(2, 32, 768)), move(torch.randint(0, 10, (2,)))
    dense_model = move(ReferenceModel())
    dense_opt = torch.optim.SGD(dense_model.parameters(), lr=1e-3)
    kinds: dict[str, list[float]] = {"dense": [], "pruning": [], "non_pruning": [], "after_end": []}
    config = WeightPruningConfig(
        pattern=pattern,
        target_sparsity=target,
        pruning_type=criterion,
        pruning_scope="global",
        start_step=START,
        end_step=END,
        pruning_frequency=FREQ,
    )
    for _ in range(repeats):
        model = move(ReferenceModel())
        model.load_state_dict(dense_model.state_dict())
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        pruning = prepare_pruning(model, config)
        pruning.on_train_begin()
        for step in range(STEPS):
            kinds["dense"].append(_step(dense_model, dense_opt, x, y))
            seconds = _step(model, opt, x, y, pruning, step)
            if step < START:
                continue
            if step > END:
                kinds["after_end"].append(seconds)
            elif (step - START) % FREQ == 0:
                if step > START:  # the first pruning step reaches s0 = 0: nothing to rank
                    kinds["pruning"].append(seconds)
            else:
                kinds["non_pruning"].append(seconds)
    return StepTimes(**{k: statistics.median(v) for k, v in kinds.items()})


def pruner_table(*, repeats: int = 5, criterion: str | None = None) -> list[dict]:
    """One row per (pattern, criterion) (only ``criterion``'s where given): step times and their
    ratios to the dense step."""
    rows = []
    for pattern, criterion, target in [case for case in CASES if criterion in (None, case[1])]:
        t = time_pruner(pattern, criterion, target, repeats=repeats)
        rows.append(
            {
                "pattern": pattern,
                "criterion": criterion,
                "dense ms": t.dense * 1e3,
                "non-pruning ms": t.non_pruning * 1e3,
                "pruning ms": t.pruning * 1e3,
                "non-pruning/dense": t.non_pruning / t.dense,
                "pruning/dense": t.pruning / t.dense,
                "pruning-dense (dense steps)": (t.pruning - t.dense) / t.dense,
                "after-end/dense": t.after_end / t.dense,
            }
        )
    return rows


def format_table(rows: list[dict]) -> str:
    """A Markdown table of ``rows`` (floats with 2 decimals)."""
    if not rows:
        return ""
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        cells = [f"{row[c]:.2f}" if isinstance(row[c], float) else str(row[c]) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _lazy(module: str, name: str):
    def section(**kwargs: int) -> list[dict]:
        return getattr(importlib.import_module(module), name)(**kwargs)

    return section


SECTIONS = {
    "pruner": pruner_table,
    "models": _lazy("tools.bench_models", "models_table"),
    "sweep": _lazy("tools.bench_models", "sweep_table"),
    "benchmarks": _lazy("tools.bench_trials", "benchmarks_table"),
    "tracking": _lazy("tools.bench_trials", "tracking_table"),
    "workers": _lazy("tools.bench_workers", "workers_table"),
    "startup": _lazy("tools.bench_workers", "startup_table"),
    "overhead": _lazy("tools.bench_overhead", "overhead_table"),
    "study": _lazy("tools.bench_overhead", "study_table"),
    "slim": _lazy("tools.bench_slim", "slim_table"),
    "posttraining": _lazy("tools.bench_posttraining", "posttraining_table"),
}


QUICK_SECTIONS = {"models", "sweep", "slim", "posttraining"}
"""Sections whose ``quick`` argument shortens more than the repetitions."""


def main(argv: list[str] | None = None) -> int:
    """Print the performance tables (``python -m tools.bench [--only SECTION] [--repeats N] [--quick]``)."""
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append")
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="repetitions per measurement (medians/minima); default: each section's own",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--device",
        choices=bench_device.DEVICES,
        default="auto",
        help="where the pruner and model sections run (auto: CUDA when present)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="one repetition, shorter schedules, no 2x model: a run of a few minutes"
    )
    parser.add_argument(
        "--criterion",
        choices=sorted({case[1] for case in CASES}),
        help="the pruner section's rows of this criterion only (a shorter run)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        device = bench_device.use(args.device)
    except ValueError as err:
        parser.error(str(err))
    print(f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'})")
    for name in args.only or list(SECTIONS):
        print(f"\n## {name}\n")
        kwargs = {} if args.repeats is None else {"repeats": args.repeats}
        if args.quick:
            kwargs = {"repeats": 1, **({"quick": True} if name in QUICK_SECTIONS else {})}
        if name == "pruner" and args.criterion:
            kwargs["criterion"] = args.criterion
        print(format_table(SECTIONS[name](**kwargs)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
