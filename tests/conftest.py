"""Shared test setup: one torch thread per test process, one dense-baseline cache per session.

With two cores shared by pytest and the OS, OpenMP's spinning threads make small tensor ops
several times slower; one thread keeps the suite fast and results bit-reproducible. Dense
baselines go to a session temp folder (``WORKBENCH_CACHE_DIR``, inherited by subprocesses), so
each is trained at most once per session and the working tree stays clean.

``make check`` runs the tests that start no process and no server (``-m "not slow and not e2e and
not browser"``). So that it stays that way, a test without one of those markers fails at the moment
it starts a process (``subprocess.Popen`` of anything but ``git`` or ``uname``, or a ``multiprocessing``
process: a ``workbench search`` subprocess, a study's log writer, a worker, a server).
"""

from __future__ import annotations

import multiprocessing.process
import os
import subprocess

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


@pytest.fixture
def two_threads(monkeypatch):
    """Two torch threads, a tiny split size and tiles of a few weights, so the kernels' thread
    split and the tiles of the calls over many layers are exercised."""
    import torch

    from workbench.pruner._backend import kernels

    old = torch.get_num_threads()
    torch.set_num_threads(2)
    monkeypatch.setattr(kernels, "SPLIT", 8)
    monkeypatch.setattr(kernels, "TILE", 5)
    yield
    torch.set_num_threads(old)


#: markers of the tests that may start processes and servers (``make check`` leaves them out)
PROCESS_MARKERS = ("slow", "e2e", "browser")
#: programs any test may run: the provenance tag's ``git rev-parse`` / ``git status``, and the
#: ``uname -p`` that ``platform.processor()`` runs the first time a process asks (MLflow's run
#: context does), which depends on test order, not on the test
ALLOWED_PROGRAMS = frozenset({"git", "uname"})


def _program(args, executable) -> str:
    """The program ``Popen._execute_child`` starts (it receives ``args`` as a list)."""
    return os.path.basename(os.fsdecode(executable if executable is not None else args[0]))


@pytest.fixture(autouse=True)
def _processes_only_when_marked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """Fail a test that starts a process or server without a ``slow``/``e2e``/``browser`` marker."""
    if any(request.node.get_closest_marker(name) for name in PROCESS_MARKERS):
        yield
        return
    execute_child = subprocess.Popen._execute_child

    def guarded_execute_child(self, args, executable, *rest, **kwargs):
        program = _program(args, executable)
        if program not in ALLOWED_PROGRAMS:
            pytest.fail(
                f"{request.node.nodeid} starts a process ({program}) but is not marked "
                f"{' / '.join(PROCESS_MARKERS)}: mark it @pytest.mark.e2e so that make check leaves it out",
                pytrace=False,
            )
        return execute_child(self, args, executable, *rest, **kwargs)

    def guarded_start(self):
        pytest.fail(
            f"{request.node.nodeid} starts a multiprocessing process but is not marked "
            f"{' / '.join(PROCESS_MARKERS)}: mark it @pytest.mark.e2e so that make check leaves it out",
            pytrace=False,
        )

    monkeypatch.setattr(subprocess.Popen, "_execute_child", guarded_execute_child)
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", guarded_start)
    yield
