"""Builds the optional C kernels (workbench/pruner/_kernels.c); metadata lives in pyproject.toml.

Compiled with OpenMP (``-fopenmp``), so the kernels run on PyTorch's own OpenMP threads (see the
comment at the top of ``_kernels.c``). A compiler without OpenMP (Apple's clang, say) builds them
without it, and each kernel then runs on the calling thread. ``optional=True``: without a C
compiler the install still succeeds and the pruner runs its pure-PyTorch path
(``workbench.pruner.kernels.available()`` says which one is in use).
"""
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CompileError, LinkError

OPENMP = "-fopenmp"


class BuildKernels(build_ext):
    """Build with OpenMP, and again without it where the compiler or linker refuses it."""

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except (CompileError, LinkError):  # a failing retry reports its own error
            if OPENMP not in ext.extra_compile_args:
                raise
            print(f"building {ext.name} without OpenMP: its kernels will run on one thread")
            ext.extra_compile_args = [a for a in ext.extra_compile_args if a != OPENMP]
            ext.extra_link_args = [a for a in ext.extra_link_args if a != OPENMP]
            super().build_extension(ext)


setup(
    cmdclass={"build_ext": BuildKernels},
    ext_modules=[
        Extension(
            "workbench.pruner._kernels",
            sources=["workbench/pruner/_kernels.c"],
            extra_compile_args=["-O3", OPENMP],
            extra_link_args=[OPENMP],
            optional=True,
        )
    ],
)
