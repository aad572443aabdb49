"""Finite sums: f(x) = (1/n) sum_j loss(x, example_j) + (l2/2) ||x||^2, the objective of training
a model on n examples, whose stochastic gradient comes from sampling minibatches.

The model's parameters are any pytree; the library works with the flat vector x of shape
`(dim,)` (`jax.flatten_util.ravel_pytree`), so a network is an `Objective` like any other:
`value`, `grad`, `hessian`, `hessian_trace` are those of the full-data mean loss. The data is the
objective's traced leaf (`params`): the same model on another dataset of the same shapes
(`with_data`) reuses compiled code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from objectives.base import Objective

__all__ = ["FiniteSum", "accuracy", "example_gradient_covariance", "finite_sum"]


class _MeanLoss:
    """(data, x) -> (1/n) sum_j loss(unravel(x), example_j) + (l2/2)||x||^2; equal when built
    from the same functions, so equal objectives share compiled code."""

    def __init__(self, example_loss, unravel, l2):
        self.example_loss, self.unravel, self.l2 = example_loss, unravel, l2

    def __call__(self, data, x):
        params = self.unravel(x)
        losses = jax.vmap(lambda example: self.example_loss(params, example))(data)
        return jnp.mean(losses) + 0.5 * jnp.asarray(self.l2, x.dtype) * jnp.sum(x * x)

    def _key(self):
        return (self.example_loss, self.unravel, self.l2)

    def __eq__(self, other):
        return isinstance(other, _MeanLoss) and other._key() == self._key()

    def __hash__(self):
        return hash(("mean-loss",) + tuple(id(part) for part in self._key()[:2]) + (self.l2,))


@dataclasses.dataclass(frozen=True, repr=False)  # Objective's short repr, not the data
class FiniteSum(Objective):
    """An `Objective` that is a mean over `n_examples` examples (build with `finite_sum` or a model
    from `objectives.models`).

    Besides the `Objective` fields (`params` holds the data: a pytree of arrays with a leading
    axis of n examples):

    - `n_examples`: n (static).
    - `unravel`: flat x `(dim,)` -> the model's parameter pytree.
    - `predict_fn`: `(parameters, one input) -> outputs` (logits for classifiers), or `None`.
    - `init_fn`: `seed -> parameter pytree`, the model's initialisation (see `init`).
    """

    n_examples: int = 0
    unravel: Callable | None = None
    predict_fn: Callable | None = None
    init_fn: Callable | None = None

    def point_minibatch_grad(self, x: jax.Array, indices: jax.Array) -> jax.Array:
        """The gradient of (1/b) sum_{j in indices} loss(x, example_j) + (l2/2)||x||^2.

        `x` `(dim,)`, `indices` `(b,)` integers (repeats count twice); returns `(dim,)`.
        """
        batch = jax.tree.map(lambda leaf: leaf[indices], self.params)
        return jax.grad(self.value_fn, argnums=1)(batch, x)

    def point_example_grads(self, x: jax.Array) -> jax.Array:
        """Every example's gradient at `x` `(dim,)` (the l2 term included): `(n_examples, dim)`."""
        one = lambda example: jax.grad(self.value_fn, argnums=1)(jax.tree.map(lambda leaf: leaf[None], example), x)  # noqa: E731
        return jax.vmap(one)(self.params)

    def with_data(self, data) -> "FiniteSum":
        """The same model and loss on other data (e.g. the test set): same static part, so jitted
        code is reused when the shapes agree."""
        n = _check_data(data, "data")
        reference = jax.tree.structure(self.params)
        if jax.tree.structure(data) != reference:
            raise ValueError(f"data must have the structure of the training data {reference}, got {jax.tree.structure(data)}")
        for new, old in zip(jax.tree.leaves(data), jax.tree.leaves(self.params)):
            if np.shape(new)[1:] != np.shape(old)[1:]:
                raise ValueError(f"data leaves must have per-example shape {np.shape(old)[1:]}, got {np.shape(new)[1:]}")
        return dataclasses.replace(self, params=jax.tree.map(jnp.asarray, data), n_examples=n)

    def init(self, seed: int = 0) -> np.ndarray:
        """The flat initial parameters x_0 `(dim,)` for `seed` (float32 NumPy)."""
        return np.asarray(ravel_pytree(self.init_fn(seed))[0], np.float32)


jax.tree_util.register_dataclass(
    FiniteSum,
    data_fields=["params"],
    meta_fields=["dim", "value_fn", "name", "grad_fn", "hessian_fn", "hessian_trace_fn", "info", "extras", "n_examples", "unravel", "predict_fn", "init_fn"],
)


