"""Sharpness of an objective at a point without forming its Hessian: the trace by Hutchinson's
estimator and the largest eigenvalue by power iteration, both on Hessian-vector products
(forward-over-reverse autodiff, the cost of about two gradients each).

They work on any `Objective`; for a `FiniteSum` the Hessian is that of the full-data mean loss.
Both take points `x` of shape `(..., dim)`; the points of one call share the random probes (or
start vector), so `f(x)[i] == f(x[i])` for the same seed. Randomness follows the library's one
convention: `seed=` an integer (as in `simulate.run`), or a JAX key in its place; for
independent probes per point, `jax.vmap` over keys.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from objectives import validation as check

__all__ = ["hessian_vector_product", "hutchinson_trace", "top_eigenvalue"]


def hessian_vector_product(objective, x: jax.Array, vector: jax.Array) -> jax.Array:
    """H(x) u = d/dt grad f(x + t u) at t = 0 (a JVP of the gradient), for `x`, `vector` of shape
    `(dim,)`; returns `(dim,)`."""
    return jax.jvp(objective.point_grad, (x,), (vector,))[1]


def hutchinson_trace(objective, x, seed: int | jax.Array = 0, n_probes: int = 64) -> tuple[jax.Array, jax.Array]:
    """tr H(x) ~ (1/m) sum_i z_i^T H(x) z_i with m Rademacher probes z_i (Hutchinson 1989).

    Unbiased, with per-probe variance 2 sum_{i != j} H_ij^2: a diagonal Hessian is estimated
    exactly by every probe. The probes run one after another (`lax.map`), which on CPU is faster
    than batching them.

    **Arguments:**

    - `objective`: any `Objective`.
    - `x`: points of shape `(..., dim)`.
    - `seed`: an integer in [0, 2**32) or a JAX random key (the probes of every point).
    - `n_probes`: m >= 2 (static).

    **Returns:** `(estimate, standard_error)`, each of shape `(...)`; the standard error is the
    sample standard deviation of the m values z_i^T H z_i over sqrt(m) (zero when every probe
    gives the same value).
    """
    n_probes = check.integer("n_probes", n_probes, lo=2)
    x = objective._check_points(x)
    key = check.random_key("seed", seed)
    return _hutchinson(objective, x, jax.random.rademacher(key, (n_probes, objective.dim), x.dtype))


@jax.jit
def _hutchinson(objective, x, probes):
    # Jitted once per static part and shapes, so eager calls (notebooks) compile one program.
    root = jnp.sqrt(jnp.asarray(probes.shape[0], x.dtype))

    def one(point):
        values = jax.lax.map(lambda z: jnp.dot(z, hessian_vector_product(objective, point, z)), probes)
        return jnp.mean(values), jnp.std(values, ddof=1) / root

    return jnp.vectorize(one, signature="(d)->(),()")(x)


def top_eigenvalue(objective, x, seed: int | jax.Array = 0, n_iterations: int = 100) -> jax.Array:
    """lambda_max H(x), the largest (algebraic) eigenvalue of the Hessian, by power iteration on
    Hessian-vector products from a random start (a `lax.fori_loop` of n_iterations HVPs).

    Power iteration converges to the eigenvalue of largest |lambda|, lambda_1. When that one is
    negative (a saddle with a steep negative direction), a second pass of n_iterations runs on
    H - lambda_1 I, whose eigenvalues lambda - lambda_1 are >= 0 and largest at lambda_max; the
    Rayleigh quotient u^T H u of its last iterate is returned. Convergence is geometric in the
    ratio of the two largest |eigenvalues| (of H - lambda_1 I in the second pass), so give more
    iterations when they are close. Limits, stated plainly: when lambda_max and a negative
    eigenvalue have nearly the same magnitude the first pass does not settle and the result can
    lie anywhere in [lambda_min, lambda_max]; the result is always a Rayleigh quotient, so it
    never exceeds lambda_max (up to rounding). For the training losses of this library (softmax
    cross-entropy near a minimum) the top eigenvalue dominates and 30-100 iterations suffice.

    **Arguments:**

    - `objective`: any `Objective`.
    - `x`: points of shape `(..., dim)`.
    - `seed`: an integer in [0, 2**32) or a JAX random key (the start vector of every point).
    - `n_iterations`: HVPs per pass, >= 1 (static).

    **Returns:** shape `(...)`.
    """
    n_iterations = check.integer("n_iterations", n_iterations, lo=1)
    x = objective._check_points(x)
    start = jax.random.normal(check.random_key("seed", seed), (objective.dim,), x.dtype)
    return _power_iteration(objective, x, start / jnp.linalg.norm(start), n_iterations)


@partial(jax.jit, static_argnums=3)
def _power_iteration(objective, x, start, n_iterations):
    def one(point):
        def power(shift):
            def body(_, u):
                w = hessian_vector_product(objective, point, u) - shift * u
                # H u = 0 exactly (a zero Hessian): keep u = 0 rather than divide by zero.
                return w / jnp.maximum(jnp.linalg.norm(w), jnp.finfo(point.dtype).tiny)

            u = jax.lax.fori_loop(0, n_iterations, body, start)
            return jnp.dot(u, hessian_vector_product(objective, point, u))

        dominant = power(jnp.zeros((), point.dtype))
        return jax.lax.cond(dominant >= 0, lambda: dominant, lambda: power(dominant))

    return jnp.vectorize(one, signature="(d)->()")(x)
