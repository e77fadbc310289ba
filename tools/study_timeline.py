"""Where a study's time goes outside its trials: ``python -m tools.study_timeline``.

Runs :func:`tools.bench_overhead.measure_study` (the default experiment, 6 trials, one worker,
baseline cached) with the steps of :func:`workbench.study.run.run_study` timed: opening the
stores, each trial, draining the log writer, the summary, keeping and registering the front's
models, the description. Prints one line per step (seconds from the study's start, and its
duration) and the measurement's totals. Nothing is asserted; docs/bench.md quotes it.

Example:
    >>> steps = []
    >>> timed(steps, lambda x: x + 1, "add")(1), [s[0] for s in steps]
    (2, ['add'])
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

__all__ = ["STEPS", "timed", "timeline"]

STEPS = ("_open_stores", "run_trials", "summarize_study", "keep_front_models", "register_front", "describe_study")
"""The steps of ``workbench.study.run`` that are timed (module-level names it calls)."""


def timed(steps: list[tuple[str, float, float]], fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    """``fn`` that appends ``(name, start, end)`` (``time.perf_counter``) to ``steps`` on every call."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            steps.append((name, start, time.perf_counter()))

    return wrapper


def timeline() -> tuple[list[tuple[str, float, float]], dict[str, float]]:
    """Run the study bench with its steps timed: ``(steps, measure_study's result)``."""
    import workbench.study.run as run  # start-up: loaded only when the timeline is asked for
    from tools.bench_overhead import measure_study
    from workbench.study.objective import Objective
    from workbench.tracking.spool import SpoolWriter

    steps: list[tuple[str, float, float]] = []
    saved = {name: getattr(run, name) for name in STEPS}
    call, close = Objective.__call__, SpoolWriter.close
    try:
        for name in STEPS:
            setattr(run, name, timed(steps, saved[name], name))
        Objective.__call__ = lambda self, trial: timed(steps, call, f"trial {trial.number}")(self, trial)
        SpoolWriter.close = timed(steps, close, "log writer drain")
        result = measure_study()
    finally:
        for name, fn in saved.items():
            setattr(run, name, fn)
        Objective.__call__, SpoolWriter.close = call, close
    return steps, result


if __name__ == "__main__":  # pragma: no cover
    steps, result = timeline()
    origin = min(start for _, start, _ in steps)
    for name, start, end in sorted(steps, key=lambda s: s[1]):
        print(f"{start - origin:7.2f} s  {end - start:6.2f} s  {name}")
    print({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()})
