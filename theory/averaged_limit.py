"""What the averaged iterate converges to: E_pi x against theta*, its first-order expansion and v*(eta).

Constant-step SGD with additive noise of covariance Sigma has, near a strongly convex minimizer
theta* (H = Hess f(theta*)), a stationary mean (Dieuleveut, Durmus and Bach, Ann. Statist. 2020,
Thm 4)

    E_pi x = theta* + eta Delta + O(eta^2),    Delta = -(1/2) H^{-1} D^3f(theta*)[A],    H A + A H = Sigma,

with D^3f[A]_i = sum_jk d^3 f / dx_i dx_j dx_k A_jk (A is the leading term of Cov_pi(x) / eta).
In 1-D, Delta = -sigma^2 f''' / (4 f''^2). The uniform average converges to E_pi x, so where
f''' != 0 it sits O(eta) from theta*, and also O(eta) from v*(eta) = argmin F_eta (which moves only
O(eta^2): F_eta = f + (eta^2 / 2) tr(Sigma H) + ...). Richardson-Romberg, 2 xbar(eta) - xbar(2 eta),
removes the first-order term: theta* + O(eta^2).

The free-energy reading (1-D): argmin of f + (eta sigma^2 / 4) log f'' solves
f' + (eta sigma^2 / 4) f''' / f'' = 0, i.e. theta* - eta sigma^2 f''' / (4 f''^2) + O(eta^2) =
theta* + eta Delta + O(eta^2): it agrees with E_pi x to first order (`free_energy_solution`).

`averaged_limit` puts these side by side with the exact law (`stationary_law`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from analysis.solutions import smoothed_solution
from objectives import Objective, validation
from objectives.noise_laws import check_noise
from theory.stationary import stationary_law

__all__ = ["AveragedLimit", "averaged_limit", "averaged_limit_expansion", "free_energy_solution", "grid_extrapolated_mean"]


def _derivatives(f: Objective, point: np.ndarray):
    """(H `(d, d)`, T `(d, d, d)` the third derivatives) at `point`, float64."""
    with jax.enable_x64(True):
        # One compiled program: run op by op, the nested derivatives took 12 s on a loaded machine.
        both = jax.jit(lambda x: (f.point_hessian(x), jax.jacfwd(f.point_hessian)(x)))
        hessian, third = both(jnp.asarray(point, jnp.float64))
    return np.asarray(hessian, np.float64), np.asarray(third, np.float64)


def _check_point(f, minimizer, name="minimizer") -> np.ndarray:
    point = np.asarray(getattr(minimizer, "points", minimizer), dtype=np.float64)
    if point.ndim == 2 and point.shape[0] == 1:
        point = point[0]
    if point.shape != (f.dim,) or not np.all(np.isfinite(point)):
        raise ValueError(f"{name} must be a finite point of shape ({f.dim},), got shape {point.shape}")
    return point


def averaged_limit_expansion(f: Objective, noise, minimizer) -> np.ndarray:
    """Delta `(d,)`: E_pi x = theta* + eta Delta + O(eta^2) (module docstring), in any dimension.

    **Arguments:** `f` an `objectives.Objective` (twice differentiable, third derivatives by
    autodiff); `noise` an additive `simulate.noise` model (its covariance Sigma); `minimizer`
    theta* `(d,)` (a point where grad f = 0 and the Hessian is positive definite).

    **Returns:** Delta = -(1/2) H^{-1} D^3f(theta*)[A], A solving H A + A H = Sigma (a Lyapunov
    equation, `scipy.linalg.solve_continuous_lyapunov`).
    """
    if not isinstance(f, Objective):
        raise ValueError(f"f must be an objectives.Objective, got {type(f).__name__}")
    point = _check_point(f, minimizer)
    check_noise(noise, f.dim)
    sigma = np.asarray(noise.covariance(f.dim), dtype=np.float64)
    hessian, third = _derivatives(f, point)
    eigenvalues = np.linalg.eigvalsh(0.5 * (hessian + hessian.T))
    if not eigenvalues.min() > 0:
        raise ValueError(f"minimizer must have a positive-definite Hessian, got eigenvalues {eigenvalues.tolist()} at {point.tolist()}")
    a = scipy.linalg.solve_continuous_lyapunov(hessian, sigma)  # H A + A H^T = Sigma
    return -0.5 * np.linalg.solve(hessian, np.einsum("ijk,jk->i", third, a))


def free_energy_solution(f: Objective, noise, step_sizes, minimizer, *, n_iterations: int = 50) -> np.ndarray:
    """`(S,)`: the minimizer of f + (eta sigma^2 / 4) log f'' next to `minimizer` (1-D), by Newton
    from theta*. Agrees with E_pi x to first order in eta (module docstring)."""
    if f.dim != 1:
        raise ValueError(f"f must have dimension 1 for the free-energy reading, got {f.dim}")
    point = _check_point(f, minimizer)
    eta = validation.step_sizes("step_sizes", step_sizes)
    check_noise(noise, 1)
    variance = float(np.asarray(noise.covariance(1))[0, 0])

    def free_energy(x, temperature):
        curvature = f.point_hessian(x)[0, 0]
        return f.point_value(x) + temperature * jnp.log(curvature)

    grad = jax.grad(free_energy)
    curvature = jax.grad(lambda x, t: grad(x, t)[0])

    @jax.jit
    def newton(x, temperature):
        return jax.lax.fori_loop(0, n_iterations, lambda _, y: y - grad(y, temperature) / curvature(y, temperature), x)

    with jax.enable_x64(True):
        start = jnp.asarray(point, jnp.float64)
        out = [float(newton(start, jnp.float64(float(e) * variance / 4.0))[0]) for e in eta]
    return np.asarray(out)


def grid_extrapolated_mean(laws) -> tuple[np.ndarray, np.ndarray]:
    """E_pi x extrapolated to cells of width 0 from `laws` (`StationaryLaw`s of the same step
    sizes on the same box, on two or three grids of different cell counts): `(mean (S, d),
    change (S, d))`, the change being the extrapolated mean minus the finest grid's.

    Why: the cell chain rounds every step to a centre, which moves E_pi x by c2 h^2 + c4 h^4 + ...
    (h the cell width). Measured on e^{2y} - 2y in 1-D: the error is c2 h^2 to 0.1% for every h
    below 1.3 eta sigma, with c2 of order h^2 / eta, so relative to the first-order shift
    eta Delta it is of order h^2 / eta^2: in 2-D a grid fine enough for a 3% slope at small eta is
    out of reach, while the error itself is regular. Richardson's extrapolation in h^2: with two
    grids m0 = (h2^2 m1 - h1^2 m2) / (h2^2 - h1^2) removes c2; with three, m0 + c2 h^2 + c4 h^4
    through the three means removes c4 too. Grids whose cells are wider than about eta sigma are
    outside this regime: the extrapolation is then no better than the finest grid.
    """
    laws = list(laws)
    if len(laws) not in (2, 3):
        raise ValueError(f"laws must be two or three StationaryLaw on grids of different widths, got {len(laws)}")
    first = laws[0]
    for law in laws[1:]:
        same_box = np.array_equal(law.grid.lower, first.grid.lower) and np.array_equal(law.grid.upper, first.grid.upper)
        if not (np.array_equal(law.step_sizes, first.step_sizes) and same_box):
            raise ValueError("laws must share their step sizes and box (bounds), differing only in n_grid")
    widths = np.array([law.grid.widths[0] for law in laws])
    if len(set(widths.tolist())) != len(laws):
        raise ValueError(f"laws must have different cell counts, got cell widths {widths.tolist()}")
    design = np.stack([np.ones_like(widths)] + [widths ** (2 * k) for k in range(1, len(laws))], axis=1)
    means = np.stack([law.mean for law in laws])  # (G, S, d)
    coefficients = np.linalg.solve(design, means.reshape(len(laws), -1))
    extrapolated = coefficients[0].reshape(first.mean.shape)
    return extrapolated, extrapolated - means[int(np.argmin(widths))]


class AveragedLimit(NamedTuple):
    """E_pi x at each step size beside its expansion and the targets (leading axis S).

    - `step_sizes` `(S,)`; `mean` `(S, d)` = E_pi x (the average's limit); `grid_error` `(S,)`
      the law's `discretization_error`.
    - `minimizer` theta* `(d,)`; `delta` `(d,)`; `first_order` `(S, d)` = theta* + eta Delta;
      `remainder` `(S, d)` = E_pi x - theta* - eta Delta (O(eta^2)).
    - `to_minimizer` `(S,)` = |E_pi x - theta*|; `smoothed` `(S, d)` = v*(eta) = argmin F_eta,
      `to_smoothed` `(S,)` = |E_pi x - v*(eta)|.
    - `richardson` `(S, d)` = 2 E_pi x(eta) - E_pi x(2 eta); `richardson_bias` `(S,)` = its
      distance to theta* (O(eta^2)).
    """

    step_sizes: np.ndarray
    mean: np.ndarray
    grid_error: np.ndarray
    minimizer: np.ndarray
    delta: np.ndarray
    first_order: np.ndarray
    remainder: np.ndarray
    to_minimizer: np.ndarray
    smoothed: np.ndarray
    to_smoothed: np.ndarray
    richardson: np.ndarray
    richardson_bias: np.ndarray


def averaged_limit(f: Objective, noise, step_sizes, *, minimizer, bounds=None, n_grid: int | None = None, smoothed_bounds=None) -> AveragedLimit:
    """The decomposition of E_pi x (the exact law at eta and 2 eta) into theta*, eta Delta and the
    remainder, with its distances to theta* and to v*(eta), and Richardson-Romberg.

    **Arguments:** `f`, `noise`, `step_sizes`, `bounds`, `n_grid` as `stationary_law`;
    `minimizer` theta* `(d,)`; `smoothed_bounds` the box in which v*(eta) is searched (default
    f's search box, else `bounds`).

    **Returns:** an `AveragedLimit`.
    """
    eta = validation.step_sizes("step_sizes", step_sizes)
    point = _check_point(f, minimizer)
    delta = averaged_limit_expansion(f, noise, point)
    both, where = np.unique(np.concatenate([eta, 2 * eta]), return_inverse=True)
    law = stationary_law(f, noise, both, bounds=bounds, n_grid=n_grid)
    mean, doubled = law.mean[where[: eta.size]], law.mean[where[eta.size :]]
    first_order = point + eta[:, None] * delta
    box = smoothed_bounds if smoothed_bounds is not None else (None if f.search_box is not None else bounds)
    smoothed = np.asarray(smoothed_solution(f, noise, eta, box), dtype=np.float64).reshape(eta.size, f.dim)
    richardson = 2 * mean - doubled
    return AveragedLimit(
        step_sizes=eta, mean=mean, grid_error=law.discretization_error[where[: eta.size]], minimizer=point, delta=delta,
        first_order=first_order, remainder=mean - first_order, to_minimizer=np.linalg.norm(mean - point, axis=1),
        smoothed=smoothed, to_smoothed=np.linalg.norm(mean - smoothed, axis=1), richardson=richardson,
        richardson_bias=np.linalg.norm(richardson - point, axis=1),
    )
