"""Errors, theory and plots: what the simulations say about the smoothing view of SGD."""

from analysis import theory

__all__ = ["theory"]
