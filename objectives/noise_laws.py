"""Expectations under a gradient-noise law: checking a noise model, quadrature rules, Monte Carlo draws.

The noise model is an `objectives.noise.NoiseModel` (re-exported as `simulate.noise`). Every rule returns nodes
eps_i and weights w_i (summing to 1) with sum_i w_i g(eps_i) ~ E g(eps); `objectives.smoothing`
turns them into the smoothed objective F(v) = sum_i w_i f(v - eta eps_i).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from objectives import validation
from objectives.noise import FAMILIES, NoiseModel
from objectives.noise_families.base import DEFAULT_ORDER, MAX_QUADRATURE_DIM

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

#: Draws of eps in the Monte Carlo fallback.
DEFAULT_N_SAMPLES = 4096
#: Rademacher noise is averaged exactly over its 2^dim sign vectors up to this dimension
#: (its family's `auto_quadrature_dim`).
MAX_ENUMERATION_DIM = 10


def check_noise(noise, dim: int) -> tuple[str, np.ndarray]:
    """(family name, Sigma `(dim, dim)`) of an additive noise model (`objectives.noise.NoiseModel`)."""
    if not isinstance(noise, NoiseModel) and getattr(noise, "additive", True) is False:
        raise ValueError(
            f"noise: the smoothed objective F_eta, the penalty P_eta and v*(eta) exist for additive noise only; "
            f"{noise!r} depends on x (its targets: the minimizer of f, or a given point)"
        )
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
    if not noise.standard_law.full_covariance and not is_isotropic(covariance):
        raise ValueError(f"{family} noise must be isotropic (covariance s^2 I), got {covariance.tolist()}")
    return family, covariance


def is_isotropic(covariance: np.ndarray) -> bool:
    """Whether Sigma is exactly s^2 I (then the penalty uses f's own Hessian trace)."""
    return bool(np.array_equal(covariance, covariance[0, 0] * np.eye(covariance.shape[0])))


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
    _, covariance = check_noise(noise, int(dim))
    return noise.standard_law.quadrature(covariance, int(dim), order)


def monte_carlo_draws(noise, dim: int, n_samples: int, seed) -> tuple[np.ndarray, np.ndarray]:
    """`n_samples` draws eps_i from `noise.sample(jax.random.key(seed), ...)`, equal weights 1/n
    (`seed`: an integer, or a JAX key used as is).

    The draws are made in float32, so they are the same whether or not JAX's x64 mode is on.

    **Returns:** NumPy float64 `nodes` `(n_samples, dim)` and `weights` `(n_samples,)`.
    """
    n_samples = validation.positive_int("n_samples", n_samples, note="Monte Carlo draws")
    draws = noise.sample(validation.random_key("seed", seed), (n_samples,), dim, jnp.float32)
    return np.asarray(draws, dtype=np.float64), np.full(n_samples, 1.0 / n_samples)
