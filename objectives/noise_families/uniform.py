"""Uniform noise on [-sqrt(3) scale, sqrt(3) scale] per coordinate."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from objectives.noise_families.base import NoiseFamily, NoiseModel, check_scale, quadrature_order, tensor_rule


class Uniform(NoiseFamily):
    band_reach = math.sqrt(3.0)
    auto_quadrature_dim = 3

    def standard(self, random, key, shape, dtype, df):
        return random.uniform(key, shape, dtype, -1.0, 1.0) * jnp.sqrt(jnp.asarray(3.0, dtype))

    def density(self, z, df, xp=np):
        root3 = math.sqrt(3.0)
        return xp.where(xp.abs(z) <= root3, 0.5 / root3, 0.0)

    def upper_tail(self, z, df, xp=jnp, special=None):
        root3 = math.sqrt(3.0)
        return xp.clip((root3 - z) / (2.0 * root3), 0.0, 1.0)

    def quadrature(self, covariance, dim, order):
        """Tensor Gauss-Legendre on [-sqrt(3) s, sqrt(3) s]^dim, exact for polynomials of degree
        <= 2 order - 1 per axis."""
        order = quadrature_order(order, dim)
        u, w = np.polynomial.legendre.leggauss(order)
        nodes, weights = tensor_rule(math.sqrt(3.0 * covariance[0, 0]) * u, w / w.sum(), int(dim))
        return nodes, weights / weights.sum()

    def kernel_cells(self, sd, width, n_cells):
        return math.sqrt(3.0) * sd / width + 1.0


def uniform(scale: float = 1.0) -> NoiseModel:
    """Uniform noise on [-sqrt(3) scale, sqrt(3) scale]^dim (covariance scale^2 I)."""
    return NoiseModel("uniform", scale=check_scale(scale))


FAMILY = Uniform("uniform", rank=2, constructor=uniform)
