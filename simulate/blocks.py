"""One noise block of the driver (`simulate.driver`), for every (step size, chain) pair: the fast
pass (`_fast_block`) and the exact replay of the pairs that diverged in it (`_replay`), both
module-level functions of a frozen `Plan`.

A block's steps update the kernel's state, the block sums of x and v (`Running`) and every
tracker's running state; at record steps and at the block's end the trackers fold them into
their state (`_block_totals`, written once for both passes). The block sum of x is the kernel's
answer (`kernels.Summation`), so nothing here asks which kernel it runs.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from simulate.kernels import Kernel, Summation, is_good, poisoned_step
from simulate.progress import progress_callback
from simulate.randomness import NOISE_BLOCK_STEPS
from simulate.trackers import BlockSums, Records

__all__ = ["Chains", "Plan", "REPLAY_BATCH", "Running", "initial_chains", "run_block"]

#: How many diverged (step size, chain) pairs the driver redoes together (see `_replay`).
REPLAY_BATCH = 1024


class Running(NamedTuple):
    """Within a noise block: the sums of x and v over its steps so far (None: not kept; the sum
    of x under SGD's v-carry comes from that of v), and every tracker's running state by name."""

    x: jax.Array | None
    v: jax.Array | None
    tracked: dict


class Chains(NamedTuple):
    """The state of the chains, each leaf `(n_step_sizes, n_chains, ...)`."""

    state: Any  # the kernel's state; state.x `(S, C, dim)` the last (good) iterate
    v: jax.Array | None  # (S, C, dim) v = x - eta grad f(x) when tracked; None with SGD's v-carry (in state)
    tracked: dict  # tracker name -> its state (leaves (S, C, ...)) up to the divergence
    diverged_at: jax.Array  # (S, C) int32: the first step refused (left the ball or non-finite); -1

    @property
    def diverged(self) -> jax.Array:
        """(S, C) bool: the chain was frozen at step `diverged_at`."""
        return self.diverged_at >= 0


class Plan(NamedTuple):
    """What every block reads and no block changes, built once per run (`driver._plan`): the
    kernel, gradient source, trackers, objective and schedule (floating leaves cast to the run's
    dtype), the kernel's answer to "what is the block sum of x" (`summation`), and the run's
    constants."""

    kernel: Kernel
    gradient: Any
    trackers: tuple
    objective: Any
    schedule: Any  # None: constant step sizes
    summation: Summation
    step_sizes: jax.Array  # (S,)
    radius: jax.Array  # the divergence radius
    record_steps: jax.Array  # (R,) int32, padded with n_steps + 1
    seed: jax.Array
    chain_indices: jax.Array  # (C,)
    n_steps: int
    dtype: Any
    trajectory: bool
    progress: bool
    track_v: bool  # a tracker reads v: it is computed (unless the state carries it) and recorded
    sum_v: bool  # the driver sums v over each block (for a tracker, or for the sum of x)


def _scaled(plan: Plan, step_size, k):
    """The step size(s) `step_size` (eta) at step k (int32): eta * s(k); eta itself without a schedule."""
    return step_size if plan.schedule is None else step_size * plan.schedule(k).astype(plan.dtype)


def _computed_v(plan: Plan, state, step_size):
    """v = x - eta grad f(x) of one pair when tracked, unless the state carries it, else None."""
    if plan.track_v and not plan.summation.v_in_state:
        return state.x - step_size * plan.objective.point_grad(state.x)
    return None


def _v_of(plan: Plan, state, v):
    """The pair's v: the state's when it carries v (one array, carried once), else `v`."""
    return state.v if plan.summation.v_in_state else v


def _recorded(plan: Plan, x, v, tracked) -> Records:
    return Records(x=x, v=v if plan.track_v else None, tracked=tracked)


def _start_block(plan: Plan, tracked, x) -> Running:
    """Empty block sums (shaped as the iterates `x`) and every tracker's running state. The sum
    of x (or of v, when it gives that of x) is always kept: a poisoned pair is found by it."""
    zeros = jnp.zeros_like(x)
    return Running(
        x=zeros if plan.summation.sums == "x" else None,
        v=zeros if plan.sum_v else None,
        tracked={t.name: t.start_block(tracked[t.name], t.params) for t in plan.trackers},
    )


def _add_step(plan: Plan, running: Running, x, v, step) -> Running:
    """The block sums and every tracker's running state after one more step k = `step` (iterate x, v)."""
    return Running(
        x=None if running.x is None else running.x + x,
        v=None if running.v is None else running.v + v,
        tracked={t.name: t.update(running.tracked[t.name], x, v, step, t.params) for t in plan.trackers},
    )


def _block_totals(plan: Plan, start: Chains, state, running: Running, private, step_size, taken=None) -> dict:
    """Every tracker's state through the current step, from the chains at the block's `start`,
    the kernel's `state` now, the block sums and the kernel's `private` sums (`Summation`).

    `taken` `(P,)` (the replay): the steps each pair took; none taken, the block sum of x is 0,
    also where the kernel's formula would give NaN (SGD: v_0 - v_0 when grad f(x0) is not finite)."""
    x_sum = plan.summation.x_sum(running, private, start.state, state, step_size)
    if taken is not None:
        x_sum = jnp.where((taken > 0)[:, None], x_sum, 0)
    sums = BlockSums(x=x_sum, v=running.v)
    return {t.name: t.finish(start.tracked[t.name], running.tracked[t.name], sums, t.params) for t in plan.trackers}


def _fast_pair(plan: Plan, state, draw, step_size, next_step_size):
    """One step of one pair at `step_size` (`poisoned_step`); v of the new x with the next step's
    size (the same without a schedule)."""
    state = poisoned_step(plan.kernel, plan.gradient, plan.objective, state, draw, step_size, plan.radius**2)
    return state, _computed_v(plan, state, next_step_size)


def _checked_pair(plan: Plan, state, v, running, private, taken, draw, step_size, next_step_size, step_in_block, step):
    """One step of one pair, taken only if it took every earlier step of the block
    (`taken == step_in_block`) and the new state is good; a refused step changes nothing."""
    new = plan.kernel.step(plan.gradient, plan.objective, state, draw, step_size, plan.kernel.params)
    new_v = _computed_v(plan, new, next_step_size)
    take = (taken == step_in_block) & is_good(new, plan.radius, new_v)
    keep = lambda old, new: jnp.where(take, new, old)  # noqa: E731  select, never blend: NaN cannot leak
    new_running = _add_step(plan, running, new.x, _v_of(plan, new, new_v), step)
    new_private = plan.summation.add(private, draw)
    return (
        jax.tree.map(keep, state, new),
        jax.tree.map(keep, v, new_v),
        jax.tree.map(keep, running, new_running),
        jax.tree.map(keep, private, new_private),
        taken + take.astype(taken.dtype),
    )


def _by_pair(fn, chain_axes, step_size_axes):
    """`fn` of one pair over (step sizes, chains): chains inside, step sizes outside, so what does
    not depend on eta (grad f(x0), the draws) is computed once."""
    return jax.vmap(jax.vmap(fn, chain_axes), step_size_axes)


def _record_if_due(plan: Plan, records, slot, step, write):
    """`write(records)` if `step` is the next record step, and move to the next slot."""
    is_record = step == plan.record_steps[slot]
    records = jax.lax.cond(is_record, write, lambda records: records, records)
    return records, slot + is_record.astype(slot.dtype)


def _fast_block(plan: Plan, chains: Chains, records, slot, draws, first_step, n_block_steps):
    """Steps 1..n_block_steps of the block for every pair with no bookkeeping (`poisoned_step`).

    Returns the chains after it, the records, the next record slot, the path, and the pairs that
    diverged in it (`(S, C)` bool): their numbers are non-finite and must be redone. A pair
    frozen in an earlier block is stepped too (no select per step) but keeps its state and records.
    """
    frozen = chains.diverged_at >= 0
    # Leaves are (S, C, ...): the flag broadcasts over the trailing axes.
    keep_frozen = lambda new, old: jnp.where(frozen.reshape(frozen.shape + (1,) * (new.ndim - 2)), old, new)  # noqa: E731
    eta = plan.step_sizes[:, None, None]
    fast_step = _by_pair(partial(_fast_pair, plan), (0, 0, None, None), (0, None, 0, 0))
    # The kernel's private sums run over the draws, per chain: shared by the step sizes.
    by_step_size = lambda private: jax.tree.map(lambda leaf: leaf[None], private)  # noqa: E731

    def step(j, carry):
        state, v, running, private, records, slot, path = carry
        k = first_step + j + 1
        draw = jax.tree.map(lambda leaf: leaf[j], draws)  # a draw may be a pytree (minibatch indices and label noise)
        state, v = fast_step(state, draw, _scaled(plan, plan.step_sizes, k), _scaled(plan, plan.step_sizes, k + 1))
        running = _add_step(plan, running, state.x, _v_of(plan, state, v), k)
        private = plan.summation.add(private, draw)

        def write(records):
            totals = _block_totals(plan, chains, state, running, by_step_size(private), eta)
            values = _recorded(plan, state.x, _v_of(plan, state, v), totals)
            values = jax.tree.map(keep_frozen, values, _recorded(plan, chains.state.x, _v_of(plan, chains.state, chains.v), chains.tracked))
            return jax.tree.map(lambda buffer, value: buffer.at[slot].set(value), records, values)

        records, slot = _record_if_due(plan, records, slot, k, write)
        if plan.trajectory:
            path = path.at[j].set(keep_frozen(state.x, chains.state.x))
        return state, v, running, private, records, slot, path

    path = jnp.zeros((NOISE_BLOCK_STEPS,) + chains.state.x.shape, plan.dtype) if plan.trajectory else None
    running = _start_block(plan, chains.tracked, chains.state.x)
    private = plan.summation.start(chains.state.x[0])
    carry = (chains.state, chains.v, running, private, records, slot, path)
    state, v, running, private, records, slot, path = jax.lax.fori_loop(0, n_block_steps, step, carry)
    tracked = _block_totals(plan, chains, state, running, by_step_size(private), eta)
    after = Chains(
        state=jax.tree.map(keep_frozen, state, chains.state),
        v=jax.tree.map(keep_frozen, v, chains.v),
        tracked=jax.tree.map(keep_frozen, tracked, chains.tracked),
        diverged_at=chains.diverged_at,
    )
    # Poisoned pairs have non-finite block sums (of v when it gives the sum of x, of x otherwise).
    diverged = jnp.zeros_like(frozen)
    for leaf in (running.x, running.v):
        if leaf is not None:
            diverged = diverged | (~frozen & ~jnp.all(jnp.isfinite(leaf), axis=-1))
    return after, records, slot, path, diverged


def _replay(plan: Plan, start: Chains, after: Chains, records, path, diverged, draws, slot, first_step, n_block_steps):
    """Redo the block with every step checked (`_checked_pair`) for the pairs in `diverged`,
    `REPLAY_BATCH` at a time, and write their state, records and path over the fast block's:
    each stops at its last good state and is flagged.

    `start`: the chains at the start of the block; `after`: at its end, from `_fast_block`.
    """
    n_step_sizes, n_chains = diverged.shape
    n_pairs = n_step_sizes * n_chains
    batch_size = min(n_pairs, REPLAY_BATCH)
    pair_step = jax.vmap(partial(_checked_pair, plan), in_axes=(0, 0, 0, 0, 0, 0, 0, 0, None, None))  # one step size per pair

    def batch(carry):
        after, records, path, remaining = carry
        (pair,) = jnp.nonzero(remaining.reshape(-1), size=batch_size, fill_value=n_pairs)
        # Padding pairs point one past the last step size: gathers clamp, scatters drop them.
        s, c = pair // n_chains, pair % n_chains
        at = lambda leaf: leaf[jnp.minimum(s, n_step_sizes - 1), c]  # noqa: E731
        put = lambda leaf, value: leaf.at[s, c].set(value, mode="drop")  # noqa: E731
        eta = plan.step_sizes[jnp.minimum(s, n_step_sizes - 1), None]
        begin = jax.tree.map(at, start)

        def step(j, carry):
            state, v, running, private, taken, records, slot, pair_path = carry
            k = first_step + j + 1
            state, v, running, private, taken = pair_step(
                state, v, running, private, taken, jax.tree.map(lambda leaf: leaf[j, c], draws), _scaled(plan, eta[:, 0], k), _scaled(plan, eta[:, 0], k + 1), j.astype(jnp.int8), k
            )

            def write(records):
                values = _recorded(plan, state.x, _v_of(plan, state, v), _block_totals(plan, begin, state, running, private, eta, taken))
                return jax.tree.map(lambda buffer, value: buffer.at[slot, s, c].set(value, mode="drop"), records, values)

            records, slot = _record_if_due(plan, records, slot, k, write)
            if plan.trajectory:
                pair_path = pair_path.at[j].set(state.x)
            return state, v, running, private, taken, records, slot, pair_path

        running = _start_block(plan, begin.tracked, begin.state.x)
        private = plan.summation.start(begin.state.x)
        taken = jnp.zeros(s.shape, jnp.int8)
        pair_path = jnp.zeros((NOISE_BLOCK_STEPS,) + begin.state.x.shape, plan.dtype) if plan.trajectory else None
        carry = (begin.state, begin.v, running, private, taken, records, slot, pair_path)
        state, v, running, private, taken, records, _, pair_path = jax.lax.fori_loop(0, n_block_steps, step, carry)
        refused = taken.astype(jnp.int32) < n_block_steps
        after = Chains(
            state=jax.tree.map(put, after.state, state),
            v=jax.tree.map(put, after.v, v),
            tracked=jax.tree.map(put, after.tracked, _block_totals(plan, begin, state, running, private, eta, taken)),
            diverged_at=put(after.diverged_at, jnp.where(refused, first_step + taken.astype(jnp.int32) + 1, -1)),
        )
        if plan.trajectory:
            path = path.at[:, s, c].set(pair_path, mode="drop")
        return after, records, path, remaining.at[s, c].set(False, mode="drop")

    after, records, path, _ = jax.lax.while_loop(lambda carry: jnp.any(carry[-1]), batch, (after, records, path, diverged))
    return after, records, path


def initial_chains(plan: Plan, x0) -> tuple[Chains, Records]:
    """The chains at step 0 from `x0` `(C, dim)` for every step size, and empty record buffers
    `(R, S, C, ...)`."""
    n_chains, dim = x0.shape
    n_step_sizes = plan.step_sizes.shape[0]
    first_step_sizes = _scaled(plan, plan.step_sizes, jnp.asarray(1, jnp.int32))
    init_pair = lambda x, step_size: plan.kernel.init(plan.gradient, plan.objective, x, step_size, plan.kernel.params)  # noqa: E731
    state = _by_pair(init_pair, (0, None), (None, 0))(x0, first_step_sizes)
    x = jnp.broadcast_to(x0, (n_step_sizes, n_chains, dim))
    v = _by_pair(partial(_computed_v, plan), (0, None), (0, 0))(state, first_step_sizes)
    tracked = {t.name: t.init(x, _v_of(plan, state, v), t.params) for t in plan.trackers}
    chains = Chains(state=state, v=v, tracked=tracked, diverged_at=jnp.full((n_step_sizes, n_chains), -1, jnp.int32))
    records = jax.tree.map(lambda leaf: jnp.zeros(plan.record_steps.shape + leaf.shape, leaf.dtype), _recorded(plan, x, x, tracked))
    return chains, records


def run_block(plan: Plan, carry, block_index):
    """One noise block: draw its noise, run it fast, replay the pairs that diverged in it."""
    chains, records, slot = carry
    first_step = block_index * NOISE_BLOCK_STEPS  # int32: x64 mode must not promote the steps
    # Every block is compiled once, the last (shorter) one included.
    n_block_steps = jnp.minimum(NOISE_BLOCK_STEPS, plan.n_steps - first_step)
    draws = plan.gradient.draw_block(plan.seed, plan.chain_indices, block_index, plan.objective, plan.dtype)  # (C, B, ...)
    draws = jax.tree.map(lambda leaf: jnp.swapaxes(leaf, 0, 1), draws)  # (B, C, ...); steps past n_block_steps are never used
    after, records_after, slot_after, path, diverged = _fast_block(plan, chains, records, slot, draws, first_step, n_block_steps)
    # Only the pairs that diverged (rare) take the exact replay's numbers; the others keep the
    # fast block's, so no chain's result depends on its neighbours.
    after, records_after, path = _replay(plan, chains, after, records_after, path, diverged, draws, slot, first_step, n_block_steps)
    if plan.progress:
        progress_callback(block_index, plan.n_steps, after=after)
    return (after, records_after, slot_after), path

