"""Errors, theory and plots: what the simulations say about the smoothing view of SGD."""

import importlib

from analysis import minima, theory, ties
from analysis.basins import assign_basins, basin_occupancy, sharpness_summary
from analysis.chain_solvers import InaccurateLawWarning
from analysis.drift import drift_check
from analysis.errors import ErrorTable, errors, pool
from analysis.minima import TieWarning, global_minimizer, minimizers, penalized_solution, smoothed_solution
from analysis.rates import RateFit, fit_rate
from analysis.stationary import QuasiStationary, StationaryLaw, stationary_law
from analysis.ties import NearTieWarning

__all__ = [
    "ErrorTable",
    "InaccurateLawWarning",
    "NearTieWarning",
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
    "pool",
    "sharpness_summary",
    "smoothed_solution",
    "stationary_law",
    "theory",
    "ties",
]


def __getattr__(name: str):
    """`analysis.plots` is imported on first use (PEP 562), not with the package: it loads
    matplotlib (about a second, and a backend choice), which a script that only computes
    errors, theory or minimizers should not pay for. `from analysis import plots` works as usual."""
    if name == "plots":
        return importlib.import_module("analysis.plots")
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
