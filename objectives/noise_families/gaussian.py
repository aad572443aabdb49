"""Gaussian noise: eps ~ N(0, scale^2 I), or N(0, C) with a full covariance."""

from __future__ import annotations

import math

import jax
import numpy as np

from objectives import validation
from objectives.noise_families.base import NoiseFamily, NoiseModel, check_scale, quadrature_order, tensor_rule

#: Reach of the Gaussian kernel in standard deviations (tail mass beyond: ~1e-19).
GAUSSIAN_REACH = 9.0


def symmetric_square_root(covariance: np.ndarray) -> np.ndarray:
    """A symmetric L with L L^T = Sigma (works for a singular Sigma, where Cholesky fails)."""
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T


class Gaussian(NoiseFamily):
    full_covariance = True
    gaussian = True
    band_reach = 10.5  # a cell probability beyond 10.5 sd is below 1e-25 (under the kernel's DROP_BELOW)
    auto_quadrature_dim = 3

    def standard(self, random, key, shape, dtype, df):
        return random.normal(key, shape, dtype)

    def density(self, z, df, xp=np):
        return xp.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)

    def upper_tail(self, z, df, xp=None, special=None):
        special = jax.scipy.special if special is None else special
        return 0.5 * special.erfc(z / math.sqrt(2.0))

    def quadrature(self, covariance, dim, order):
        """Tensor Gauss-Hermite (probabilists' weight): eps_i = L z_i, exact for polynomials of
        degree <= 2 order - 1 per axis."""
        order = quadrature_order(order, dim)
        z, w = np.polynomial.hermite_e.hermegauss(order)
        nodes, weights = tensor_rule(z, w / w.sum(), int(dim))
        return nodes @ symmetric_square_root(covariance).T, weights / weights.sum()

    def kernel_cells(self, sd, width, n_cells):
        return GAUSSIAN_REACH * sd / width


def gaussian(scale: float | None = None, *, covariance=None) -> NoiseModel:
    """Gaussian noise: eps ~ N(0, scale^2 I), or N(0, C) with `covariance=C`.

    **Arguments:**

    - `scale`: standard deviation of each coordinate (default 1.0 when no covariance is given).
    - `covariance`: a symmetric positive semi-definite matrix C of shape `(dim, dim)`; ties the
      model to that dimension.
    """
    if covariance is None:
        return NoiseModel("gaussian", scale=check_scale(1.0 if scale is None else scale))
    if scale is not None:
        raise ValueError("give either scale= or covariance=, not both")
    c = validation.float_array("covariance", covariance, ndim=(2,), allowed="a square matrix of shape (dim, dim)")
    if c.shape[0] != c.shape[1] or c.shape[0] < 1:
        raise ValueError(f"covariance must be a square matrix of shape (dim, dim), got shape {c.shape}")
    if not np.allclose(c, c.T, rtol=1e-10, atol=1e-12 * max(1.0, np.abs(c).max())):
        raise ValueError(f"covariance must be symmetric, got {c.tolist()}")
    eigenvalues, eigenvectors = np.linalg.eigh(c)
    tolerance = 1e-12 * max(1.0, np.abs(eigenvalues).max())
    if eigenvalues.min() < -tolerance:
        raise ValueError(
            f"covariance must be positive semi-definite, got smallest eigenvalue {eigenvalues.min():.3g}"
        )
    # A symmetric square root works for singular C too, where a Cholesky factor would fail.
    factor = eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))
    return NoiseModel("gaussian", scale=math.nan, factor=factor)


FAMILY = Gaussian("gaussian", rank=0, constructor=gaussian)
