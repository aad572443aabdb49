"""Escape times from a well: the classical formulas beside the exact value from the cell chain.

- `eyring_kramers_steps`: additive noise sigma^2 I, small eta: the chain is a diffusion at
  temperature eta sigma^2 / 2, and the mean number of steps over a barrier Delta F is about

      (2 pi / (eta sqrt(h_min |h_saddle|))) exp(2 Delta F / (eta sigma^2))

  (the full transition; THEORY.md "Escape times").
- `xie_escape_steps`: Hessian-aligned noise C = scale H near the critical points (Xie, Sato and
  Sugiyama, ICLR 2021, Thm 3.2, with their B = 1 / scale and time in steps t / eta):

      (2 pi / (eta |h_saddle|)) exp((2 Delta F / (eta scale)) (s / h_min + (1 - s) / |h_saddle|)),

  s in (0, 1) a path-dependent constant (default 1/2). The exponent is inversely proportional to
  the sharpness h_min: flat minima are left exponentially more slowly, sharp ones polynomially in
  1 / h_min where the s / h_min term dominates.
- `diffusion_escape_steps_1d`: the exact mean first-passage time of the 1-D diffusion
  dX = -f'(X) dt + (eta C(X))^(1/2) dW (the small-eta limit of SGD with noise covariance C(x), in
  steps: time / eta), by quadrature: with D = eta C / 2 and the scale density
  s(y) = exp(int^y f'/D), T(x -> b) = int_x^b s(y) int_lo^y dz / (D(z) s(z)) dy (reflecting at lo).
  Any positive C; infinite where C vanishes on the way (the diffusion cannot cross).
- `escape_steps`: the exact value for the SGD chain itself, from the cell matrix of any noise
  (`theory.state_dependent`): the mean number of steps to leave the basin of a minimizer.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.integrate
import scipy.sparse
import scipy.sparse.csgraph

from analysis.basins import assign_basins
from theory import solve as chains
from theory.grid import make_grid
from analysis.search import search_box
from objectives import validation
from theory.state_dependent import bind_noise, cell_kernel, components

__all__ = ["diffusion_escape_steps_1d", "escape_steps", "eyring_kramers_steps", "xie_escape_steps"]


def eyring_kramers_steps(barrier, curvature_min, curvature_saddle, step_size, noise_scale):
    """Mean steps to cross a barrier under additive noise (module docstring); broadcasts."""
    eta = np.asarray(step_size, np.float64)
    prefactor = 2.0 * np.pi / (eta * np.sqrt(np.asarray(curvature_min) * np.abs(curvature_saddle)))
    return prefactor * np.exp(2.0 * np.asarray(barrier) / (eta * np.asarray(noise_scale) ** 2))


def xie_escape_steps(barrier, curvature_min, curvature_saddle, step_size, scale, path_fraction=0.5):
    """Mean steps to cross a barrier under Hessian-aligned noise C = scale H (module docstring)."""
    eta = np.asarray(step_size, np.float64)
    saddle = np.abs(curvature_saddle)
    exponent = 2.0 * np.asarray(barrier) / (eta * np.asarray(scale)) * (path_fraction / np.asarray(curvature_min) + (1.0 - path_fraction) / saddle)
    return 2.0 * np.pi / (eta * saddle) * np.exp(exponent)


def diffusion_escape_steps_1d(f, covariance, step_size: float, start: float, end: float, lower: float, n_points: int = 4001) -> float:
    """Mean steps for dX = -f' dt + (eta C)^(1/2) dW from `start` to `end` (> start), reflecting at
    `lower`, in units of SGD steps (module docstring). `covariance`: x `(1,)` -> `(1, 1)`."""
    eta = validation.positive_float("step_size", step_size)
    y = np.linspace(lower, end, n_points)
    with jax.enable_x64(True):
        points = jnp.asarray(y[:, None])
        grad = np.asarray(f.grad(points), np.float64)[:, 0]
        c = np.asarray(jax.vmap(lambda x: jnp.asarray(covariance(x)).reshape(()))(points), np.float64)
    if np.any(c <= 0):
        return math.inf
    d = eta * c / 2.0
    log_s = scipy.integrate.cumulative_trapezoid(grad / d, y, initial=0.0)
    shift = log_s.max()
    inner = scipy.integrate.cumulative_trapezoid(np.exp(-(log_s - shift)) / d, y, initial=0.0)  # int_lo^y dz / (D s)
    outer = np.exp(log_s - shift) * inner
    tail = y >= start
    return float(scipy.integrate.trapezoid(outer[tail], y[tail]) / eta)


def _trapped(matrix, inside: np.ndarray, start: int) -> tuple[bool, np.ndarray]:
    """(whether a cell the chain reaches from `start` inside the basin cannot leave it, the cells
    reached from `start` inside the basin) by graph search on P's non-zero pattern."""
    block = matrix[inside][:, inside]
    reached = scipy.sparse.csgraph.breadth_first_order(block, int(np.searchsorted(inside, start)), directed=True, return_predecessors=False)
    exits = np.asarray(matrix[inside][:, np.setdiff1d(np.arange(matrix.shape[0]), inside)].sum(axis=1)).ravel() > 0
    can_leave = exits.copy()
    reverse = block.T.tocsr()
    frontier = np.flatnonzero(exits)
    while frontier.size:  # cells from which an exit cell is reachable
        nxt = np.unique(reverse[frontier].indices)
        nxt = nxt[~can_leave[nxt]]
        can_leave[nxt] = True
        frontier = nxt
    return bool(np.any(~can_leave[reached])), inside[np.sort(reached)]


