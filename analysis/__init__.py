"""Errors, theory and plots: what the simulations say about the smoothing view of SGD."""

from analysis import minima, theory
from analysis.minima import TieWarning, global_minimizer, minimizers, penalized_solution, smoothed_solution

__all__ = ["theory", "minima", "minimizers", "global_minimizer", "smoothed_solution", "penalized_solution", "TieWarning"]
