"""Errors, theory and plots: what the simulations say about the smoothing view of SGD."""

from analysis import minima, plots, theory
from analysis.basins import assign_basins, basin_occupancy, sharpness_summary
from analysis.errors import ErrorTable, errors
from analysis.identity import drift_check
from analysis.minima import TieWarning, global_minimizer, minimizers, penalized_solution, smoothed_solution
from analysis.rates import RateFit, fit_rate
from analysis.stationary import QuasiStationary, StationaryLaw, stationary_law

__all__ = [
    "ErrorTable",
    "QuasiStationary",
    "RateFit",
    "StationaryLaw",
    "TieWarning",
    "assign_basins",
    "basin_occupancy",
    "drift_check",
    "errors",
    "fit_rate",
    "global_minimizer",
    "minima",
    "minimizers",
    "penalized_solution",
    "plots",
    "sharpness_summary",
    "smoothed_solution",
    "stationary_law",
    "theory",
]
