"""Local and global minimizers of one objective, in a box (the search: `analysis.search`).

Ties: when the two lowest distinct minima differ by at most `tie_tolerance` x max(1, |value|),
the result is flagged (`tied`) and a `TieWarning` is emitted; the lower one is still returned,
with the runner-up alongside, never chosen silently. Near ties that matter for a simulation
(the chains in one basin, v*(eta) in another, close in value) are `analysis.ties`'s: pass the
chains to `smoothed_solution` for the `NearTieWarning`, and `target="local"` for the minimizer in
the chains' basin.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import warnings

import jax
import numpy as np

from analysis.search import Search, SearchOptions, box_name, check_objective, distinct_minima, is_tie, run_search
from analysis.ties import TieWarning
from objectives import Objective

__all__ = ["GlobalMinimum", "Minima", "TieWarning", "as_minima", "global_minimizer", "minimizers"]


@dataclasses.dataclass(frozen=True)
class Minima:
    """The local minimizers of one objective, sorted by value (lowest first).

    - `points`: `(n, dim)`; `values`, `hessian_traces`: `(n,)`.
    - `labels`: `(n,)` int, a basin label: the rank of the minimizer in lexicographic order of its
      coordinates (left to right in 1-D), so the same basin keeps its label while the minima
      are reordered by value (for example across step sizes).
    - `tied`: True when the two lowest values tie within the tie tolerance.
    - `lower`, `upper`: `(dim,)` the search box.
    """

    points: np.ndarray
    values: np.ndarray
    hessian_traces: np.ndarray
    labels: np.ndarray
    tied: bool
    lower: np.ndarray
    upper: np.ndarray

    def __len__(self) -> int:
        return int(self.values.shape[0])


@dataclasses.dataclass(frozen=True)
class GlobalMinimum:
    """The lowest minimizer found; `np.asarray(result)` is `point`.

    - `point`: `(dim,)`, `value`, `hessian_trace`: floats.
    - `tied`: the runner-up has the same value within tolerance (a `TieWarning` was emitted).
    - `runner_up`, `runner_up_value`: the second-lowest distinct minimizer (`nan` if none).
    - `minima`: every minimizer found (`Minima`).
    """

    point: np.ndarray
    value: float
    hessian_trace: float
    tied: bool
    runner_up: np.ndarray
    runner_up_value: float
    minima: Minima

    def __array__(self, dtype=None, copy=None):
        return np.array(self.point, dtype=dtype)


# ---- public functions ------------------------------------------------------------------------


def minimizers(
    objective: Objective,
    bounds=None,
    *,
    n_grid: int | None = None,
    n_starts: int = 256,
    n_candidates: int = 256,
    n_iterations: int = 50,
    seed: int = 0,
    tolerance: float | None = None,
    tie_tolerance: float | None = None,
) -> Minima:
    """Every local minimizer of `objective` in a box, each with its value, Hessian trace and basin label.

    See the module docstring for the search. Runs in float64 under JAX's x64 mode, else float32.

    **Arguments:**

    - `objective`: an `Objective` (not a batch).
    - `bounds`: `(lower, upper)`, numbers or `(dim,)` vectors; default the objective's
      `search_box` (every catalog objective has one), else a box around its closed-form
      `minimizer` (quadratics: c +- (1 + |c|)); other objectives need `bounds`.
    - `n_grid`: grid points per axis for dim <= 2 (default 2001 in 1-D, 201 in 2-D).
    - `n_starts`: Newton starts for dim > 2, the lowest of 32 x `n_starts` uniform points (default 256).
    - `n_candidates`: at most this many grid minima are refined (default 256).
    - `n_iterations`: Newton iterations (default 50).
    - `seed`: the seed of the start points (dim > 2).
    - `tolerance`: acceptance, relative to the box diagonal (default 1e-7 in float64, 1e-3 in float32).
    - `tie_tolerance`: relative tie tolerance (default 1e-9 in float64, 1e-5 in float32).

    **Returns:** `Minima`, sorted by value.
    """
    check_objective(objective)
    batch = jax.tree.map(lambda leaf: np.asarray(leaf)[None], objective)
    options = SearchOptions(n_grid, n_starts, n_candidates, n_iterations, seed, tolerance, tie_tolerance)
    found = run_search(objective, batch, 1, bounds, options, default_n_grid=2001 if objective.dim == 1 else 201)
    return as_minima(found, 0, objective.dim)


def global_minimizer(objective: Objective, bounds=None, **search) -> GlobalMinimum:
    """The lowest local minimizer found by `minimizers` (same arguments); `np.asarray(result)` is the point.

    **Raises:** `ValueError` when no minimizer is found in the box. Emits a `TieWarning` (and sets
    `tied`) when the two lowest minima tie within tolerance.
    """
    minima = minimizers(objective, bounds, **search)
    if len(minima) == 0:
        raise ValueError(
            f"no local minimizer of {objective.name!r} found in the box lower={minima.lower.tolist()}, "
            f"upper={minima.upper.tolist()}: widen {box_name(objective, bounds)} or raise n_grid/n_starts"
        )
    nan_point = np.full(objective.dim, np.nan)
    if minima.tied:
        warnings.warn(
            f"the two lowest minima of {objective.name!r} tie within tolerance: "
            f"{minima.points[0].tolist()} ({minima.values[0]:.12g}) and {minima.points[1].tolist()} "
            f"({minima.values[1]:.12g}); returning the first, see .runner_up",
            TieWarning,
            stacklevel=2,
        )
    return GlobalMinimum(
        point=minima.points[0],
        value=float(minima.values[0]),
        hessian_trace=float(minima.hessian_traces[0]),
        tied=minima.tied,
        runner_up=minima.points[1] if len(minima) > 1 else nan_point,
        runner_up_value=float(minima.values[1]) if len(minima) > 1 else math.nan,
        minima=minima,
    )


def as_minima(found: Search, s: int, dim: int, kept: list[int] | None = None) -> Minima:
    """The distinct minima of batch member s (`kept`, default all accepted), as `Minima` (labels:
    lexicographic rank)."""
    out, lower, upper = found.out, found.lower, found.upper
    if kept is None:
        kept = distinct_minima(out, s, lower, upper, found.dtype, found.tolerance)
    points = out["points"][s][kept].reshape(-1, dim)
    values = out["values"][s][kept]
    labels = np.empty(len(kept), dtype=np.int64)
    labels[np.lexsort(points.T[::-1])] = np.arange(len(kept))
    return Minima(points, values, out["hessian_traces"][s][kept], labels, is_tie(values, found.tie_tolerance), lower, upper)


#: The v*(eta) wrappers moved to `analysis.solutions` (the second redesign); their old names here
#: answer for one release, with a DeprecationWarning.
_MOVED_TO_SOLUTIONS = ("SolutionPath", "penalized_solution", "smoothed_solution")


def __getattr__(name: str):
    if name not in _MOVED_TO_SOLUTIONS:
        raise AttributeError(f"module 'analysis.minima' has no attribute {name!r}")
    warnings.warn(f"analysis.minima.{name} moved to analysis.solutions.{name}; the old name goes in the next release", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module("analysis.solutions"), name)
