"""The workbench's cache folder: one rule for where cached files live.

Dense baselines (:mod:`workbench.benchmarks.cache`), the digits split
(:mod:`workbench.benchmarks.digits`) and the empty MLflow store new stores are copied from
(:mod:`workbench.tracking.store_create`) live under it. ``cache_dir`` when given,
else ``$WORKBENCH_CACHE_DIR``, else ``./.workbench-cache``.

Example:
    >>> str(resolve_cache_dir("/tmp/my-cache"))
    '/tmp/my-cache'
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "DEFAULT_CACHE_DIR", "resolve_cache_dir"]

CACHE_ENV = "WORKBENCH_CACHE_DIR"
"""The environment variable naming the cache folder."""
DEFAULT_CACHE_DIR = ".workbench-cache"
"""The cache folder when neither an argument nor :data:`CACHE_ENV` names one (relative to the working folder)."""


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``cache_dir``, else ``$WORKBENCH_CACHE_DIR``, else ``./.workbench-cache``."""
    return Path(cache_dir or os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR)
