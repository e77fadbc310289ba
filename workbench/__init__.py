"""Sparsity research workbench."""
