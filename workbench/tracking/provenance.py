"""Provenance tags on every run: the git commit (and whether the tree was dirty) and library versions.

The two git queries take ~0.3 s (``git status`` refreshes the index), on the way to a study's
first run. :func:`prefetch_run_tags` starts them in the background as soon as a command knows it
will log (``workbench search`` right after reading its experiment, each worker first thing), and
:func:`run_tags` collects their answers.

Example:
    >>> sorted(k for k in run_tags() if k.startswith("workbench.version."))[:2]
    ['workbench.version.mlflow', 'workbench.version.optuna']
"""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path

__all__ = ["prefetch_run_tags", "run_tags"]

_REPO = Path(__file__).resolve().parent.parent
_QUERIES = (("git", "rev-parse", "--verify", "-q", "HEAD"), ("git", "status", "--porcelain", "--untracked-files=no"))
_started: list[subprocess.Popen] | None = None
"""The git queries :func:`prefetch_run_tags` started, until :func:`run_tags` collects them."""


def _start() -> list[subprocess.Popen]:
    return [
        subprocess.Popen(q, cwd=_REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for q in _QUERIES
    ]


def prefetch_run_tags() -> None:
    """Start :func:`run_tags`' git queries now, in the background, unless the tags are known or
    the queries already started (a missing git is ignored: the tags then say "unknown")."""
    global _started
    if not _started and run_tags.cache_info().currsize == 0:
        try:
            _started = _start()
        except OSError:
            _started = []


def _git() -> tuple[str, str]:
    """(HEAD's commit, ``git status`` output): the prefetched queries' answers, else asked now."""
    global _started
    procs, _started = _started, []
    try:
        procs = procs or _start()
        answers = [(p.communicate(timeout=10)[0] or "", p.returncode) for p in procs]
    except (OSError, subprocess.SubprocessError):
        for proc in procs or ():
            proc.kill()
            proc.wait()
        return "", ""
    (commit, found), (dirty, _) = answers
    return (commit.strip() if found == 0 else ""), dirty.strip()


@functools.lru_cache(maxsize=1)
def run_tags() -> dict[str, str]:
    """Provenance tags on every run: git commit (+ dirty flag) and library versions."""
    commit, dirty = _git()
    tags = {"workbench.git_commit": commit or "unknown", "workbench.git_dirty": str(bool(dirty)).lower()}
    if commit:
        tags["mlflow.source.git.commit"] = commit
    for package in ("torch", "mlflow", "optuna", "workbench"):
        try:
            tags[f"workbench.version.{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            tags[f"workbench.version.{package}"] = "unknown"
    return tags
