"""Shared test setup: one torch thread per test process, one dense-baseline cache per session.

With two cores shared by pytest and the OS, OpenMP's spinning threads make small tensor ops
several times slower; one thread keeps the suite fast and results bit-reproducible. Dense
baselines go to a session temp folder (``WORKBENCH_CACHE_DIR``, inherited by subprocesses), so
each is trained at most once per session and the working tree stays clean.
"""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def workbench_cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """The session's dense-baseline cache folder (also exported as ``WORKBENCH_CACHE_DIR``)."""
    path = tmp_path_factory.mktemp("workbench-cache")
    old = os.environ.get("WORKBENCH_CACHE_DIR")
    os.environ["WORKBENCH_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("WORKBENCH_CACHE_DIR", None)
    else:
        os.environ["WORKBENCH_CACHE_DIR"] = old


@pytest.fixture(params=["kernels", "pytorch"])
def kernel_path(request, monkeypatch):
    """Run the test on the compiled kernels (where they were built) and on the PyTorch path."""
    from workbench.pruner._backend import kernels

    if request.param == "kernels" and not kernels.available():
        pytest.skip("the C kernels were not built")
    monkeypatch.setenv(kernels.ENV_SWITCH, "1" if request.param == "kernels" else "0")
    return request.param
