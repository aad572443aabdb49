"""Statistics of runs and their targets: errors with standard errors, rates, drift checks, basins,
minimizers of f and of F_eta, near ties.

The exact theory moved to `theory` and the figures to `figures` (the second redesign); the old names
(`analysis.stationary_law`, `analysis.theory`, `analysis.plots`, ...) still work for this
release, with a `DeprecationWarning` naming the new home.
"""

import importlib
import warnings

from analysis import minima, search, solutions, ties
from analysis.basins import Sharpness, assign_basins, basin_occupancy, sharpness_summary
from analysis.drift import DriftCheck, drift_check
from analysis.errors import ErrorTable, errors, pool
from analysis.minima import GlobalMinimum, Minima, TieWarning, global_minimizer, minimizers
from analysis.rates import RateFit, fit_rate
from analysis.search import SearchOptions, search_box
from analysis.solutions import SolutionPath, penalized_solution, smoothed_solution
from analysis.ties import NearTieWarning

__all__ = [
    "DriftCheck",
    "ErrorTable",
    "GlobalMinimum",
    "Minima",
    "NearTieWarning",
    "RateFit",
    "SearchOptions",
    "Sharpness",
    "SolutionPath",
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
    "pool",
    "search",
    "search_box",
    "sharpness_summary",
    "smoothed_solution",
    "solutions",
    "ties",
]

#: Names that moved out of `analysis` in the second redesign: old name -> (module, attribute or None for the module).
MOVED = {
    "theory": ("theory.quadratic", None),
    "plots": ("figures", None),
    "stationary_law": ("theory", "stationary_law"),
    "StationaryLaw": ("theory", "StationaryLaw"),
    "QuasiStationary": ("theory", "QuasiStationary"),
    "InaccurateLawWarning": ("theory", "InaccurateLawWarning"),
}


def __getattr__(name: str):
    """The moved names, for one release, with a DeprecationWarning (PEP 562). Looked up by name at
    first use, so `import analysis` never loads the theory or matplotlib."""
    if name not in MOVED:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    module, attribute = MOVED[name]
    new = module if attribute is None else f"{module}.{attribute}"
    warnings.warn(f"analysis.{name} moved to {new}; the old name goes in the next release", DeprecationWarning, stacklevel=2)
    found = importlib.import_module(module)
    return found if attribute is None else getattr(found, attribute)
