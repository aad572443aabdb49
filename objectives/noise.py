"""Gradient-noise models: the law of eps in the stochastic gradient grad f(x) + eps.

Defined once here and shared: `objectives.smoothing` averages f over these laws (F(v) =
E f(v - eta eps)), `simulate` draws them in its chains (`simulate.noise` re-exports this module).
It lives in `objectives` because `objectives` imports nothing of ours.

Every model is zero-mean and normalised so that its covariance is exactly what
`covariance(dim)` reports: scale^2 I for the isotropic models whatever the shape of the
distribution (uniform on [-sqrt(3) s, sqrt(3) s], Rademacher +-s, Student-t rescaled by
sqrt((df - 2)/df)), and C for `gaussian(covariance=C)`. So two models with the same
covariance give SGD the same second-order smoothing (eta^2/2) tr(Sigma H) and differ only
in higher moments.

A model is a pytree: `scale`, `df` and the covariance factor are leaves (traced under `jit`, a
new value does not recompile); the family name and whether the model is isotropic are static.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from objectives import validation

__all__ = ["FAMILIES", "Minibatch", "NoiseModel", "floyd_sample", "gaussian", "minibatch", "rademacher", "uniform", "student_t"]

#: The additive noise families (`NoiseModel.family`), each with its constructor below.
FAMILIES = ("gaussian", "rademacher", "uniform", "student_t")


@dataclasses.dataclass(frozen=True)
class NoiseModel:
    """A zero-mean noise law with known covariance.

    Fields (build with the constructors `gaussian`, `rademacher`, `uniform`, `student_t`):

    - `family`: one of "gaussian", "rademacher", "uniform", "student_t" (static).
    - `scale`: the standard deviation s of each coordinate of the isotropic models (leaf).
    - `df`: degrees of freedom of the Student-t model (leaf; `nan` for other families).
    - `factor`: a matrix L with L L^T = C for a full-covariance Gaussian, else `None` (leaf).
    """

    family: str
    scale: object = 1.0
    df: object = math.nan
    factor: object = None

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

        Standardised draws z (zero mean, unit variance per coordinate) are mapped to eps =
        s z, or eps = z L^T for a full covariance (`from_standardized`).
        """
        dtype = dtype or jnp.result_type(float)
        full = tuple(shape) + (dim,)
        if self.family == "gaussian":
            z = jax.random.normal(key, full, dtype)
        elif self.family == "rademacher":
            z = jax.random.rademacher(key, full, dtype)
        elif self.family == "uniform":
            z = jax.random.uniform(key, full, dtype, minval=-1.0, maxval=1.0) * jnp.sqrt(jnp.asarray(3.0, dtype))
        elif self.family == "student_t":
            df = jnp.asarray(self.df, dtype)
            z = jax.random.t(key, df, full, dtype) * jnp.sqrt((df - 2) / df)
        else:  # pragma: no cover - the constructors only make known families
            raise ValueError(f"unknown noise family {self.family!r}; allowed: {FAMILIES}")
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
        if self.family == "student_t":
            out["df"] = float(self.df)
        return out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.describe().items() if k != "family")
        return f"{self.family}({args})"


jax.tree_util.register_dataclass(
    NoiseModel, data_fields=["scale", "df", "factor"], meta_fields=["family"]
)


