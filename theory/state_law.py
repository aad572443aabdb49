"""The stationary law of SGD with state-dependent or minibatch noise: the cell matrix of
`theory.state_dependent`, solved by the additive law's solvers (pinned LU, GTH where the chain is
nearly decomposable), assembled into the same `StationaryLaw`.

Where the noise vanishes at a minimizer that point is absorbing: the cell chain has several
closed classes (or one that is a few cells wide) and no stationary law worth the name; the law
refuses it and `theory.absorption` reports what is true there (absorption probabilities and times).
"""

from __future__ import annotations

import jax
import numpy as np
import scipy.sparse.csgraph

from theory import solve as chains
from theory import stationary
from theory.linalg import NoStationaryLaw
from theory.grid import make_grid
from analysis.search import search_box
from objectives import FiniteSum, Objective, validation
from theory.minibatch_kernel import in_float64
from theory.state_dependent import Components, bind_noise, cell_kernel, components

__all__ = ["closed_classes", "state_dependent_law"]


def closed_classes(matrix) -> list[np.ndarray]:
    """The closed communicating classes of a stochastic matrix (cell indices each, sorted by their
    first cell): the sets a chain, once in, never leaves. Every chain on finitely many cells ends
    in one of them."""
    count, labels = scipy.sparse.csgraph.connected_components(matrix, directed=True, connection="strong")
    coo = matrix.tocoo()
    leaving = labels[coo.row] != labels[coo.col]
    open_ = np.zeros(count, bool)
    open_[labels[coo.row[leaving]]] = True
    return [np.flatnonzero(labels == c) for c in range(count) if not open_[c]]


def _one(grid, parts: Components, eta: float, pin: int, like, max_leak=None):
    matrix, leak = cell_kernel(grid, parts, eta)
    classes = closed_classes(matrix)
    if len(classes) != 1 or classes[0].size < min(grid.size, 8):
        points = [grid.points[c].mean(axis=0).round(4).tolist() for c in classes]
        raise NoStationaryLaw(
            f"the noise vanishes: the cell chain at step size {eta:g} is absorbed in {len(classes)} closed class(es) "
            f"near {points}; use theory.absorption for absorption probabilities and times"
        )
    return chains.solve_matrix(grid, matrix, leak, grid.points - eta * parts.mean_gradient, eta, pin=pin, like=like, max_leak=max_leak)


def _solve(f, grid, noise, eta, *, like=None, max_leak=None):
    """(results per step size, the function step size -> the cell matrix on `grid`); a step size
    leaking more than `max_leak` skips its Poisson solve (`theory.solve.refused`)."""
    parts = components(f, noise, grid.points)
    with jax.enable_x64(True):
        values = np.asarray((in_float64(f) if isinstance(f, FiniteSum) else f).value(grid.points))
    pin = int(np.argmin(values))  # the lowest cell holds mass
    results = stationary.per_step_size(lambda s, e: _one(grid, parts, e, pin, None if like is None else like[s], max_leak), eta)
    return results, lambda step_size: cell_kernel(grid, parts, float(step_size))[0]


def state_dependent_law(f: Objective, noise, step_sizes, *, bounds=None, n_grid: int | None = None, max_leak: float = stationary.MAX_LEAK):
    """The stationary law of SGD with noise `noise` (see `theory.state_dependent`) on `f` (dim 1
    or 2), per step size, as a `StationaryLaw` (the same fields; `coarse` on half as many cells
    per axis, `discretization_error` from it). Its basin methods (`escape_time`,
    `quasi_stationary`, `relevant`) solve with this noise's cell matrix (`cell_matrix`).

    **Raises:** `ValueError` naming the argument: `f` not of dimension 1 or 2, a bad `noise` (a
    covariance that is not real, symmetric, PSD of shape (d, d); a finite sum too large for the
    exact minibatch mixture), noise that vanishes somewhere (absorbing: `theory.absorption`), or
    `bounds` that cut off more than `max_leak` per step.
    """
    if not isinstance(f, Objective) or f.dim not in (1, 2):
        raise ValueError(f"f must be an objectives.Objective of dimension 1 or 2, got {f!r}")
    eta = validation.step_sizes("step_sizes", step_sizes)
    noise = bind_noise(f, noise)
    n = validation.integer("n_grid", (2001 if f.dim == 1 else 101) if n_grid is None else n_grid, lo=16, note="cells per axis")
    validation.real("max_leak", max_leak, lo=0.0, hi=1.0, open_lo=True, open_hi=True)
    lower, upper = search_box(f, bounds)
    grid, coarse_grid = make_grid(lower, upper, n), make_grid(lower, upper, n // 2)
    try:
        results, cell_matrix = _solve(f, grid, noise, eta, max_leak=max_leak)  # refused below before any Poisson solve
    except NoStationaryLaw as error:
        raise ValueError(f"noise={noise!r} gives no stationary law at step_sizes {eta.tolist()} in bounds=({lower.tolist()}, {upper.tolist()}): {error}") from None
    leaks = np.array([r.leak for r in results])
    if np.any(leaks > max_leak):
        raise ValueError(
            f"bounds=({lower.tolist()}, {upper.tolist()}) cut off mass: under the law the kernel sends {leaks.tolist()} per "
            f"step out of the box at step sizes {eta.tolist()} (allowed: max_leak={max_leak:g}); widen bounds"
        )
    coarse_results, coarse_matrix = _solve(f, coarse_grid, noise, eta, like=results)
    coarse = stationary.assemble_law(f, noise, coarse_grid, eta, coarse_results, None, None, cell_matrix=coarse_matrix)
    return stationary.assemble_law(f, noise, grid, eta, results, coarse, None, cell_matrix=cell_matrix)
