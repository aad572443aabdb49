"""Where the noise vanishes at a minimizer, the chain is absorbed: absorption probabilities into
each minimizer and the expected time to absorption, exactly on cells.

Noise that vanishes at a minimizer x* (loss-scaled noise C = s (f - f_min) at the global
minimum, label noise at interpolation, minibatch noise at a minimizer that every example shares)
makes x* a fixed point of every step: the chain converges to one of the absorbing minimizers
instead of fluctuating, and a stationary law says nothing. What is true there (THEORY.md,
"State-dependent noise"):

- absorption probabilities h_k(x) = P(absorbed at minimizer k | x_0 = x), solving h_k = P h_k
  off the absorbing sets, with h_k = 1 on minimizer k's set and 0 on the others';
- the expected time m(x) to absorption, solving m = 1 + P m off the absorbing sets, m = 0 on them.

On cells the absorbing sets are the closed classes of the cell chain (`closed_classes`: the
cell of x*, or the few cells around it between which the tent weights of the last steps split
the mass), each assigned to the nearest of `minimizers`. The continuous chain converges to x*
geometrically and never reaches it, so its time to absorption is the time to come within about
a cell of x*: grid-dependent. With `radius` the sets are instead the balls of that radius
around the minimizers (and the closed classes inside), and the time is the hitting time of the
balls: a property of the chain itself, to the grid's O(h).

Both are one sparse LU of I - Q, Q the chain restricted to the transient cells.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from theory import stationary
from theory.linalg import NoStationaryLaw
from theory.grid import make_grid
from analysis.search import search_box
from objectives import Objective, validation
from theory.cell_mixtures import tent_rows
from theory.state_dependent import bind_noise, cell_kernel, components
from theory.state_law import closed_classes

__all__ = ["Absorption", "absorption"]

#: The noise "vanishes" at a minimizer where its size is at most this fraction of its largest on the box.
VANISHING = 1e-3


class Absorption(NamedTuple):
    """Absorption of the cell chain, per step size (leading axis S) and minimizer (K).

    - `step_sizes` `(S,)`; `minimizers` `(K, d)`; `grid`; `radius` (or `None`: the closed classes).
    - `probability` `(S, K)` from `start`: P(absorbed at minimizer k); sums to 1 (with `radius`,
      to 1 minus the mass that never reaches a ball: a closed class outside every ball).
    - `time` `(S,)` the expected number of steps to absorption from `start`.
    - `probability_map` `(S, K) + grid.shape` and `time_map` `(S,) + grid.shape`: from every cell.
    - `out_of_box` `(S,)` the expected mass sent out of the box before absorption from `start`
      (put back by renormalising the rows).
    - `discretization_error` `(S,)`: 2 max_k |probability - coarse.probability|.
    - `coarse`: the same on half as many cells per axis, or `None`.
    """

    step_sizes: np.ndarray
    minimizers: np.ndarray
    grid: Any
    radius: float | None
    probability: np.ndarray
    time: np.ndarray
    probability_map: np.ndarray
    time_map: np.ndarray
    out_of_box: np.ndarray
    discretization_error: np.ndarray
    coarse: Any


def _start_weights(grid, start) -> tuple[np.ndarray, np.ndarray]:
    """Cells and tent weights of the point `start` (first moment kept, as the kernel's rows)."""
    per_axis = []
    for a, axis in enumerate(grid.axes):
        first, values, _ = tent_rows(float(axis[0]), float(grid.widths[a]), grid.n_cells, np.array([start[a]]), np.zeros(1))
        per_axis.append((first[0] + np.arange(values.shape[1]), values[0]))
    if grid.dim == 1:
        return per_axis[0]
    (ix, wx), (iy, wy) = per_axis
    return (ix[:, None] * grid.n_cells + iy[None, :]).ravel(), np.outer(wx, wy).ravel()


def _one(grid, parts, eta, minimizers, radius):
    matrix, leak = cell_kernel(grid, parts, eta, allow_empty=True)
    k = minimizers.shape[0]
    target = np.full(grid.size, -1)
    if radius is not None:
        distance = np.linalg.norm(grid.points[:, None, :] - minimizers[None], axis=2)
        near = distance.min(axis=1) <= radius
        target[near] = np.argmin(distance, axis=1)[near]
    target[grid.cell_of(minimizers)] = np.arange(k)
    absorbing = target >= 0
    # Absorbing cells keep their mass; any other closed class is noise that does not vanish.
    stopped = scipy.sparse.diags(absorbing.astype(np.float64)) + scipy.sparse.diags((~absorbing).astype(np.float64)) @ matrix
    gone = leak >= 1.0  # every step from these cells leaves the box: the chain ends there
    for cells in closed_classes(stopped.tocsr()):
        if not np.any(absorbing[cells]) and not np.all(gone[cells]):
            centre = grid.points[cells].mean(axis=0)
            raise NoStationaryLaw(
                f"at step size {eta:g} the cell chain has a closed class of {cells.size} cells around "
                f"{centre.round(4).tolist()} that holds no minimizer: the chain stays there without converging"
            )
    transient = np.flatnonzero(target < 0)
    out = np.zeros((grid.size, k + 2))
    for j in range(k):
        out[target == j, j] = 1.0
    if transient.size:
        q = matrix[transient][:, transient]
        into = matrix[transient]
        rhs = np.zeros((transient.size, k + 2))
        for j in range(k):
            rhs[:, j] = np.asarray(into[:, target == j].sum(axis=1)).ravel()
        rhs[:, k] = 1.0
        rhs[:, k + 1] = leak[transient]
        system = (scipy.sparse.identity(transient.size, format="csc") - q).tocsc()
        try:
            solution = scipy.sparse.linalg.splu(system).solve(rhs)
        except RuntimeError:  # singular: some transient cells reach no absorbing set
            raise NoStationaryLaw(f"at step size {eta:g} some cells reach no minimizer's absorbing set") from None
        out[transient] = solution
    return out


def _noise_size(parts) -> np.ndarray:
    """The noise's standard size at each point: sqrt(tr C), or the largest minibatch deviation."""
    if parts.covariances is not None:
        return np.sqrt(np.maximum(np.trace(parts.covariances[:, 0], axis1=1, axis2=2), 0.0))
    return np.linalg.norm(parts.gradients - parts.mean_gradient[:, None, :], axis=2).max(axis=1)


def _check_vanishes(f, noise, minimizers, grid):
    """Absorption needs noise that vanishes at every minimizer: at most `VANISHING` of its largest
    size on the box (a point given to a few digits still passes)."""
    at = _noise_size(components(f, noise, minimizers))
    largest = _noise_size(components(f, noise, grid.points)).max()
    bad = at > VANISHING * largest
    if np.any(bad):
        raise ValueError(
            f"minimizers: the noise does not vanish at {minimizers[bad].tolist()} (size {at[bad].tolist()}, "
            f"largest on the box {largest:.3g}), so the chain is not absorbed there; give the points where it vanishes "
            f"or use stationary_law"
        )


def absorption(
    f: Objective, noise, step_sizes, minimizers, start, *, radius: float | None = None, bounds=None, n_grid: int | None = None
) -> Absorption:
    """Absorption probabilities into each minimizer and expected absorption times of SGD whose noise
    vanishes at minimizers (see the module docstring), on `n_grid` cells per axis, and on half as
    many for `discretization_error`.

    **Arguments:**

    - `f`: an `objectives.Objective` of dimension 1 or 2; `noise`: as `theory.state_dependent`
      (a covariance function or state-dependent family, or minibatch noise on a finite sum).
    - `step_sizes`: eta > 0, a number or a sequence (S).
    - `minimizers`: `(K, d)` the points absorption is reported for (`analysis.Minima` or an array).
    - `start`: `(d,)` the chain's starting point.
    - `radius`: absorb on reaching this distance of a minimizer (hitting times); default: the
      closed classes of the cell chain (convergence).
    - `bounds`, `n_grid`: the box and cells per axis (default f's search box; 2001 in 1-D, 101 in 2-D).

    **Returns:** an `Absorption`. **Raises:** `ValueError` naming the argument; among them noise
    that does not vanish (a closed class that is not at a minimizer: use `stationary_law`).
    """
    if not isinstance(f, Objective) or f.dim not in (1, 2):
        raise ValueError(f"f must be an objectives.Objective of dimension 1 or 2, got {f!r}")
    d = f.dim
    eta = validation.step_sizes("step_sizes", step_sizes)
    n = validation.integer("n_grid", (2001 if d == 1 else 101) if n_grid is None else n_grid, lo=16, note="cells per axis")
    points = np.asarray(getattr(minimizers, "points", minimizers), np.float64)
    if points.ndim != 2 or points.shape[1] != d or points.shape[0] < 1 or not np.all(np.isfinite(points)):
        raise ValueError(f"minimizers must be analysis.Minima or a finite array (n_minimizers, {d}), got shape {points.shape}")
    start = validation.finite_array("start", start, shape=(d,))
    if radius is not None:
        radius = validation.real("radius", radius, lo=0.0, open_lo=True)
    lower, upper = search_box(f, bounds)
    if np.any(start < lower) or np.any(start > upper):
        raise ValueError(f"start={start.tolist()} must lie in bounds=({lower.tolist()}, {upper.tolist()})")

    noise = bind_noise(f, noise)
    _check_vanishes(f, noise, points, make_grid(lower, upper, 64))

    def solve(cells: int) -> Absorption:
        grid = make_grid(lower, upper, cells)
        parts = components(f, noise, grid.points)
        try:
            out = np.array(stationary.per_step_size(lambda s, e: _one(grid, parts, e, points, radius), eta))
        except NoStationaryLaw as error:
            raise ValueError(f"noise={noise!r}: {error}") from None
        index, weight = _start_weights(grid, start)
        at_start = np.einsum("c,scj->sj", weight, out[:, index])
        k = points.shape[0]
        shape = (eta.size,) + grid.shape
        return Absorption(
            step_sizes=eta, minimizers=points, grid=grid, radius=radius, probability=at_start[:, :k], time=at_start[:, k],
            probability_map=np.moveaxis(out[:, :, :k], 2, 1).reshape((eta.size, k) + grid.shape),
            time_map=out[:, :, k].reshape(shape), out_of_box=at_start[:, k + 1],
            discretization_error=np.full(eta.size, np.nan), coarse=None,
        )

    fine, coarse = solve(n), solve(n // 2)
    error = 2.0 * np.abs(fine.probability - coarse.probability).max(axis=1)
    return fine._replace(coarse=coarse, discretization_error=error)
