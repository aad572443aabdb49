"""The driver: every (step size, chain) pair of any kernel, streamed through one `lax.scan`.

The driver owns what all update rules share; a kernel (`simulate.kernels`) owns one update.

- **Noise blocks.** Steps run in blocks of `NOISE_BLOCK_STEPS`: the scan over blocks draws the
  block's noise (or minibatches) for every chain in one call under the randomness contract
  (`simulate.randomness`, through the gradient source of `simulate.gradients`), an inner loop
  applies it. Every block, the last (shorter) one included, is the same compiled code. Chains
  are `vmap`ped; step sizes are `vmap`ped over the chains with the *same* draws (common random
  numbers). The carry holds the kernel's state and running sums, never a trajectory, so memory
  does not grow with n_steps.
- **Trackers** (`simulate.trackers`): every estimator is a tracker; the driver keeps the sums
  of x and v over the block so far (`Running`, shared by the trackers that read them) and each
  tracker's running state, and at the block's end each tracker folds them into its state. For
  SGD with additive noise (its v-carry, `Kernel.v_carry`) only the sum of v is carried and the
  sum of x follows from it and the noise's prefix sums (`kernels.sgd_block_sum_of_x`, computed
  once per block for all step sizes).
- **Divergence, poison and replay.** A chain whose iterate leaves the ball of radius
  `divergence_radius` or whose state becomes non-finite is frozen at its last good state and
  flagged; its sums stop growing, so nothing downstream becomes NaN. Checking every step costs
  passes over memory: XLA:CPU writes each array the loop carries in its own pass, and with 10^5
  chains a pass costs a third to a half of the gradient of `sharp_flat`. So each block first runs
  *fast* (`kernels.poisoned_step`): a chain that diverges is poisoned (NaN), which its block sums
  keep. At the block's end the pairs whose sums are not finite, if any, are redone from the
  block's start with every step checked (`kernels.is_good`: a step is taken only if every earlier
  one of the block was; the first refused step is `diverged_at`), `REPLAY_BATCH` pairs at a time,
  and their state, records and path replace the fast ones. Pairs that did not diverge keep the
  fast numbers, so a chain's result never depends on whether its neighbours diverged (tested),
  and the replay's cost is paid only in blocks where some pair diverges (1.9x on `sharp_flat`,
  1.6x on `valley_2d` against checking in place; benchmarks/README.md).
- **Records.** x, v and every tracker's state are recorded at a few `record_steps` (a traced,
  sorted int vector padded with a sentinel larger than n_steps); the estimators at a checkpoint
  are the trackers' readouts of those records (`trackers.read_out`).
- **Step-size schedules** (`simulate.schedules`): step k runs at eta * s(k) (`step_sizes_at`),
  for every kernel. v_k is then x_k - eta_{k+1} grad f(x_k), so x_{k+1} = v_k - eta_{k+1}
  eps_{k+1} still holds; but SGD's v-carry (one gradient a step, the sum of x from that of v)
  assumes one eta, so under a schedule the gradient source is seen as non-additive
  (`_NotAdditive`) and SGD takes its plain form. Without a schedule (`None`, what
  `simulate.constant()` becomes) the code is exactly that of a constant step size.
- **Sharding** (`shard_map` over a one-axis mesh of devices, no communication) and **progress**
  (`simulate.progress`) for every kernel.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jaxlib
from jax.sharding import Mesh, PartitionSpec

from simulate.kernels import Kernel, is_good, poisoned_step, sgd_block_sum_of_x
from simulate.progress import progress_callback
from simulate.randomness import NOISE_BLOCK_STEPS
from simulate.trackers import BlockSums, Records

__all__ = ["COMPILER_OPTIONS", "Chains", "REPLAY_BATCH", "simulate_chains"]


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


def _cast_floating(tree, dtype):
    """Cast the floating leaves of a pytree to `dtype` (so float64 parameters cannot promote a
    float32 simulation); integer leaves keep their type."""

    def cast(leaf):
        leaf = jnp.asarray(leaf)
        return leaf.astype(dtype) if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf

    return jax.tree.map(cast, tree)


def _compiler_options() -> dict:
    """XLA:CPU options for the driver (other backends accept and ignore them: checked on a GPU).

    - YNNPACK fusions off: jaxlib 0.10.2's XLA:CPU hands small per-point reductions (a sum over
      2 wells, over 2 coordinates) to YNNPACK, which runs them as scalar code: the engine was
      18x slower on `sharp_flat` written with its wells as an array axis (jax-ml/jax#37465
      reports the same slowdown and the same way out).
    - 512-bit vectors where the CPU has them: 1.2x on the whole step.

    Checked on jaxlib 0.10.2 and 0.11.2 (CPU and GPU); older versions, not checked, get none.
    """
    version = tuple(int(part) for part in jaxlib.__version__.split(".")[:3] if part.isdigit())
    if version < (0, 10, 2):
        return {}
    return {"xla_cpu_experimental_ynn_fusion_type": "", "xla_cpu_prefer_vector_width": 512}


#: The XLA options `simulate_chains` is compiled with (see `_compiler_options`).
COMPILER_OPTIONS = _compiler_options()

#: How many diverged (step size, chain) pairs the driver redoes together (see `replay`).
REPLAY_BATCH = 1024


@dataclasses.dataclass(frozen=True)
class _NotAdditive:
    """A gradient source with the same draws and gradients, seen as non-additive: kernels take
    their plain form (SGD: x' = x - eta g(x, draw)), as they must when eta changes every step."""

    source: Any
    additive = False

    def draw_block(self, seed, chain_indices, block_index, objective, dtype):
        return self.source.draw_block(seed, chain_indices, block_index, objective, dtype)

    def grad(self, objective, x, draw):
        return self.source.grad(objective, x, draw)


jax.tree_util.register_dataclass(_NotAdditive, data_fields=["source"], meta_fields=[])


@partial(jax.jit, static_argnames=("n_steps", "dtype", "trajectory", "progress", "mesh"), compiler_options=COMPILER_OPTIONS)
def simulate_chains(
    kernel: Kernel,
    gradient,
    trackers: tuple,
    objective,
    step_sizes: jax.Array,
    x0: jax.Array,
    chain_indices: jax.Array,
    seed: jax.Array,
    record_steps: jax.Array,
    divergence_radius: jax.Array,
    schedule=None,
    *,
    n_steps: int,
    dtype,
    trajectory: bool = False,
    progress: bool = False,
    mesh: Mesh | None = None,
):
    """Run `kernel` for every (step size, chain) pair.

    **Arguments:**

    - `kernel`: a `simulate.kernels.Kernel` (its parameters traced).
    - `gradient`: a source from `simulate.gradients` (its noise parameters traced).
    - `trackers`: a tuple of `simulate.trackers.Tracker` (their parameters traced).
    - `objective`: an `Objective` (a pytree; its numbers are traced).
    - `step_sizes`: `(n_step_sizes,)`.
    - `x0`: `(n_chains, dim)` starting points.
    - `chain_indices`: `(n_chains,)` global chain indices i (select the noise; see `randomness`).
    - `seed`: an integer scalar.
    - `record_steps`: `(n_records + 1,)` sorted steps at which to record, padded with n_steps + 1.
    - `divergence_radius`: a scalar.
    - `schedule`: a `simulate.schedules.Schedule` (step k runs at step_sizes * s(k); its numbers
      traced), or None for constant step sizes.
    - `progress`: report finished steps to the host (see `simulate.progress`); results are the
      same either way.
    - `mesh`: a one-axis `Mesh` to split the chains over (`shard_map`: every device runs its
      chains alone, with no communication), or None for one device.

    **Returns:** `(records, chains, trajectory)`: `Records` with `(n_records + 1, S, C, dim)`
    buffers (the last slot is never written; untracked fields None), the final `Chains`, and the
    iterates `(n_steps, S, C, dim)` when `trajectory` else `None`.
    """
    run = partial(_simulate_chains, n_steps=n_steps, dtype=dtype, trajectory=trajectory, progress=progress)
    if mesh is not None:
        (axis,) = mesh.axis_names
        by_chain = lambda *lead: PartitionSpec(*lead, axis)  # a prefix: later axes are whole
        run = jax.shard_map(
            run,
            mesh=mesh,
            in_specs=(PartitionSpec(),) * 5 + (by_chain(), by_chain()) + (PartitionSpec(),) * 4,
            out_specs=(by_chain(None, None), by_chain(None), by_chain(None, None) if trajectory else None),
            check_vma=False,
        )
    return run(kernel, gradient, trackers, objective, step_sizes, x0, chain_indices, seed, record_steps, divergence_radius, schedule)


def _simulate_chains(
    kernel, gradient, trackers, objective, step_sizes, x0, chain_indices, seed, record_steps, divergence_radius, schedule, *, n_steps, dtype, trajectory, progress
):
    """`simulate_chains` on one device."""
    kernel, gradient, trackers, objective, schedule = _cast_floating((kernel, gradient, trackers, objective, schedule), dtype)
    if schedule is not None and gradient.additive:
        gradient = _NotAdditive(gradient)
    step_sizes = step_sizes.astype(dtype)
    x0 = x0.astype(dtype)
    divergence_radius = divergence_radius.astype(dtype)
    radius_squared = divergence_radius**2
    n_chains, dim = x0.shape
    n_step_sizes = step_sizes.shape[0]
    n_pairs = n_step_sizes * n_chains
    eta = step_sizes[:, None, None]
    v_carry = kernel.v_carry and gradient.additive  # sum x from sum v and the noise (SGD)
    track_v = any(tracker.uses_v for tracker in trackers)
    # The block sums: of x (of v under SGD's v-carry, which gives that of x) always, since a
    # poisoned pair is found by its non-finite sum; of v when a tracker reads it.
    sum_x, sum_v = not v_carry, v_carry or any("v" in tracker.sums for tracker in trackers)
    assert NOISE_BLOCK_STEPS < 127, "the int8 `taken` counter holds at most 127 steps"

    def scaled(step_size, k):
        """The step size(s) `step_size` (eta) at step k (int32): eta * s(k); eta itself without a schedule."""
        return step_size if schedule is None else step_size * schedule(k).astype(dtype)

    def computed_v(state, step_size):
        """v = x - eta grad f(x) of one pair when tracked, unless the state carries it (SGD), else None."""
        return state.x - step_size * objective.point_grad(state.x) if track_v and not v_carry else None

    def v_of(state, v):
        """The pair's v: the state's under SGD's v-carry (one array, carried once), else `v`."""
        return state.v if v_carry else v

    def recorded(x, v, tracked) -> Records:
        return Records(x=x, v=v if track_v else None, tracked=tracked)

    def start_block(tracked, x) -> Running:
        """Empty block sums (shaped as the iterates `x`), and every tracker's running state."""
        zeros = jnp.zeros_like(x)
        return Running(
            x=zeros if sum_x else None,
            v=zeros if sum_v else None,
            tracked={t.name: t.start_block(tracked[t.name], t.params) for t in trackers},
        )

    def add_step(running, x, v, step) -> Running:
        """The block sums and every tracker's running state after one more step (iterate x, v)."""
        return Running(
            x=None if running.x is None else running.x + x,
            v=None if running.v is None else running.v + v,
            tracked={t.name: t.update(running.tracked[t.name], x, v, step, t.params) for t in trackers},
        )

    def through(tracked, running, x_block_sum) -> dict:
        """Every tracker's state through the current step, from the block's start (`tracked`)."""
        sums = BlockSums(x=x_block_sum, v=running.v)
        return {t.name: t.finish(tracked[t.name], running.tracked[t.name], sums, t.params) for t in trackers}

    def fast_pair(state, draw, step_size, next_step_size):
        """One step at `step_size`; v of the new x with the next step's size (the same without a schedule)."""
        state = poisoned_step(kernel, gradient, objective, state, draw, step_size, radius_squared)
        return state, computed_v(state, next_step_size)

    def checked_pair(state, v, running, taken, draw, step_size, next_step_size, step_in_block, step):
        """One step of one pair, taken only if it took every earlier step of the block
        (`taken == step_in_block`) and the new state is good; a refused step changes nothing."""
        new = kernel.step(gradient, objective, state, draw, step_size, kernel.params)
        new_v = computed_v(new, next_step_size)
        take = (taken == step_in_block) & is_good(new, divergence_radius, new_v)
        keep = lambda old, new: jnp.where(take, new, old)  # select, never blend: NaN cannot leak
        new_running = add_step(running, new.x, v_of(new, new_v), step)
        return (
            jax.tree.map(keep, state, new),
            jax.tree.map(keep, v, new_v),
            jax.tree.map(keep, running, new_running),
            taken + take.astype(taken.dtype),
        )

    init_pair = lambda x, step_size: kernel.init(gradient, objective, x, step_size, kernel.params)  # noqa: E731
    # Chains inside, step sizes outside: what does not depend on eta (grad f(x0)) is computed once.
    by_pair = lambda fn, chain_axes, step_size_axes: jax.vmap(jax.vmap(fn, chain_axes), step_size_axes)  # noqa: E731
    first_step_sizes = scaled(step_sizes, jnp.asarray(1, jnp.int32))
    state = by_pair(init_pair, (0, None), (None, 0))(x0, first_step_sizes)
    x = jnp.broadcast_to(x0, (n_step_sizes, n_chains, dim))
    v = by_pair(computed_v, (0, None), (0, 0))(state, first_step_sizes)
    tracked = {t.name: t.init(x, v_of(state, v), t.params) for t in trackers}
    chains = Chains(state=state, v=v, tracked=tracked, diverged_at=jnp.full((n_step_sizes, n_chains), -1, jnp.int32))
    records = jax.tree.map(lambda leaf: jnp.zeros(record_steps.shape + leaf.shape, leaf.dtype), recorded(x, x, chains.tracked))
    fast_step = by_pair(fast_pair, (0, 0, None, None), (0, None, 0, 0))
    pair_step = jax.vmap(checked_pair, in_axes=(0, 0, 0, 0, 0, 0, 0, None, None))  # one step size per pair

    def record_if_due(records, slot, step_index, write):
        """`write(records)` if `step_index` is the next record step, and move to the next slot."""
        is_record = step_index == record_steps[slot]
        records = jax.lax.cond(is_record, write, lambda records: records, records)
        return records, slot + is_record.astype(slot.dtype)

    def fast_block(chains, records, slot, draws, noise_sums, first_step, n_block_steps):
        """Steps 1..n_block_steps of the block for every pair with no bookkeeping (`poisoned_step`).

        Returns the chains after it, the noise's prefix sums, the records, the next record slot,
        the path, and the pairs that diverged in it (`(S, C)` bool): their numbers are non-finite
        and must be redone. A pair frozen in an earlier block is stepped too (no select per step)
        but keeps its state and records.
        """
        frozen = chains.diverged_at >= 0
        # Leaves are (S, C, ...): the flag broadcasts over the trailing axes.
        keep_frozen = lambda new, old: jnp.where(frozen.reshape(frozen.shape + (1,) * (new.ndim - 2)), old, new)

        def block_totals(state, running, noise_sum):
            if v_carry:
                x_block_sum = sgd_block_sum_of_x(chains.state.v, running.v, state.v, eta, noise_sum[None])
            return through(chains.tracked, running, x_block_sum if v_carry else running.x)

        def step(j, carry):
            state, v, running, noise_sums, records, slot, path = carry
            k = first_step + j + 1
            state, v = fast_step(state, draws[j], scaled(step_sizes, k), scaled(step_sizes, k + 1))
            running = add_step(running, state.x, v_of(state, v), k)
            if v_carry:  # the noise's prefix sums, shared by the step sizes (entries past j + 1: stale, unread)
                noise_sums = noise_sums.at[j + 1].set(noise_sums[j] + draws[j])

            def write(records):
                values = recorded(state.x, v_of(state, v), block_totals(state, running, noise_sums[j + 1] if v_carry else None))
                values = jax.tree.map(keep_frozen, values, recorded(chains.state.x, v_of(chains.state, chains.v), chains.tracked))
                return jax.tree.map(lambda buffer, value: buffer.at[slot].set(value), records, values)

            records, slot = record_if_due(records, slot, first_step + j + 1, write)
            if trajectory:
                path = path.at[j].set(keep_frozen(state.x, chains.state.x))
            return state, v, running, noise_sums, records, slot, path

        path = jnp.zeros((NOISE_BLOCK_STEPS,) + chains.state.x.shape, dtype) if trajectory else None
        running = start_block(chains.tracked, chains.state.x)
        carry = (chains.state, chains.v, running, noise_sums, records, slot, path)
        state, v, running, noise_sums, records, slot, path = jax.lax.fori_loop(0, n_block_steps, step, carry)
        tracked = block_totals(state, running, noise_sums[n_block_steps] if v_carry else None)
        after = Chains(
            state=jax.tree.map(keep_frozen, state, chains.state),
            v=jax.tree.map(keep_frozen, v, chains.v),
            tracked=jax.tree.map(keep_frozen, tracked, chains.tracked),
            diverged_at=chains.diverged_at,
        )
        # Poisoned pairs have non-finite block sums (of v for SGD's v-carry, of x otherwise).
        sums = [leaf for leaf in (running.x, running.v) if leaf is not None]
        diverged = ~frozen & ~jnp.all(jnp.isfinite(sums[0]), axis=-1)
        for leaf in sums[1:]:
            diverged = diverged | (~frozen & ~jnp.all(jnp.isfinite(leaf), axis=-1))
        return after, noise_sums, records, slot, path, diverged

    def replay(start, after, records, path, diverged, draws, slot, first_step, n_block_steps):
        """Redo the block with every step checked (`checked_pair`) for the pairs in `diverged`,
        `REPLAY_BATCH` at a time, and write their state, records and path over the fast block's:
        each stops at its last good state and is flagged.

        `start`: the chains at the start of the block; `after`: at its end, from `fast_block`.
        """
        batch_size = min(n_pairs, REPLAY_BATCH)

        def batch(carry):
            after, records, path, remaining = carry
            (pair,) = jnp.nonzero(remaining.reshape(-1), size=batch_size, fill_value=n_pairs)
            # Padding pairs point one past the last step size: gathers clamp, scatters drop them.
            s, c = pair // n_chains, pair % n_chains
            at = lambda leaf: leaf[jnp.minimum(s, n_step_sizes - 1), c]
            put = lambda leaf, value: leaf.at[s, c].set(value, mode="drop")
            eta_k = step_sizes[jnp.minimum(s, n_step_sizes - 1), None]
            begin = jax.tree.map(at, start)

            def block_totals(state, running, noise_sum, taken):
                if v_carry:
                    x_block_sum = sgd_block_sum_of_x(begin.state.v, running.v, state.v, eta_k, noise_sum)
                    # No step taken: the sum is 0, also when v_0 is not finite (grad f(x0) NaN),
                    # where the formula gives v_0 - v_0 = NaN.
                    x_block_sum = jnp.where((taken > 0)[:, None], x_block_sum, 0)
                return through(begin.tracked, running, x_block_sum if v_carry else running.x)

            def step(j, carry):
                state, v, running, taken, noise_sum, records, slot, pair_path = carry
                k = first_step + j + 1
                state, v, running, taken = pair_step(
                    state, v, running, taken, draws[j, c], scaled(eta_k[:, 0], k), scaled(eta_k[:, 0], k + 1), j.astype(jnp.int8), k
                )
                if v_carry:  # the noise over the steps taken, summed in the order of the fast block's prefix sums
                    noise_sum = jnp.where((taken.astype(jnp.int32) > j)[:, None], noise_sum + draws[j, c], noise_sum)

                def write(records):
                    values = recorded(state.x, v_of(state, v), block_totals(state, running, noise_sum, taken))
                    return jax.tree.map(lambda buffer, value: buffer.at[slot, s, c].set(value, mode="drop"), records, values)

                records, slot = record_if_due(records, slot, first_step + j + 1, write)
                if trajectory:
                    pair_path = pair_path.at[j].set(state.x)
                return state, v, running, taken, noise_sum, records, slot, pair_path

            running = start_block(begin.tracked, begin.state.x)
            taken = jnp.zeros(s.shape, jnp.int8)
            noise_sum = jnp.zeros_like(begin.state.x) if v_carry else None
            pair_path = jnp.zeros((NOISE_BLOCK_STEPS,) + begin.state.x.shape, dtype) if trajectory else None
            carry = (begin.state, begin.v, running, taken, noise_sum, records, slot, pair_path)
            state, v, running, taken, noise_sum, records, _, pair_path = jax.lax.fori_loop(0, n_block_steps, step, carry)
            refused = taken.astype(jnp.int32) < n_block_steps
            after = Chains(
                state=jax.tree.map(put, after.state, state),
                v=jax.tree.map(put, after.v, v),
                tracked=jax.tree.map(put, after.tracked, block_totals(state, running, noise_sum, taken)),
                diverged_at=put(after.diverged_at, jnp.where(refused, first_step + taken.astype(jnp.int32) + 1, -1)),
            )
            if trajectory:
                path = path.at[:, s, c].set(pair_path, mode="drop")
            return after, records, path, remaining.at[s, c].set(False, mode="drop")

        after, records, path, _ = jax.lax.while_loop(lambda carry: jnp.any(carry[-1]), batch, (after, records, path, diverged))
        return after, records, path

    def block(carry, block_index):
        chains, noise_sums, records, slot = carry
        first_step = block_index * NOISE_BLOCK_STEPS  # int32: x64 mode must not promote the steps
        # Every block is compiled once, the last (shorter) one included.
        n_block_steps = jnp.minimum(NOISE_BLOCK_STEPS, n_steps - first_step)
        draws = gradient.draw_block(seed, chain_indices, block_index, objective, dtype)  # (C, B, ...)
        draws = jnp.swapaxes(draws, 0, 1)  # (B, C, ...); steps past n_block_steps are never used
        after, noise_sums, records_after, slot_after, path, diverged = fast_block(
            chains, records, slot, draws, noise_sums, first_step, n_block_steps
        )
        # Only the pairs that diverged (rare) take the exact replay's numbers; the others keep
        # the fast block's, so no chain's result depends on its neighbours.
        after, records_after, path = replay(chains, after, records_after, path, diverged, draws, slot, first_step, n_block_steps)
        if progress:
            progress_callback(block_index, n_steps, after=after)
        return (after, noise_sums, records_after, slot_after), path

    noise_sums = jnp.zeros((NOISE_BLOCK_STEPS + 1, n_chains, dim), dtype) if v_carry else None  # entry 0 stays 0
    n_blocks = -(-n_steps // NOISE_BLOCK_STEPS)
    carry = (chains, noise_sums, records, jnp.asarray(0, jnp.int32))
    (chains, _, records, _), path = jax.lax.scan(block, carry, jnp.arange(n_blocks, dtype=jnp.int32))
    if trajectory:
        path = path.reshape((-1,) + path.shape[2:])[:n_steps]
    return records, chains, path
