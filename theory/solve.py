"""One step size of the cell chain: its stationary law, Poisson solutions, gap, escape times and
quasi-stationary laws, in 1-D (a matrix: GTH or LU) and 2-D (an operator: Krylov and power
iterations in JAX). `theory.stationary` calls these once per step size.

Choice of solver in 1-D: the kernel as a sparse matrix (`kernel_1d.transition_sparse`),
one pinned LU (SuperLU, dense LAPACK when the rows cover a third of the matrix; it also solves
the Poisson equation and serves the shift-invert of the spectral gap). Its pi is then checked:
negative probabilities, or a relaxation time beyond `TRUST_LU_UP_TO` steps (the spectral gap:
first the eigenvalue nearest 1 by shift-invert ARPACK with that LU, a few solves; where that gap
is above `SMALLEST_GAP`, |lambda_2| by plain ARPACK on P, which finds it wherever it lies, near
-1 too; both whatever the error in pi), mean the chain is nearly decomposable, and pi is
recomputed by GTH on the band (`linalg.gth`: no subtractions, every entry to a small
relative error). That is where metastability lives: small eta, narrow bands, where GTH is cheap
(O(n b^2)).

2-D: where the matrix is small enough (`DIRECT_2D_SIZE` entries: narrow kernels, small step
sizes, where metastability lives), the matrix P itself (`Operator2D.sparse`) and the same pinned
LU as 1-D, with a fill-reducing ordering, and the same GTH fallback on grids of up to
`GTH_2D_CELLS` cells (with the pinned cell eliminated last: `_gth_pin_first`); on larger grids
a chain too nearly decomposable for the LU gets an `InaccurateLawWarning`. Otherwise (wide
kernels: large step sizes, which mix fast) pi solves (I - P^T + u 1^T) pi = u (u uniform; the
matrix is nonsingular and pi sums to 1) by restarted GMRES on the operator; tiny negative
entries left by the iteration are set to 0 and the residual |pi - P^T pi|_1 is reported, and
warned about above `GMRES_RESIDUAL_WARNING`. The Poisson equation the same way with
(I - P + 1 pi^T).
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse.linalg

from theory import kernel_1d, kernel_2d
from theory import linalg as solvers

__all__ = ["BasinSolve", "StepSolve", "bandwidths", "basin_1d", "basin_2d", "basin_matrix", "gth_band_limit", "refused", "solve_1d", "solve_2d", "solve_matrix"]


class StepSolve(NamedTuple):
    """The law at one step size, as one solver found it.

    - `density` `(N,)`: pi on the cells; `leak`: the mass pi sends out of the box per step.
    - `method`: "gth", "lu" or "gmres"; `residual`: |pi P - pi|_1.
    - `asymptotic` `(2d, 2d)`: lim T Cov of the averages of (x, v) (inf where the chain does not mix).
    - `relaxation_time`: -1 / log|lambda_2| (nan on the coarse grid, which reuses the fine one's).
    - `mean`, `mean_v` `(d,)`, `covariance` `(d, d)`: the moments of x and v = x - eta grad f(x) under pi.
    """

    density: np.ndarray
    leak: float
    method: str
    asymptotic: np.ndarray
    relaxation_time: float
    mean: np.ndarray
    covariance: np.ndarray
    mean_v: np.ndarray
    residual: float


class BasinSolve(NamedTuple):
    """One basin at one step size: the mean `escape_time` (steps) from the start cell, the
    basin's quasi-stationary law `quasi_stationary` `(N,)` and its `exit_rate` per step."""

    escape_time: float
    quasi_stationary: np.ndarray
    exit_rate: float

GMRES_TOLERANCE = 1e-12
#: A 2-D law from GMRES with a residual |pi - pi P|_1 above this is warned about.
GMRES_RESIDUAL_WARNING = 1e-9
#: 2-D chains are solved directly (LU of the matrix) when it has up to about this many entries
#: (nearly decomposable chains, where GMRES stops at a small residual with the basins' weights
#: wrong) ...
DIRECT_2D_SIZE = 15_000_000
#: ... when the grid has at most DENSE_2D_CELLS cells (dense LAPACK LU: wide kernels fill a
#: sparse LU in), or each row at most DIRECT_2D_ROW entries (narrow kernels: the sparse LU's fill
#: stays small). The measurements behind these limits: benchmarks/README.md, "2-D at small step
#: sizes".
DENSE_2D_CELLS = 64 * 64
DIRECT_2D_ROW = 400
#: SuperLU's column ordering for 2-D grids (fill-reducing on the grid's graph).
FILL_REDUCING = "MMD_AT_PLUS_A"
#: 2-D grids of up to this many cells fall back to GTH when the chain is nearly decomposable, as
#: in 1-D (on the dense matrix: 0.8 GB at 101 x 101 cells); larger ones keep the LU's law, warned.
GTH_2D_CELLS = 101 * 101
#: Mean exit times above this many steps from an LU are recomputed by GTH (in 2-D on grids of up
#: to GTH_2D_CELLS cells, else warned about): the LU's relative error grows like 1e-16 x the time.
TRUST_LU_EXIT_UP_TO = 1e10

#: Relaxation times (steps) beyond which the pinned LU's pi is replaced by GTH's: its relative
#: error grows like eps x relaxation time.
TRUST_LU_UP_TO = 1e6


def gth_band_limit(n: int) -> int:
    return max(64, n // 10)


def _direct_2d(op) -> bool:
    """Whether the 2-D chain of `op` is solved by the LU of its matrix (see `DIRECT_2D_SIZE`)."""
    cells = op.n * op.n
    return op.sparse_size <= DIRECT_2D_SIZE and (cells <= DENSE_2D_CELLS or op.sparse_size <= DIRECT_2D_ROW * cells)


def bandwidths(matrix) -> tuple[int, int]:
    """(lower, upper) bandwidths of a sparse matrix's non-zero pattern."""
    rows, cols = matrix.nonzero()
    return int(max(0, (rows - cols).max())), int(max(0, (cols - rows).max()))


def _moments(pi, points, targets):
    mean = pi @ points
    centred = points - mean
    return mean, (centred * pi[:, None]).T @ centred, pi @ targets


def _poisson_rhs(pi, points, targets):
    return np.concatenate([points - pi @ points, targets - pi @ targets], axis=1)


def solve_1d(grid, gradient, law, step_size, *, pin: int, like: StepSolve | None = None, max_leak: float | None = None):
    """The law (`StepSolve`) for one step size on a 1-D grid. `pin`: a cell with mass.
    `like`: the result on a finer grid; its solver choice and relaxation time are reused (the
    coarse grid of the error estimate: no spectral gap computed, relaxation_time nan).
    `max_leak`: where pi sends more than this out of the box per step, the law will be refused:
    the Poisson solve is skipped (`refused`)."""
    matrix, leak, bands = kernel_1d.transition_sparse(grid, gradient[:, 0], law, step_size)
    return _solve_matrix(matrix, leak, grid.points, grid.points - step_size * gradient, pin, like, bands=bands, max_leak=max_leak)


def solve_matrix(grid, matrix, leak, targets, step_size: float, *, pin: int, like: StepSolve | None = None, max_leak: float | None = None) -> StepSolve:
    """The law (`StepSolve`) of a cell chain given as its matrix, for one step size: the solver of
    `solve_1d` on a 1-D grid (pinned LU, GTH on the band where the chain is nearly decomposable),
    the direct one of `solve_2d` on a 2-D grid (fill-reducing LU, dense up to `DENSE_2D_CELLS`
    cells, GTH up to `GTH_2D_CELLS`). For kernels that are not additive noise's
    (`theory.state_law`).

    **Arguments:** `grid` (N cells); `matrix`: P, SciPy sparse `(N, N)`, rows summing to 1;
    `leak` `(N,)`: the mass each row sent out of the box; `targets` `(N, d)`: v = c - eta grad f(c)
    at the centres (for the moments and Poisson solutions of v); `pin`: a cell with mass;
    `like`: the result on a finer grid (as `solve_1d`); `max_leak`: as `solve_1d`.
    """
    if grid.dim == 1:
        return _solve_matrix(matrix, leak, grid.points, targets, pin, like, bands=bandwidths(matrix), max_leak=max_leak)
    size = grid.size
    return _solve_matrix(
        matrix, leak, grid.points, targets, pin, like, bands=bandwidths(matrix) if size <= GTH_2D_CELLS else None, pin_first=True,
        ordering=FILL_REDUCING, dense=size <= DENSE_2D_CELLS, step_size=step_size, max_leak=max_leak,
    )


def _solve_matrix(matrix, leak, points, targets, pin: int, like, *, bands=None, pin_first=False, ordering: str = "NATURAL", dense=None, step_size=None, max_leak=None):
    """`solve_1d`'s work on the chain's matrix P (SciPy sparse), 1-D or 2-D. `bands`: P's band,
    where GTH replaces the LU's pi when the chain is metastable; `None` (2-D grids too large for
    the dense matrix GTH works in), where the LU's pi is kept and an `InaccurateLawWarning` says so
    (for `step_size`). GTH eliminates in the natural order, or where that stops at transient
    cells, and always with `pin_first` (2-D, where edge cells are often transient), with the
    pinned cell last (`_gth_pin_first`). Both orders give the law to a small relative error."""
    n = matrix.shape[0]
    lower, upper = bands or (0, 0)
    apply_transpose = solvers.sparse_or_dense(matrix, lower, upper)
    pi, solve = solvers.pinned_lu(matrix, pin, lower, upper, ordering=ordering, dense=dense)
    method = "lu"
    if like is None:
        # A gap near 1 under SMALLEST_GAP settles it (|lambda_2| is at least that close to 1);
        # otherwise |lambda_2| may sit elsewhere (near -1 too): plain ARPACK on P.
        if solvers.gap_near_one(solve, pi, n) < solvers.SMALLEST_GAP:
            tau = math.inf
        else:
            tau = solvers.relaxation_time(solvers.second_eigenvalue(apply_transpose, pi, n))
        metastable = not tau < TRUST_LU_UP_TO
    else:
        tau, metastable = like.relaxation_time, like.method == "gth"
    negative = pi.min() < -1e-12 * pi.max()
    if bands is not None and (negative or metastable):
        method = "gth"
        try:  # in 1-D the natural order usually works, and is faster than pinned-last
            pi = None if pin_first else solvers.gth(matrix.toarray(), lower, upper, overwrite=True)
        except solvers.NoStationaryLaw:  # cells by the box's edge are transient
            pi = None
        if pi is None:
            pi = _gth_pin_first(matrix, pin, lower, upper)
    elif like is None and (negative or metastable):
        warnings.warn(
            f"step size {step_size:g}: the 2-D chain is nearly decomposable (relaxation time {tau:.3g} steps): its law "
            f"comes from a pinned LU, whose relative error grows like 1e-16 x the relaxation time; GTH takes over on "
            f"grids of up to {GTH_2D_CELLS} cells; see `quasi_stationary` for what a run started in one basin sees",
            solvers.InaccurateLawWarning,
            stacklevel=2,
        )
    pi = np.maximum(pi, 0.0)
    pi /= pi.sum()
    if max_leak is not None and pi @ leak > max_leak:
        return refused(pi, leak, method)
    g = _poisson_rhs(pi, points, targets)
    if tau == math.inf:
        asymptotic = np.full((g.shape[1],) * 2, np.inf)
    else:
        asymptotic = solvers.asymptotic_covariance(pi, g, solve(g))
    if like is not None:
        tau = float("nan")
    mean, covariance, mean_v = _moments(pi, points, targets)
    return StepSolve(
        density=pi, leak=float(pi @ leak), method=method, asymptotic=asymptotic, relaxation_time=tau,
        mean=mean, covariance=covariance, mean_v=mean_v, residual=float(np.abs(apply_transpose(pi) - pi).sum()),
    )


def refused(pi, leak, method: str, residual: float = math.nan) -> StepSolve:
    """The `StepSolve` of a law that leaks more than `max_leak` per step, which the caller refuses:
    pi and its leak, no moments or Poisson solutions (nan)."""
    return StepSolve(
        density=pi, leak=float(pi @ leak), method=method, asymptotic=math.nan, relaxation_time=math.nan,
        mean=math.nan, covariance=math.nan, mean_v=math.nan, residual=residual,
    )


def _gth_pin_first(matrix, pin: int, lower: int, upper: int) -> np.ndarray:
    """GTH with the cell `pin` moved to state 0 (an "arrow": its row and column dense), the others
    in their order, so the band grows by one. GTH eliminates the last state first and needs each
    state to reach one before it; at a small step size the cells by the box's edge can be
    transient (the drift there outruns the noise's reach: moves against it fall below
    DROP_BELOW), and nothing reaches them back, so a plain elimination order stops at them. The
    pinned cell, f's lowest, is recurrent and every cell reaches it."""
    n = matrix.shape[0]
    order = np.concatenate([[pin], np.arange(pin), np.arange(pin + 1, n)])
    permuted = matrix[order][:, order].toarray()
    pi = np.empty(n)
    pi[order] = solvers.gth(permuted, lower + 1, upper + 1, arrow=True, overwrite=True)
    return pi


def _gmres(apply, rhs, guess):
    """Restarted GMRES (SciPy) on a NumPy-wrapped operator: the compiled kernel applications
    (`push`, `pull`) carry the cost; JAX's own gmres compiles anew for every grid shape."""
    size = rhs.shape[0]
    operator = scipy.sparse.linalg.LinearOperator((size, size), matvec=apply, dtype=np.float64)
    solution, _ = scipy.sparse.linalg.gmres(operator, rhs, x0=guess, rtol=GMRES_TOLERANCE, atol=0.0, restart=60, maxiter=400)
    return solution


def _stationary_2d(op, size):
    push = lambda x: np.asarray(op.push(jnp.asarray(x)))  # noqa: E731
    uniform = np.full(size, 1.0 / size)
    pi = _gmres(lambda x: x - push(x) + uniform * np.sum(x), uniform, uniform)
    pi = np.maximum(pi, 0.0)
    pi = pi / pi.sum()
    for _ in range(3):  # a few plain steps smooth the clipped rounding
        pi = push(pi)
        pi = pi / pi.sum()
    pi = np.maximum(pi, 0.0)  # the FFT's rounding leaves entries of -1e-18
    pi = pi / pi.sum()
    return pi, float(np.abs(push(pi) - pi).sum())


def _poisson_2d(op, pi, g):
    """h with (I - P + 1 pi^T) h = g for every column of g `(N, m)`."""
    pull = lambda h: np.asarray(op.pull(jnp.asarray(h)))  # noqa: E731
    return np.stack([_gmres(lambda y: y - pull(y) + np.sum(pi * y), g[:, c], g[:, c]) for c in range(g.shape[1])], axis=1)


def solve_2d(grid, gradient, law, step_size, reach, *, pin: int, like: StepSolve | None = None, max_leak: float | None = None):
    """As `solve_1d`, on a 2-D grid. Where the direct solve is affordable (`_direct_2d`: small
    grids, or narrow kernels, i.e. small step sizes, where metastability lives), the matrix P
    (`Operator2D.sparse`) and the pinned LU of 1-D, then GTH (`solve_matrix`); else GMRES on the
    operator (wide kernels: large step sizes, which mix fast), and a residual left above
    `GMRES_RESIDUAL_WARNING` is warned about. GMRES is not tried first: on a nearly decomposable
    chain it stops at a small residual with the basins' weights wrong. `max_leak`: as
    `solve_1d` (the spectral gap and the Poisson solves, most of a wide kernel's time, skipped)."""
    op = kernel_2d.Operator2D(grid, gradient, law, step_size, reach)
    points, size = grid.points, grid.size
    if _direct_2d(op):
        return solve_matrix(grid, op.sparse(), op.leak, points - step_size * gradient, step_size, pin=pin, like=like, max_leak=max_leak)
    pi, residual = _stationary_2d(op, size)
    if max_leak is not None and pi @ op.leak > max_leak:
        return refused(pi, op.leak, "gmres", residual)
    relaxation = like is None
    if relaxation and not residual < GMRES_RESIDUAL_WARNING:
        warnings.warn(
            f"step size {step_size:g}: GMRES left a residual |pi - pi P|_1 = {residual:.3g} on this {grid.n_cells} x "
            f"{grid.n_cells} grid (the chain may be nearly decomposable); its matrix is too large for the direct "
            f"solve ({op.sparse_size:.3g} entries, limit DIRECT_2D_SIZE = {DIRECT_2D_SIZE:.3g}); a coarser grid allows it",
            solvers.InaccurateLawWarning,
            stacklevel=2,
        )
    targets = points - step_size * gradient
    tau = float("nan")
    if relaxation:
        second = solvers.second_eigenvalue(lambda x: np.asarray(op.push(jnp.asarray(x))), pi, size)
        tau = solvers.relaxation_time(second)
    g = _poisson_rhs(pi, points, targets)
    if tau == math.inf:
        asymptotic = np.full((g.shape[1],) * 2, np.inf)
    else:
        h = _poisson_2d(op, pi, g)
        asymptotic = solvers.asymptotic_covariance(pi, g, h)
    mean, covariance, mean_v = _moments(pi, points, targets)
    return StepSolve(
        density=pi, leak=float(pi @ op.leak), method="gmres", asymptotic=asymptotic, relaxation_time=tau,
        mean=mean, covariance=covariance, mean_v=mean_v, residual=residual,
    )


# ---- basins: escape times and quasi-stationary laws ----------------------------------------


def _resurrected(matrix, inside, start_law):
    """The arrow chain on {outside} + basin cells: exits go to state 0, which restarts from `start_law`."""
    block = matrix[np.ix_(inside, inside)]
    exits = matrix[inside][:, ~inside].sum(axis=1)
    m = inside.sum()
    arrow = np.zeros((m + 1, m + 1))
    arrow[1:, 1:] = block
    arrow[1:, 0] = exits
    arrow[0, 1:] = start_law
    return arrow, exits


def basin_1d(grid, gradient, law, step_size, inside, start, *, quasi: bool = True, iterations: int = 30):
    """Escape time from cell `start` out of the set `inside` (bool `(n,)`: a basin, or everything
    but a target cell), and the set's quasi-stationary law, for one step size (1-D).

    Escape time: the stationary law x of the resurrected chain (exit -> state 0 -> `start`) by GTH;
    a cycle lasts 1 + m(start) steps, so m(start) = sum_{i in B} x_i / x_0, a ratio of positive
    numbers (relative accuracy even for e^160 steps). Quasi-stationary law: inverse iteration
    r <- (occupation measure before exit, started from r), which is the same resurrected chain
    with state 0 restarting from r (its fixed point is the left Perron vector of P_BB).

    **Returns:** a `BasinSolve`: escape_time, quasi_stationary `(n,)` (zero outside B), exit_rate
    (per step, from the quasi-stationary law: sum_i q_i P(i, not B)).
    """
    sparse, _, band = kernel_1d.transition_sparse(grid, gradient[:, 0], law, step_size)
    return _basin_sparse(grid, sparse, band, inside, start, quasi=quasi, iterations=iterations)


def basin_matrix(grid, matrix, step_size: float, inside, start: int, *, quasi: bool = True) -> BasinSolve:
    """`basin_1d` / `basin_2d` (direct) for a cell chain given as its matrix P (SciPy sparse
    `(N, N)`, rows summing to 1): escape time from cell `start` out of `inside` (bool `(N,)`),
    the set's quasi-stationary law and exit rate, for one step size. For kernels that are not
    additive noise's (`theory.state_law`)."""
    inside = np.asarray(inside, bool)
    if grid.dim == 1:
        return _basin_sparse(grid, matrix.tocsr(), bandwidths(matrix), inside, int(start), quasi=quasi)
    return _basin_direct(matrix.tocsr(), inside, int(start), quasi, step_size)


def _basin_sparse(grid, sparse, band, inside, start, *, quasi: bool = True, iterations: int = 30) -> BasinSolve:
    """`basin_1d`'s work on the 1-D chain's matrix (`band`: its (lower, upper) bandwidths)."""
    lower, upper = band
    matrix = sparse.toarray()
    where = np.flatnonzero(inside)
    local_start = int(np.searchsorted(where, start))
    m = where.size
    if m == grid.size:  # one basin: nothing to escape to; its quasi-stationary law is the law
        try:
            pi = solvers.gth(matrix, lower, upper)
        except solvers.NoStationaryLaw:  # transient cells (noise of bounded reach, as uniform): the law's own order
            pi = _gth_pin_first(sparse, start, lower, upper)
        return BasinSolve(escape_time=math.inf, quasi_stationary=pi, exit_rate=0.0)
    rows, cols = np.nonzero(matrix[np.ix_(inside, inside)])
    band_low, band_up = int(max(0, (rows - cols).max())), int(max(0, (cols - rows).max()))
    wide = max(band_low, band_up) > gth_band_limit(grid.size)

    def occupation(start_law):
        arrow, exits = _resurrected(matrix, inside, start_law)
        if wide:  # fast mixing at large eta: (I - Q)^T y = r by dense LU, if it can be trusted
            block = arrow[1:, 1:]
            y = np.linalg.solve(np.eye(m) - block.T, start_law)
            # A wide band can also come from a strong drift by the box's edge at a small eta, where
            # the basin is left rarely: the LU's relative error grows like 1e-16 x the exit time.
            if y.min() >= -1e-12 * y.max() and y.sum() < TRUST_LU_EXIT_UP_TO:
                return np.maximum(y, 0.0), exits
        x = solvers.gth(arrow, band_low, band_up, arrow=True)
        return x[1:] / x[0], exits

    delta = np.zeros(m)
    delta[local_start] = 1.0
    visits, exits = occupation(delta)
    escape = float(visits.sum())
    q = visits / visits.sum()
    for _ in range(iterations if quasi else 0):
        visits, _ = occupation(q)
        new = visits / visits.sum()
        change = np.abs(new - q).sum()
        q = new
        if change < 1e-10:
            break
    full = np.zeros(grid.size)
    full[where] = q
    return BasinSolve(escape_time=escape, quasi_stationary=full, exit_rate=float(q @ exits))


def _basin_direct(matrix, inside, start, quasi: bool, step_size: float, iterations: int = 100):
    """`basin_2d` with the matrix P: one sparse LU of I - P_BB serves the mean exit times
    ((I - P_BB) m = 1) and the quasi-stationary law by inverse iteration, q <- q (I - P_BB)^-1
    normalised, whose fixed point is the left Perron vector of P_BB. Its rate is
    (1 - lambda_1) / (1 - lambda_2): a basin left rarely converges in a few iterations. Exit
    times the LU cannot be trusted with (below 1 or above `TRUST_LU_EXIT_UP_TO`) come from GTH
    on the resurrected chain, as in 1-D, on grids of up to `GTH_2D_CELLS` cells; beyond, an
    `InaccurateLawWarning`."""
    size = matrix.shape[0]
    where = np.flatnonzero(inside)
    if where.size == size:  # one basin: its quasi-stationary law is the stationary law
        pi, _ = solvers.pinned_lu(matrix, start, 0, 0, ordering=FILL_REDUCING, dense=size <= DENSE_2D_CELLS)
        pi = np.maximum(pi, 0.0)
        return BasinSolve(escape_time=math.inf, quasi_stationary=pi / pi.sum(), exit_rate=0.0)
    block = matrix[where][:, where]
    exits = np.maximum(1.0 - np.asarray(block.sum(axis=1)).ravel(), 0.0)
    solve = solvers.lu_solver(scipy.sparse.identity(where.size, format="csc") - block, ordering=FILL_REDUCING, dense=size <= DENSE_2D_CELLS)
    local_start = int(np.searchsorted(where, start))
    times = solve(np.ones(where.size))
    escape = float(times[local_start])
    if not (times.min() >= 1.0 - 1e-9 and times.max() < TRUST_LU_EXIT_UP_TO):
        if size <= GTH_2D_CELLS:  # GTH on the resurrected chain, as in 1-D (state 0: the exit, every cell reaches it)
            delta = np.zeros(where.size)
            delta[local_start] = 1.0
            arrow, _ = _resurrected(matrix.toarray(), inside, delta)
            x = solvers.gth(arrow, *bandwidths(block), arrow=True, overwrite=True)
            escape = float(x[1:].sum() / x[0])
        else:
            warnings.warn(
                f"step size {step_size:g}: mean exit times from {times.min():.3g} to {times.max():.3g} steps from a sparse LU, "
                f"whose relative error grows like 1e-16 x the exit time; GTH takes over on grids of up to {GTH_2D_CELLS} cells",
                solvers.InaccurateLawWarning,
                stacklevel=3,
            )
    q = np.full(where.size, 1.0 / where.size)
    for _ in range(iterations if quasi else 0):
        new = np.maximum(solve(q, trans=1), 0.0)
        new /= new.sum()
        change, q = np.abs(new - q).sum(), new
        if change < 1e-12:
            break
    full = np.zeros(size)
    full[where] = q
    return BasinSolve(escape_time=escape, quasi_stationary=full, exit_rate=float(q @ exits))


def basin_2d(grid, gradient, law, step_size, reach, inside, start, *, direct: bool, quasi: bool = True, iterations: int = 20000):
    """As `basin_1d` in 2-D. `direct` (the law at this step size was solved directly): by sparse LU
    of P (`_basin_direct`: accurate when the basin is left rarely); otherwise the escape time by
    GMRES on (I - P_BB) m = 1, and the quasi-stationary law by power iteration of
    q <- q P_BB / |q P_BB| (a chain that mixes)."""
    operator = kernel_2d.Operator2D(grid, gradient, law, step_size, reach)
    if direct:
        return _basin_direct(operator.sparse(), np.asarray(inside, bool), int(start), quasi, step_size)
    inside = jnp.asarray(inside.astype(np.float64))
    pull, push = jax.jit(operator.pull), jax.jit(operator.push)
    if float(inside.sum()) == grid.size:
        escape = math.inf
    else:
        mask = np.asarray(inside)
        times = _gmres(lambda y: y - mask * np.asarray(pull(jnp.asarray(mask * y))), mask, mask)
        escape = float(times[start])
    exits = 1.0 - np.asarray(inside * pull(inside))

    @jax.jit
    def iterate(q):
        def body(state):
            q, _, count = state
            new = inside * push(q)
            new = new / jnp.sum(new)
            return new, jnp.sum(jnp.abs(new - q)), count + 1

        return jax.lax.while_loop(lambda s: (s[1] > 1e-12) & (s[2] < iterations), body, (q, jnp.asarray(1.0), 0))[0]

    q = np.asarray(iterate(inside / jnp.sum(inside))) if quasi else np.asarray(inside / jnp.sum(inside))
    return BasinSolve(escape_time=escape, quasi_stationary=q, exit_rate=float(q @ exits))
