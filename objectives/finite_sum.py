"""Finite sums: f(x) = (1/n) sum_j loss(x, example_j) + (l2/2) ||x||^2, the objective of training
a model on n examples, whose stochastic gradient comes from sampling minibatches.

The model's parameters are any pytree; the library works with the flat vector x of shape
`(dim,)` (`jax.flatten_util.ravel_pytree`), so a network is an `Objective` like any other:
`value`, `grad`, `hessian`, `hessian_trace` are those of the full-data mean loss. The data is the
objective's traced leaf (`params`): the same model on another dataset of the same shapes
(`with_data`) reuses compiled code.

Starting points are NumPy arrays, never static jit metadata that a user could trace: `x_init`
is the flat `params_init` the objective was built from (for `models.mlp`, the initialisation of
its `seed`), and `init(seed)` draws the model's initialisation for any seed (one chain per seed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from objectives import validation as check
from objectives.base import STATIC_FIELDS, Objective

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


class _HeldArray:
    """A read-only NumPy array carried as static metadata (never traced, read outside compiled
    code); hashed and compared by identity, so copies of one objective stay equal."""

    def __init__(self, array: np.ndarray):
        self.array = np.array(array)
        self.array.setflags(write=False)

    def __eq__(self, other):
        return other is self

    def __hash__(self):
        return id(self)


@dataclasses.dataclass(frozen=True, repr=False)
class FiniteSum(Objective):
    """An `Objective` that is a mean over `n_examples` examples (build with `finite_sum` or a model
    from `objectives.models`).

    Besides the `Objective` fields (`params` holds the data: a pytree of arrays with a leading
    axis of n examples, the only traced leaf):

    - `n_examples`: n (static).
    - `unravel`: flat x `(dim,)` -> the model's parameter pytree.
    - `predict_fn`: `(parameters, one input) -> outputs` (logits for classifiers), or `None`.
    - `init_fn`: `seed -> parameter pytree`, the model's initialisation (see `init`), or `None`
      (every seed starts from `x_init`).
    - `held_x_init`: the flat starting point, kept as NumPy (read it as `x_init`).
    """

    n_examples: int = 0
    unravel: Callable | None = None
    predict_fn: Callable | None = None
    init_fn: Callable | None = None
    held_x_init: _HeldArray | None = None

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "n_examples", check.positive_int("n_examples", self.n_examples))
        if not callable(self.unravel):
            raise ValueError(f"unravel must be callable (flat x -> parameter pytree), got {self.unravel!r}")

    # ---- gradients of minibatches and of single examples ------------------------------------
    def point_minibatch_grad(self, x: jax.Array, indices: jax.Array) -> jax.Array:
        """The gradient of (1/b) sum_{j in indices} loss(x, example_j) + (l2/2)||x||^2.

        One gradient of the batch mean (not b per-example gradients). `x` `(dim,)`, `indices`
        `(b,)` integers in [0, n) (a repeated index counts as often as it appears); returns `(dim,)`.
        """
        batch = jax.tree.map(lambda leaf: leaf[indices], self.params)
        return jax.grad(self.value_fn, argnums=1)(batch, x)

    def point_example_grads(self, x: jax.Array) -> jax.Array:
        """Every example's gradient at `x` `(dim,)`, the l2 term included: `(n_examples, dim)`."""

        def one(example):
            batch_of_one = jax.tree.map(lambda leaf: leaf[None], example)
            return jax.grad(self.value_fn, argnums=1)(batch_of_one, x)

        return jax.vmap(one)(self.params)

    # ---- data and starting points ------------------------------------------------------------
    def with_data(self, data) -> "FiniteSum":
        """The same model and loss on other data (e.g. the test set).

        The static part is unchanged, so jitted code is reused when the shapes also agree.
        **Raises:** `ValueError` when `data` does not have the structure, per-example shapes and
        dtypes of the objective's data, or its leaves disagree on n.
        """
        n = _check_data(data, "data")
        reference = jax.tree.structure(self.params)
        if jax.tree.structure(data) != reference:
            raise ValueError(f"data must have the structure of the objective's data {reference}, got {jax.tree.structure(data)}")
        data = jax.tree.map(jnp.asarray, data)
        for new, old in zip(jax.tree.leaves(data), jax.tree.leaves(self.params)):
            if new.shape[1:] != old.shape[1:]:
                raise ValueError(f"data leaves must have per-example shape {old.shape[1:]}, got {new.shape[1:]}")
            if new.dtype != old.dtype:
                raise ValueError(f"data leaves must have dtype {old.dtype} (as the objective's data), got {new.dtype}")
        info = tuple((key, n if key == "n_examples" else value) for key, value in self.info)
        return dataclasses.replace(self, params=data, n_examples=n, info=info)

    @property
    def x_init(self) -> np.ndarray:
        """The flat point the objective was built from, `(dim,)` float32 NumPy (a fresh copy)."""
        if self.held_x_init is None:
            raise ValueError(f"objective {self.name!r} holds no starting point (build it with objectives.finite_sum)")
        return np.array(self.held_x_init.array)

    def init(self, seed: int = 0) -> np.ndarray:
        """The model's initialisation for `seed`, flat: `(dim,)` float32 NumPy.

        Without an `init_fn` (e.g. logistic regression, started at zero) every seed gives `x_init`.
        """
        seed = check.seed("seed", seed)
        if self.init_fn is None:
            return self.x_init
        flat = np.asarray(ravel_pytree(self.init_fn(seed))[0], np.float32)
        if flat.shape != (self.dim,):
            raise ValueError(f"init_fn({seed}) gave {flat.shape[0]} parameters, the objective has dim={self.dim}")
        return flat

    def __repr__(self) -> str:
        details = ", ".join(f"{k}={v}" for k, v in self.info)
        return f"FiniteSum({self.name}, dim={self.dim}{', ' + details if details else ''})"


