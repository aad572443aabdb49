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

Each additive family is one object (`objectives.noise_families`, one file per family): how to
draw its standardised z, its density and tails, its quadrature rule, its kernel's reach. Every
consumer asks `noise.standard_law` instead of comparing family names.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from objectives.noise_families import FAMILIES, TABLE, NoiseFamily, NoiseModel, family_named
from objectives.noise_families.gaussian import gaussian
from objectives.noise_families.rademacher import rademacher
from objectives.noise_families.student_t import student_t
from objectives.noise_families.uniform import uniform
from objectives.state_noise import check_regression, label_jacobians

__all__ = [
    "FAMILIES", "TABLE", "Minibatch", "NoiseFamily", "NoiseModel", "family_named", "floyd_sample", "gaussian",
    "minibatch", "rademacher", "uniform", "student_t",
]


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

    `label_noise` = s > 0 (regression finite sums): every example drawn into the minibatch is seen
    with a fresh noisy label y_j + s xi, xi ~ N(0, I) (independent per draw, so an example drawn
    twice with replacement gets two), the gradient taken at those labels. For a loss quadratic in
    the label (the squared error) that adds, given the minibatch B, the Gaussian
    N(0, (s / b)^2 sum_{j in B} J_j J_j^T), J_j = d grad_x l_j / d y_j (`label_noise`'s J): with
    b = n without replacement it is `label_noise(s)`'s noise plus nothing (every example, once).
    """

    batch_size: int
    replace: bool = False
    label_noise: float = 0.0

    family = "minibatch"
    fixed_dim = None
    is_isotropic = False
    additive = False

    def covariance(self, dim: int | None = None):
        raise ValueError(
            "minibatch noise has no fixed covariance: it depends on the position x (see Minibatch); "
            "use objectives.example_gradient_covariance(objective, x)"
        )

    def covariance_at(self, objective, x: jax.Array) -> jax.Array:
        """The covariance of the minibatch noise at one point `x` `(dim,)` -> `(dim, dim)` (traced):
        (n - b) / (b (n - 1)) S(x) without replacement, S(x) / b with it, S(x) the population
        covariance of the n per-example gradients (`objective.point_example_grads`)."""
        grads = objective.point_example_grads(x)
        n = grads.shape[0]
        centred = grads - jnp.mean(grads, axis=0, keepdims=True)
        population = centred.T @ centred / n
        b = self.batch_size
        factor = 1.0 / b if self.replace else ((n - b) / (b * (n - 1)) if n > 1 else 0.0)
        covariance = jnp.asarray(factor, population.dtype) * population
        if self.label_noise > 0:  # each example is in the batch b / n times on average: (s^2 / (b n)) sum_j J_j J_j^T
            jacobians = label_jacobians(objective, x)
            covariance = covariance + (self.label_noise**2 / (b * n)) * jnp.einsum("nak,nbk->ab", jacobians, jacobians).astype(population.dtype)
        return covariance

    def sample_indices(self, key: jax.Array, shape: tuple[int, ...], n_examples: int) -> jax.Array:
        """Draw minibatches from one key: int32 indices of shape `shape + (batch_size,)` in [0, n).

        With replacement, b independent uniform indices. Without, `floyd_sample`: a uniform
        b-subset of {0, ..., n-1} (its b indices distinct, in no particular order).
        """
        shape = tuple(shape)
        if self.replace:
            return jax.random.randint(key, shape + (self.batch_size,), 0, n_examples, dtype=jnp.int32)
        return floyd_sample(key, shape, n_examples, self.batch_size)

    def check(self, objective) -> None:
        """Refuse label noise on an objective that is not a regression finite sum (ValueError)."""
        if self.label_noise > 0:
            check_regression(objective)

    def describe(self) -> dict:
        out = {"family": "minibatch", "batch_size": self.batch_size, "replace": self.replace}
        if self.label_noise > 0:  # absent at 0: descriptions (and result folders) from before stay equal
            out["label_noise"] = self.label_noise
        return out

    def __repr__(self) -> str:
        label = f", label_noise={self.label_noise:g}" if self.label_noise > 0 else ""
        return f"minibatch(batch_size={self.batch_size}, replace={self.replace}{label})"


# label_noise is static: a value of 0 draws no labels at all (the minibatch bits of before).
jax.tree_util.register_dataclass(Minibatch, data_fields=[], meta_fields=["batch_size", "replace", "label_noise"])


def floyd_sample(key: jax.Array, shape: tuple[int, ...], n: int, b: int) -> jax.Array:
    """Uniform b-subsets of {0, ..., n-1} without replacement, by Floyd's algorithm (Bentley and
    Floyd, "Programming pearls: a sample of brilliance", CACM 30(9), 1987):

        S = {}
        for i = 0, ..., b-1:          j = n - b + i
            t = uniform integer in {0, ..., j}
            S = S + {j} if t in S else S + {t}

    Every b-subset comes out with probability 1 / C(n, b) (induction on i: after step i, S is a
    uniform (i+1)-subset of {0, ..., j}). It costs b draws and O(b^2) comparisons, against the
    O(n log n) sort of `jax.random.choice(..., replace=False)` (a random permutation of all n),
    much faster for b << n (benchmarks/README.md, "Lab notes"). The
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


def minibatch(batch_size: int, replace: bool = False, label_noise: float = 0.0) -> Minibatch:
    """Minibatch noise of `batch_size` examples per step, with or without replacement (see `Minibatch`),
    and with `label_noise` = s >= 0 the labels of the drawn examples perturbed by s N(0, I) afresh.

    Only for finite-sum objectives (`objectives.finite_sum` and the ready-made models); label
    noise only for regression finite sums (checked by `simulate.run`).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if not isinstance(replace, (bool, np.bool_)):
        raise ValueError(f"replace must be True or False, got {replace!r}")
    if isinstance(label_noise, bool) or not isinstance(label_noise, (int, float, np.integer, np.floating)) or not (np.isfinite(label_noise) and label_noise >= 0):
        raise ValueError(f"label_noise must be a finite number >= 0 (the label's noise scale), got {label_noise!r}")
    return Minibatch(int(batch_size), bool(replace), float(label_noise))
