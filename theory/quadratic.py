"""Exact laws of SGD estimators on a quadratic with Gaussian noise, and their asymptotic shapes.

For f(x) = 1/2 (x - c)^T H (x - c) and eps_k ~ N(0, Sigma) i.i.d., the error e_k = x_k - c of
SGD with step size eta is a linear Gaussian recursion

    e_k = A e_{k-1} - eta eps_k,        A = I - eta H,

so every linear functional of the path is Gaussian with closed-form moments. For weights w_k
(k = 1..T) the estimator e_w = sum_k w_k e_k has

    E e_w   = sum_k w_k A^k e_0,
    Cov     = eta^2 sum_{j=1..T} C_j Sigma C_j^T,      C_j = sum_{k=j..T} w_k A^(k-j).

The last iterate (w = delta_T), the uniform average (w = 1/T) and the tail average over the last
m iterates (w = 1/m on k > T - m) have C_j in closed form. Working in the eigenbasis of H (A is
diagonal there, entries lambda = 1 - eta h), the sums over j are evaluated exactly, in float64,
for any T; v_k - c = A e_k gives the v estimators. The cross-covariances between estimators
are exact too, which is what `simulate.run(method="exact")`-style sampling needs.

The formulas assume exactly this model: a quadratic (any symmetric PSD H), additive Gaussian
noise (any covariance, not necessarily commuting with H), a deterministic x_0. They hold for
every eta, including the unstable range |1 - eta h| > 1, where they describe the divergence.

Asymptotic shapes (what the notebooks and tests check against):

- last iterate: E||x_T - c||^2 -> tr S (`last_iterate_floor`), S the Lyapunov solution; for small
  eta, tr S = (eta/2) tr(H^-1 Sigma) + O(eta^2): a floor of order eta that no T removes. Needs
  0 < eta h < 2 for every curvature h.
- uniform average: E||x_avg - c||^2 = tr(H^-1 Sigma H^-1)/T + O(1/(eta h T^2)) + O(|e_0|^2/(eta h T)^2)
  (`averaged_mse_asymptotic`, Polyak and Juditsky 1992): the eta-free 1/T rate, reached once
  T >> 1/(eta h_min).
- beyond quadratics (no closed form here): constant-step SGD is a Markov chain whose stationary
  mean differs from argmin f by O(eta) (Dieuleveut, Durmus and Bach 2020, Ann. Statist.), so the
  averaged error falls like 1/T down to a squared bias of order eta^2, against the last iterate's
  O(eta) floor. The smoothing view names that biased point: to first order it is
  argmin F_eta = argmin E f(. - eta eps) (Nitanda et al. 2024), which the library computes
  exactly (`analysis.smoothed_solution`) and the simulations compare against. It stops holding
  when F_eta has several minima on the scale of the chains' spread (notebook 05).

References: Polyak and Juditsky (1992) for averaging on quadratics; Dieuleveut, Durmus and
Bach (2020, Ann. Statist.) for the bias of averaged constant-step SGD beyond quadratics.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from simulate.result import ESTIMATORS  # the laws are over the estimators a run produces

__all__ = [
    "ESTIMATORS",
    "GaussianLaw",
    "quadratic_law",
    "quadratic_mse",
    "quadratic_mse_curves",
    "stationary_covariance",
    "last_iterate_floor",
    "averaged_mse_asymptotic",
]

# Sum over j in chunks so memory stays O(chunk * dim) for any horizon.
_CHUNK = 1 << 15


@dataclasses.dataclass(frozen=True)
class GaussianLaw:
    """The joint Gaussian law of several `dim`-vectors (the estimators of one run).

    - `names`: the estimator names, in order.
    - `mean`: `(n, dim)`.
    - `covariance`: `(n, dim, n, dim)`; `covariance[a, :, b, :]` is Cov(estimator a, estimator b).
    """

    names: tuple[str, ...]
    mean: np.ndarray
    covariance: np.ndarray

    def index(self, name: str) -> int:
        if name not in self.names:
            raise ValueError(f"estimator must be one of {self.names}, got {name!r}")
        return self.names.index(name)

    def marginal(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(mean `(dim,)`, covariance `(dim, dim)`) of one estimator."""
        a = self.index(name)
        return self.mean[a], self.covariance[a, :, a, :]

    def mse(self, name: str, target) -> float:
        """E ||estimator - target||^2 = ||mean - target||^2 + tr Cov."""
        mean, cov = self.marginal(name)
        bias = mean - np.asarray(target, dtype=np.float64)
        return float(bias @ bias + np.trace(cov))

    def mse_variance(self, name: str, target) -> float:
        """Var ||estimator - target||^2 (for the standard error of a Monte Carlo MSE).

        For y ~ N(mu, S): Var ||y||^2 = 2 tr(S^2) + 4 mu^T S mu, with mu the bias.
        """
        mean, cov = self.marginal(name)
        bias = mean - np.asarray(target, dtype=np.float64)
        return float(2 * np.sum(cov * cov.T) + 4 * bias @ cov @ bias)

    def joint(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean `(n * dim,)`, covariance `(n * dim, n * dim)`) of the stacked estimators."""
        n, dim = self.mean.shape
        return self.mean.reshape(n * dim), self.covariance.reshape(n * dim, n * dim)


def _as_matrix(value, dim: int | None, name: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        if dim is None:
            raise ValueError(f"{name} is a scalar: give a vector or matrix elsewhere to fix dim")
        return float(array) * np.eye(dim)
    if array.ndim == 1:
        return np.diag(array)
    if array.ndim == 2 and array.shape[0] == array.shape[1]:
        return array
    raise ValueError(f"{name} must be a scalar, a vector (diagonal) or a square matrix, got shape {array.shape}")


def _problem(hessian, noise_covariance, x0, center):
    x0 = np.atleast_1d(np.asarray(x0, dtype=np.float64))
    if x0.ndim != 1:
        raise ValueError(f"x0 must be a vector of shape (dim,), got shape {x0.shape}")
    dim = x0.shape[0]
    h = _as_matrix(hessian, dim, "hessian")
    sigma = _as_matrix(noise_covariance, dim, "noise_covariance")
    if h.shape != (dim, dim) or sigma.shape != (dim, dim):
        raise ValueError(
            f"hessian {h.shape}, noise_covariance {sigma.shape} and x0 ({dim},) disagree on dim"
        )
    c = np.zeros(dim) if center is None else np.asarray(center, dtype=np.float64)
    if c.shape != (dim,):
        raise ValueError(f"center must have shape ({dim},), got {c.shape}")
    curvatures, basis = np.linalg.eigh(0.5 * (h + h.T))
    return dim, curvatures, basis, basis.T @ sigma @ basis, basis.T @ (x0 - c), c


def _powers(lam: np.ndarray, n: np.ndarray) -> np.ndarray:
    """lambda^n for integer n >= 0 (broadcast); exact at lambda = 0 (0^0 = 1)."""
    return np.power(lam, n.astype(np.float64))


def _geometric(lam: np.ndarray, eta_h: np.ndarray, n: np.ndarray) -> np.ndarray:
    """b_n = sum_{i=0..n-1} lambda^i with lambda = 1 - eta h, accurate when eta h is tiny."""
    n = n.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        small = (eta_h > 0) & (eta_h < 1)
        log_lam = np.log1p(-np.where(small, eta_h, 0.5))
        near_one = -np.expm1(n * log_lam) / np.where(small, eta_h, 1.0)
        general = (1.0 - np.power(lam, n)) / np.where(eta_h != 0, eta_h, 1.0)
        return np.where(eta_h == 0, n, np.where(small, near_one, general))


def _noise_coefficients(lam: np.ndarray, eta_h: np.ndarray, n_steps: int, m: int):
    """The noise coefficients c_j (eigenbasis, diagonal) of (x_T, x_avg, x_tail), j = 1..T.

    Yields arrays `(3, chunk, dim)` for consecutive chunks of j, so memory stays bounded.
    """
    s = n_steps - m + 1  # first step in the tail
    b_tail = _geometric(lam, eta_h, np.array(m))
    for start in range(1, n_steps + 1, _CHUNK):
        j = np.arange(start, min(start + _CHUNK, n_steps + 1))[:, None]
        coef_last = _powers(lam, n_steps - j)
        coef_avg = _geometric(lam, eta_h, n_steps - j + 1) / n_steps
        coef_tail = np.where(
            j >= s, _geometric(lam, eta_h, n_steps - j + 1), _powers(lam, np.maximum(s - j, 0)) * b_tail
        ) / m
        yield np.stack([coef_last, coef_avg, coef_tail])


def quadratic_law(
    hessian,
    noise_covariance,
    step_size: float,
    n_steps: int,
    x0,
    center=None,
    tail_fraction: float = 0.5,
) -> GaussianLaw:
    """The exact joint law of (x_T, x_avg, x_tail, v_T, v_avg) for SGD on a quadratic.

    **Arguments:**

    - `hessian`: H, `(dim, dim)` symmetric PSD, a vector (diagonal) or a scalar (times I).
    - `noise_covariance`: Sigma, same forms as `hessian`.
    - `step_size`: eta > 0.
    - `n_steps`: T >= 1.
    - `x0`: the start, `(dim,)`; `center`: the minimizer c (default 0).
    - `tail_fraction`: the tail average covers the last m = ceil(tail_fraction T) iterates.

    **Returns:** a `GaussianLaw` over `ESTIMATORS`, with means in the original coordinates.
    """
    if not step_size > 0:
        raise ValueError(f"step_size must be positive, got {step_size}")
    if int(n_steps) != n_steps or n_steps < 1:
        raise ValueError(f"n_steps must be an integer >= 1, got {n_steps}")
    n_steps = int(n_steps)
    dim, curvatures, basis, sigma, e0, c = _problem(hessian, noise_covariance, x0, center)
    eta = float(step_size)
    eta_h = eta * curvatures
    lam = 1.0 - eta_h
    m = max(1, math.ceil(round(tail_fraction * n_steps, 9)))
    s = n_steps - m + 1  # first step in the tail

    # Means (eigenbasis): sum_k w_k lambda^k e0.
    mean_last = _powers(lam, np.array(n_steps)) * e0
    mean_avg = lam * _geometric(lam, eta_h, np.array(n_steps)) / n_steps * e0
    mean_tail = _powers(lam, np.array(s)) * _geometric(lam, eta_h, np.array(m)) / m * e0

    # Noise coefficients c_j (eigenbasis, diagonal) for j = 1..T, summed chunk by chunk:
    # gram[a, b] = sum_j c_j^a (outer) c_j^b over estimators a, b.
    gram = np.zeros((3, 3, dim, dim))
    for coefs in _noise_coefficients(lam, eta_h, n_steps, m):
        gram += np.einsum("ajd,bje->abde", coefs, coefs)
    cov_x = eta**2 * gram * sigma  # (3, 3, dim, dim)

    # v_k - c = A e_k: scale by lambda in the eigenbasis. Order: x, x_avg, x_tail, v, v_avg.
    means = np.stack([mean_last, mean_avg, mean_tail, lam * mean_last, lam * mean_avg])
    scale = np.stack([np.ones(dim)] * 3 + [lam, lam])  # (5, dim)
    pick = [0, 1, 2, 0, 1]
    cov = cov_x[np.ix_(pick, pick)] * scale[:, None, :, None] * scale[None, :, None, :]  # (5,5,d,d)

    # Back to the original coordinates.
    mean = means @ basis.T + c
    cov = np.einsum("ik,abkl,jl->aibj", basis, cov, basis)
    return GaussianLaw(names=ESTIMATORS, mean=mean, covariance=cov)


def quadratic_mse(
    hessian, noise_covariance, step_sizes, n_steps, x0, center=None, tail_fraction=0.5, estimator="x_avg"
) -> np.ndarray:
    """E ||estimator - c||^2 on a grid: shape `(len(step_sizes), len(n_steps))` (theory curves)."""
    eta = np.atleast_1d(np.asarray(step_sizes, dtype=np.float64))
    horizons = np.atleast_1d(np.asarray(n_steps))
    out = np.empty((eta.size, horizons.size))
    target = np.zeros(np.atleast_1d(x0).shape[-1]) if center is None else np.asarray(center, dtype=np.float64)
    for i, e in enumerate(eta):
        for t, horizon in enumerate(horizons):
            law = quadratic_law(hessian, noise_covariance, e, int(horizon), x0, center, tail_fraction)
            out[i, t] = law.mse(estimator, target)
    return out


def quadratic_mse_curves(
    hessian, noise_covariance, step_sizes, n_steps, x0, center=None, tail_fraction=0.5, estimators=ESTIMATORS
) -> dict[str, np.ndarray]:
    """E ||estimator - c||^2 for several estimators on a grid of step sizes and horizons.

    Same numbers as `quadratic_mse` (and `quadratic_law(...).mse(name, c)`), for all
    `estimators` at once and without the full covariance: in the eigenbasis of H (entries
    lambda_d = 1 - eta h_d, noise variances Sigma'_dd = (U^T Sigma U)_dd),

        E ||e_w||^2 = sum_d [ (sum_k w_k lambda_d^k e0_d)^2 + eta^2 Sigma'_dd sum_j c_j(d)^2 ],

    times lambda_d^2 inside the sum for v_T and v_avg (v_k - c = A e_k). Cost O(T dim) per
    grid point instead of O(T dim^2). For a quadratic the smoothed objective is f plus a
    constant, so c is also v*(eta): these are the theory curves of the error tables.

    **Arguments:** as `quadratic_law`, with `step_sizes` `(S,)` and `n_steps` `(K,)` (numbers
    or sequences), and `estimators` a sequence of names from `ESTIMATORS`.

    **Returns:** dict estimator -> `(S, K)` array.
    """
    unknown = [name for name in estimators if name not in ESTIMATORS]
    if unknown:
        raise ValueError(f"estimators must be among {ESTIMATORS}, got {unknown}")
    eta_grid = np.atleast_1d(np.asarray(step_sizes, dtype=np.float64))
    horizons = np.atleast_1d(np.asarray(n_steps))
    if eta_grid.ndim != 1 or not np.all(eta_grid > 0):
        raise ValueError(f"step_sizes must be positive numbers, got {step_sizes!r}")
    if horizons.ndim != 1 or not np.all((horizons >= 1) & (horizons == np.round(horizons))):
        raise ValueError(f"n_steps must be integers >= 1, got {n_steps!r}")
    _, curvatures, _, sigma, e0, _ = _problem(hessian, noise_covariance, x0, center)
    noise_variance = np.diag(sigma)
    out = {name: np.empty((eta_grid.size, horizons.size)) for name in estimators}
    # An unstable step size (|1 - eta h| > 1 for some h) gives inf: the error diverges.
    with np.errstate(over="ignore", invalid="ignore"):
        _fill_mse_curves(out, eta_grid, horizons, curvatures, noise_variance, e0, tail_fraction)
    return out


def _fill_mse_curves(out, eta_grid, horizons, curvatures, noise_variance, e0, tail_fraction) -> None:
    for i, eta in enumerate(eta_grid):
        eta_h = eta * curvatures
        lam = 1.0 - eta_h
        for t, horizon in enumerate(horizons.astype(int).tolist()):
            m = max(1, math.ceil(round(tail_fraction * horizon, 9)))
            s = horizon - m + 1
            means = np.stack([
                _powers(lam, np.array(horizon)) * e0,
                lam * _geometric(lam, eta_h, np.array(horizon)) / horizon * e0,
                _powers(lam, np.array(s)) * _geometric(lam, eta_h, np.array(m)) / m * e0,
            ])  # (3, dim)
            squares = sum(np.sum(coefs**2, axis=1) for coefs in _noise_coefficients(lam, eta_h, horizon, m))
            per_direction = means**2 + eta**2 * noise_variance * squares  # (3, dim)
            totals = {
                "x": per_direction[0],
                "x_avg": per_direction[1],
                "x_tail": per_direction[2],
                "v": lam**2 * per_direction[0],
                "v_avg": lam**2 * per_direction[1],
            }
            unstable = bool(np.any(np.abs(lam) > 1))
            for name, values in out.items():
                total = float(np.sum(totals[name]))
                values[i, t] = np.inf if unstable and not np.isfinite(total) else total


def stationary_covariance(hessian, noise_covariance, step_size: float) -> np.ndarray:
    """S solving the discrete Lyapunov equation S = A S A + eta^2 Sigma, A = I - eta H.

    The covariance of the last iterate as T -> infinity, for 0 < eta h < 2 on every eigenvalue h
    of H (else SGD diverges and `ValueError` is raised). In the eigenbasis of H,
    S_ab = eta^2 Sigma_ab / (1 - lambda_a lambda_b); when H and Sigma commute this is
    S = eta Sigma (2H - eta H^2)^{-1}. Its trace is of order eta: the last iterate's error floor.
    """
    sigma = np.asarray(noise_covariance, dtype=np.float64)
    dim = sigma.shape[0] if sigma.ndim == 2 else np.asarray(hessian).shape[0] if np.ndim(hessian) else 1
    _, curvatures, basis, sigma_eig, _, _ = _problem(hessian, noise_covariance, np.zeros(dim), None)
    lam = 1.0 - step_size * curvatures
    if np.any(np.abs(lam) >= 1):
        raise ValueError(
            f"no stationary law: step_size * curvature must lie in (0, 2) for every curvature, "
            f"got {(step_size * curvatures).tolist()}"
        )
    s_eig = step_size**2 * sigma_eig / (1.0 - np.outer(lam, lam))
    return basis @ s_eig @ basis.T


def last_iterate_floor(hessian, noise_covariance, step_size: float) -> float:
    """lim_T E ||x_T - c||^2 = tr S (see `stationary_covariance`); ~ (eta/2) tr(H^{-1} Sigma) for small eta."""
    return float(np.trace(stationary_covariance(hessian, noise_covariance, step_size)))


def averaged_mse_asymptotic(hessian, noise_covariance, n_steps) -> np.ndarray:
    """The leading term of E ||x_avg - c||^2 for large T: tr(H^{-1} Sigma H^{-1}) / T.

    Independent of eta (Polyak-Juditsky): averaging removes the eta-sized noise floor and leaves
    the statistically optimal 1/T rate. Needs H invertible. Corrections are O(1/(eta h T)^2) from
    the initial condition and O(1/(eta h T^2)) from the noise.
    """
    horizons = np.asarray(n_steps, dtype=np.float64)
    sigma = np.asarray(noise_covariance, dtype=np.float64)
    dim = sigma.shape[0] if sigma.ndim == 2 else np.asarray(hessian).shape[0] if np.ndim(hessian) else 1
    h = _as_matrix(hessian, dim, "hessian")
    s = _as_matrix(noise_covariance, dim, "noise_covariance")
    h_inv = np.linalg.inv(h)
    return np.trace(h_inv @ s @ h_inv) / horizons
