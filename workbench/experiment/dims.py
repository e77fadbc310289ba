"""One search dimension's values in an experiment file: choices, ranges, and key checks.

The small parsers every section of the schema shares: each error is a :class:`ConfigError` whose
message starts with the dotted key and names the value and what is allowed.

Example:
    >>> parse_range("target_sparsity", {"low": 0.5, "high": 0.9, "step": 0.2}, "search_space.target_sparsity").grid()
    [0.5, 0.7, 0.9]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from workbench import pruner  # a lazy namespace: the registries load when a value is checked against them
from workbench.pruner.errors import ConfigError
from workbench.pruner.registry import did_you_mean
from workbench.trial.posttraining_config import POSTTRAINING_KEY, POSTTRAINING_OPTIONS
from workbench.trial.space import allowed_values, check_posttraining_pattern, is_posttraining, on_grid

__all__ = [
    "MAX_CHOICES",
    "MAX_GRID_VALUES",
    "MAX_SEED",
    "FloatRange",
    "check_choice",
    "check_keys",
    "check_posttraining_space",
    "check_seed",
    "fail",
    "mapping",
    "number",
    "parse_categorical",
    "parse_range",
    "show",
]

MAX_CHOICES = 1000
"""Most choices one categorical dimension may list."""
MAX_GRID_VALUES = 10_000
"""Most values a stepped range may hold (``(high - low) / step + 1``), and most points of a grid study."""
MAX_SEED = 2**32 - 1
"""Largest seed: Optuna's samplers (NumPy) take seeds in ``0 .. 2**32 - 1``."""


@dataclass(frozen=True)
class FloatRange:
    """A float dimension: ``low <= value <= high``, on a ``step`` grid or a ``log`` scale."""

    low: float
    high: float
    step: float | None = None
    log: bool = False

    def grid(self) -> list[float]:
        """Every value of a stepped range (the grid sampler needs them), each as :meth:`snap` rounds it."""
        count = int(math.floor((self.high - self.low) / self.step + 1e-9)) if self.step else 0
        return [self.snap(self.low + i * self.step) for i in range(count + 1)] if self.step else [self.low]

    def snap(self, value: float) -> float:
        """``value`` drawn from this range, rounded to the grid's precision (:func:`~workbench.trial.space.on_grid`)."""
        return on_grid(value, self.step, self.low)

    def midpoint(self) -> float:
        """The middle of the range (geometric on a log scale), snapped to the step grid."""
        mid = math.sqrt(self.low * self.high) if self.log else (self.low + self.high) / 2
        if self.step:
            mid = min(self.grid(), key=lambda v: abs(v - mid))
        return mid


def fail(key: str, message: str) -> ConfigError:
    return ConfigError(f"{key}: {message}")


def check_keys(section: dict, allowed: tuple[str, ...], where: str) -> None:
    for key in section:
        if key not in allowed:
            raise fail(f"{where}{key}", f"unknown key{did_you_mean(key, allowed)} allowed: {', '.join(allowed)}")


