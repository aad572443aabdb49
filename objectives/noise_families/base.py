"""What every additive noise family is: `NoiseFamily`, the standardised law z of one coordinate
(zero mean, unit variance), and `NoiseModel`, a family with its scale (eps = s z, or z L^T for a
full covariance).

A family object answers everything the library asks of a noise law, so no code outside this
package compares family names:

- sampling: `standard(random, key, shape, dtype, df)` draws z with `random` = `jax.random` (the
  definition) or `simulate.threefry` (the same bits for many keys at once, when `threefry_bulk`);
- the law of z: `density(z, df, xp)`, the upper tail `upper_tail(z, df, xp, special)` =
  Prob(Z > z) (the cell integrals of the exact law are differences of tails), `atoms` for a
  discrete law (its standardised support points, equally likely; None for a density);
- quadrature for smoothing: `quadrature(covariance, dim, order)` -> (eps_i, w_i), and
  `auto_quadrature_dim`, the largest dimension where `method="auto"` uses it;
- the kernel's reach: `band_reach` (1-D: noise units beyond which a cell probability is below
  1e-25, or None where the kernel is built dense) and `kernel_cells(sd, width, n_cells)` (2-D:
  the cells per axis beyond which the kernel is negligible);
- what applies: `additive` (g = grad f + eps, eps independent of x), `full_covariance` (accepts a
  covariance matrix), `gaussian` (the exact sampler and closed-form Gaussian smoothing apply),
  `has_df`.

Adding a family is one file in `objectives/noise_families/` that defines `FAMILY` (an instance of
a `NoiseFamily` subclass) and its constructor; `objectives.noise_families.TABLE` finds it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from objectives import validation

__all__ = ["DEFAULT_ORDER", "MAX_QUADRATURE_DIM", "NoiseFamily", "NoiseModel", "TABLE", "check_scale", "family_named", "quadrature_order", "tensor_rule"]

#: Nodes per axis of the tensor quadrature rules, by dimension (order^dim evaluations of f).
DEFAULT_ORDER = {1: 128, 2: 32, 3: 16}
#: Tensor quadrature is used up to this dimension (order^dim nodes); Monte Carlo beyond.
MAX_QUADRATURE_DIM = 3


#: name -> family object, in rank order: filled by `objectives.noise_families` from its files.
TABLE: dict[str, "NoiseFamily"] = {}


def family_named(name: str) -> "NoiseFamily":
    """The family object of `name` (a ValueError listing the families otherwise)."""
    try:
        return TABLE[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown noise family {name!r}; allowed: {tuple(TABLE)}") from None


@dataclasses.dataclass(frozen=True)
class NoiseFamily:
    """One additive noise family (see the module docstring); subclasses override the methods."""

    name: str
    rank: int  # its position in `FAMILIES` (and in messages that list them)
    constructor: Callable = dataclasses.field(compare=False, repr=False, default=None)
    # Class-level facts (subclasses override them; not dataclass fields).
    additive: ClassVar[bool] = True
    threefry_bulk: ClassVar[bool] = True
    full_covariance: ClassVar[bool] = False
    gaussian: ClassVar[bool] = False
    has_df: ClassVar[bool] = False
    atoms: ClassVar[tuple[float, ...] | None] = None
    band_reach: ClassVar[float | None] = None
    auto_quadrature_dim: ClassVar[int] = 0
    heavy_tailed: ClassVar[bool] = False  # a box may cut off much of the variance (`tail_variance`)

    def standard(self, random, key, shape, dtype, df) -> jax.Array:
        """z of shape `shape` (zero mean, unit variance) from `random` (`jax.random` or `simulate.threefry`)."""
        raise NotImplementedError

    def density(self, z, df, xp=np):
        """The density of z at `z` (a density family only)."""
        raise ValueError(f"{self.name} noise has no density (its law has atoms {self.atoms})")

    def upper_tail(self, z, df, xp=jnp, special=jax.scipy.special):
        """Q(z) = Prob(Z > z); `xp`, `special`: jax.numpy / jax.scipy.special or numpy / scipy.special."""
        raise ValueError(f"{self.name} noise has no upper tail here (its law has atoms {self.atoms})")

    def interval_probability(self, df, a, b, xp=jnp, special=jax.scipy.special):
        """Prob(a < Z < b) for a <= b, as a difference of upper tails on the side away from 0, so
        that far-tail intervals keep their relative accuracy."""
        right = 0.5 * (a + b) >= 0
        upper_a = self.upper_tail(xp.where(right, a, -b), df, xp, special)
        upper_b = self.upper_tail(xp.where(right, b, -a), df, xp, special)
        return xp.maximum(upper_a - upper_b, 0.0)

    def quadrature(self, covariance: np.ndarray, dim: int, order: int | None) -> tuple[np.ndarray, np.ndarray]:
        """(eps_i `(n, dim)`, w_i `(n,)` summing to 1) with sum_i w_i g(eps_i) ~ E g(eps), eps of
        covariance `covariance`; `order` nodes per axis (None: the default)."""
        raise ValueError(
            f"{self.name} noise has no quadrature rule matching its law: use method='monte_carlo'"
        )

    def tail_variance(self, reach: float, df) -> float:
        """E[Z^2 1{|Z| > reach}]: the share of the variance beyond `reach` noise units (checked
        against the law's box for `heavy_tailed` families only)."""
        raise ValueError(f"{self.name} noise has no tail variance here")

    def kernel_cells(self, sd: float, width: float, n_cells: int) -> float:
        """Cells (of width `width`) beyond which eta eps of standard deviation `sd` is negligible."""
        return float(n_cells)

    def describe_extra(self, model: "NoiseModel") -> dict:
        """The family's own fields in `NoiseModel.describe` (e.g. df)."""
        return {}


def quadrature_order(order, dim: int) -> int:
    """The nodes per axis of a tensor rule in dimension `dim` <= MAX_QUADRATURE_DIM: `order`, or
    `DEFAULT_ORDER[dim]` for None."""
    if dim > MAX_QUADRATURE_DIM:
        raise ValueError(
            f"tensor quadrature is for dim <= {MAX_QUADRATURE_DIM} (order^dim nodes), got dim={dim}: "
            "use method='monte_carlo'"
        )
    return DEFAULT_ORDER[int(dim)] if order is None else validation.positive_int("order", order, note="nodes per axis")


def tensor_rule(nodes_1d: np.ndarray, weights_1d: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The tensor product of a 1-D rule: nodes `(n^dim, dim)`, weights `(n^dim,)`."""
    grids = np.meshgrid(*([nodes_1d] * dim), indexing="ij")
    weight_grids = np.meshgrid(*([weights_1d] * dim), indexing="ij")
    nodes = np.stack([g.reshape(-1) for g in grids], axis=-1)
    weights = np.prod(np.stack([w.reshape(-1) for w in weight_grids], axis=-1), axis=-1)
    return nodes, weights


@dataclasses.dataclass(frozen=True)
class NoiseModel:
    """A zero-mean noise law with known covariance.

    Fields (build with the constructors `gaussian`, `rademacher`, `uniform`, `student_t`):

    - `family`: the family's name, a key of `objectives.noise_families.TABLE` (static); its
      object is `standard_law`.
    - `scale`: the standard deviation s of each coordinate of the isotropic models (leaf).
    - `df`: degrees of freedom of the Student-t model (leaf; `nan` for other families).
    - `factor`: a matrix L with L L^T = C for a full-covariance Gaussian, else `None` (leaf).
    """

    family: str
    scale: object = 1.0
    df: object = math.nan
    factor: object = None

    additive = True  # g(x, eps) = grad f(x) + eps with eps independent of x

    @property
    def standard_law(self) -> NoiseFamily:
        """The family object: the standardised law z of one coordinate (eps = s z)."""
        return family_named(self.family)

    @property
    def fixed_dim(self) -> int | None:
        """The dimension a full-covariance model is tied to, or `None` for isotropic models."""
        return None if self.factor is None else int(np.shape(self.factor)[0])

    @property
    def is_isotropic(self) -> bool:
        return self.factor is None

    def covariance(self, dim: int | None = None) -> np.ndarray:
        """The covariance matrix Sigma of eps in dimension `dim`, shape `(dim, dim)` (NumPy)."""
        if self.factor is not None:
            factor = np.asarray(self.factor, dtype=np.float64)
            if dim is not None and dim != factor.shape[0]:
                raise ValueError(
                    f"dim={dim} does not match the noise covariance, which is {factor.shape[0]}-dimensional"
                )
            return factor @ factor.T
        if dim is None:
            raise ValueError("dim is required for an isotropic noise model")
        return float(self.scale) ** 2 * np.eye(dim)

    def sample(self, key: jax.Array, shape: tuple[int, ...], dim: int, dtype=None) -> jax.Array:
        """Draw i.i.d. eps of shape `shape + (dim,)` from one key.

        Standardised draws z (zero mean, unit variance per coordinate, `standard_law.standard`)
        are mapped to eps = s z, or eps = z L^T for a full covariance (`from_standardized`).
        """
        dtype = dtype or jnp.result_type(float)
        z = self.standard_law.standard(jax.random, key, tuple(shape) + (dim,), dtype, self.df)
        return self.from_standardized(z, dtype)

    def from_standardized(self, z: jax.Array, dtype) -> jax.Array:
        """eps from standardised draws z of shape `(..., dim)`: s z, or z L^T for a full covariance."""
        if self.factor is not None:
            return z @ jnp.asarray(self.factor, dtype).T
        return z * jnp.asarray(self.scale, dtype)

    def describe(self) -> dict:
        """A JSON-friendly description (for result metadata)."""
        out = {"family": self.family}
        if self.factor is None:
            out["scale"] = float(self.scale)
        else:
            out["covariance"] = self.covariance().tolist()
        out.update(self.standard_law.describe_extra(self))
        return out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.describe().items() if k != "family")
        return f"{self.family}({args})"


jax.tree_util.register_dataclass(
    NoiseModel, data_fields=["scale", "df", "factor"], meta_fields=["family"]
)


def check_scale(scale, name: str = "scale") -> float:
    """A non-negative finite number (complex refused: float() would drop the imaginary part)."""
    try:
        if isinstance(scale, (complex, np.complexfloating)):
            raise TypeError
        value = float(scale)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a non-negative finite number, got {scale!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative finite number, got {scale!r}")
    return value
