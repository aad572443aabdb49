"""The `Objective` type: a differentiable function on R^dim that knows its own mathematics.

An objective is a pytree. Its numeric parameters (`params`) are leaves, so an objective can be
passed straight into `jax.jit`ed code and a new objective with parameters of the same shapes
does not recompile; its functions, name and dimension are static metadata.

Every per-point function takes `(params, x)` with `x` of shape `(dim,)`. The public methods
`value`, `grad`, `hessian` and `hessian_trace` accept `x` of shape `(..., dim)` and map over the
leading axes with `jnp.vectorize`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

from objectives import validation as check

__all__ = ["CLOSED_FORMS", "Objective", "from_function"]

PointFn = Callable[[Any, jax.Array], jax.Array]


def _autodiff_grad(value_fn: PointFn) -> PointFn:
    return jax.grad(value_fn, argnums=1)


def _autodiff_hessian(value_fn: PointFn) -> PointFn:
    return jax.hessian(value_fn, argnums=1)


@dataclasses.dataclass(frozen=True)
class Objective:
    """A function f: R^dim -> R with its gradient, Hessian and Hessian trace (sharpness).

    **Arguments:**

    - `dim`: the dimension of the domain.
    - `value_fn`: `(params, x) -> f(x)` for one point `x` of shape `(dim,)`; returns a scalar.
    - `params`: a pytree of arrays (the objective's parameters, traced under `jit`).
    - `name`: a short name used in results and figures.
    - `grad_fn`, `hessian_fn`, `hessian_trace_fn`: closed forms, same signature as `value_fn`;
      when omitted they come from JAX autodiff of `value_fn`.
    - `info`: static, hashable, human-readable description of the parameters, for metadata
      and `repr` only: nothing reads it to decide what to do.

    Optional closed forms, `None` when the objective has none (the readers then fall back to a
    generic method); each is static metadata, called with the objective's `params`:

    - `gaussian_smoothing`: `(params, x, covariance) -> E f(x - e)`, e ~ N(0, covariance), for
      one point `x` `(dim,)` (`objectives.smoothed` uses it with covariance eta^2 Sigma).
    - `search_box`: `params -> (lower, upper)`, each `(dim,)`: a box holding every minimizer
      (`analysis.minimizers` searches it).
    - `minimizer`: `params -> (dim,)`, a global minimizer in closed form.
    - `quadratic_form`: `params -> (H, c)`, H `(dim, dim)` and c `(dim,)` NumPy, when f is the
      quadratic 1/2 (x - c)^T H (x - c) (exact samplers recognise it).
    - `standard_error`: `(params, x) -> ()`, the Monte Carlo standard error of the value at `x`
      (objectives built by `objectives.smoothed`).

    - `batch`: S when the objective is a batch of S objectives stacked on a leading axis of
      every `params` leaf (`smoothed`/`penalized` with a vector of step sizes), else `None`.

    Equality and hashing of the static part are by identity of the functions, so two
    objectives built by the same constructor share compiled code.
    """

    dim: int
    value_fn: PointFn
    params: Any = ()
    name: str = "objective"
    grad_fn: PointFn | None = None
    hessian_fn: PointFn | None = None
    hessian_trace_fn: PointFn | None = None
    info: tuple = ()
    gaussian_smoothing: Callable | None = None
    search_box: Callable | None = None
    minimizer: Callable | None = None
    quadratic_form: Callable | None = None
    standard_error: Callable | None = None
    batch: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "dim", check.dimension("dim", self.dim))
        if not callable(self.value_fn):
            raise ValueError(f"value_fn must be callable, got {type(self.value_fn).__name__}")
        for name in CLOSED_FORMS:
            if getattr(self, name) is not None and not callable(getattr(self, name)):
                raise ValueError(f"{name} must be callable or None, got {type(getattr(self, name)).__name__}")
        if self.batch is not None:
            object.__setattr__(self, "batch", check.positive_int("batch", self.batch, note="objectives stacked"))

    # ---- per-point functions (x of shape (dim,)) -------------------------------------------
    def point_value(self, x: jax.Array) -> jax.Array:
        return self.value_fn(self.params, x)

    def point_grad(self, x: jax.Array) -> jax.Array:
        fn = self.grad_fn or _autodiff_grad(self.value_fn)
        return fn(self.params, x)

    def point_hessian(self, x: jax.Array) -> jax.Array:
        fn = self.hessian_fn or _autodiff_hessian(self.value_fn)
        return fn(self.params, x)

    def point_hessian_trace(self, x: jax.Array) -> jax.Array:
        if self.hessian_trace_fn is not None:
            return self.hessian_trace_fn(self.params, x)
        return jnp.trace(self.point_hessian(x))

    # ---- batched public methods (x of shape (..., dim)) ------------------------------------
    def _check_points(self, x) -> jax.Array:
        x = jnp.asarray(x)
        if x.ndim == 0 or x.shape[-1] != self.dim:
            raise ValueError(
                f"x must have shape (..., {self.dim}) for objective {self.name!r} of dim "
                f"{self.dim}, got shape {tuple(x.shape)}"
            )
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.result_type(float))
        return x

    def value(self, x) -> jax.Array:
        """f(x) for `x` of shape `(..., dim)`; returns shape `(...)`."""
        return _vectorized(self, self._check_points(x), "point_value", "(d)->()")

    def grad(self, x) -> jax.Array:
        """The gradient of f at `x` of shape `(..., dim)`; returns shape `(..., dim)`."""
        return _vectorized(self, self._check_points(x), "point_grad", "(d)->(d)")

    def hessian(self, x) -> jax.Array:
        """The Hessian of f at `x` of shape `(..., dim)`; returns shape `(..., dim, dim)`."""
        return _vectorized(self, self._check_points(x), "point_hessian", "(d)->(d,e)")

    def hessian_trace(self, x) -> jax.Array:
        """tr Hessian f(x) (the sharpness) at `x` of shape `(..., dim)`; returns shape `(...)`."""
        return _vectorized(self, self._check_points(x), "point_hessian_trace", "(d)->()")

    def __call__(self, x) -> jax.Array:
        return self.value(x)

    def replace(self, **changes) -> "Objective":
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        details = ", ".join(f"{k}={v}" for k, v in self.info)
        return f"Objective({self.name}, dim={self.dim}{', ' + details if details else ''})"


@partial(jax.jit, static_argnames=("method", "signature"))
def _vectorized(objective: Objective, x: jax.Array, method: str, signature: str) -> jax.Array:
    """`objective.<method>` mapped over the leading axes of `x`, compiled: one program per
    objective structure and shape of x (parameters are traced), instead of op-by-op dispatch,
    which was several times slower (benchmarks/README.md, "Lab notes")."""
    return jnp.vectorize(getattr(objective, method), signature=signature)(x)


#: The optional closed forms an `Objective` may carry (typed fields, `None` when absent).
CLOSED_FORMS = ("gaussian_smoothing", "search_box", "minimizer", "quadratic_form", "standard_error")

#: Every field but `params` is static pytree metadata; subclasses add theirs to this list.
STATIC_FIELDS = ["dim", "value_fn", "name", "grad_fn", "hessian_fn", "hessian_trace_fn", "info", *CLOSED_FORMS, "batch"]

jax.tree_util.register_dataclass(Objective, data_fields=["params"], meta_fields=STATIC_FIELDS)


@dataclasses.dataclass(frozen=True)
class FixedBox:
    """A search box that does not depend on the parameters, as `Objective.search_box` wants it:
    `params -> (lower, upper)`, each `(dim,)` float64. A frozen dataclass of tuples, not a closure:
    the search box is a static field of the objective's pytree, and equal boxes must give equal
    tree definitions, or every compiled program would be rebuilt."""

    lower: Any
    upper: Any
    dim: int

    def __call__(self, params):
        return tuple(np.broadcast_to(np.asarray(end, dtype=np.float64), (self.dim,)).copy() for end in (self.lower, self.upper))


def _fixed_box(search_box, dim: int) -> FixedBox:
    """`search_box=(lower, upper)` of `from_function`, checked: each a number or a `(dim,)` vector,
    finite, lower < upper on every axis."""
    if not isinstance(search_box, (tuple, list)) or len(search_box) != 2:
        raise ValueError(f"search_box must be (lower, upper), each a number or a vector of shape ({dim},), got {search_box!r}")
    lower, upper = (check.per_coordinate(f"search_box[{i}]", end, dim) for i, end in enumerate(search_box))
    if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper)) and np.all(lower < upper)):
        raise ValueError(f"search_box must be finite with lower < upper on every axis, got lower={lower.tolist()}, upper={upper.tolist()}")
    return FixedBox(tuple(lower.tolist()), tuple(upper.tolist()), dim)


def from_function(
    fn: Callable[[jax.Array], jax.Array], dim: int, *, name: str | None = None, search_box=None
) -> Objective:
    """Wrap a user-written JAX function of one point, `fn(x) -> scalar` with `x` of shape `(dim,)`.

    Derivatives come from JAX autodiff. `fn` must be traceable by JAX (use `jax.numpy`).

    `fn` is probed once here, at the test point x = (0.5, ..., 0.5) in the default float dtype:
    it must trace, return a real floating scalar (not an int, bool or complex value, which
    `jax.grad` refuses later, deep inside a run), and index `x` within its bounds. Out-of-range
    indices are the one mistake JAX does not report by itself: `x[5]` with `dim=2` silently
    reads `x[1]` (JAX clamps indices), so the probe runs `fn` under `jax.experimental.checkify`'s
    index checks. The probe sees one point: an index that goes out of range only elsewhere
    (computed from the values of `x`) is still clamped there, and indexing that asks for
    clamping (`jnp.take(x, i, mode="clip")`) out of range at the test point is refused too
    (clip the index with `jnp.clip` instead).

    **Arguments:**

    - `fn`: the objective for one point.
    - `dim`: the dimension of `x`.
    - `name`: the name used in results (default: `fn.__name__`).
    - `search_box`: optional `(lower, upper)`, each a number or a `(dim,)` vector: the box that
      holds every minimizer, where `analysis.minimizers`, `smoothed_solution` and the exact laws
      of `theory` look by default (without it, each needs `bounds=`).

    **Returns:** an `Objective`.

    **Raises:** `ValueError` naming `fn` when the probe fails, `dim` when it is not a dimension,
    `search_box` when it is not a finite box with lower < upper.
    """
    if not callable(fn):
        raise ValueError(f"fn must be a callable of one point x of shape (dim,), got {type(fn).__name__}")
    dim = check.dimension("dim", dim)
    point = jnp.full((dim,), 0.5, jnp.result_type(float))
    try:
        probe = jax.eval_shape(fn, point)
    except Exception as error:
        raise ValueError(
            f"fn must be a JAX-traceable function of one point x of shape ({dim},); calling it on such a point "
            f"raised {type(error).__name__}: {error}"
        ) from error
    if not isinstance(probe, jax.ShapeDtypeStruct):
        raise ValueError(f"fn must return a scalar for x of shape ({dim},), got a {type(probe).__name__}")
    if probe.shape != ():
        raise ValueError(f"fn must return a scalar for x of shape ({dim},), got an array of shape {probe.shape}")
    if not jnp.issubdtype(probe.dtype, jnp.floating):
        raise ValueError(
            f"fn must return a real floating scalar (autodiff needs one), got dtype {probe.dtype} for x of shape ({dim},)"
        )
    index_error, _ = checkify.checkify(fn, errors=checkify.index_checks)(point)
    if index_error.get() is not None:
        raise ValueError(
            f"fn indexes x out of its bounds (JAX would clamp the index silently) at the test point "
            f"x = {point.tolist()}: {index_error.get().strip()}"
        )
    box = None if search_box is None else _fixed_box(search_box, dim)
    return Objective(
        dim=int(dim),
        value_fn=_UserFunction(fn),
        params=(),
        name=name or getattr(fn, "__name__", "function"),
        search_box=box,
    )


class _UserFunction:
    """Adapts `fn(x)` to the `(params, x)` signature; equal when the wrapped functions are."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, params, x):
        del params
        return self.fn(x)

    def __eq__(self, other):
        return isinstance(other, _UserFunction) and other.fn is self.fn

    def __hash__(self):
        return hash(("user-function", id(self.fn)))
