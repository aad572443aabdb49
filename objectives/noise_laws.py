"""Expectations under a gradient-noise law: checking a noise model, quadrature rules, Monte Carlo draws.

The noise model is an `objectives.noise.NoiseModel` (re-exported as `simulate.noise`). Every rule returns nodes
eps_i and weights w_i (summing to 1) with sum_i w_i g(eps_i) ~ E g(eps); `objectives.smoothing`
turns them into the smoothed objective F(v) = sum_i w_i f(v - eta eps_i).
"""

from __future__ import annotations

import itertools
import math

import jax.numpy as jnp
import numpy as np

from objectives import validation
from objectives.noise import FAMILIES, NoiseModel

__all__ = [
    "DEFAULT_ORDER",
    "DEFAULT_N_SAMPLES",
    "MAX_QUADRATURE_DIM",
    "MAX_ENUMERATION_DIM",
    "check_noise",
    "is_isotropic",
    "noise_quadrature",
    "monte_carlo_draws",
]

#: Nodes per axis of the tensor quadrature rules, by dimension (order^dim evaluations of f).
DEFAULT_ORDER = {1: 128, 2: 32, 3: 16}
#: Draws of eps in the Monte Carlo fallback.
DEFAULT_N_SAMPLES = 4096
#: Tensor quadrature is used up to this dimension (order^dim nodes); Monte Carlo beyond.
MAX_QUADRATURE_DIM = 3
#: Rademacher noise is averaged exactly over its 2^dim sign vectors up to this dimension.
MAX_ENUMERATION_DIM = 10


def check_noise(noise, dim: int) -> tuple[str, np.ndarray]:
    """(family, Sigma `(dim, dim)`) of an additive noise model (`objectives.noise.NoiseModel`)."""
    if not isinstance(noise, NoiseModel):
        raise ValueError(
            f"noise must be a noise model, an additive one (simulate.noise.gaussian, rademacher, uniform or student_t, "
            f"families {FAMILIES}), got {noise!r}"
        )
    family, fixed_dim = noise.family, noise.fixed_dim
    if fixed_dim is not None and fixed_dim != dim:
        raise ValueError(
            f"noise covariance is {fixed_dim}-dimensional but the objective has dim={dim}: they must agree"
        )
    covariance = np.asarray(noise.covariance(dim), dtype=np.float64)
    if covariance.shape != (dim, dim):
        raise ValueError(
            f"noise.covariance({dim}) must have shape ({dim}, {dim}) to match the objective, got {covariance.shape}"
        )
    if not np.all(np.isfinite(covariance)):
        raise ValueError(f"noise covariance must be finite, got {covariance.tolist()}")
    if family != "gaussian" and not is_isotropic(covariance):
        raise ValueError(f"{family} noise must be isotropic (covariance s^2 I), got {covariance.tolist()}")
    return family, covariance


def is_isotropic(covariance: np.ndarray) -> bool:
    """Whether Sigma is exactly s^2 I (then the penalty uses f's own Hessian trace)."""
    return bool(np.array_equal(covariance, covariance[0, 0] * np.eye(covariance.shape[0])))


def _square_root(covariance: np.ndarray) -> np.ndarray:
    """A symmetric L with L L^T = Sigma (works for a singular Sigma, where Cholesky fails)."""
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T


def _tensor(nodes_1d: np.ndarray, weights_1d: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    grids = np.meshgrid(*([nodes_1d] * dim), indexing="ij")
    weight_grids = np.meshgrid(*([weights_1d] * dim), indexing="ij")
    nodes = np.stack([g.reshape(-1) for g in grids], axis=-1)
    weights = np.prod(np.stack([w.reshape(-1) for w in weight_grids], axis=-1), axis=-1)
    return nodes, weights


def noise_quadrature(noise, dim: int, order: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A rule (eps_i, w_i) with sum_i w_i g(eps_i) ~ E g(eps) for the noise law, in low dimension.

    - Gaussian N(0, Sigma): eps_i = L z_i, z_i the tensor Gauss-Hermite nodes of N(0, I_dim)
      (`numpy.polynomial.hermite_e`), exact for polynomials of degree <= 2 order - 1 per axis.
    - Uniform on [-sqrt(3) s, sqrt(3) s]^dim: tensor Gauss-Legendre, same exactness.
    - Rademacher +-s: the 2^dim sign vectors with weight 2^-dim, exact for every g (`order` unused).

    **Arguments:**

    - `noise`: a noise model (`family`, `covariance(dim)`); Student-t has no rule.
    - `dim`: the dimension, <= 3 (<= 16 for Rademacher).
    - `order`: nodes per axis (default `DEFAULT_ORDER[dim]`).

    **Returns:** NumPy float64 `nodes` `(n, dim)` and `weights` `(n,)` summing to 1.
    """
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    family, covariance = check_noise(noise, int(dim))
    if family == "rademacher":
        if dim > 16:
            raise ValueError(f"Rademacher enumeration needs dim <= 16 (2^dim sign vectors), got dim={dim}")
        signs = np.array(list(itertools.product((-1.0, 1.0), repeat=int(dim))))
        return math.sqrt(covariance[0, 0]) * signs, np.full(signs.shape[0], 0.5**dim)
    if family == "student_t":
        raise ValueError(
            "Student-t noise has no quadrature rule matching its law (its high moments are infinite): "
            "use method='monte_carlo'"
        )
    if dim > MAX_QUADRATURE_DIM:
        raise ValueError(
            f"tensor quadrature is for dim <= {MAX_QUADRATURE_DIM} (order^dim nodes), got dim={dim}: "
            "use method='monte_carlo'"
        )
    order = DEFAULT_ORDER[int(dim)] if order is None else validation.positive_int("order", order, note="nodes per axis")
    if family == "gaussian":
        z, w = np.polynomial.hermite_e.hermegauss(order)
        nodes, weights = _tensor(z, w / w.sum(), int(dim))
        return nodes @ _square_root(covariance).T, weights / weights.sum()
    u, w = np.polynomial.legendre.leggauss(order)
    nodes, weights = _tensor(math.sqrt(3.0 * covariance[0, 0]) * u, w / w.sum(), int(dim))
    return nodes, weights / weights.sum()




def monte_carlo_draws(noise, dim: int, n_samples: int, seed) -> tuple[np.ndarray, np.ndarray]:
    """`n_samples` draws eps_i from `noise.sample(jax.random.key(seed), ...)`, equal weights 1/n
    (`seed`: an integer, or a JAX key used as is).

    The draws are made in float32, so they are the same whether or not JAX's x64 mode is on.

    **Returns:** NumPy float64 `nodes` `(n_samples, dim)` and `weights` `(n_samples,)`.
    """
    n_samples = validation.positive_int("n_samples", n_samples, note="Monte Carlo draws")
    draws = noise.sample(validation.random_key("seed", seed), (n_samples,), dim, jnp.float32)
    return np.asarray(draws, dtype=np.float64), np.full(n_samples, 1.0 / n_samples)
