"""The compiled core: many SGD chains for many step sizes, streamed through one `lax.scan`.

One step of one chain at step size eta (x_k, g_k = grad f(x_k)):

    x_{k+1} = x_k - eta (g_k + eps_{k+1})
    g_{k+1} = grad f(x_{k+1})
    v_{k+1} = x_{k+1} - eta g_{k+1}        (the paper's sequence; SGD on the smoothed F for v)

so each step costs one gradient. The carry holds running sums of x_k and v_k (k >= 1), never a
trajectory, so memory does not grow with n_steps. Sums are accumulated per noise block of
`NOISE_BLOCK_STEPS` steps and then added to the total, which keeps float32 rounding error of
the averages near that of pairwise summation.

Chains are `vmap`ped; step sizes are `vmap`ped over the chains with the *same* noise (common
random numbers). Steps run in blocks: an outer scan draws the noise of a block for every chain
in one call, an inner scan applies it.

The state (x, x_sum, v_sum) is recorded at a few `record_steps` (a traced, sorted int vector
padded with a sentinel larger than n_steps); averages at a checkpoint t come from the recorded
prefix sums S_t: x_avg(t) = S_t / t and x_tail(t) = (S_t - S_{t-m}) / m.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from simulate.randomness import NOISE_BLOCK_STEPS, noise_block

__all__ = ["ChainState", "Records", "sgd_step", "simulate_chains"]


class ChainState(NamedTuple):
    """The state of one chain after step k. Shapes for one chain; the engine batches them."""

    x: jax.Array  # (dim,) the iterate x_k
    grad: jax.Array  # (dim,) grad f(x_k)
    x_sum: jax.Array  # (dim,) sum of x_j, j = 1..(start of the current noise block)
    v_sum: jax.Array  # (dim,) the same for v_j
    x_block_sum: jax.Array  # (dim,) sum of x_j over the current noise block so far
    v_block_sum: jax.Array  # (dim,)
    diverged: jax.Array  # () bool: frozen since `diverged_at`
    diverged_at: jax.Array  # () int32: first step at which x left the ball or became non-finite; -1


class Records(NamedTuple):
    """The batched state at the record steps: each `(n_records, n_step_sizes, n_chains, dim)`."""

    x: jax.Array
    v: jax.Array
    x_sum: jax.Array
    v_sum: jax.Array


def init_state(objective, x0: jax.Array) -> ChainState:
    zeros = jnp.zeros_like(x0)
    return ChainState(
        x=x0,
        grad=objective.point_grad(x0),
        x_sum=zeros,
        v_sum=zeros,
        x_block_sum=zeros,
        v_block_sum=zeros,
        diverged=jnp.asarray(False),
        diverged_at=jnp.asarray(-1, jnp.int32),
    )


def sgd_step(objective, state: ChainState, eps: jax.Array, step_size, step, divergence_radius) -> ChainState:
    """One SGD step of one chain: x_{k+1} = x_k - eta (grad f(x_k) + eps_{k+1}).

    A chain whose new iterate (or its gradient) is non-finite, or leaves the ball of radius
    `divergence_radius`, is frozen at its last good state and flagged; its sums stop growing,
    so nothing downstream becomes NaN. `step` is k + 1, recorded as `diverged_at`.
    """
    x = state.x - step_size * (state.grad + eps)
    grad = objective.point_grad(x)
    v = x - step_size * grad
    ok = jnp.all(jnp.isfinite(x)) & jnp.all(jnp.isfinite(grad)) & jnp.all(jnp.isfinite(v))
    ok = ok & (jnp.sum(x * x) <= divergence_radius * divergence_radius)
    diverged = state.diverged | ~ok
    keep = lambda old, new: jnp.where(diverged, old, new)  # select, never blend: NaN cannot leak
    return ChainState(
        x=keep(state.x, x),
        grad=keep(state.grad, grad),
        x_sum=state.x_sum,
        v_sum=state.v_sum,
        x_block_sum=keep(state.x_block_sum, state.x_block_sum + x),
        v_block_sum=keep(state.v_block_sum, state.v_block_sum + v),
        diverged=diverged,
        diverged_at=jnp.where(state.diverged | ok, state.diverged_at, step.astype(jnp.int32)),
    )


def _flush_block_sums(state: ChainState) -> ChainState:
    zeros = jnp.zeros_like(state.x_block_sum)
    return state._replace(
        x_sum=state.x_sum + state.x_block_sum,
        v_sum=state.v_sum + state.v_block_sum,
        x_block_sum=zeros,
        v_block_sum=zeros,
    )


def _record(records: Records, slot, states: ChainState, step_sizes) -> Records:
    v = states.x - step_sizes[:, None, None] * states.grad
    values = Records(
        x=states.x,
        v=v,
        x_sum=states.x_sum + states.x_block_sum,
        v_sum=states.v_sum + states.v_block_sum,
    )
    return jax.tree.map(lambda buffer, value: buffer.at[slot].set(value), records, values)


def _cast_floating(tree, dtype):
    """Cast the floating leaves of a pytree to `dtype` (so float64 parameters cannot promote a
    float32 simulation); integer leaves keep their type."""

    def cast(leaf):
        leaf = jnp.asarray(leaf)
        return leaf.astype(dtype) if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf

    return jax.tree.map(cast, tree)


@partial(jax.jit, static_argnames=("n_steps", "dtype", "trajectory"))
def simulate_chains(
    objective,
    noise,
    step_sizes: jax.Array,
    x0: jax.Array,
    chain_indices: jax.Array,
    seed: jax.Array,
    record_steps: jax.Array,
    divergence_radius: jax.Array,
    *,
    n_steps: int,
    dtype,
    trajectory: bool = False,
):
    """Run SGD for every (step size, chain) pair.

    **Arguments:**

    - `objective`, `noise`: an `Objective` and a `NoiseModel` (pytrees; their numbers are traced).
    - `step_sizes`: `(n_step_sizes,)`.
    - `x0`: `(n_chains, dim)` starting points.
    - `chain_indices`: `(n_chains,)` global chain indices i (select the noise; see `randomness`).
    - `seed`: an integer scalar.
    - `record_steps`: `(n_records + 1,)` sorted steps at which to record, padded with n_steps + 1.
    - `divergence_radius`: a scalar.

    **Returns:** `(records, final_state, trajectory)`: `Records` with `(n_records + 1, S, C, dim)`
    buffers (the last slot is never written), the final batched `ChainState`, and the iterates
    `(n_steps, S, C, dim)` when `trajectory` else `None`.
    """
    objective = _cast_floating(objective, dtype)
    noise = _cast_floating(noise, dtype)
    step_sizes = step_sizes.astype(dtype)
    x0 = x0.astype(dtype)
    divergence_radius = divergence_radius.astype(dtype)
    n_chains, dim = x0.shape
    n_step_sizes = step_sizes.shape[0]

    chain_init = jax.vmap(init_state, in_axes=(None, 0))(objective, x0)
    states = jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (n_step_sizes,) + leaf.shape), chain_init)

    per_chain = jax.vmap(sgd_step, in_axes=(None, 0, 0, None, None, None))
    batched_step = jax.vmap(per_chain, in_axes=(None, 0, None, 0, None, None))

    buffer = jnp.zeros((record_steps.shape[0], n_step_sizes, n_chains, dim), dtype)
    records = Records(buffer, buffer, buffer, buffer)

    def step(carry, inputs):
        states, records, slot = carry
        step_index, eps = inputs
        states = batched_step(objective, states, eps, step_sizes, step_index, divergence_radius)
        is_record = step_index == record_steps[slot]
        records = jax.lax.cond(
            is_record, lambda r: _record(r, slot, states, step_sizes), lambda r: r, records
        )
        slot = slot + is_record.astype(slot.dtype)
        return (states, records, slot), (states.x if trajectory else None)

    def block(carry, block_index, n_block_steps):
        eps = noise_block(noise, seed, chain_indices, block_index, dim, dtype)  # (C, B, dim)
        eps = jnp.swapaxes(eps, 0, 1)[:n_block_steps]
        # int32 throughout: record_steps is int32, and x64 mode must not promote the comparison.
        steps = (block_index * NOISE_BLOCK_STEPS + jnp.arange(1, n_block_steps + 1)).astype(jnp.int32)
        (states, records, slot), path = jax.lax.scan(step, carry, (steps, eps))
        states = jax.vmap(jax.vmap(_flush_block_sums))(states)
        return (states, records, slot), path

    carry = (states, records, jnp.asarray(0, jnp.int32))
    n_full_blocks, remainder = divmod(n_steps, NOISE_BLOCK_STEPS)
    paths = []
    if n_full_blocks:
        carry, path = jax.lax.scan(
            partial(block, n_block_steps=NOISE_BLOCK_STEPS), carry, jnp.arange(n_full_blocks)
        )
        if trajectory:
            paths.append(path.reshape((-1,) + path.shape[2:]))
    if remainder:
        carry, path = block(carry, jnp.asarray(n_full_blocks), remainder)
        if trajectory:
            paths.append(path)
    states, records, _ = carry
    path = jnp.concatenate(paths) if trajectory else None
    return records, states, path