def escape_steps(f, noise, step_sizes, minimizers, basin: int, *, bounds=None, n_grid: int = 801) -> np.ndarray:
    """`(S,)` the exact mean number of steps for SGD (cell chain) started at `minimizers[basin]` to
    reach a cell of another basin (basins of gradient descent on f), for any noise of
    `theory.state_dependent`, by `theory.solve.basin_matrix`: GTH on the resurrected chain in 1-D
    (every entry to a small relative error: exact for escape times far beyond 1e12 steps, where
    an LU of I - P_BB is rounding), LU then GTH in 2-D.

    `inf` where a cell the chain reaches inside the basin cannot leave it on cells: every way
    out needs a jump the cell kernel does not hold (beyond `cell_mixtures.REACH` standard
    deviations of the step's Gaussian, or below `DROP_BELOW` = 1e-20 of its row's largest
    entry). That happens where the noise vanishes on the way out (Hessian-aligned noise where
    f'' < 0, loss-scaled noise at a minimum): the exact chain escapes only by jumps of that
    size, so its escape time exceeds about 1e20 / (cells in the basin) steps, beyond what
    the grid resolves, and `inf` says so. Where the only way out is such a far jump, a finite
    time is exact for the cell chain but set by its few entries near that truncation, and moves
    with the grid: on (x^2 - 1)^2 / 4 with Hessian-aligned noise at eta = 0.08, 3.7e11 steps on
    48 cells, 3.0e12 on 801, inf on 401 (the crossing entries fall below 1e-20 there); read
    such times as orders of magnitude."""
    eta = validation.step_sizes("step_sizes", step_sizes)
    points = np.asarray(getattr(minimizers, "points", minimizers), np.float64)
    lower, upper = search_box(f, bounds)
    grid = make_grid(lower, upper, n_grid)
    labels = assign_basins(grid.points, points, f, method="descent")
    inside = np.flatnonzero(labels == basin)
    start = int(grid.cell_of(points[basin]))
    parts = components(f, bind_noise(f, noise), grid.points)
    out = []
    for e in eta:
        matrix, _ = cell_kernel(grid, parts, float(e), allow_empty=True)
        trapped, reached = _trapped(matrix, inside, start)
        if trapped:
            out.append(math.inf)
            continue
        # Only the cells reached from the start matter; all of them reach the outside.
        within = np.zeros(grid.size, bool)
        within[reached] = True
        out.append(chains.basin_matrix(grid, matrix, float(e), within, start, quasi=False).escape_time)
    return np.array(out)