def mapping(value: Any, key: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail(key, f"expected a mapping, got {type(value).__name__} {value!r}")
    return value


def show(value: Any) -> str:
    """``repr(value)``, with an integer too long to read given by its number of digits."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return f"an integer of {len(str(abs(value)))} digits"
    return repr(value)


def number(value: Any, key: str, *, integer: bool = False) -> float | int:
    """``value`` if it is an integer (``integer``) or a finite number within float range."""
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok:
        raise fail(key, f"expected {'an integer' if integer else 'a number'}, got {show(value)}")
    if not integer and not (isinstance(value, float) or abs(value) < 1e308):
        raise fail(key, f"{show(value)} is beyond the float range; allowed: a finite number (|x| < 1e308)")
    if not integer and not math.isfinite(value):
        raise fail(key, f"expected a finite number, got {value!r}")
    return value


def check_seed(value: Any, key: str) -> int:
    """A seed: an integer in ``0 .. MAX_SEED``."""
    seed = number(value, key, integer=True)
    if not 0 <= seed <= MAX_SEED:
        raise fail(key, f"{show(seed)} is out of range; allowed: 0 <= seed <= {MAX_SEED} (2**32 - 1)")
    return int(seed)


def check_choice(dim: str, value: Any, key: str) -> str:
    """Validate one value of a categorical dimension; returns it (patterns lower-cased)."""
    if dim == "pattern":
        if isinstance(value, int) and not isinstance(value, bool):
            raise fail(
                key,
                f"got the number {value!r}: YAML reads an unquoted N:M pattern such "
                f"as 2:4 as a base-60 number; quote it ('2:4')",
            )
        try:
            return pruner.parse_pattern(value).text
        except ValueError as err:
            raise fail(key, str(err).removeprefix("pattern: ")) from None
    allowed = allowed_values(dim)
    if value not in allowed:
        raise fail(key, f"{value!r} is not allowed; allowed: {', '.join(allowed)}")
    return value


def parse_categorical(dim: str, raw: Any, key: str) -> list[str]:
    values = raw if isinstance(raw, list) else [raw]
    if isinstance(raw, dict) or not values:
        raise fail(key, f"expected a non-empty list of choices or a single value, got {raw!r}")
    if len(values) > MAX_CHOICES:
        raise fail(key, f"{len(values)} choices; allowed: at most {MAX_CHOICES}")
    checked = [check_choice(dim, v, f"{key}[{i}]") for i, v in enumerate(values)]
    if len(set(checked)) != len(checked):
        raise fail(key, f"duplicate choices in {raw!r}")
    return checked


def parse_range(dim: str, raw: Any, key: str) -> FloatRange:
    if not isinstance(raw, dict):
        value = float(number(raw, key))
        raw = {"low": value, "high": value}
    check_keys(raw, ("low", "high", "step", "log"), f"{key}.")
    for required in ("low", "high"):
        if required not in raw:
            raise fail(f"{key}.{required}", "missing; a range needs low and high")
    low, high = float(number(raw["low"], f"{key}.low")), float(number(raw["high"], f"{key}.high"))
    step = raw.get("step")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise fail(f"{key}.log", f"expected true or false, got {log!r}")
    if low > high:
        raise fail(key, f"low ({low}) must be <= high ({high})")
    if dim == "target_sparsity" and not (0.0 <= low and high < 1.0):
        raise fail(key, f"low and high must lie in [0, 1), got [{low}, {high}]")
    if dim == "lr" and low <= 0:
        raise fail(f"{key}.low", f"a learning rate must be > 0, got {low}")
    if step is not None:
        step = float(number(step, f"{key}.step"))
        if step <= 0 or (high > low and step > (high - low) * (1 + 1e-9)):  # 0.6 - 0.5 < 0.1 in floats
            raise fail(f"{key}.step", f"must be > 0 and <= high - low ({high - low:g}), got {step}")
        if log:
            raise fail(f"{key}.log", "a range cannot have both step and log")
        count = (high - low) / step + 1
        if count > MAX_GRID_VALUES:
            raise fail(
                f"{key}.step",
                f"{step:g} makes {count:.3g} values from {low:g} to {high:g}; allowed: at most {MAX_GRID_VALUES} "
                f"(step >= {(high - low) / (MAX_GRID_VALUES - 1):.3g})",
            )
    return FloatRange(low, high, step, log)


def check_posttraining_space(space: dict[str, Any], options: Any = None) -> None:
    """Refuse patterns and ``pruning.posttraining`` options a post-training criterion of ``space``
    cannot take (named by key and value), for every criterion and pattern the study may pair.

    Post-training pruning (``wanda``, ``sparsegpt``) takes unstructured, N:M and NxM patterns;
    a pattern family a plug-in registered is for the training-aware pruners only. ``options`` is
    the experiment's ``pruning.posttraining`` (checked as :func:`workbench.pruner.prune_posttraining`
    would, e.g. ``layers_per_pass: 0`` or ``owl: true`` with an N:M pattern).
    """
    criteria = [c for c in space.get("criterion", []) if is_posttraining(c)]
    patterns = space.get("pattern", [])
    for i, pattern in enumerate(patterns if criteria else []):
        check_posttraining_pattern(criteria[0], pattern, f"search_space.pattern[{i}]")
    if options is None:
        return
    key = f"pruning.{POSTTRAINING_KEY}"
    if not isinstance(options, dict) or any(k not in POSTTRAINING_OPTIONS for k in options):
        raise fail(key, f"{options!r} is not allowed; allowed: a mapping of {', '.join(POSTTRAINING_OPTIONS)}")
    for criterion in criteria:
        for pattern in patterns:
            try:
                pruner.check_posttraining_options(
                    criterion,
                    None if pruner.parse_pattern(pattern).fixed_sparsity is not None else 0.5,
                    pattern,
                    **options,
                )
            except ConfigError as err:
                raise ConfigError(f"{key}.{err} (criterion {criterion})") from None
