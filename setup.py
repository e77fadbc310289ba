"""Builds the optional C kernels (workbench/pruner/_kernels.c); metadata lives in pyproject.toml.

Compiled with OpenMP (``-fopenmp``), so the kernels run on PyTorch's own OpenMP threads (see the
comment at the top of ``_kernels.c``). ``optional=True``: without a C compiler (or OpenMP) the
install still succeeds and the pruner runs its pure-PyTorch path
(``workbench.pruner.kernels.available()`` says which one is in use).
"""
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "workbench.pruner._kernels",
            sources=["workbench/pruner/_kernels.c"],
            extra_compile_args=["-O3", "-fopenmp"],
            extra_link_args=["-fopenmp"],
            optional=True,
        )
    ]
)
