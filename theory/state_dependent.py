"""The kernel of SGD whose noise depends on x, on cells: state-dependent Gaussian noise and the
exact minibatch kernel of a small finite sum.

With noise covariance C(x) the chain x' = x - eta grad f(x) - eta C(x)^(1/2) z has the kernel

    P(x, .) = N(x - eta grad f(x), eta^2 C(x));

a row of the cell chain is still a Gaussian, with a width that changes from cell to cell (C = 0
where the noise vanishes: a point map). Minibatch noise on a finite sum is the mixture over the
minibatches b of the point maps x -> x - eta grad f_b(x) (`theory.minibatch_kernel`). Both are
mixtures of Gaussians per cell, put on the cells by `theory.cell_mixtures` (tent weights: every
row keeps its mean exactly, down to point masses).

`components(f, noise, points)` reads the noise once per grid (the drifts and covariances do not
depend on eta); `cell_kernel(grid, parts, eta)` is the matrix at one step size.

The noise may be

- a callable `cov(x) -> (d, d)`, x of shape `(d,)`, traceable by JAX (evaluated on the cell
  centres in float64);
- an object with a method `covariance_at(objective, x) -> (d, d)`: the state-dependent noise
  families of `simulate.noise` (`state_dependent(cov)`, `hessian_aligned(scale)`,
  `loss_scaled(scale, f_min)`, `label_noise(scale)`), the very objects `simulate.run` takes
  (`bind_noise` gives loss-scaled noise without f_min the value `simulate.run` finds);
- `simulate.noise.minibatch(B, replace, label_noise)` on an `objectives.FiniteSum` (with label
  noise s > 0 each minibatch's component is a Gaussian, N(c - eta grad f_b(c), eta^2 (s / B)^2
  sum_j count_j J_j J_j^T), exact for the squared error);
- an additive `simulate.noise.gaussian(...)` (constant C: the additive law, on tent weights).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from objectives import FiniteSum
from objectives.noise import Minibatch, NoiseModel
from objectives.state_noise import label_jacobians
from theory.cell_mixtures import mixture_matrix
from theory.minibatch_kernel import enumerate_minibatches, example_gradients, in_float64

__all__ = ["Components", "bind_noise", "cell_kernel", "components", "covariance_on", "is_state_dependent"]


class Components(NamedTuple):
    """The kernel's mixture at the cell centres, for any eta: component k of cell i is
    N(c_i - eta gradients[i, k], eta^2 covariances[i, k]) with probability weights[k].

    - `weights` `(K,)`; `gradients` `(N, K, d)`; `covariances` `(N, K, d, d)` or `None` (point maps).
    - `mean_gradient` `(N, d)`: grad f at the centres (the mixture's mean drift).
    """

    weights: np.ndarray
    gradients: np.ndarray
    covariances: np.ndarray | None
    mean_gradient: np.ndarray


def is_state_dependent(noise) -> bool:
    """Whether `noise` is one this module handles and the additive kernels do not."""
    return isinstance(noise, Minibatch) or callable(noise) or hasattr(noise, "covariance_at")


def bind_noise(f, noise):
    """`noise` for `f`, as `simulate.run` binds it: a state-dependent family's `bind` (loss-scaled
    noise without f_min gets the least value of f found on its search box), anything else as is."""
    return noise.bind(f) if callable(getattr(noise, "bind", None)) else noise


def covariance_on(f, noise, points: np.ndarray) -> np.ndarray:
    """C at every point, `(N, d, d)` float64, checked: real, finite, of shape (d, d), symmetric and
    positive semi-definite (to rounding). **Raises:** `ValueError` naming `noise` and the point."""
    d = f.dim
    points = np.asarray(points, np.float64)
    with jax.enable_x64(True):
        if isinstance(noise, NoiseModel):
            values = np.broadcast_to(noise.covariance(d), (points.shape[0], d, d))
        else:
            if hasattr(noise, "covariance_at"):
                one = lambda x: noise.covariance_at(f, x)  # noqa: E731
            else:
                one = noise
            try:
                values = np.asarray(jax.jit(jax.vmap(lambda x: jnp.asarray(one(x))))(jnp.asarray(points)))
            except Exception as error:  # a user's function: say which argument failed, keep the cause
                raise ValueError(f"noise: the covariance function failed on points of shape (N, {d}): {error}") from None
    if np.iscomplexobj(values):
        raise ValueError(f"noise: the covariance C(x) must be real, got complex values ({values.dtype})")
    if values.shape != (points.shape[0], d, d):
        raise ValueError(f"noise: the covariance C(x) must have shape ({d}, {d}) at each x, got {values.shape[1:]}")
    values = np.asarray(values, np.float64)
    bad = ~np.all(np.isfinite(values), axis=(1, 2))
    if np.any(bad):
        raise ValueError(f"noise: the covariance C(x) must be finite, got {values[bad][0].tolist()} at x={points[bad][0].tolist()}")
    scale = np.maximum(np.abs(values).max(axis=(1, 2)), 1e-300)
    asymmetric = np.abs(values - values.transpose(0, 2, 1)).max(axis=(1, 2)) > 1e-10 * scale
    if np.any(asymmetric):
        i = int(np.flatnonzero(asymmetric)[0])
        raise ValueError(f"noise: the covariance C(x) must be symmetric, got {values[i].tolist()} at x={points[i].tolist()}")
    values = 0.5 * (values + values.transpose(0, 2, 1))
    smallest = np.linalg.eigvalsh(values)[:, 0]
    negative = smallest < -1e-10 * scale
    if np.any(negative):
        i = int(np.flatnonzero(negative)[0])
        raise ValueError(
            f"noise: the covariance C(x) must be positive semi-definite, got smallest eigenvalue {smallest[i]:.3g} "
            f"at x={points[i].tolist()}"
        )
    return values


def components(f, noise, points: np.ndarray) -> Components:
    """The mixture of the kernel at `points` `(N, d)` (see `Components`).

    **Raises:** `ValueError` naming `noise` for a bad covariance, a minibatch on an objective that
    is not a finite sum, or a finite sum too large for the exact mixture.
    """
    points = np.asarray(points, np.float64)
    batches = None
    if isinstance(noise, Minibatch):
        if not isinstance(f, FiniteSum):
            raise ValueError(f"noise=minibatch(...) needs a finite-sum objective (objectives.finite_sum), got {f.name!r}")
        batches = enumerate_minibatches(f.n_examples, noise.batch_size, noise.replace)
    if isinstance(f, FiniteSum):
        f = in_float64(f)
    with jax.enable_x64(True):
        gradient = np.asarray(f.grad(points), np.float64)
    if batches is not None:
        per_example = example_gradients(f, points)
        gradients = np.einsum("kn,pnd->pkd", batches.counts / noise.batch_size, per_example)
        covariances = None  # point maps
        if noise.label_noise > 0:  # given the batch, N(0, (s / b)^2 sum_j count_j J_j J_j^T): a Gaussian per component
            noise.check(f)
            with jax.enable_x64(True):
                jacobians = np.asarray(jax.jit(jax.vmap(lambda x: label_jacobians(f, x)))(jnp.asarray(points)), np.float64)  # (N, n, d, k)
            outer = np.einsum("pnak,pnbk->pnab", jacobians, jacobians)
            covariances = (noise.label_noise / noise.batch_size) ** 2 * np.einsum("kn,pnab->pkab", batches.counts, outer)
        return Components(batches.probability, gradients, covariances, gradient)
    if isinstance(noise, NoiseModel) and not noise.standard_law.gaussian:
        raise ValueError(f"noise: the state-dependent law takes Gaussian noise, got {noise!r} (use stationary_law)")
    covariance = covariance_on(f, noise, points)
    return Components(np.ones(1), gradient[:, None, :], covariance[:, None], gradient)


def cell_kernel(grid, parts: Components, step_size: float, *, allow_empty: bool = False):
    """`(P, leak)` of the cell chain at `step_size` (`theory.cell_mixtures.mixture_matrix`)."""
    mean = grid.points[:, None, :] - step_size * parts.gradients
    covariance = None if parts.covariances is None else step_size**2 * parts.covariances
    return mixture_matrix(grid, parts.weights, mean, covariance, allow_empty=allow_empty)
