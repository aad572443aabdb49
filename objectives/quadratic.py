"""The quadratic objective f(x) = 1/2 (x - c)^T H (x - c).

The one landscape where SGD with Gaussian noise is a linear Gaussian recursion, so every
moment of every estimator is known exactly (see `theory.quadratic`). Its Gaussian smoothing is
closed form: E f(v - s*eps) = f(v) + (s^2/2) tr(H Sigma) for Cov(eps) = Sigma, so the smoothed
minimizer is c for every step size.
"""

from __future__ import annotations

from functools import partial

import jax.numpy as jnp
import numpy as np

from objectives import validation as check
from objectives.base import Objective

__all__ = ["quadratic"]

# How the Hessian is stored; static, so that a diagonal 100-D quadratic costs O(dim) per step.
_SCALAR, _DIAGONAL, _DENSE = "scalar", "diagonal", "dense"


def _hessian_times(kind: str, hessian, y):
    if kind == _DENSE:
        # y H = H y for symmetric H. Written as a row vector times H, the engine's batched
        # product (chains and step sizes vmapped) is Y H, which XLA:CPU runs faster than the
        # transposed product that H y batches into (benchmarks/README.md, case 3 and "Lab notes").
        return y @ hessian
    return hessian * y


def _make_functions(kind: str):
    def value(params, x):
        hessian, center = params
        y = x - center
        return 0.5 * jnp.dot(y, _hessian_times(kind, hessian, y))

    def grad(params, x):
        hessian, center = params
        return _hessian_times(kind, hessian, x - center)

    def hess(params, x):
        hessian, _ = params
        dim = x.shape[-1]
        if kind == _DENSE:
            return hessian
        if kind == _DIAGONAL:
            return jnp.diag(hessian)
        return hessian * jnp.eye(dim, dtype=x.dtype)

    def hessian_trace(params, x):
        hessian, _ = params
        if kind == _DENSE:
            return jnp.trace(hessian)
        if kind == _DIAGONAL:
            return jnp.sum(hessian)
        return hessian * x.shape[-1]

    def gaussian_smoothing(params, x, covariance):
        # E f(x - eps), eps ~ N(0, covariance): the bias of a quadratic is a constant.
        hessian, _ = params
        dense = hess(params, x)
        return value(params, x) + 0.5 * jnp.sum(dense * covariance)

    return value, grad, hess, hessian_trace, gaussian_smoothing


def _quadratic_form(kind: str, params) -> tuple[np.ndarray, np.ndarray]:
    """(H as a dense `(dim, dim)` matrix, c): lets exact methods recognise a quadratic."""
    hessian, center = (np.asarray(p, dtype=np.float64) for p in params)
    dim = center.shape[0]
    if kind == _DENSE:
        return hessian, center
    if kind == _DIAGONAL:
        return np.diag(hessian), center
    return float(hessian) * np.eye(dim), center


_FUNCTIONS = {kind: _make_functions(kind) for kind in (_SCALAR, _DIAGONAL, _DENSE)}
# One function object per kind, built once: the closed forms are static jit metadata, compared by identity.
_QUADRATIC_FORMS = {kind: partial(_quadratic_form, kind) for kind in (_SCALAR, _DIAGONAL, _DENSE)}


def quadratic(hessian, center=None, *, dim: int | None = None, name: str = "quadratic") -> Objective:
    """f(x) = 1/2 (x - c)^T H (x - c).

    **Arguments:**

    - `hessian`: H, a symmetric positive semi-definite matrix of shape `(dim, dim)`, a vector of
      shape `(dim,)` (the diagonal of H), or a scalar (H = h I).
    - `center`: c, shape `(dim,)`; default the origin.
    - `dim`: needed only when `hessian` is a scalar and `center` is not given.
    - `name`: the name used in results.

    **Returns:** an `Objective` with closed-form gradient H (x - c), Hessian H and trace tr H.

    **Raises:** `ValueError` when H is not symmetric PSD, or the shapes disagree.
    """
    h = check.float_array("hessian", hessian, ndim=(0, 1, 2), allowed="a scalar, a vector (the diagonal) or a square matrix")
    if h.ndim == 2 and h.shape[0] != h.shape[1]:
        raise ValueError(f"hessian must be a scalar, a vector (the diagonal) or a square matrix, got shape {h.shape}")
    kind = {0: _SCALAR, 1: _DIAGONAL, 2: _DENSE}[h.ndim]
    inferred = {0: None, 1: h.shape[0] if h.ndim == 1 else None, 2: h.shape[0] if h.ndim == 2 else None}[h.ndim]
    if center is not None:
        c = check.float_array("center", center, ndim=(1,), allowed="a vector of shape (dim,)")
        if inferred is not None and c.shape[0] != inferred:
            raise ValueError(f"center has shape {c.shape} but hessian implies dim={inferred}")
        inferred = c.shape[0]
    if dim is not None:
        if inferred is not None and dim != inferred:
            raise ValueError(f"dim={dim} disagrees with the shapes of hessian/center (dim={inferred})")
        inferred = dim
    if inferred is None:
        raise ValueError("a scalar hessian needs center= or dim= to fix the dimension")
    n = check.dimension("dim", inferred)
    c = np.zeros(n) if center is None else np.asarray(center, dtype=np.float64)

    if kind == _DENSE:
        h = check.psd_matrix("hessian", h)
    elif np.any(h < 0):
        raise ValueError(f"hessian must be non-negative (positive semi-definite), got {h.tolist()}")

    value, grad, hess, hessian_trace, gaussian_smoothing = _FUNCTIONS[kind]
    return Objective(
        dim=n,
        value_fn=value,
        params=(h, c),
        name=name,
        grad_fn=grad,
        hessian_fn=hess,
        hessian_trace_fn=hessian_trace,
        info=(("hessian", kind),),
        gaussian_smoothing=gaussian_smoothing,
        minimizer=_minimizer,
        quadratic_form=_QUADRATIC_FORMS[kind],
    )


def _minimizer(params):
    """A minimizer of the quadratic: its center."""
    return params[1]