def _check_scale(scale) -> float:
    try:
        if isinstance(scale, (complex, np.complexfloating)):  # float() would drop the imaginary part
            raise TypeError
        value = float(scale)
    except (TypeError, ValueError):
        raise ValueError(f"scale must be a non-negative finite number, got {scale!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"scale must be a non-negative finite number, got {scale!r}")
    return value


def gaussian(scale: float | None = None, *, covariance=None) -> NoiseModel:
    """Gaussian noise: eps ~ N(0, scale^2 I), or N(0, C) with `covariance=C`.

    **Arguments:**

    - `scale`: standard deviation of each coordinate (default 1.0 when no covariance is given).
    - `covariance`: a symmetric positive semi-definite matrix C of shape `(dim, dim)`; ties the
      model to that dimension.
    """
    if covariance is None:
        return NoiseModel("gaussian", scale=_check_scale(1.0 if scale is None else scale))
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


def rademacher(scale: float = 1.0) -> NoiseModel:
    """Rademacher noise: each coordinate is +scale or -scale with probability 1/2 (covariance scale^2 I)."""
    return NoiseModel("rademacher", scale=_check_scale(scale))


def uniform(scale: float = 1.0) -> NoiseModel:
    """Uniform noise on [-sqrt(3) scale, sqrt(3) scale]^dim (covariance scale^2 I)."""
    return NoiseModel("uniform", scale=_check_scale(scale))


def student_t(scale: float = 1.0, df: float = 4.0) -> NoiseModel:
    """Heavy-tailed noise: scale * sqrt((df - 2)/df) * t_df per coordinate (covariance scale^2 I).

    `df` must exceed 2, where the variance exists.
    """
    try:
        if isinstance(df, (complex, np.complexfloating)):  # float() would drop the imaginary part
            raise TypeError
        df_value = float(df)
    except (TypeError, ValueError):
        raise ValueError(f"df must be a number > 2, got {df!r}") from None
    if not math.isfinite(df_value) or df_value <= 2:
        raise ValueError(f"df must be > 2 (the variance of Student-t noise is infinite otherwise), got {df!r}")
    return NoiseModel("student_t", scale=_check_scale(scale), df=df_value)


@dataclasses.dataclass(frozen=True)
class Minibatch:
    """Minibatch sampling for a finite-sum objective f = (1/n) sum_j loss_j (`objectives.FiniteSum`):
    the stochastic gradient at step k is (1/b) sum_{j in B_k} grad loss_j(x), with B_k a
    minibatch of b indices drawn afresh at every step (i.i.d. across steps and chains; not
    epoch shuffling). Without replacement the indices of one minibatch are distinct: a uniform
    b-subset of the n examples (`floyd_sample`).

    Its noise grad_B f(x) - grad f(x) is zero-mean with a covariance that depends on x:
    (n - b) / (b (n - 1)) S(x) without replacement and S(x) / b with it, S(x) the population
    covariance of the per-example gradients at x. Build with `minibatch`.
    """

    batch_size: int
    replace: bool = False

    family = "minibatch"
    fixed_dim = None
    is_isotropic = False

    def covariance(self, dim: int | None = None):
        raise ValueError(
            "minibatch noise has no fixed covariance: it depends on the position x (see Minibatch); "
            "use objectives.example_gradient_covariance(objective, x)"
        )

    def sample_indices(self, key: jax.Array, shape: tuple[int, ...], n_examples: int) -> jax.Array:
        """Draw minibatches from one key: int32 indices of shape `shape + (batch_size,)` in [0, n).

        With replacement, b independent uniform indices. Without, `floyd_sample`: a uniform
        b-subset of {0, ..., n-1} (its b indices distinct, in no particular order).
        """
        shape = tuple(shape)
        if self.replace:
            return jax.random.randint(key, shape + (self.batch_size,), 0, n_examples, dtype=jnp.int32)
        return floyd_sample(key, shape, n_examples, self.batch_size)

    def describe(self) -> dict:
        return {"family": "minibatch", "batch_size": self.batch_size, "replace": self.replace}

    def __repr__(self) -> str:
        return f"minibatch(batch_size={self.batch_size}, replace={self.replace})"


jax.tree_util.register_dataclass(Minibatch, data_fields=[], meta_fields=["batch_size", "replace"])


def floyd_sample(key: jax.Array, shape: tuple[int, ...], n: int, b: int) -> jax.Array:
    """Uniform b-subsets of {0, ..., n-1} without replacement, by Floyd's algorithm (Bentley and
    Floyd, "Programming pearls: a sample of brilliance", CACM 30(9), 1987):

        S = {}
        for i = 0, ..., b-1:          j = n - b + i
            t = uniform integer in {0, ..., j}
            S = S + {j} if t in S else S + {t}

    Every b-subset comes out with probability 1 / C(n, b) (induction on i: after step i, S is a
    uniform (i+1)-subset of {0, ..., j}). It costs b draws and O(b^2) comparisons, against the
    O(n log n) sort of `jax.random.choice(..., replace=False)` (a random permutation of all n):
    for n = 512, b = 16 the draw of 64 minibatches for 512 chains is about 100x faster
    (`python -m benchmarks --cases 7`; the whole minibatch run 20-40x). The
    b values of t are drawn at once, `jax.random.randint(key, shape + (b,), 0, j + 1)` (JAX
    reduces 64 random bits modulo j + 1: each value's probability is within 2^-64 of 1 / (j + 1)
    for n <= 2^16, 2^-32 above), and the loop over i runs on whole arrays.

    **Arguments:** `key`; `shape`, the batch of subsets drawn; `n` >= `b` >= 1 (static ints).

    **Returns:** int32 of shape `shape + (b,)`: each row's b indices are distinct, in [0, n).
    """
    if not 1 <= b <= n:
        raise ValueError(f"b must be between 1 and n (a subset of b distinct indices of n), got b={b!r}, n={n!r}")
    shape = tuple(shape)
    bounds = jnp.broadcast_to(jnp.arange(n - b + 1, n + 1, dtype=jnp.int32), shape + (b,))  # j + 1 at i
    draws = jax.random.randint(key, shape + (b,), 0, bounds, dtype=jnp.int32)

    def add(i, chosen):
        t = jax.lax.dynamic_index_in_dim(draws, i, axis=-1, keepdims=False)
        # Unfilled slots hold -1, which no draw equals.
        taken = jnp.any(chosen == t[..., None], axis=-1)
        return jax.lax.dynamic_update_index_in_dim(chosen, jnp.where(taken, n - b + i, t), i, axis=-1)

    return jax.lax.fori_loop(0, b, add, jnp.full(shape + (b,), -1, jnp.int32))


def minibatch(batch_size: int, replace: bool = False) -> Minibatch:
    """Minibatch noise of `batch_size` examples per step, with or without replacement (see `Minibatch`).

    Only for finite-sum objectives (`objectives.finite_sum` and the ready-made models).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if not isinstance(replace, (bool, np.bool_)):
        raise ValueError(f"replace must be True or False, got {replace!r}")
    return Minibatch(int(batch_size), bool(replace))
