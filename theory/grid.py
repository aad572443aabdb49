"""The grid of cells and the noise laws' cell integrals, shared by the 1-D and 2-D kernels.

SGD with additive noise is the Markov chain x' = x - eta grad f(x) - eta eps, so its kernel is

    P(x, A) = Prob(m(x) - eta eps in A),        m(x) = x - eta grad f(x).

On a grid of cells C_j (centres c_j) the chain is replaced by the cell chain

    P_ij = Prob(m(c_i) - eta eps in C_j),

the probability of a whole cell, integrated from the noise law (never its density at a point).
The mass that leaves the box, 1 - sum_j P_ij, is reported per cell (`leak`) and put back by
renormalising the rows (the chain conditioned to stay in the box); callers refuse the law when
that mass is not negligible. The kernels themselves: `theory.kernel_1d` (the matrix) and
`theory.kernel_2d` (the operator). Both add an error of order h^2 (h the cell width) to the
moments: the cell chain rounds every step to a centre. `theory.stationary` estimates it from a
coarser grid.

Probabilities of intervals are differences of upper-tail probabilities on the side away from 0,
so that entries of 1e-200 keep their relative accuracy (the metastable solvers need it).

All functions here run in float64 (callers hold `jax.enable_x64`).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.special

from objectives.noise_families import NoiseFamily, family_named
from objectives.noise_families.gaussian import GAUSSIAN_REACH

__all__ = ["DROP_BELOW", "GAUSSIAN_REACH", "Grid", "NoiseLaw", "interval_probability", "interval_probability_np", "make_grid", "noise_law", "upper_tail", "upper_tail_np"]

#: Entries of a 1-D row below this fraction of the row's largest entry are dropped (set to 0), so
#: the matrix is banded at small eta. 1e-20 is far below float64 rounding of the row sums.
DROP_BELOW = 1e-20


@dataclasses.dataclass(frozen=True)
class Grid:
    """A regular grid of `shape` cells over the box [lower, upper] (`dim` = 1 or 2).

    - `lower`, `upper`, `widths`: `(d,)`; `edges`: per axis, `(n + 1,)` cell edges.
    - `centres`: `shape + (d,)` the cell centres; `points`: `(N, d)` the same, flattened (C order).
    """

    lower: np.ndarray
    upper: np.ndarray
    n_cells: int

    @property
    def dim(self) -> int:
        return int(self.lower.shape[0])

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n_cells,) * self.dim

    @property
    def size(self) -> int:
        return self.n_cells**self.dim

    @property
    def widths(self) -> np.ndarray:
        return (self.upper - self.lower) / self.n_cells

    @property
    def edges(self) -> tuple[np.ndarray, ...]:
        return tuple(np.linspace(self.lower[a], self.upper[a], self.n_cells + 1) for a in range(self.dim))

    @property
    def axes(self) -> tuple[np.ndarray, ...]:
        """The centres along each axis, `(n,)` each."""
        return tuple(0.5 * (e[1:] + e[:-1]) for e in self.edges)

    @property
    def centres(self) -> np.ndarray:
        return np.stack(np.meshgrid(*self.axes, indexing="ij"), axis=-1)

    @property
    def points(self) -> np.ndarray:
        return self.centres.reshape(-1, self.dim)

    def cell_of(self, x) -> np.ndarray:
        """Flat index of the cell holding each point `x` `(..., d)` (clipped to the box)."""
        x = np.asarray(x, dtype=np.float64)
        index = np.floor((x - self.lower) / self.widths).astype(np.int64)
        index = np.clip(index, 0, self.n_cells - 1)
        return np.ravel_multi_index(tuple(np.moveaxis(index, -1, 0)), self.shape)


def make_grid(lower, upper, n_cells: int) -> Grid:
    return Grid(np.asarray(lower, np.float64), np.asarray(upper, np.float64), int(n_cells))


@dataclasses.dataclass(frozen=True)
class NoiseLaw:
    """The standardised law of each coordinate of eps (zero mean, unit variance), its scale and
    (2-D Gaussian) the covariance. `family` as in `simulate.noise`; `scale` s so that
    eps = s z for isotropic models; `covariance` `(d, d)` for every model."""

    family: str
    scale: float
    df: float
    covariance: np.ndarray
    isotropic: bool

    @property
    def standard(self) -> NoiseFamily:
        """The family object (`objectives.noise_families`): tails, atoms, reach."""
        return family_named(self.family)


def noise_law(noise, dim: int) -> NoiseLaw:
    """Read a `simulate.noise` model (validated by the caller)."""
    covariance = np.asarray(noise.covariance(dim), dtype=np.float64)
    isotropic = bool(np.array_equal(covariance, covariance[0, 0] * np.eye(dim)))
    return NoiseLaw(noise.family, float(math.sqrt(covariance[0, 0])), float(noise.df), covariance, isotropic)


# ---- standardised laws: upper tails Q(z) = Prob(Z > z), and interval probabilities ------------


def _family(family) -> NoiseFamily:
    return family if isinstance(family, NoiseFamily) else family_named(family)


def upper_tail(family, df, z, xp=jnp, special=jax.scipy.special):
    """Q(z) = Prob(Z > z) of the family (a name or its object); `xp`, `special`: jax.numpy /
    jax.scipy.special (compiled, 1-D matrix) or numpy / scipy.special (the small 2-D kernels,
    which would otherwise compile op by op)."""
    return _family(family).upper_tail(z, df, xp, special)


def interval_probability(family, df, a, b, xp=jnp, special=jax.scipy.special):
    """Prob(a < Z < b) for a <= b, as a difference of upper tails on the side away from 0, so that
    far-tail intervals keep their relative accuracy (`NoiseFamily.interval_probability`)."""
    return _family(family).interval_probability(df, a, b, xp, special)


def interval_probability_np(family, df, a, b):
    return interval_probability(family, df, a, b, np, scipy.special)


def upper_tail_np(family, df, z):
    return upper_tail(family, df, z, np, scipy.special)
