"""The general step loop: SGD (or SAM) with any stochastic-gradient oracle.

    g_k      = g(x~_k, draw_{k+1}),  x~_k = x_k + rho g(x_k, draw_{k+1}) / ||g(x_k, draw_{k+1})||
    x_{k+1}  = x_k - eta g_k

with g(x, eps) = grad f(x) + eps for the additive models of `simulate.noise`, and the minibatch
gradient g(x, B) = (1/b) sum_{j in B} grad loss_j(x) for `simulate.noise.minibatch` on a finite
sum. With `sam=False` x~ = x and g is evaluated once (SGD); with `sam=True` it is SAM (Foret et
al. 2021), both gradients on the same draw, and rho = 0 gives SGD exactly.

`engine.simulate_chains` is the fast path for additive noise and SGD; this loop is used for
minibatches, SAM and the exponential moving average, and agrees with the fast path to float
rounding where both apply (tested). Same structure: chains and step sizes `vmap`ped (common
random numbers), blocks of `NOISE_BLOCK_STEPS` steps drawn from the randomness contract, state
recorded at `record_steps`, divergence frozen and flagged, memory flat in n_steps.

Carried per chain: x, the sums of x (and of v_k = x_k - eta grad f(x_k) when `track_v`: that
needs the full gradient, n / b minibatch gradients on a finite sum), and with `ema` the raw
moving average e_k = beta e_{k-1} + (1 - beta) x_k, e_0 = 0 (debiased by 1 - beta^k when read).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from simulate.engine import COMPILER_OPTIONS, ChainState, _cast_floating, progress_callback, run_blocks
from simulate.noise import Minibatch
from simulate.randomness import NOISE_BLOCK_STEPS, minibatch_block, noise_block

__all__ = ["OracleRecords", "OracleState", "oracle_step", "simulate_oracle_chains", "stochastic_grad"]


class OracleState(NamedTuple):
    """One chain's state, each `(dim,)` but `diverged_at` `()` int32 (-1 while alive)."""

    x: jax.Array
    v: jax.Array
    x_sum: jax.Array
    v_sum: jax.Array
    x_ema: jax.Array
    diverged_at: jax.Array


class OracleRecords(NamedTuple):
    """The state at the record steps, each `(n_records, n_step_sizes, n_chains, dim)`; `x_ema` raw."""

    x: jax.Array
    v: jax.Array
    x_sum: jax.Array
    v_sum: jax.Array
    x_ema: jax.Array


def stochastic_grad(objective, noise, x, draw):
    """g(x, draw): the minibatch gradient for `Minibatch` noise (draw = indices), else grad f(x) + eps."""
    if isinstance(noise, Minibatch):
        return objective.point_minibatch_grad(x, draw)
    return objective.point_grad(x) + draw


def oracle_step(objective, noise, state: OracleState, draw, step_size, sam_radius, ema_decay, step_index, divergence_radius, *, sam, track_v, ema):
    """One step of one chain (see the module docstring). A chain that was frozen stays frozen; a
    step to a non-finite point or outside the ball ||x|| <= radius is refused and freezes it."""
    g = stochastic_grad(objective, noise, state.x, draw)
    if sam:
        norm = jnp.sqrt(jnp.sum(g * g))
        # A zero gradient gives no ascent direction: stay at x (no 0/0).
        ascent = state.x + sam_radius * g / jnp.where(norm > 0, norm, 1)
        g = stochastic_grad(objective, noise, ascent, draw)
    x = state.x - step_size * g
    v = x - step_size * objective.point_grad(x) if track_v else state.v
    good = jnp.sum(x * x + 0 * v) <= divergence_radius * divergence_radius  # NaN anywhere fails
    alive = state.diverged_at < 0
    take = alive & good
    keep = lambda old, new: jnp.where(take, new, old)  # select, never blend: NaN cannot leak
    return OracleState(
        x=keep(state.x, x),
        v=keep(state.v, v),
        x_sum=keep(state.x_sum, state.x_sum + x),
        v_sum=keep(state.v_sum, state.v_sum + v) if track_v else state.v_sum,
        x_ema=keep(state.x_ema, ema_decay * state.x_ema + (1 - ema_decay) * x) if ema else state.x_ema,
        diverged_at=jnp.where(alive & ~good, step_index, state.diverged_at),
    )


