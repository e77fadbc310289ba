"""Builds the optional C kernels (workbench/pruner/_kernels.c); metadata lives in pyproject.toml.

``optional=True``: without a C compiler the install still succeeds and the pruner runs its
pure-PyTorch path (``workbench.pruner.kernels.available()`` says which one is in use).
"""
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "workbench.pruner._kernels",
            sources=["workbench/pruner/_kernels.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
