"""Sharpness of an objective at a point without forming its Hessian: the trace by Hutchinson's
estimator and the largest eigenvalue by power iteration, both on Hessian-vector products
(forward-over-reverse autodiff, the cost of about two gradients each)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["hessian_vector_product", "hutchinson_trace", "top_eigenvalue"]


def hessian_vector_product(objective, x: jax.Array, vector: jax.Array) -> jax.Array:
    """H(x) u for `x`, `vector` of shape `(dim,)`."""
    return jax.jvp(objective.point_grad, (x,), (vector,))[1]


def hutchinson_trace(objective, x: jax.Array, key: jax.Array, n_probes: int = 64) -> tuple[jax.Array, jax.Array]:
    """tr H(x) ~ (1/m) sum_i z_i^T H z_i with m Rademacher probes z_i (Hutchinson 1989).

    Unbiased; its variance is 2 sum_{i != j} H_ij^2 per probe, so a diagonal Hessian is exact for
    every probe. Returns `(estimate, standard_error)`, the SE from the spread of the m values.
    `x` `(dim,)`; vmap over points and keys for many.
    """
    probes = jax.random.rademacher(key, (n_probes, x.shape[-1]), x.dtype)
    values = jax.lax.map(lambda z: jnp.dot(z, hessian_vector_product(objective, x, z)), probes)
    return jnp.mean(values), jnp.std(values, ddof=1) / jnp.sqrt(jnp.asarray(n_probes, x.dtype))


def top_eigenvalue(objective, x: jax.Array, key: jax.Array, n_iterations: int = 100) -> jax.Array:
    """The largest eigenvalue of H(x) by power iteration from a random start.

    Power iteration converges to the eigenvalue of largest |lambda|. When that one is negative
    (a saddle with a steep negative direction), the iteration is repeated on H - lambda_1 I,
    whose dominant eigenvalue is lambda_max - lambda_1 >= 0, which gives lambda_max. Convergence
    is geometric in the ratio of the two largest |eigenvalues|: give more iterations when they
    are close. Returns the Rayleigh quotient of the last iterate.
    """

    def power(shift, start):
        def body(_, u):
            w = hessian_vector_product(objective, x, u) - shift * u
            return w / jnp.maximum(jnp.linalg.norm(w), jnp.finfo(x.dtype).tiny)

        u = jax.lax.fori_loop(0, n_iterations, body, start / jnp.linalg.norm(start))
        return jnp.dot(u, hessian_vector_product(objective, x, u))

    start = jax.random.normal(key, x.shape[-1:], x.dtype)
    dominant = power(jnp.zeros((), x.dtype), start)
    return jax.lax.cond(dominant >= 0, lambda: dominant, lambda: power(dominant, start))