jax.tree_util.register_dataclass(
    FiniteSum,
    data_fields=["params"],
    meta_fields=[
        *STATIC_FIELDS,
        "n_examples",
        "unravel",
        "predict_fn",
        "init_fn",
        "held_x_init",
    ],
)


# One jitted function for every objective (the objective is a pytree argument): repeated calls
# on objectives of the same static part and shapes compile once.
_example_grads = jax.jit(lambda objective, x: objective.point_example_grads(x))


def _check_data(data, name: str) -> int:
    """n, the common leading axis of the leaves of `data`; raises when there is none."""
    leaves = jax.tree.leaves(data)
    if not leaves:
        raise ValueError(f"{name} must be a pytree of arrays with a leading axis of examples, got {data!r}")
    shapes = [np.shape(leaf) for leaf in leaves]
    sizes = {shape[0] if shape else None for shape in shapes}
    if None in sizes or len(sizes) != 1:
        raise ValueError(f"{name}: every array must have the same leading axis (the examples), got shapes {shapes}")
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
    name: str | None = None,
    predict: Callable | None = None,
    init: Callable[[int], Any] | None = None,
) -> FiniteSum:
    """f(x) = (1/n) sum_j loss(params(x), example_j) + (l2/2) ||x||^2 over the examples of `data`.

    x is the flat vector `(dim,)` of the model's parameters (`ravel_pytree(params_init)` order).

    **Arguments:**

    - `loss`: `(params, example) -> scalar` for ONE example, `example` being `data` with every
      leaf indexed at j (e.g. a pair `(inputs_j, label_j)`); a JAX function.
    - `params_init`: the model's parameters (any pytree of float arrays); fixes dim, the layout
      and `objective.x_init`.
    - `data`: a pytree of arrays sharing a leading axis of n >= 1 examples.
    - `l2`: weight decay, >= 0.
    - `name`: the name used in results (default `"finite_sum"`).
    - `predict`: optional `(params, one input) -> outputs` (logits, for `accuracy`).
    - `init`: optional `seed -> params` (one random initialisation per chain); without it every
      seed starts from `params_init`.

    **Returns:** a `FiniteSum`; `objective.x_init` is flat `params_init` and
    `objective.init(seed)` the flat initialisation of `seed` (both float32 NumPy `(dim,)`).

    **Raises:** `ValueError` naming the argument when it is not of the kind described above.
    """
    if not callable(loss):
        raise ValueError(f"loss must be a function (params, example) -> scalar, got {type(loss).__name__}")
    if predict is not None and not callable(predict):
        raise ValueError(f"predict must be a function (params, one input) -> outputs or None, got {type(predict).__name__}")
    if init is not None and not callable(init):
        raise ValueError(f"init must be a function seed -> params or None, got {type(init).__name__}")
    if name is not None and not isinstance(name, str):
        raise ValueError(f"name must be a string or None, got {name!r}")
    l2 = check.non_negative_float("l2", l2)
    n = _check_data(data, "data")
    try:
        flat, unravel = ravel_pytree(params_init)
    except Exception as error:  # ravel_pytree rejects non-array leaves with assorted errors
        raise ValueError(f"params_init must be a pytree of float arrays, got {params_init!r}: {error}") from None
    if flat.size == 0 or not jnp.issubdtype(flat.dtype, jnp.floating):
        raise ValueError(f"params_init must be a non-empty pytree of float arrays, got {params_init!r}")
    data = jax.tree.map(jnp.asarray, data)
    probe = jax.eval_shape(loss, params_init, jax.tree.map(lambda leaf: leaf[0], data))
    if not hasattr(probe, "shape") or probe.shape != ():
        raise ValueError(f"loss must return a scalar for one example, got {probe!r}")
    return FiniteSum(
        dim=int(flat.size),
        value_fn=_MeanLoss(loss, unravel, l2),
        params=data,
        name="finite_sum" if name is None else name,
        info=(("n_examples", n), ("l2", l2)),
        n_examples=n,
        unravel=unravel,
        predict_fn=predict,
        init_fn=init,
        held_x_init=_HeldArray(np.asarray(flat, np.float32)),
    )