@partial(
    jax.jit,
    static_argnames=("n_steps", "dtype", "trajectory", "progress", "sam", "track_v", "ema"),
    compiler_options=COMPILER_OPTIONS,
)
def simulate_oracle_chains(
    objective,
    noise,
    step_sizes: jax.Array,
    x0: jax.Array,
    chain_indices: jax.Array,
    seed: jax.Array,
    record_steps: jax.Array,
    divergence_radius: jax.Array,
    sam_radius: jax.Array,
    ema_decay: jax.Array,
    *,
    n_steps: int,
    dtype,
    trajectory: bool = False,
    progress: bool = False,
    sam: bool = False,
    track_v: bool = True,
    ema: bool = False,
):
    """Run SGD or SAM for every (step size, chain) pair with the stochastic-gradient oracle.

    Arguments as `engine.simulate_chains`, plus `sam_radius` and `ema_decay` (traced scalars) and
    the static switches `sam`, `track_v`, `ema`. Returns `(OracleRecords, ChainState, path)`
    with the shapes of `simulate_chains`; without `track_v` the v fields hold x0 and zeros.
    """
    objective = _cast_floating(objective, dtype)
    noise = _cast_floating(noise, dtype)
    step_sizes = step_sizes.astype(dtype)
    x0 = x0.astype(dtype)
    divergence_radius = divergence_radius.astype(dtype)
    sam_radius = sam_radius.astype(dtype)
    ema_decay = ema_decay.astype(dtype)
    n_chains, dim = x0.shape
    n_step_sizes = step_sizes.shape[0]
    minibatches = isinstance(noise, Minibatch)

    x = jnp.broadcast_to(x0, (n_step_sizes, n_chains, dim))
    zeros = jnp.zeros_like(x)
    v = x - step_sizes[:, None, None] * jnp.broadcast_to(jax.vmap(objective.point_grad)(x0), x.shape) if track_v else x
    states = OracleState(x=x, v=v, x_sum=zeros, v_sum=zeros, x_ema=zeros, diverged_at=jnp.full((n_step_sizes, n_chains), -1, jnp.int32))
    buffer = jnp.zeros((record_steps.shape[0], n_step_sizes, n_chains, dim), dtype)
    records = OracleRecords(buffer, buffer, buffer, buffer, buffer)

    step = partial(oracle_step, sam=sam, track_v=track_v, ema=ema)
    per_chain = jax.vmap(step, in_axes=(None, None, 0, 0, None, None, None, None, None))
    batched_step = jax.vmap(per_chain, in_axes=(None, None, 0, None, 0, None, None, None, None))

    def block(carry, block_index, n_block_steps):
        states, records, slot = carry
        if minibatches:
            draws = minibatch_block(noise, seed, chain_indices, block_index, objective.n_examples)
        else:
            draws = noise_block(noise, seed, chain_indices, block_index, dim, dtype)
        draws = jnp.swapaxes(draws, 0, 1)[:n_block_steps]  # (B, C, ...)
        first_step = block_index * NOISE_BLOCK_STEPS

        def one_step(carry, inputs):
            states, records, slot = carry
            j, draw = inputs
            step_index = first_step + j + 1
            states = batched_step(objective, noise, states, draw, step_sizes, sam_radius, ema_decay, step_index, divergence_radius)
            is_record = step_index == record_steps[slot]

            def record(records):
                values = OracleRecords(states.x, states.v, states.x_sum, states.v_sum, states.x_ema)
                return jax.tree.map(lambda buffer, value: buffer.at[slot].set(value), records, values)

            records = jax.lax.cond(is_record, record, lambda records: records, records)
            return (states, records, slot + is_record.astype(slot.dtype)), (states.x if trajectory else None)

        carry, path = jax.lax.scan(one_step, (states, records, slot), (jnp.arange(n_block_steps, dtype=jnp.int32), draws))
        if progress and n_block_steps == NOISE_BLOCK_STEPS:
            progress_callback(block_index, n_steps, after=carry[0])
        return carry, path

    (states, records, _), path = run_blocks(block, (states, records, jnp.asarray(0, jnp.int32)), n_steps, trajectory)
    final = ChainState(x=states.x, v=states.v, x_sum=states.x_sum, v_sum=states.v_sum, diverged_at=states.diverged_at)
    return records, final, path
