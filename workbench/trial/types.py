"""Plain data exchanged between the trial runner and its callers (tracking, search, analysis).

Nothing here imports MLflow or Optuna: a trial returns a :class:`TrialResult` and the caller
decides where it goes.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from workbench.benchmarks.direction import sign
from workbench.pruner.errors import ConfigError

OPTIMIZERS = ("sgd", "adamw")
"""The fine-tuning optimizers a trial can build (``training.optimizer``)."""
TRAINING_BOUNDS = {
    "steps": 1_000_000,
    "batch_size": 1 << 20,
    "eval_every": 1_000_000,
    "pruning_frequency": 1_000_000,
    "threads": 1024,
    "calibration_samples": 1 << 20,
    "calibration_seq_len": 1 << 20,
    "finetune_steps": 1_000_000,
    "speed_repeats": 10_000,
}
"""Largest allowed value of each integer ``training`` field: a million fine-tuning steps is days
of CPU per trial (a bigger number is a typo that would hang the study); torch takes at most
1024 threads here."""
DEVICE_FORMS = ("auto", "cpu", "cuda", "cuda:N")
"""Allowed forms of ``training.device`` (``N``: a CUDA device index, ``0 <= N < device count``)."""
PRECISIONS = ("fp32", "bf16")
"""Allowed ``training.precision``: fp32, or bf16 autocast for the forward pass and loss."""
SPARSITY_KEYS = ("elementwise_over_matmul_gemm_conv", "elementwise_over_all", "blockwise_over_matmul_gemm_conv")
"""Keys of :attr:`TrialResult.sparsity` (MLflow: ``sparsity/<key>``), in ``get_sparsity_ratio``'s order."""


