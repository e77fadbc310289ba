"""A process started from the worker server that reports what it was started with (tests/test_forkserver.py)."""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

from workbench.infra.forkserver import inherit


def report(inheritance: dict[str, Any], out: str) -> None:
    """Write, as JSON to ``out``: which modules were loaded and how SIGINT was handled at the
    start, then, after :func:`inherit`, the environment variable ``PROBE``, the working folder;
    and write one line to stderr."""
    loaded = sorted(
        m for m in ("torch", "torch._dynamo", "mlflow", "optuna", "workbench.study.workers") if m in sys.modules
    )
    sigint_ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    inherit(inheritance)
    with open(out, "w") as handle:
        json.dump(
            {"loaded": loaded, "sigint_ignored": sigint_ignored, "probe": os.environ.get("PROBE"), "cwd": os.getcwd()},
            handle,
        )
    print("forked worker says hello", file=sys.stderr, flush=True)
