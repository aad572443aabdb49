"""The smoothed objective F_eta and the sharpness-penalised objective P_eta of an objective f.

For a noise law eps (zero mean, covariance Sigma) and a step size eta (Nitanda, Kikuchi, Maeda
and Wu, AISTATS 2024; Kleinberg, Li and Yuan, ICML 2018):

    F_eta(v) = E f(v - eta eps)                                        (`smoothed`)
    P_eta(v) = f(v) + (eta^2 / 2) tr(Sigma Hess f(v))                  (`penalized`)

P_eta is the second-order Taylor expansion of F_eta in eta (odd moments of a symmetric law
vanish), so F_eta - P_eta = O((eta * scale)^4) where f is smooth.

How E f(v - eta eps) is computed (`method="auto"` picks the first that applies):

- `"closed_form"`: Gaussian noise and an objective with the closed form
  `Objective.gaussian_smoothing`, fn(params, x, covariance) = E f(x - e), e ~ N(0, covariance). It is
  called with covariance eta^2 Sigma. Exact.
- `"quadrature"`, exact or nearly so, in low dimension: Rademacher noise is the exact average
  over the 2^dim sign vectors (dim <= 10 under "auto"); Gaussian noise uses the tensor
  Gauss-Hermite rule (probabilists' weight, eps = L z with L L^T = Sigma), uniform noise the
  tensor Gauss-Legendre rule on [-sqrt(3) s, sqrt(3) s]^dim, both with `order` nodes per axis,
  dim <= 3 (defaults `DEFAULT_ORDER` = 128, 32, 16 for dim 1, 2, 3). Gauss-Hermite nodes near
  the center are about pi / sqrt(2 order) apart in units of eta s, so features of f much
  narrower than that are under-resolved: raise `order` (sharp_flat's 0.15-wide well at
  eta s = 1 is off by 1e-3 at order 128). Student-t noise has no moment-matching Gauss rule
  (its high moments are infinite), so it always uses Monte Carlo.
- `"monte_carlo"`: the average over `n_samples` draws eps_i from `noise.sample` with a fixed
  `seed`, the same draws for every v (common random numbers), so F is a smooth deterministic
  function that Newton's method can minimise. Its standard error, sqrt(sample variance / n),
  is reported by `standard_error(F, x)`.

The step size, the noise covariance and the nodes are leaves of the returned objective's
`params`: a new eta or noise scale of the same shapes does not recompile. A vector of S step
sizes returns a *batch* of S objectives stacked on a leading axis of every leaf of `params`, to
be consumed with `jax.vmap` (see `smoothed`).

The noise model is an `objectives.noise.NoiseModel` (`simulate.noise` re-exports it). The quadrature rules and Monte Carlo draws live in
`objectives.noise_laws`; this module turns them into objectives.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from objectives import validation as check
from objectives.base import Objective
from objectives.noise_laws import (
    DEFAULT_N_SAMPLES,
    DEFAULT_ORDER,
    check_noise,
    is_isotropic,
    monte_carlo_draws,
    noise_quadrature,
)

__all__ = [
    "METHODS",
    "DEFAULT_ORDER",
    "DEFAULT_N_SAMPLES",
    "smoothed",
    "penalized",
    "standard_error",
    "noise_quadrature",
]

METHODS = ("auto", "closed_form", "quadrature", "monte_carlo")


class SmoothingParams(NamedTuple):
    """The traced leaves of a smoothed objective (every leaf gets a leading axis S in a batch).

    - `objective`: the params of f.
    - `step_size`: eta, shape `()`.
    - `covariance`: Sigma, `(dim, dim)` (used by the closed form).
    - `nodes`: `(n, dim)` noise values eps_i (empty for the closed form).
    - `weights`: `(n,)` with sum 1: F(v) = sum_i w_i f(v - eta eps_i).
    """

    objective: Any
    step_size: Any
    covariance: Any
    nodes: Any
    weights: Any


class PenaltyParams(NamedTuple):
    """The traced leaves of a penalised objective: f's params, eta `()`, Sigma `(dim, dim)`."""

    objective: Any
    step_size: Any
    covariance: Any


# ---- per-point functions: frozen dataclasses, so equal configurations share compiled code ------


def _cast(tree, dtype):
    def cast(leaf):
        leaf = jnp.asarray(leaf)
        return leaf.astype(dtype) if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf

    return jax.tree.map(cast, tree)