@dataclass(frozen=True)
class TrainingConfig:
    """How a trial fine-tunes the dense model while pruning.

    Attributes:
        steps: Fine-tuning steps (optimizer steps). The pruning schedule lives inside them.
        batch_size: Mini-batch size for fine-tuning.
        lr: Learning rate of the fine-tuning optimizer.
        optimizer: ``"sgd"`` (with ``momentum``) or ``"adamw"``.
        momentum: SGD momentum.
        weight_decay: Weight decay of the optimizer.
        eval_every: Evaluate test accuracy every this many steps (and always at the end).
        pruning_frequency: Steps between two mask updates of an iterative schedule.
        start_fraction: Pruning starts at ``round(start_fraction * steps)`` (at least step 1).
        end_fraction: Pruning ends at ``round(end_fraction * steps)`` for iterative schedules.
        threads: torch intra-op threads for this trial (0 = leave torch's setting alone).
        device: ``"auto"`` (CUDA when available, else the CPU), ``"cpu"``, ``"cuda"`` or
            ``"cuda:N"``. Validated here by form; whether the machine has it is checked by
            :func:`workbench.trial.devices.resolve_device` before any training.
        precision: ``"fp32"``, or ``"bf16"``: the fine-tuning forward pass and loss run under
            ``torch.autocast(dtype=bfloat16)`` (weights, gradients, optimizer and evaluation stay
            fp32; on the CPU it works too, but is slow on most CPUs and meant for GPUs).
        calibration_samples: Post-training trials (criterion ``wanda`` / ``sparsegpt``): at most
            this many samples of the task's training batches calibrate the one-shot prune.
        calibration_seq_len: Post-training trials: dict batches' sequence tensors (``input_ids``
            and every tensor of the same length) are cut to this many tokens; 0 keeps them whole.
        finetune_steps: Post-training trials: fine-tuning steps after the one-shot prune, masks
            held fixed (0: prune and evaluate only). Training-aware trials use ``steps``.
        measure_speed: After the final evaluation, time the dense, pruned and slimmed models on
            one evaluation batch (:mod:`workbench.trial.speed`; :attr:`TrialResult.speed`).
        speed_repeats: Timed forward passes per model when ``measure_speed`` (the median is kept).
    """

    steps: int = 200
    batch_size: int = 64
    lr: float = 0.01
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    eval_every: int = 20
    pruning_frequency: int = 10
    start_fraction: float = 0.1
    end_fraction: float = 0.7
    threads: int = 0
    device: str = "auto"
    precision: str = "fp32"
    calibration_samples: int = 128
    calibration_seq_len: int = 0
    finetune_steps: int = 0
    measure_speed: bool = False
    speed_repeats: int = 10

    def __post_init__(self) -> None:
        """Validate every field; ``ValueError`` names ``training.<field>``, the value and the bound."""
        for f in fields(self):
            value, kind = getattr(self, f.name), type(f.default)
            if kind is bool:
                if not isinstance(value, bool):
                    raise ConfigError(f"training.{f.name}: expected true or false, got {_show(value)}")
                continue
            ok = (
                isinstance(value, str)
                if kind is str
                else (isinstance(value, int) if kind is int else isinstance(value, (int, float)))
            )
            if isinstance(value, bool) or not ok or (kind is float and not _finite(value)):
                wanted = {str: "a string", int: "an integer"}.get(kind, "a finite number")
                raise ConfigError(f"training.{f.name}: expected {wanted}, got {_show(value)}")
        for key, most in TRAINING_BOUNDS.items():
            if getattr(self, key) > most:
                raise ConfigError(f"training.{key}: {_show(getattr(self, key))} is too large; allowed: at most {most}")
        for key in ("steps", "batch_size", "eval_every", "pruning_frequency", "calibration_samples", "speed_repeats"):
            if getattr(self, key) < 1:
                raise ConfigError(f"training.{key}: must be >= 1, got {getattr(self, key)}")
        for key in ("momentum", "weight_decay", "threads", "calibration_seq_len", "finetune_steps"):
            if getattr(self, key) < 0:
                raise ConfigError(f"training.{key}: must be >= 0, got {getattr(self, key)}")
        if self.lr <= 0:
            raise ConfigError(f"training.lr: must be > 0, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"training.optimizer: {self.optimizer!r} is not allowed; allowed: {', '.join(OPTIMIZERS)}"
            )
        if not re.fullmatch(r"auto|cpu|cuda(:[0-9]{1,4})?", self.device):
            raise ConfigError(
                f"training.device: {self.device!r} is not allowed; allowed: {', '.join(DEVICE_FORMS)} (N a GPU index)"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"training.precision: {self.precision!r} is not allowed; allowed: {', '.join(PRECISIONS)}"
            )
        if not 0.0 <= self.start_fraction <= self.end_fraction <= 1.0:
            raise ConfigError(
                f"training.start_fraction: need 0 <= start_fraction ({self.start_fraction}) <= "
                f"end_fraction ({self.end_fraction}) <= 1"
            )

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (for logging and YAML)."""
        return asdict(self)


def _finite(value: float) -> bool:
    """Whether ``value`` is a finite float, or an int within float range (``10**400`` is not)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _show(value: Any) -> str:
    """``repr(value)``, with an integer too long to read given by its number of digits."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return f"an integer of {len(str(abs(value)))} digits"
    return repr(value)


@dataclass
class TrialResult:
    """Everything one trial produced, as plain data.

    Curves are dicts ``{step: value}``; ``layer_*`` curves are keyed by layer name (dots kept).
    Curves are recorded at every step where masks change and at every evaluation.
    """

    benchmark: str
    seed: int
    params: dict[str, Any]
    """The search-space values of this trial (pattern, criterion, scheduler, target_sparsity, ...)."""
    pruning_config: dict[str, Any]
    """The effective INC-style config: ``{"pruning_configs": [...], **globals}``, YAML-safe."""
    training: dict[str, Any]
    value: float
    """The final value of the task's metric (:attr:`metric`)."""
    dense_value: float
    """The dense baseline's value of the task's metric."""
    sparsity: dict[str, dict[int, float]] = field(default_factory=dict)
    """Global curves keyed ``elementwise_over_matmul_gemm_conv``, ``elementwise_over_all``,
    ``blockwise_over_matmul_gemm_conv``."""
    layer_sparsity: dict[str, dict[int, float]] = field(default_factory=dict)
    layer_blockwise_sparsity: dict[str, dict[int, float]] = field(default_factory=dict)
    train_loss: dict[int, float] = field(default_factory=dict)
    eval_values: dict[int, float] = field(default_factory=dict)
    """The task's metric at every evaluation, keyed by step."""
    layers: list[dict[str, Any]] = field(default_factory=list)
    """One row per candidate layer: name, type, shape, pruned (bool), reason, pruner."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds: ``baseline``, ``finetune``, ``eval``, ``total`` (post-training trials: ``prune`` too)."""
    memory: dict[str, float] = field(default_factory=dict)
    """Peak memory of the trial in MiB (:mod:`workbench.trial.cost`): ``peak_rss_mb`` (this trial's
    own peak; Linux, absent where the high-water mark cannot be reset), ``peak_rss_increase_mb``,
    ``peak_cuda_mb`` on CUDA."""
    metric: str = "accuracy"
    """The name of the metric the study optimises (the task's ``metric``)."""
    direction: str = "maximize"
    """``"maximize"`` or ``"minimize"``: which way :attr:`metric` is better."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Every metric of the task's ``evaluate`` at the end (:attr:`metric` among them)."""
    dense_metrics: dict[str, float] = field(default_factory=dict)
    """Every metric of the dense baseline."""
    eval_metrics: dict[str, dict[int, float]] = field(default_factory=dict)
    """Every metric at every evaluation: ``{name: {step: value}}``."""
    speed: dict[str, float] = field(default_factory=dict)
    """With ``training.measure_speed``: parameter counts and median forward latencies of the dense,
    pruned and slimmed models (:func:`workbench.trial.speed.measure_trial_speed`); empty otherwise."""

    @property
    def drop(self) -> float:
        """How much worse than dense the final metric is (positive: pruning cost quality).

        ``dense - final`` for a maximised metric, ``final - dense`` for a minimised one.
        """
        return sign(self.direction) * (self.dense_value - self.value)

    @property
    def final_sparsity(self) -> dict[str, float]:
        """The last value of each global sparsity curve."""
        return {k: v[max(v)] for k, v in self.sparsity.items() if v}


class TrialStopped(Exception):
    """Raised by an ``on_eval`` callback to stop a trial early (e.g. an Optuna pruner said so).

    The trial runner lets it propagate; the caller owns what "stopped" means.
    """

    def __init__(self, step: int, value: float, metric: str = "accuracy") -> None:
        super().__init__(f"trial stopped at step {step} ({metric} {value:.4f})")
        self.step = step
        self.value = value
        self.metric = metric


class TrialDiverged(RuntimeError):
    """Raised when the training loss becomes NaN or infinite."""

    def __init__(self, step: int, loss: float) -> None:
        super().__init__(f"training diverged at step {step}: loss is {loss}")
        self.step = step
        self.loss = loss