def _check_data(data, name: str) -> int:
    leaves = jax.tree.leaves(data)
    if not leaves:
        raise ValueError(f"{name} must be a pytree of arrays with a leading axis of examples, got {data!r}")
    sizes = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in leaves}
    if None in sizes or len(sizes) != 1:
        raise ValueError(f"{name}: every array must have the same leading axis (the examples), got shapes {[np.shape(l) for l in leaves]}")
    n = sizes.pop()
    if n < 1:
        raise ValueError(f"{name} must hold at least one example, got 0")
    return int(n)


def finite_sum(
    loss: Callable[[Any, Any], jax.Array],
    params_init,
    data,
    *,
    l2: float = 0.0,
    name: str = "finite_sum",
    predict: Callable | None = None,
    init: Callable[[int], Any] | None = None,
) -> FiniteSum:
    """f(x) = (1/n) sum_j loss(params(x), example_j) + (l2/2) ||x||^2 over the examples of `data`.

    **Arguments:**

    - `loss`: `(params, example) -> scalar` for ONE example, `example` being `data` indexed at j
      (e.g. a pair `(inputs_j, label_j)`); a JAX function.
    - `params_init`: the model's parameters (any pytree of float arrays); fixes dim and the layout.
    - `data`: a pytree of arrays sharing a leading axis of n >= 1 examples.
    - `l2`: weight decay, >= 0.
    - `predict`: optional `(params, one input) -> outputs` (logits for `accuracy`).
    - `init`: optional `seed -> params` (random initialisations for several chains); default:
      always `params_init`.

    **Returns:** a `FiniteSum`; `objective.init(seed)` gives flat starting points.
    """
    if not callable(loss):
        raise ValueError(f"loss must be a function (params, example) -> scalar, got {type(loss).__name__}")
    try:
        l2 = float(l2)
    except (TypeError, ValueError):
        raise ValueError(f"l2 must be a number >= 0, got {l2!r}") from None
    if not (np.isfinite(l2) and l2 >= 0):
        raise ValueError(f"l2 must be a number >= 0, got {l2!r}")
    n = _check_data(data, "data")
    flat, unravel = ravel_pytree(params_init)
    if flat.size == 0 or not jnp.issubdtype(flat.dtype, jnp.floating):
        raise ValueError(f"params_init must be a non-empty pytree of float arrays, got {params_init!r}")
    data = jax.tree.map(jnp.asarray, data)
    probe = jax.eval_shape(loss, params_init, jax.tree.map(lambda leaf: leaf[0], data))
    if probe.shape != ():
        raise ValueError(f"loss must return a scalar for one example, got shape {probe.shape}")
    return FiniteSum(
        dim=int(flat.size),
        value_fn=_MeanLoss(loss, unravel, l2),
        params=data,
        name=name,
        info=(("n_examples", n), ("l2", l2)),
        n_examples=n,
        unravel=unravel,
        predict_fn=predict,
        init_fn=init if init is not None else (lambda seed: params_init),
    )


def accuracy(objective: FiniteSum, x, data=None) -> jax.Array:
    """The fraction of examples whose predicted class (argmax of `predict`) equals the label.

    `data`: `(inputs, labels)` (default: the objective's own data); `x` `(..., dim)` -> `(...)`.
    """
    if not isinstance(objective, FiniteSum) or objective.predict_fn is None:
        raise ValueError(f"accuracy needs a classifier (a FiniteSum with predict), got {objective!r}")
    inputs, labels = objective.params if data is None else data
    inputs, labels = jnp.asarray(inputs), jnp.asarray(labels)

    def one(point):
        params = objective.unravel(point)
        logits = jax.vmap(lambda one_input: objective.predict_fn(params, one_input))(inputs)
        return jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(point.dtype))

    return jnp.vectorize(one, signature="(d)->()")(jnp.asarray(x))


def example_gradient_covariance(objective: FiniteSum, x) -> np.ndarray:
    """S(x) = (1/n) sum_j (g_j - g)(g_j - g)^T, the population covariance of the per-example
    gradients at `x` `(dim,)`: `(dim, dim)` float64. A minibatch gradient of size b has covariance
    (n - b) / (b (n - 1)) S without replacement and S / b with it."""
    grads = np.asarray(objective.point_example_grads(jnp.asarray(x)), np.float64)
    centred = grads - grads.mean(axis=0)
    return centred.T @ centred / grads.shape[0]