def _scalar_step_size(params, dtype):
    eta = jnp.asarray(params.step_size)
    if eta.ndim != 0:
        raise ValueError(
            f"this objective is a batch of {eta.shape[0]} objectives (one per step size): map over it "
            "with jax.vmap, or take one with jax.tree.map(lambda a: a[i], objective)"
        )
    return eta.astype(dtype)


@dataclasses.dataclass(frozen=True)
class _AutodiffGrad:
    """grad_x of `value_fn(params, x)`; a dataclass (not `jax.grad(...)`) so that equal
    configurations compare equal and share compiled code."""

    value_fn: Callable

    def __call__(self, params, x):
        return jax.grad(self.value_fn, argnums=1)(params, x)


@dataclasses.dataclass(frozen=True)
class _AutodiffHessian:
    value_fn: Callable

    def __call__(self, params, x):
        return jax.hessian(self.value_fn, argnums=1)(params, x)


def _or_autodiff_grad(fn, value_fn):
    return fn if fn is not None else _AutodiffGrad(value_fn)


def _or_autodiff_hessian(fn, value_fn):
    return fn if fn is not None else _AutodiffHessian(value_fn)


@dataclasses.dataclass(frozen=True)
class _ClosedFormValue:
    """F(v) = g(params_f, v, eta^2 Sigma), g the registered Gaussian smoothing of f."""

    gaussian_smoothing: Callable

    def __call__(self, params, x):
        eta = _scalar_step_size(params, x.dtype)
        p = _cast(params, x.dtype)
        return self.gaussian_smoothing(p.objective, x, eta * eta * p.covariance)


@dataclasses.dataclass(frozen=True)
class _ComposedGaussianSmoothing:
    """Gaussian smoothing of a Gaussian-smoothed f: covariances add, eta^2 Sigma + C."""

    gaussian_smoothing: Callable

    def __call__(self, params, x, covariance):
        eta = _scalar_step_size(params, x.dtype)
        p = _cast(params, x.dtype)
        return self.gaussian_smoothing(p.objective, x, eta * eta * p.covariance + covariance)


@dataclasses.dataclass(frozen=True)
class _NodeAverage:
    """sum_i w_i g(params_f, v - eta eps_i) for a per-point function g of f (value, grad, ...)."""

    point_fn: Callable

    def __call__(self, params, x):
        eta = _scalar_step_size(params, x.dtype)
        p = _cast(params, x.dtype)
        values = jax.vmap(lambda y: self.point_fn(p.objective, y))(x[None, :] - eta * p.nodes)
        return jnp.tensordot(p.weights, values, axes=1)


@dataclasses.dataclass(frozen=True)
class _NodeStandardError:
    """sqrt(sum_i w_i (f_i - F)^2 / (n - 1)): the standard error of an equal-weight average."""

    value_fn: Callable

    def __call__(self, params, x):
        eta = _scalar_step_size(params, x.dtype)
        p = _cast(params, x.dtype)
        values = jax.vmap(lambda y: self.value_fn(p.objective, y))(x[None, :] - eta * p.nodes)
        n = values.shape[0]
        mean = jnp.dot(p.weights, values)
        variance = jnp.dot(p.weights, (values - mean) ** 2) * (n / max(n - 1, 1))
        return jnp.sqrt(variance / n)


@dataclasses.dataclass(frozen=True)
class _ZeroStandardError:
    def __call__(self, params, x):
        return jnp.zeros((), x.dtype)


@dataclasses.dataclass(frozen=True)
class _PenaltyValue:
    """f(v) + (eta^2/2) tr(Sigma H_f(v)); for isotropic Sigma = s^2 I, s^2 tr H_f (f's own trace)."""

    value_fn: Callable
    hessian_fn: Callable | None
    hessian_trace_fn: Callable | None
    isotropic: bool

    def __call__(self, params, x):
        eta = _scalar_step_size(params, x.dtype)
        p = _cast(params, x.dtype)
        if self.isotropic:
            if self.hessian_trace_fn is not None:
                trace = self.hessian_trace_fn(p.objective, x)
            else:
                trace = jnp.trace(_or_autodiff_hessian(self.hessian_fn, self.value_fn)(p.objective, x))
            sharpness = p.covariance[0, 0] * trace
        else:
            hessian = _or_autodiff_hessian(self.hessian_fn, self.value_fn)(p.objective, x)
            sharpness = jnp.sum(p.covariance * hessian)
        return self.value_fn(p.objective, x) + 0.5 * eta * eta * sharpness


