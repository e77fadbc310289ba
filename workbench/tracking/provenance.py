"""Provenance tags on every run: the git commit (and whether the tree was dirty) and library versions.

Example:
    >>> sorted(k for k in run_tags() if k.startswith("workbench.version."))[:2]
    ['workbench.version.mlflow', 'workbench.version.optuna']
"""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path

__all__ = ["run_tags"]


@functools.lru_cache(maxsize=1)
def run_tags() -> dict[str, str]:
    """Provenance tags on every run: git commit (+ dirty flag) and library versions."""
    repo = Path(__file__).resolve().parent.parent
    tags = {}
    try:
        found = subprocess.run(
            ["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10
        )
        commit = found.stdout.strip() if found.returncode == 0 else ""
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    tags["workbench.git_commit"] = commit or "unknown"
    tags["workbench.git_dirty"] = str(bool(dirty)).lower()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    for package in ("torch", "mlflow", "optuna", "workbench"):
        try:
            tags[f"workbench.version.{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            tags[f"workbench.version.{package}"] = "unknown"
    return tags