def accuracy(objective: FiniteSum, x, data=None) -> jax.Array:
    """The fraction of examples whose predicted class, argmax_k predict(params(x), inputs_j)_k,
    equals label_j.

    **Arguments:**

    - `objective`: a classifier: a `FiniteSum` with `predict` (e.g. `logistic_regression`, `mlp`).
    - `x`: points of shape `(..., dim)`.
    - `data`: `(inputs, labels)` with integer labels `(n,)`; default the objective's own data.

    **Returns:** shape `(...)`, values in [0, 1].
    """
    if not isinstance(objective, FiniteSum) or objective.predict_fn is None:
        raise ValueError(f"objective must be a classifier (a FiniteSum with predict), got {objective!r}")
    x = objective._check_points(x)
    pair = objective.params if data is None else data
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ValueError(f"data must be a pair (inputs, labels), got {type(pair).__name__}")
    inputs, labels = jnp.asarray(pair[0]), jnp.asarray(pair[1])
    if labels.ndim != 1 or labels.shape[0] != inputs.shape[0] or not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(
            f"labels must be integers of shape ({inputs.shape[0]},) (one per input), got {labels.dtype} of shape {labels.shape}"
        )

    def one(point):
        params = objective.unravel(point)
        logits = jax.vmap(lambda one_input: objective.predict_fn(params, one_input))(inputs)
        return jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(point.dtype))

    return jnp.vectorize(one, signature="(d)->()")(x)


def example_gradient_covariance(objective: FiniteSum, x) -> np.ndarray:
    """S(x) = (1/n) sum_j (g_j - g)(g_j - g)^T, the population covariance of the per-example
    gradients g_j at `x` (g their mean, the full gradient).

    A minibatch gradient of b examples drawn without replacement has covariance
    (n - b) / (b (n - 1)) S, with replacement S / b. The l2 term is the same in every g_j, so it
    does not enter S.

    **Arguments:** `objective` a `FiniteSum`; `x` one point `(dim,)`.

    **Returns:** `(dim, dim)` float64 NumPy (the n per-example gradients are formed at once:
    memory n * dim).
    """
    if not isinstance(objective, FiniteSum):
        raise ValueError(f"objective must be a FiniteSum (a mean over examples), got {objective!r}")
    x = objective._check_points(x)
    if x.ndim != 1:
        raise ValueError(f"x must be one point of shape ({objective.dim},), got shape {tuple(x.shape)}")
    grads = np.asarray(_example_grads(objective, x), np.float64)
    centred = grads - grads.mean(axis=0)
    return centred.T @ centred / grads.shape[0]