@dataclasses.dataclass(frozen=True)
class _OfObjectiveParams:
    """A closed form of f that takes f's params only (e.g. `search_box`), lifted to the new params."""

    fn: Callable

    def __call__(self, params):
        return self.fn(params.objective)


# ---- validation ------------------------------------------------------------------------------


def _check_objective(f) -> None:
    if not isinstance(f, Objective):
        raise ValueError(f"f must be an objectives.Objective, got {type(f).__name__}")


def _check_step_size(step_size) -> np.ndarray:
    """eta >= 0 as float64: a 0-d array for one step size, `(S,)` for a vector (a batch)."""
    eta = check.step_sizes("step_size", step_size, allow_zero=True)
    return eta if np.ndim(step_size) == 1 else eta.reshape(())


def _batch(params, eta: np.ndarray):
    """Put eta in the params; a vector of S step sizes stacks every leaf on a leading axis S."""
    params = params._replace(step_size=eta)
    if eta.ndim == 0:
        return params
    size = eta.shape[0]
    return jax.tree.map(
        lambda leaf: leaf if leaf is eta else np.broadcast_to(np.asarray(leaf), (size,) + np.shape(leaf)),
        params,
    )


def _batch_size(eta: np.ndarray) -> int | None:
    """S for a vector of S step sizes (a batch of S objectives), None for one step size."""
    return int(eta.shape[0]) if eta.ndim == 1 else None


def _batch_info(eta: np.ndarray) -> tuple:
    return (("batch", int(eta.shape[0])),) if eta.ndim == 1 else ()


def _lifted_search_box(f: Objective):
    """f's search box, as a function of the new objective's params (the box does not move)."""
    return None if f.search_box is None else _OfObjectiveParams(f.search_box)


def _resolve_method(method: str, f: Objective, noise) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    law = noise.standard_law
    closed = law.gaussian and f.gaussian_smoothing is not None
    if method == "closed_form" and not closed:
        raise ValueError(
            f"method='closed_form' needs Gaussian noise and an objective with a closed-form "
            f"gaussian_smoothing; objective {f.name!r} with {noise.family} noise has none (use 'auto')"
        )
    if method != "auto":
        return method
    if closed:
        return "closed_form"
    if f.dim <= law.auto_quadrature_dim:
        return "quadrature"
    return "monte_carlo"


# ---- public constructors ---------------------------------------------------------------------


