"""Rademacher noise: each coordinate +scale or -scale with probability 1/2."""

from __future__ import annotations

import itertools
import math

import numpy as np

from objectives.noise_families.base import NoiseFamily, NoiseModel, check_scale


class Rademacher(NoiseFamily):
    atoms = (-1.0, 1.0)
    auto_quadrature_dim = 10  # the exact average over 2^dim sign vectors

    def standard(self, random, key, shape, dtype, df):
        return random.rademacher(key, shape, dtype)

    def quadrature(self, covariance, dim, order):
        """The 2^dim sign vectors with weight 2^-dim: exact for every g (`order` unused)."""
        if dim > 16:
            raise ValueError(f"Rademacher enumeration needs dim <= 16 (2^dim sign vectors), got dim={dim}")
        signs = np.array(list(itertools.product((-1.0, 1.0), repeat=int(dim))))
        return math.sqrt(covariance[0, 0]) * signs, np.full(signs.shape[0], 0.5**dim)

    def kernel_cells(self, sd, width, n_cells):
        return math.sqrt(3.0) * sd / width + 1.0


def rademacher(scale: float = 1.0) -> NoiseModel:
    """Rademacher noise: each coordinate is +scale or -scale with probability 1/2 (covariance scale^2 I)."""
    return NoiseModel("rademacher", scale=check_scale(scale))


FAMILY = Rademacher("rademacher", rank=1, constructor=rademacher)
