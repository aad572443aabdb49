"""The exact long-run law of constant-step SGD in 1-D and 2-D: `stationary_law` -> `StationaryLaw`.

SGD with additive noise, x_{k+1} = x_k - eta (grad f(x_k) + eps_{k+1}), is a Markov chain; for a
step size at which it is positive recurrent it has a stationary law pi_eta, and

- the last iterate's floor is E_pi |x - target|^2 (`mse`);
- the uniform average converges to E_pi[x] (= E_pi[v], v = x - eta grad f(x): E_pi grad f = 0);
  its error is |E_pi x - target|^2 + tr(Sigma_avg) / T for large T (`averaged_mse`), Sigma_avg =
  lim T Cov(x_avg) from the Poisson equation (`asymptotic_variance`);
- E_pi[grad F_eta(v)] = 0 with F_eta(v) = E f(v - eta eps) (Nitanda et al., AISTATS 2024), so
  E_pi x is argmin F_eta up to a term of order Cov_pi(v) times the third derivative of F_eta
  (Dieuleveut, Durmus and Bach 2020), plus the weights of the basins on multi-well landscapes.

The law is computed on a grid of cells (`theory.grid`, `theory.kernel_1d`, `theory.kernel_2d`: Ulam
discretization of the kernel) in float64. 1-D: the matrix, pi by GTH elimination on its band, or pinned LU where the
band is wide and the chain mixes (`theory.solve`). 2-D: the kernel as an operator
(move mass, split bilinearly, convolve by FFT); pi by sparse LU of its matrix, then GTH, where
that is small enough (small step sizes: nearly decomposable chains), else by GMRES. The step
sizes are solved side by side, one thread per core; each depends on its own step size alone, so
the bits do not depend on the number of threads.

Metastability. With several wells and small eta the chain is nearly decomposable: the escape
time from a well grows like exp(barrier / (eta sigma^2 / 2)) (e^160 steps on `sharp_flat` at
eta = 0.01). GTH keeps pi accurate there (every entry to a small relative error; Grassmann,
Taksar and Heyman 1985), but that law is physically meaningless for any run: no chain gets
there. `quasi_stationary` gives each basin's quasi-stationary law (the chain conditioned not to
have left the basin: left Perron vector of P restricted to the basin) with its exit rate, and
`relevant(minimizers, basin, n_steps)` says which law a run of n_steps started in that basin sees.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
from typing import Any, NamedTuple

import jax
import numpy as np
import scipy.special

from analysis.basins import assign_basins
from analysis.search import search_box
from theory import solve as chains
from theory.grid import Grid, make_grid, noise_law
from theory.kernel_2d import kernel_reach
from theory.law_checks import check_heavy_tails
from theory.linalg import NoStationaryLaw
from objectives import Objective, validation
from objectives.noise import Minibatch
from objectives.noise_laws import check_noise

__all__ = [
    "QuasiStationary", "StationaryLaw", "assemble_law", "check_horizons", "check_inputs", "check_resolution", "grid_gradient",
    "per_step_size", "stationary_law",
]

#: Default largest mass per step that the kernel may send out of the box under pi.
MAX_LEAK = 1e-6


class QuasiStationary(NamedTuple):
    """The quasi-stationary law of each basin (leading axes: step sizes S, basins K).

    - `density`: `(S, K) + grid shape`, zero outside the basin, summing to 1.
    - `mean`: `(S, K, d)`; `covariance`: `(S, K, d, d)`.
    - `exit_rate`: `(S, K)` the probability per step of leaving the basin from that law;
      1 / exit_rate is the mean exit time of a chain started from it.
    - `escape_time`: `(S, K)` the mean number of steps to reach another basin from the basin's minimum.
    """

    density: np.ndarray
    mean: np.ndarray
    covariance: np.ndarray
    exit_rate: np.ndarray
    escape_time: np.ndarray


@dataclasses.dataclass(frozen=True)
class StationaryLaw:
    """The stationary law of SGD on a grid, one per step size (NumPy arrays, leading axis S).

    - `step_sizes` `(S,)`; `grid`: the `theory.grid.Grid` (cells, centres, box).
    - `density` `(S,) + grid.shape`: the probability of each cell, summing to 1.
    - `mean` `(S, d)` = E_pi[x]; `covariance` `(S, d, d)`; `mean_v` `(S, d)` = E_pi[x - eta grad f(x)].
    - `asymptotic_variance` `(S, d, d)` = lim_T T Cov(x_avg) (Poisson equation; inf when metastable);
      `asymptotic_variance_v` the same for v_avg.
    - `relaxation_time` `(S,)` = 1 / (1 - |lambda_2|) steps; inf where the spectral gap is below
      1e-9 (metastable: see `escape_time`).
    - `discretization_error` `(S,)`: an estimate of the error of `mean`: 2 |mean - coarse.mean|,
      twice the change of the mean on a grid of half as many cells per axis (the change alone
      bounds the error when it falls at least linearly with the cell width; the factor 2 covers
      the irregular convergence of laws with jumps, e.g. uniform noise, whose support edges cut
      the two grids' cells differently), plus the solver's residual, plus the box's share:
      `out_of_box` x relaxation time x box diagonal.
    - `out_of_box` `(S,)`: the mass per step the kernel sends out of the box under pi (put back
      by renormalising the kernel's rows).
    - `method` `(S,)`: "gth", "lu" or "gmres"; `residual` `(S,)`: |pi - pi P|_1. An
      `InaccurateLawWarning` names the step sizes whose law lacks its accuracy guarantee (2-D
      only: too nearly decomposable for the LU on a grid too large for GTH, or GMRES short of
      its tolerance).
    - `coarse`: the same law on the coarser grid (compare any statistic with it), or `None`.
    - `cell_matrix`: for a law whose kernel is not additive noise's (`theory.state_law`), the
      function step size -> the cell chain's matrix P on `grid` (SciPy sparse), which the basin
      methods (`escape_time`, `quasi_stationary`, `relevant`) solve with; `None`: additive noise,
      the kernel of `theory.kernel_1d` / `theory.kernel_2d` for `noise`.
    """

    step_sizes: np.ndarray
    grid: Grid
    density: np.ndarray
    mean: np.ndarray
    covariance: np.ndarray
    mean_v: np.ndarray
    asymptotic_variance: np.ndarray
    asymptotic_variance_v: np.ndarray
    relaxation_time: np.ndarray
    discretization_error: np.ndarray
    out_of_box: np.ndarray
    method: tuple
    residual: np.ndarray
    coarse: Any
    objective: Objective = dataclasses.field(repr=False)
    noise: Any = dataclasses.field(repr=False)
    reach: Any = dataclasses.field(default=None, repr=False)
    cell_matrix: Any = dataclasses.field(default=None, repr=False)

    @property
    def dim(self) -> int:
        return self.grid.dim

    # ---- moments ---------------------------------------------------------------------------
    def expect(self, values) -> np.ndarray:
        """E_pi[values]: `values` on the cells, `(N, ...)` or per step size `(S, N, ...)`
        (N = grid.size, cells in `grid.points` order); returns `(S, ...)`."""
        values = np.asarray(values, dtype=np.float64)
        flat = self.density.reshape(len(self.step_sizes), -1)
        if values.shape[0] == flat.shape[1]:
            return np.einsum("sn,n...->s...", flat, values)
        return np.einsum("sn,sn...->s...", flat, values)

    def v_points(self) -> np.ndarray:
        """v = c - eta grad f(c) at every cell centre, `(S, N, d)`."""
        points = self.grid.points
        with jax.enable_x64(True):
            gradient = np.asarray(self.objective.grad(points), np.float64)
        return points[None] - self.step_sizes[:, None, None] * gradient[None]

    def _target(self, target) -> np.ndarray:
        try:
            t = np.asarray(target, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"target must be an array of numbers, got {target!r}") from None
        if not np.all(np.isfinite(t)):  # as analysis.errors: a NaN target is a mistake, not a NaN answer
            raise ValueError(f"target must be finite, got {t.tolist()}")
        s, d = len(self.step_sizes), self.dim
        if t.shape == (d,):
            return np.broadcast_to(t, (s, d))
        if t.shape != (s, d):
            raise ValueError(f"target must have shape ({d},) or (S, d) = ({s}, {d}), got {t.shape}")
        return t

    def mse(self, target) -> np.ndarray:
        """E_pi |x - target|^2 `(S,)`: the floor of the last iterate. `target` `(d,)` or `(S, d)`."""
        return np.trace(self.covariance, axis1=1, axis2=2) + self.averaged_bias(target)

    def averaged_bias(self, target) -> np.ndarray:
        """|E_pi x - target|^2 `(S,)`: the limit of the average's error."""
        return np.sum((self.mean - self._target(target)) ** 2, axis=1)

    def averaged_mse(self, target, n_steps) -> np.ndarray:
        """|E_pi x - target|^2 + tr(asymptotic_variance) / n_steps `(S,)`.

        The large-T approximation of E|x_avg - target|^2 for a run started at stationarity (the
        transient from a fixed start, of order |x_0 - E_pi x|^2 / (eta lambda T)^2, is excluded).
        """
        n_steps = validation.positive_int("n_steps", n_steps)  # -10 gave a negative MSE, 0 inf, nan nan
        return self.averaged_bias(target) + np.trace(self.asymptotic_variance, axis1=1, axis2=2) / float(n_steps)

    # ---- basins ----------------------------------------------------------------------------
    def _basins(self, minimizers):
        points = np.asarray(getattr(minimizers, "points", minimizers), dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != self.dim or points.shape[0] < 1:
            raise ValueError(f"minimizers must be analysis.Minima or an array (n_basins, {self.dim}), got shape {points.shape}")
        outside = ~np.all((points >= self.grid.lower) & (points <= self.grid.upper), axis=1)
        if np.any(outside):  # NaN too: a NaN distance won every argmin, and a point outside was clipped to the edge cell
            k = int(np.flatnonzero(outside)[0])
            raise ValueError(
                f"minimizers[{k}] = {points[k].tolist()} must be a finite point inside the law's box "
                f"lower={self.grid.lower.tolist()}, upper={self.grid.upper.tolist()}"
            )
        labels = assign_basins(self.grid.points, points, self.objective, method="descent")
        return points, labels

    def basin_occupancy(self, minimizers) -> np.ndarray:
        """The stationary mass of each basin `(S, n_basins)` (basins of gradient descent on f,
        in the order of `minimizers`: `analysis.Minima` or `(n_basins, d)`)."""
        points, labels = self._basins(minimizers)
        flat = self.density.reshape(len(self.step_sizes), -1)
        return np.stack([flat[:, labels == k].sum(axis=1) for k in range(points.shape[0])], axis=1)

    def _per_basin(self, points, labels, basin, to=None, quasi=True):
        start = int(self.grid.cell_of(points[basin]))
        inside = labels == basin
        if to is not None:  # everything but the cell of minimizer `to`
            inside = np.ones(self.grid.size, bool)
            inside[int(self.grid.cell_of(points[to]))] = False
        inside[start] = True
        if self.cell_matrix is not None:  # the law's own kernel (state-dependent noise)
            return per_step_size(lambda s, eta: chains.basin_matrix(self.grid, self.cell_matrix(eta), eta, inside, start, quasi=quasi), self.step_sizes)
        gradient, law = grid_gradient(self.objective, self.grid), noise_law(self.noise, self.dim)
        if self.dim == 1:
            return per_step_size(lambda s, eta: chains.basin_1d(self.grid, gradient, law, eta, inside, start, quasi=quasi), self.step_sizes)
        return per_step_size(
            lambda s, eta: chains.basin_2d(self.grid, gradient, law, eta, self.reach, inside, start, direct=self.method[s] != "gmres", quasi=quasi), self.step_sizes
        )

    def _check_basin(self, points, basin) -> int:
        if isinstance(basin, bool) or not isinstance(basin, (int, np.integer)) or not 0 <= basin < points.shape[0]:
            raise ValueError(f"basin must be an index into minimizers, 0..{points.shape[0] - 1}, got {basin!r}")
        return int(basin)

    def escape_time(self, minimizers, basin: int, to: int | None = None) -> np.ndarray:
        """`(S,)` mean number of steps for the cell chain started in the cell of
        `minimizers[basin]` to reach a cell of another basin (mean first-passage time; inf with
        one basin), or with `to`, the cell of `minimizers[to]` (a transition time: recrossings
        of the barrier do not end it). In 1-D from GTH on the resurrected chain (accurate for
        e^160 steps); in 2-D from GMRES."""
        points, labels = self._basins(minimizers)
        basin = self._check_basin(points, basin)
        if to is not None:
            to = self._check_basin(points, to)
            if to == basin:
                raise ValueError(f"to must be another basin than basin={basin} (the chain starts there), got to={to}")
        return np.array([r.escape_time for r in self._per_basin(points, labels, basin, to, quasi=False)])

    def quasi_stationary(self, minimizers) -> QuasiStationary:
        """The quasi-stationary law of every basin, with exit rates and escape times."""
        points, labels = self._basins(minimizers)
        cells = self.grid.points
        runs = [self._per_basin(points, labels, k) for k in range(points.shape[0])]
        density = np.array([[r.quasi_stationary for r in run] for run in runs]).swapaxes(0, 1)
        mean = density @ cells
        centred = cells[None, None] - mean[:, :, None]
        covariance = np.einsum("skn,skna,sknb->skab", density, centred, centred)
        return QuasiStationary(
            density=density.reshape(density.shape[:2] + self.grid.shape),
            mean=mean,
            covariance=covariance,
            exit_rate=np.array([[r.exit_rate for r in run] for run in runs]).T,
            escape_time=np.array([[r.escape_time for r in run] for run in runs]).T,
        )

    def relevant(self, minimizers, basin: int, n_steps) -> np.ndarray:
        """Which law a run of `n_steps` started in `basin` sees at its end, per step size `(S,)`
        (or `(H, S)` for a sequence of H horizons `n_steps`, sharing one escape-time solve):

        - "stationary" when n_steps >= 10 x the relaxation time (finite);
        - "quasi_stationary" when n_steps <= escape_time / 10 (the chain has left the basin with
          probability about n_steps / escape_time <= 0.1): use `quasi_stationary(...)`;
        - "neither" in between (the run sees a mixture still moving between basins).

        Assumes n_steps is well beyond the relaxation time inside the basin (a few 1 / (eta h)).
        """
        horizons = check_horizons(n_steps)
        escape = self.escape_time(minimizers, basin)
        answer = np.full((len(horizons), len(self.step_sizes)), "neither", dtype=object)
        for h, t in enumerate(horizons):
            answer[h, t <= escape / 10] = "quasi_stationary"
            answer[h, np.isfinite(self.relaxation_time) & (t >= 10 * self.relaxation_time)] = "stationary"
        return answer if isinstance(n_steps, (list, tuple, np.ndarray)) else answer[0]

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """`(S, n, d)` draws from the law: a cell with probability `density`, then a uniform point in it."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        rng = np.random.default_rng(seed)
        flat = self.density.reshape(len(self.step_sizes), -1)
        points = self.grid.points
        out = np.empty((flat.shape[0], n, self.dim))
        for s, p in enumerate(flat):
            cells = rng.choice(p.size, size=n, p=p / p.sum())
            out[s] = points[cells] + (rng.random((n, self.dim)) - 0.5) * self.grid.widths
        return out


# ---- construction ---------------------------------------------------------------------------


def grid_gradient(objective, grid) -> np.ndarray:
    """grad f at every cell centre of `grid`, `(N, d)` in float64 (computed under x64)."""
    with jax.enable_x64(True):
        return np.asarray(objective.grad(grid.points), dtype=np.float64)


def check_horizons(n_steps) -> list:
    """`n_steps` (an integer >= 1 or a sequence of them) as a list, in the order given; anything
    else is a ValueError naming n_steps."""
    horizons = list(n_steps) if isinstance(n_steps, (list, tuple, np.ndarray)) else [n_steps]
    if not horizons:
        raise ValueError(f"n_steps must be an integer >= 1 or a sequence of them, got {n_steps!r}")
    for t in horizons:
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 1:
            raise ValueError(f"n_steps must be an integer >= 1 or a sequence of them, got {n_steps!r}")
    return horizons


def check_inputs(f, noise, step_sizes, n_grid, max_leak):
    """The checks every law on a grid makes of its arguments (a ValueError naming the argument),
    and what they give: (the additive noise's `noise_law`, the step sizes `(S,)`, the cells per
    axis, default 2001 in 1-D and 101 in 2-D)."""
    if not isinstance(f, Objective):
        raise ValueError(f"f must be an objectives.Objective, got {type(f).__name__}")
    if f.dim not in (1, 2):
        raise ValueError(f"f must have dimension 1 or 2 (the law lives on a grid), got {f.name!r} of dim {f.dim}")
    if isinstance(noise, Minibatch):
        raise ValueError(f"noise must be an additive noise model (gaussian, uniform, rademacher, student_t), got {noise!r}: minibatch noise depends on x")
    check_noise(noise, f.dim)
    law = noise_law(noise, f.dim)
    eigenvalues = np.linalg.eigvalsh(law.covariance)
    if not eigenvalues.min() > 0:
        raise ValueError(f"noise must have a positive-definite covariance on the grid, got {law.covariance.tolist()}")
    eta = validation.step_sizes("step_sizes", step_sizes)
    n = validation.integer("n_grid", (2001 if f.dim == 1 else 101) if n_grid is None else n_grid, lo=16, note="cells per axis")
    validation.real("max_leak", max_leak, lo=0.0, hi=1.0, open_lo=True, open_hi=True)
    return law, eta, n


def _expanding(grid, gradient, eta) -> bool:
    """Whether the noiseless step sends a cell on the box's edge out of the box (a transient sign)."""
    targets = grid.points - eta * gradient
    index = np.stack(np.unravel_index(np.arange(grid.size), grid.shape), axis=-1)
    edge = np.any((index == 0) | (index == grid.n_cells - 1), axis=1)
    outside = np.any((targets < grid.lower) | (targets > grid.upper), axis=1)
    return bool(np.any(edge & outside))


def _workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (not Linux)
        return os.cpu_count() or 1


def per_step_size(solve_one, eta) -> list:
    """`[solve_one(s, eta[s]) for s in range(S)]`, the step sizes side by side on a thread pool.

    The work is SciPy's sparse LU, LAPACK, ARPACK, sparse products and special functions, which
    release the GIL (1.9x on 2 cores). Each step size's result depends on it alone, so they are
    the same in any order and with any number of threads. Largest step sizes first: their rows
    are the widest and their solves the longest, so the pool ends evenly. The x64 flag is
    thread-local: each worker sets it."""

    def run(s):
        with jax.enable_x64(True):
            return solve_one(s, float(eta[s]))

    order = np.argsort(-np.asarray(eta), kind="stable")
    workers = min(_workers(), len(order))
    if workers <= 1:
        return [run(s) for s in range(len(eta))]
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="stationary_law") as pool:
        futures = {int(s): pool.submit(run, int(s)) for s in order}
        try:  # the first failure in step-size order is raised, whatever the threads' timing
            return [futures[s].result() for s in range(len(eta))]
        except BaseException:  # an error or Ctrl-C: drop the step sizes not started
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _solve(f, grid, law, eta, gradient, reach, *, like=None, max_leak=None):
    """One `theory.solve.StepSolve` per step size; `like`: the fine grid's results (for the coarse
    grid); `max_leak`: a step size whose pi leaks more is returned as soon as pi is known
    (`theory.solve.refused`), for the caller to refuse without the Poisson solves."""
    with jax.enable_x64(True):
        pin = int(np.argmin(np.asarray(f.value(grid.points))))  # the lowest cell holds mass
    solve_one = chains.solve_1d if grid.dim == 1 else functools.partial(chains.solve_2d, reach=reach)
    return per_step_size(lambda s, e: solve_one(grid, gradient, law, e, pin=pin, like=None if like is None else like[s], max_leak=max_leak), eta)


def assemble_law(f, noise, grid, eta, results, coarse, reach, *, cell_matrix=None) -> StationaryLaw:
    """The `StationaryLaw` of the per-step-size `results` (`theory.solve.StepSolve`, S of them) on
    `grid`, with its `coarse` law (or `None`) for `discretization_error`; `reach`: the 2-D
    kernel's reach (additive noise) or `None`; `cell_matrix`: see `StationaryLaw`."""
    stack = lambda key: np.array([getattr(r, key) for r in results])  # noqa: E731
    d = grid.dim
    asymptotic = stack("asymptotic")
    mean = stack("mean")
    residual = stack("residual")
    error = np.full(eta.shape, np.nan)
    if coarse is not None:
        # Grid: the change on the coarse grid. Box: the leaked mass per step, times how long it
        # would stay out (the relaxation time), times how far it could sit (the box diagonal).
        stay = np.where(np.isfinite(stack("relaxation_time")), stack("relaxation_time"), 1.0)
        diagonal = float(np.linalg.norm(grid.upper - grid.lower))
        error = 2.0 * np.sqrt(np.sum((mean - coarse.mean) ** 2, axis=1)) + residual + stack("leak") * stay * diagonal
    return StationaryLaw(
        step_sizes=eta, grid=grid, density=stack("density").reshape((eta.size,) + grid.shape), mean=mean,
        covariance=stack("covariance"), mean_v=stack("mean_v"), asymptotic_variance=asymptotic[:, :d, :d],
        asymptotic_variance_v=asymptotic[:, d:, d:], relaxation_time=stack("relaxation_time"),
        discretization_error=error, out_of_box=stack("leak"), method=tuple(r.method for r in results),
        residual=residual, coarse=coarse, objective=f, noise=noise, reach=reach, cell_matrix=cell_matrix,
    )


class _CutOff(ValueError):
    """The box cuts off more than `max_leak` of mass per step (not a transient chain)."""


#: A default box (f's search box) that cuts off mass grows this many times, by half its width on
#: each side, before the law is refused.
GROW_DEFAULT_BOX = 3


#: The widest cell, in units of one step's noise eta sigma_i on its axis, that the law accepts:
#: beyond, the kernel nearly keeps each cell's mass in place and ARPACK fails ("Could not build
#: an Arnoldi factorization", LAPACK's "DLASCL illegal value") or the chain comes out reducible.
#: Cells wider than eta sigma already bias the law (the floor of a quadratic 32% high at 2 eta
#: sigma); the solver tests use such grids on purpose, so the refusal sits at the breakdown.
COARSEST_CELL = 10.0


def check_resolution(grid, law, eta) -> None:
    """Refuse a grid whose cells are wider than COARSEST_CELL times one step's noise (a
    ValueError naming n_grid, the step sizes and an n_grid that would serve)."""
    sigma = np.sqrt(np.diag(law.covariance))
    ratio = grid.widths[None, :] / (eta[:, None] * sigma[None, :])  # (S, d)
    bad = np.any(ratio > COARSEST_CELL, axis=1)
    if np.any(bad):
        needed = int(np.ceil(np.max((grid.upper - grid.lower)[None, :] / (eta[bad, None] * sigma[None, :]))))
        raise ValueError(
            f"n_grid={grid.n_cells} cells per axis of width {grid.widths.tolist()} on "
            f"bounds=({grid.lower.tolist()}, {grid.upper.tolist()}) do not resolve one step's noise at step_sizes "
            f"{eta[bad].tolist()} (eta sigma = {(eta[bad, None] * sigma[None, :]).min():.3g}; cells wider than "
            f"{COARSEST_CELL:g} eta sigma are refused): n_grid >= {needed} would serve, with cells at most eta sigma wide "
            "(or a smaller box, or larger step sizes)"
        )


def _check_gradient(f, grid, gradient) -> None:
    """Refuse a gradient the kernel cannot use: not finite on some cell (its mass would be
    reported as leaking out of the box), or zero on every cell (SGD is then a random walk with
    no stationary law, and no box is wide enough)."""
    box = f"bounds=({grid.lower.tolist()}, {grid.upper.tolist()})"
    with jax.enable_x64(True):
        values = np.asarray(f.value(grid.points), np.float64)
    for name, bad in (("gradient", ~np.all(np.isfinite(gradient), axis=1)), ("value", ~np.isfinite(values))):
        if np.any(bad):
            first = grid.points[int(np.flatnonzero(bad)[0])]
            raise ValueError(
                f"f's {name} is not finite at {int(bad.sum())} of the {grid.size} cell centres of {box} (first at x = "
                f"{first.tolist()}): the law needs f and grad f finite on the whole box; fix f or narrow bounds"
            )
    if np.all(gradient == 0.0):
        raise ValueError(
            f"f ({f.name!r}) is flat on {box} (grad f = 0 at every cell centre): SGD is then a random walk with no "
            "stationary law, in any box"
        )


def _solve_in_box(f, law, eta, n, lower, upper, max_leak):
    """(grid, gradient, reach, results) of the fine grid; `ValueError` for a transient chain or
    no law, `_CutOff` for a box that cuts off mass."""
    grid = make_grid(lower, upper, n)
    check_resolution(grid, law, eta)
    gradient = grid_gradient(f, grid)
    _check_gradient(f, grid, gradient)
    divergent = [float(e) for e in eta if _expanding(grid, gradient, e)]
    reach = None
    if f.dim == 2:
        reach = tuple(int(r) for r in np.max([kernel_reach(law, float(e), grid.widths, n) for e in eta], axis=0))
    try:
        results = _solve(f, grid, law, eta, gradient, reach, max_leak=max_leak)  # a leaking box is refused before the Poisson solves
    except NoStationaryLaw as error:
        bounded = " (noise of bounded reach, as uniform or Rademacher, may not cross between basins: then each basin is a closed class with its own law, and the start decides)" if float(law.standard.upper_tail(50.0, law.df, xp=np, special=scipy.special)) == 0.0 else ""
        raise ValueError(
            f"step_sizes {divergent or eta.tolist()} give no unique stationary law in bounds={lower.tolist()}, {upper.tolist()}: "
            f"{error}{bounded}"
        ) from None
    leaks = np.array([r.leak for r in results])
    bad = leaks > max_leak
    if np.any(bad):
        transient = [e for e, b in zip(eta.tolist(), bad) if b and e in divergent]
        if transient:
            worst = leaks[bad].max()
            raise ValueError(
                f"step_sizes {transient} make the chain transient: the noiseless step throws the box's edge out "
                f"(unstable there), and the law restricted to bounds={lower.tolist()}, {upper.tolist()} leaks {worst:.3g} "
                f"per step out of it, so no stationary law exists in any box. Chains started inside may still stay for "
                f"many steps (metastable: of order 1/leak = {1.0 / worst:.3g} steps once they reach the box's edge), "
                "and simulations of that length see no divergence; the law needs smaller step sizes"
            )
        raise _CutOff(
            f"bounds=({lower.tolist()}, {upper.tolist()}) cut off mass: under the law the kernel sends "
            f"{leaks[bad].tolist()} per step out of the box at step sizes {eta[bad].tolist()} (allowed: "
            f"max_leak={max_leak:g}); widen bounds"
        )
    return grid, gradient, reach, results


def stationary_law(f: Objective, noise, step_sizes, *, bounds=None, n_grid: int | None = None, max_leak: float = MAX_LEAK) -> StationaryLaw:
    """The stationary law of SGD with additive noise on `f` (dim 1 or 2), for each step size.

    The kernel of x' = x - eta grad f(x) - eta eps is discretized on `n_grid` cells per axis over
    the box (see `theory.grid`), solved per step size (see the module docstring), and
    solved again on half as many cells per axis for `discretization_error` (`law.coarse`).

    **Arguments:**

    - `f`: an `objectives.Objective` of dimension 1 or 2.
    - `noise`: an additive model from `simulate.noise` (Gaussian isotropic or full covariance,
      uniform, Rademacher, Student-t); not minibatch noise.
    - `step_sizes`: eta > 0, a number or a 1-D sequence (S values).
    - `bounds`: `(lower, upper)` the box, numbers or `(d,)` vectors; default f's search box
      (`analysis.minimizers`'s), grown by half its width on each side (up to `GROW_DEFAULT_BOX`
      times) while it cuts off more than `max_leak` of mass per step.
    - `n_grid`: cells per axis (default 2001 in 1-D, 101 in 2-D); each cell should be at most
      eta sigma wide on its axis for every step size (the law is biased beyond; refused beyond
      `COARSEST_CELL` eta sigma, with an n_grid that serves).
    - `max_leak`: the largest mass per step the kernel may send out of the box under pi
      (default 1e-6).

    **Returns:** a `StationaryLaw`.

    **Raises:** `ValueError` naming the argument for a bad input: dimension above 2, minibatch
    noise, a grid too coarse for a step size's noise, f or grad f not finite on the box, f flat
    on the whole box, a step size at which the chain is transient (divergent: the noiseless step throws
    the box's edge cells out and they leak more than `max_leak`), bounds that cut off more
    than `max_leak` of mass per step, or Student-t noise whose variance the box truncates by
    more than `MAX_LOST_VARIANCE` (`check_heavy_tails`).
    """
    law, eta, n = check_inputs(f, noise, step_sizes, n_grid, max_leak)
    lower, upper = search_box(f, bounds)
    for attempt in range(GROW_DEFAULT_BOX + 1):
        try:
            grid, gradient, reach, results = _solve_in_box(f, law, eta, n, lower, upper, max_leak)
            break
        except _CutOff:
            if bounds is not None or attempt == GROW_DEFAULT_BOX:
                raise
            # The default box is the minima's: grow it (half its width on each side) until it holds the law.
            lower, upper = lower - 0.5 * (upper - lower), upper + 0.5 * (upper - lower)
    check_heavy_tails(law, eta, lower, upper, np.array([r.mean for r in results]))
    coarse_grid = make_grid(lower, upper, n // 2)
    coarse_reach = None
    if f.dim == 2:
        coarse_reach = tuple(int(r) for r in np.max([kernel_reach(law, float(e), coarse_grid.widths, coarse_grid.n_cells) for e in eta], axis=0))
    try:
        coarse_results = _solve(f, coarse_grid, law, eta, grid_gradient(f, coarse_grid), coarse_reach, like=results)
    except NoStationaryLaw as error:
        raise ValueError(
            f"step_sizes {eta.tolist()}: the coarse grid of the error estimate (n_grid // 2 = {coarse_grid.n_cells} cells "
            f"per axis in bounds={lower.tolist()}, {upper.tolist()}) has no stationary law: {error}; a finer n_grid helps"
        ) from None
    coarse = assemble_law(f, noise, coarse_grid, eta, coarse_results, None, coarse_reach)
    return assemble_law(f, noise, grid, eta, results, coarse, reach)