def smoothed(
    f: Objective,
    noise,
    step_size,
    *,
    method: str = "auto",
    order: int | None = None,
    n_samples: int = DEFAULT_N_SAMPLES,
    seed: int | jax.Array = 0,
) -> Objective:
    """The smoothed objective F(v) = E f(v - step_size * eps), eps from `noise`.

    F is an `Objective` of the same dimension, with gradient and Hessian from autodiff of the
    closed form, or the same weighted average of f's own gradient and Hessian at the nodes.
    With Gaussian noise and a closed form, F has its own `gaussian_smoothing` (covariances
    add), so `smoothed(smoothed(f, ...), ...)` stays exact. See the module docstring for the
    methods.

    A vector of S step sizes gives a batch: one objective whose `params` leaves all carry a
    leading axis S, `batch` = S. Evaluate it with `jax.vmap`, e.g.
    `jax.vmap(lambda F_i: F_i.value(x))(F)` -> `(S, ...)`, or take member i with
    `jax.tree.map(lambda a: a[i], F)`; calling its methods directly raises a ValueError.
    `analysis.smoothed_solution` minimises all S members in one compiled call.

    **Arguments:**

    - `f`: the objective, dim d.
    - `noise`: a noise model (`simulate.noise.gaussian(...)`, ...); a full covariance must be
      d-dimensional.
    - `step_size`: eta >= 0, a number or a 1-D vector of S step sizes.
    - `method`: "auto" (default), "closed_form", "quadrature" or "monte_carlo".
    - `order`: nodes per axis of the quadrature (default `DEFAULT_ORDER[d]`).
    - `n_samples`: Monte Carlo draws (default 4096).
    - `seed`: the Monte Carlo draws come from `noise.sample(jax.random.key(seed), ...)` (an
      integer, or a JAX key used as is).

    **Returns:** the `Objective` F (or a batch of S), named "smoothed_<f.name>"; `info` records
    the method. `standard_error(F, x)` gives the Monte Carlo standard error (0 otherwise).
    """
    _check_objective(f)
    family, covariance = check_noise(noise, f.dim)
    eta = _check_step_size(step_size)
    method = _resolve_method(method, f, noise)
    dim = f.dim
    composed = None
    if method == "closed_form":
        nodes, weights = np.zeros((0, dim)), np.zeros((0,))
        value_fn = _ClosedFormValue(f.gaussian_smoothing)
        grad_fn = hessian_fn = hessian_trace_fn = None
        error_fn = _ZeroStandardError()
        composed = _ComposedGaussianSmoothing(f.gaussian_smoothing)
    else:
        if method == "quadrature":
            nodes, weights = noise_quadrature(noise, dim, order)
            error_fn = _ZeroStandardError()
        else:
            nodes, weights = monte_carlo_draws(noise, dim, n_samples, seed)
            error_fn = _NodeStandardError(f.value_fn)
        value_fn = _NodeAverage(f.value_fn)
        grad_fn = _NodeAverage(_or_autodiff_grad(f.grad_fn, f.value_fn))
        hessian_fn = _NodeAverage(_or_autodiff_hessian(f.hessian_fn, f.value_fn))
        hessian_trace_fn = _NodeAverage(f.hessian_trace_fn) if f.hessian_trace_fn is not None else None
    params = SmoothingParams(f.params, None, covariance, nodes, weights)
    return Objective(
        dim=dim,
        value_fn=value_fn,
        params=_batch(params, eta),
        name=f"smoothed_{f.name}",
        grad_fn=grad_fn,
        hessian_fn=hessian_fn,
        hessian_trace_fn=hessian_trace_fn,
        info=(("of", f.name), ("method", method), ("noise", family)) + _batch_info(eta),
        gaussian_smoothing=composed,
        search_box=_lifted_search_box(f),
        standard_error=error_fn,
        batch=_batch_size(eta),
    )


def penalized(f: Objective, noise, step_size) -> Objective:
    """The sharpness-penalised objective P(v) = f(v) + (step_size^2 / 2) tr(Sigma Hess f(v)).

    Sigma is `noise.covariance(dim)`; only the covariance of the noise matters. For isotropic
    Sigma = s^2 I the penalty is (eta^2 s^2 / 2) tr Hess f, using f's closed-form Hessian trace
    when it has one. P's derivatives come from autodiff (third and fourth derivatives of f).
    P_eta agrees with the smoothed F_eta up to O((eta * scale)^4) near any point where f is
    smooth (the odd moments of the noise vanish).

    A vector of S step sizes gives a batch of S objectives, exactly as in `smoothed`.

    **Arguments:**

    - `f`: the objective, dim d.
    - `noise`: a noise model; a full covariance must be d-dimensional.
    - `step_size`: eta >= 0, a number or a 1-D vector of S step sizes.

    **Returns:** the `Objective` P (or a batch of S), named "penalized_<f.name>".
    """
    _check_objective(f)
    family, covariance = check_noise(noise, f.dim)
    eta = _check_step_size(step_size)
    value_fn = _PenaltyValue(f.value_fn, f.hessian_fn, f.hessian_trace_fn, is_isotropic(covariance))
    params = PenaltyParams(f.params, None, covariance)
    info = (("of", f.name), ("penalty", "eta^2/2 tr(Sigma H)"), ("noise", family)) + _batch_info(eta)
    return Objective(
        dim=f.dim,
        value_fn=value_fn,
        params=_batch(params, eta),
        name=f"penalized_{f.name}",
        info=info,
        search_box=_lifted_search_box(f),
        batch=_batch_size(eta),
    )


def standard_error(objective: Objective, x) -> jax.Array:
    """The Monte Carlo standard error of a smoothed objective's value at `x` `(..., dim)` -> `(...)`.

    sqrt(s^2 / n), s^2 the sample variance of f(x - eta eps_i) over the n draws; zero for the
    closed-form and quadrature methods (their error is not statistical).
    """
    fn = objective.standard_error if isinstance(objective, Objective) else None
    if fn is None:
        raise ValueError(f"objective must come from objectives.smoothed, got {objective!r}")
    points = objective._check_points(x)
    return jnp.vectorize(lambda y: fn(objective.params, y), signature="(d)->()")(points)
