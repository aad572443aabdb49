"""What `simulate.run` is measured against: the same work done by simpler means.

- `numpy_loop`: the same SGD update as plain vectorized NumPy: every (step size, chain) pair in
  one float32 array, a Python loop over steps, NumPy's default generator, common noise shared by
  the step sizes, running sums of x and v (as the engine keeps them); no divergence checks.
- `numpy_loop_engine_noise`: a stricter NumPy loop (issue 16): the same update, sums and Python
  loop over steps, but with the engine's own common random numbers (`noise_block`, drawn a
  64-step block at a time, compiled) and the gradient compiled by XLA, called from NumPy once
  per step. What is left between it and the engine is the loop itself (one dispatch and host
  round trip per step, NumPy's passes over memory), not a faster generator or gradient.
- `jax_bulk_normal`, `numpy_bulk_normal`: drawing Gaussians in one call, the least a simulation
  that draws them can cost.
- `matmul_chain`: the matrix products of a dense quadratic's gradients alone, step after step.
- `gradient_loop`, `engine_noise`: two parts of the engine's work alone, compiled as the engine
  is: every chain-step's gradient, and the engine's own noise draws. Their sum is a floor for
  `simulate.run`, which also keeps sums, checks divergence and records checkpoints.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from objectives.noise import gaussian
from simulate.driver import COMPILER_OPTIONS
from simulate.randomness import NOISE_BLOCK_STEPS, noise_block

__all__ = ["numpy_gradient", "numpy_loop", "numpy_loop_engine_noise", "jax_bulk_normal", "numpy_bulk_normal", "matmul_chain", "gradient_loop", "engine_noise"]


def numpy_gradient(objective):
    """grad f for points `(..., dim)` in NumPy float32, from the parameters of `objective`.

    Written out for the objectives the benchmarks use: isotropic `gaussian_wells` (so
    `sharp_flat`) and `valley_2d`.
    """
    family = dict(objective.info).get("family")
    if family == "gaussian_wells" and np.ndim(objective.params.widths) == 1:
        p = objective.params
        wells = [
            (np.float32(d / w**2), np.asarray(m, np.float32), np.float32(-0.5 / w**2))
            for d, m, w in zip(p.depths, p.centers, p.widths)
        ]
        confinement = np.float32(p.confinement)

        def gradient(x):
            g = confinement * x
            for scale, center, rate in wells:
                u = x - center
                squared = u * u if x.shape[-1] == 1 else np.sum(u * u, axis=-1, keepdims=True)
                g += scale * u * np.exp(rate * squared)
            return g

        return gradient
    if family == "valley_2d":
        a, b, x0, c = (np.float32(v) for v in objective.params)

        def gradient(point):
            x, y = point[..., 0], point[..., 1]
            r = y - c * x * x
            q = a + b * (x - x0) ** 2
            return np.stack([b * (x - x0) * r * r - 2 * c * x * q * r, q * r], axis=-1)

        return gradient
    raise ValueError(f"no NumPy gradient written for objective {objective.name!r} ({family})")


def numpy_loop(objective, step_sizes, n_chains: int, n_steps: int, x0, noise_scale: float = 1.0, seed: int = 0):
    """Run x_k = x_{k-1} - eta (grad f(x_{k-1}) + eps_k) in NumPy; returns the average of x."""
    gradient = numpy_gradient(objective)
    rng = np.random.default_rng(seed)
    eta = np.asarray(step_sizes, np.float32)[:, None, None]
    x = np.broadcast_to(np.asarray(x0, np.float32), (eta.shape[0], n_chains, objective.dim)).copy()
    g = gradient(x)
    x_sum = np.zeros_like(x)
    v_sum = np.zeros_like(x)
    for _ in range(n_steps):
        eps = np.float32(noise_scale) * rng.standard_normal((n_chains, objective.dim), dtype=np.float32)
        x = x - eta * (g + eps)
        g = gradient(x)
        x_sum += x
        v_sum += x - eta * g
    return x_sum / n_steps


def numpy_loop_engine_noise(objective, step_sizes, n_chains: int, n_steps: int, x0, noise_scale: float = 1.0, seed: int = 0):
    """A function running `numpy_loop` with the engine's noise and an XLA-compiled gradient;
    it returns the average of x.

    eps_k of chain i is the engine's (`simulate.randomness.noise_block` under `seed`, the same
    for every step size), so the result equals `simulate.run(..., noise=gaussian(noise_scale),
    seed=seed).x_avg` up to float rounding (tested). The gradient is `jit(vmap(vmap(point_grad)))`
    with the engine's compiler options, called on the NumPy array of every (step size, chain)
    pair at each step; the noise block is drawn by one compiled call every 64 steps. Both are
    compiled at the first call (a factory, as `gradient_loop`), so later calls time the loop.
    """
    chains = jnp.arange(n_chains, dtype=jnp.uint32)
    noise, dim = gaussian(noise_scale), objective.dim
    draw = jax.jit(lambda block: noise_block(noise, jnp.uint32(seed), chains, block, dim, jnp.float32), compiler_options=COMPILER_OPTIONS)
    compiled_gradient = jax.jit(jax.vmap(jax.vmap(objective.point_grad)), compiler_options=COMPILER_OPTIONS)
    eta = np.asarray(step_sizes, np.float32)[:, None, None]
    x_start = np.broadcast_to(np.asarray(x0, np.float32), (eta.shape[0], n_chains, dim)).copy()

    def run():
        x = x_start
        g = np.asarray(compiled_gradient(x))
        x_sum = np.zeros_like(x)
        v_sum = np.zeros_like(x)
        for k in range(n_steps):
            if k % NOISE_BLOCK_STEPS == 0:
                # (B, C, d), steps k+1 .. k+B: each step's noise contiguous.
                block = np.asarray(draw(jnp.int32(k // NOISE_BLOCK_STEPS))).transpose(1, 0, 2).copy()
            x = x - eta * (g + block[k % NOISE_BLOCK_STEPS])
            g = np.asarray(compiled_gradient(x))
            x_sum += x
            v_sum += x - eta * g
        return x_sum / n_steps

    return run


def jax_bulk_normal(count: int, impl=None):
    """A function drawing `count` float32 Gaussians with one `jax.random.normal` call (jitted).

    `impl`: a PRNG implementation (default: JAX's default generator, Threefry-2x32).
    """
    draw = jax.jit(lambda key: jax.random.normal(key, (count,), jnp.float32))
    key = jax.random.key(0) if impl is None else jax.random.key(0, impl=impl)
    return lambda: draw(key)


def numpy_bulk_normal(count: int):
    """A function drawing `count` float32 Gaussians with one NumPy default-generator call."""
    rng = np.random.default_rng(0)
    return lambda: rng.standard_normal(count, dtype=np.float32)


def matmul_chain(dim: int, n_points: int, n_steps: int):
    """A function doing the gradients' matrix products alone: `n_steps` times Y <- Y Q^T.

    Y is `(n_points, dim)`: one (n_points x dim) @ (dim x dim) product per step, the work of
    `n_points` gradients H (y - c) of a dense quadratic, each product depending on the last as
    SGD's steps do, and nothing else. Q is orthogonal (random), so Y neither grows nor decays
    into subnormal numbers: the products cost what any (dim x dim) matrix would.
    """
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((dim, dim)))
    q = jnp.asarray(q, jnp.float32)
    y0 = jnp.ones((n_points, dim), jnp.float32)
    run = jax.jit(lambda y: jax.lax.scan(lambda y, _: (y @ q.T, None), y, None, length=n_steps)[0])
    return lambda: run(y0)


def gradient_loop(objective, step_sizes, n_chains: int, n_steps: int, x0):
    """A function running x <- x - eta grad f(x) for every (step size, chain): gradients only.

    Batched as the engine batches them (`vmap` over chains, then over step sizes), compiled with
    the engine's options; no noise, sums, checks or records.
    """
    eta = jnp.asarray(step_sizes, jnp.float32)[:, None, None]
    x = jnp.broadcast_to(jnp.asarray(x0, jnp.float32), (eta.shape[0], n_chains, objective.dim))
    gradient = jax.vmap(jax.vmap(objective.point_grad))
    step = lambda x, _: (x - eta * gradient(x), None)
    run = jax.jit(lambda x: jax.lax.scan(step, x, None, length=n_steps)[0], compiler_options=COMPILER_OPTIONS)
    return lambda: run(x)


def engine_noise(noise, n_chains: int, n_steps: int, dim: int):
    """A function drawing the engine's noise for `n_steps` steps of `n_chains` chains, block by
    block as the engine draws it (`simulate.randomness.noise_block`), and nothing else."""
    chains = jnp.arange(n_chains, dtype=jnp.uint32)
    n_blocks = -(-n_steps // NOISE_BLOCK_STEPS)

    def block(total, block_index):
        return total + jnp.sum(noise_block(noise, jnp.uint32(0), chains, block_index, dim, jnp.float32)), None

    run = jax.jit(lambda: jax.lax.scan(block, jnp.float32(0), jnp.arange(n_blocks, dtype=jnp.int32))[0], compiler_options=COMPILER_OPTIONS)
    return run
