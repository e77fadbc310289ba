"""Builds the optional C kernels (workbench/pruner/_backend/_kernels.c); metadata lives in pyproject.toml.

Compiled with OpenMP (``-fopenmp``), so the kernels run on PyTorch's own OpenMP threads (see the
comment at the top of ``_kernels.c``). A compiler without OpenMP (Apple's clang, say) builds them
without it, and each kernel then runs on the calling thread. ``optional=True``: without a C
compiler the install still succeeds and the pruner runs its pure-PyTorch path
(``workbench.pruner._backend.kernels.available()`` says which one is in use).

The module is built with the SHA-256 of its source (``KERNELS_SOURCE_HASH``); ``kernels.py``
refuses a build whose hash differs from the source beside it, so a stale build after a pull runs
the PyTorch paths instead of kernels with other arguments.
"""

import hashlib
import logging
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CompileError, LinkError

OPENMP = "-fopenmp"
SOURCE = "workbench/pruner/_backend/_kernels.c"
SOURCE_HASH = hashlib.sha256((Path(__file__).parent / SOURCE).read_bytes()).hexdigest()[:16]  # as kernels.py


class BuildKernels(build_ext):
    """Build with OpenMP, and again without it where the compiler or linker refuses it."""

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except (CompileError, LinkError):  # a failing retry reports its own error
            if OPENMP not in ext.extra_compile_args:
                raise
            logging.getLogger(__name__).warning(
                "building %s without OpenMP: its kernels will run on one thread", ext.name
            )
            ext.extra_compile_args = [a for a in ext.extra_compile_args if a != OPENMP]
            ext.extra_link_args = [a for a in ext.extra_link_args if a != OPENMP]
            super().build_extension(ext)


setup(
    cmdclass={"build_ext": BuildKernels},
    ext_modules=[
        Extension(
            "workbench.pruner._backend._kernels",
            sources=[SOURCE],
            define_macros=[("KERNELS_SOURCE_HASH", f'"{SOURCE_HASH}"')],
            extra_compile_args=["-O3", OPENMP],
            extra_link_args=[OPENMP],
            optional=True,
        )
    ],
)
