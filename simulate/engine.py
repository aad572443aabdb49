"""The compiled core: many SGD chains for many step sizes, streamed through one `lax.scan`.

One step of one chain at step size eta. With v_k = x_k - eta grad f(x_k) (the paper's sequence:
SGD on the smoothed F), the update x_{k+1} = x_k - eta (grad f(x_k) + eps_{k+1}) reads

    x_{k+1} = v_k - eta eps_{k+1}
    v_{k+1} = x_{k+1} - eta grad f(x_{k+1})

so each step costs one gradient and depends on the previous step only through v_k. The carry
holds x, v and running sums, never a trajectory, so memory does not grow with n_steps.

Chains are `vmap`ped; step sizes are `vmap`ped over the chains with the *same* noise (common
random numbers). Steps run in blocks of `NOISE_BLOCK_STEPS`: an outer scan draws the noise of a
block for every chain in one call, an inner loop applies it.

**Sums.** Within a block only sum v_j is accumulated; sum x_j follows at the end of the block
from x_j = v_{j-1} - eta eps_j:

    sum_{j=1..n} x_j = v_0 + sum_{j=1..n} v_j - v_n - eta sum_{j=1..n} eps_j

(v_0 the block's first v, n the steps the chain took in the block; the prefix sums of the
noise are computed once per block and shared by the step sizes). Block sums are then added to
the totals, which keeps float32 rounding of the averages near that of pairwise summation.
Rounding differs from summing x_j directly by a few ulps of the block sum; every sum is computed
the same way whatever the chunking, so results stay bit-identical across chunks.

**Divergence.** A chain whose new iterate is non-finite, whose gradient or v is, or whose iterate
leaves the ball of radius `divergence_radius`, is frozen at its last good state and flagged; its
sums stop growing, so nothing downstream becomes NaN.

**Two paths per block.** Checking every step costs passes over memory: XLA:CPU writes each
array the loop carries in its own pass (it has no multi-output loop fusion), and with 10^5
chains a pass costs a third to a half of the gradient of `sharp_flat`. So each block first runs
*fast* (`fast_sgd_step`): only v and the block's sum of v are carried, and a chain that diverges
is poisoned (v becomes NaN), which the block's sum of v keeps. At the end of the block the pairs
whose sum is not finite, if any, are redone from the block's start with every step checked
(`sgd_step`: a step is taken only if every earlier one of the block was; the first refused step
is `diverged_at`), a batch of `REPLAY_BATCH` pairs at a time, and their state, records and path
replace the fast ones. Pairs that did not diverge keep the fast numbers, so a chain's result
never depends on whether its neighbours diverged (tested), and the replay's cost is paid only in
the blocks where some pair diverges. Against checking every step in place (x, v, sum v and a
step counter carried, three selects a step): 1.9x on `sharp_flat`, 1.6x on `valley_2d` at step
sizes where most chains diverge, 1.04x on a dense 100-D quadratic, where the matrix products
dominate (benchmarks/README.md). Both paths compute x and v with the same operations, and the
replayed numbers agree with the fast ones bit for bit up to the divergence (checked on the
catalog; nothing relies on it).

The state (x, v, x_sum, v_sum) is recorded at a few `record_steps` (a traced, sorted int vector
padded with a sentinel larger than n_steps); averages at a checkpoint t come from the recorded
prefix sums S_t: x_avg(t) = S_t / t and x_tail(t) = (S_t - S_{t-m}) / m.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jaxlib
from jax.sharding import Mesh, PartitionSpec

from simulate.randomness import NOISE_BLOCK_STEPS, noise_block

__all__ = [
    "COMPILER_OPTIONS",
    "ChainState",
    "Records",
    "StepState",
    "progress_callback",
    "report_progress_to",
    "run_blocks",
    "fast_sgd_step",
    "sgd_step",
    "simulate_chains",
]


class ChainState(NamedTuple):
    """The final state of the chains, each leaf `(n_step_sizes, n_chains, ...)`."""

    x: jax.Array  # (S, C, dim) the last iterate x_T (the last good one for a diverged chain)
    v: jax.Array  # (S, C, dim) v_T = x_T - eta grad f(x_T)
    x_sum: jax.Array  # (S, C, dim) sum of x_k, k = 1..T (up to the divergence)
    v_sum: jax.Array  # (S, C, dim)
    diverged_at: jax.Array  # (S, C) int32: the first step refused (left the ball or non-finite); -1

    @property
    def diverged(self) -> jax.Array:
        """(S, C) bool: the chain was frozen at step `diverged_at`."""
        return self.diverged_at >= 0


class Records(NamedTuple):
    """The batched state at the record steps: each `(n_records, n_step_sizes, n_chains, dim)`."""

    x: jax.Array
    v: jax.Array
    x_sum: jax.Array
    v_sum: jax.Array


class StepState(NamedTuple):
    """What the exact replay carries for one (step size, chain) pair within a noise block (the
    engine batches it over the pairs it replays)."""

    x: jax.Array  # (dim,)
    v: jax.Array  # (dim,)
    v_block_sum: jax.Array  # (dim,) sum of v_j over the steps taken in this block
    taken: jax.Array  # () int8: steps taken in this block


def sgd_step(objective, state: StepState, eps, step_size, step_in_block, divergence_radius) -> StepState:
    """One SGD step of one chain: x_{k+1} = v_k - eta eps_{k+1}, v_{k+1} = x_{k+1} - eta grad f(x_{k+1}).

    The chain takes the step only if it took every earlier step of the block
    (`taken == step_in_block`) and the new state is good: x, grad f(x) and v finite and
    ||x|| <= `divergence_radius`. A refused step changes nothing.
    """
    x = state.v - step_size * eps
    v = x - step_size * objective.point_grad(x)
    # One reduction checks everything: v is finite only if x and grad f(x) are, and 0 * v is 0
    # for finite v and NaN otherwise, which fails the comparison.
    good = jnp.sum(x * x + 0 * v) <= divergence_radius * divergence_radius
    take = (state.taken == step_in_block) & good
    keep = lambda old, new: jnp.where(take, new, old)  # select, never blend: NaN cannot leak
    return StepState(
        x=keep(state.x, x),
        v=keep(state.v, v),
        v_block_sum=keep(state.v_block_sum, state.v_block_sum + v),
        taken=state.taken + take.astype(state.taken.dtype),
    )


def fast_sgd_step(objective, v, v_block_sum, eps, step_size, radius_squared):
    """One SGD step of one chain with no bookkeeping: returns (x_{k+1}, v_{k+1}, block sum of v).

    If the new x is not finite or lies outside the ball of radius^2 `radius_squared`, v is NaN
    instead, so a chain that diverges (x, grad f(x) or v not finite, or x out of the ball) makes
    its v and its block sum of v non-finite from that step on: sums keep NaN and infinities. The
    block's end finds such chains from the sum alone and replays the block with `sgd_step`.
    """
    x = v - step_size * eps
    v = jnp.where(jnp.sum(x * x) <= radius_squared, x - step_size * objective.point_grad(x), jnp.nan)
    return x, v, v_block_sum + v


def _sums_so_far(x_sum, v_sum, v_start, v_block_sum, v, step_size, noise_sum):
    """(sum x_k, sum v_k) through the current step, from the totals before the block and the
    block's running sums (module docstring): x adds v_start + sum v_j - v_n - eta P_n, with P_n
    the noise summed over the n steps taken. Both step loops use it, so their sums round alike."""
    return x_sum + (v_start + v_block_sum - v - step_size * noise_sum), v_sum + v_block_sum


def _cast_floating(tree, dtype):
    """Cast the floating leaves of a pytree to `dtype` (so float64 parameters cannot promote a
    float32 simulation); integer leaves keep their type."""

    def cast(leaf):
        leaf = jnp.asarray(leaf)
        return leaf.astype(dtype) if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf

    return jax.tree.map(cast, tree)


def _compiler_options() -> dict:
    """XLA:CPU options for the engine (other backends accept and ignore them: checked on a GPU).

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

#: How many diverged (step size, chain) pairs the engine redoes together (see `replay`).
REPLAY_BATCH = 1024

#: How many times at most a run with `progress=True` reports to the host.
PROGRESS_REPORTS = 100

# The host function that hears of finished blocks (see `report_progress_to`). Kept outside the
# compiled code, so a new listener does not recompile.
_progress_listener = None


class report_progress_to:
    """Context manager: while open, `listener(n_steps_done)` is called from runs compiled with
    `progress=True`, after every few noise blocks (at most `PROGRESS_REPORTS` times per run; the
    general loop of `simulate.oracle` does not report its final partial block: the caller knows
    when the run is over).

    With chains sharded over devices each device reports, so the same count can arrive more than
    once (`simulate.run` passes on only the increases).
    """

    def __init__(self, listener):
        self.listener = listener

    def __enter__(self):
        global _progress_listener
        self._previous, _progress_listener = _progress_listener, self.listener
        return self

    def __exit__(self, *exc):
        global _progress_listener
        _progress_listener = self._previous
        return False


def _report_progress(n_steps_done) -> None:
    listener = _progress_listener
    if listener is not None:
        listener(int(n_steps_done))


def progress_callback(block_index, n_steps: int, after):
    """In compiled code: report the steps done after block `block_index`, every few blocks
    (a host round trip per block would cost more than a small block). `after` is the block's
    result: the report waits for it (a count computed from the block index alone could be sent
    before the block has run)."""
    n_blocks = -(-n_steps // NOISE_BLOCK_STEPS)
    every = -(-n_blocks // PROGRESS_REPORTS)
    done = jnp.minimum((block_index + 1) * NOISE_BLOCK_STEPS, n_steps)
    done, _ = jax.lax.optimization_barrier((done, after))
    report = ((block_index + 1) % every == 0) | (block_index + 1 == n_blocks)
    jax.lax.cond(report, lambda: jax.debug.callback(_report_progress, done), lambda: None)


@partial(jax.jit, static_argnames=("n_steps", "dtype", "trajectory", "progress", "mesh"), compiler_options=COMPILER_OPTIONS)
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
    progress: bool = False,
    mesh: Mesh | None = None,
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
    - `progress`: report finished steps to the host (see `report_progress_to`); results are the
      same either way.
    - `mesh`: a one-axis `Mesh` to split the chains over (`shard_map`: every device runs its
      chains alone, with no communication), or None for one device.

    **Returns:** `(records, final_state, trajectory)`: `Records` with `(n_records + 1, S, C, dim)`
    buffers (the last slot is never written), the final `ChainState`, and the iterates
    `(n_steps, S, C, dim)` when `trajectory` else `None`.
    """
    run = partial(_simulate_chains, n_steps=n_steps, dtype=dtype, trajectory=trajectory, progress=progress)
    if mesh is not None:
        (axis,) = mesh.axis_names
        by_chain = lambda *lead: PartitionSpec(*lead, axis)  # a prefix: later axes are whole
        run = jax.shard_map(
            run,
            mesh=mesh,
            in_specs=(PartitionSpec(),) * 3 + (by_chain(), by_chain()) + (PartitionSpec(),) * 3,
            out_specs=(by_chain(None, None), by_chain(None), by_chain(None, None) if trajectory else None),
            check_vma=False,
        )
    return run(objective, noise, step_sizes, x0, chain_indices, seed, record_steps, divergence_radius)


def _simulate_chains(
    objective, noise, step_sizes, x0, chain_indices, seed, record_steps, divergence_radius, *, n_steps, dtype, trajectory, progress
):
    """`simulate_chains` on one device."""
    objective = _cast_floating(objective, dtype)
    noise = _cast_floating(noise, dtype)
    step_sizes = step_sizes.astype(dtype)
    x0 = x0.astype(dtype)
    radius_squared = divergence_radius.astype(dtype) ** 2
    n_chains, dim = x0.shape
    n_step_sizes = step_sizes.shape[0]
    n_pairs = n_step_sizes * n_chains
    eta = step_sizes[:, None, None]
    assert NOISE_BLOCK_STEPS < 127, "the int8 `taken` counter holds at most 127 steps"

    by_step_size = lambda leaf: jnp.broadcast_to(leaf, (n_step_sizes,) + leaf.shape)
    x = by_step_size(x0)
    zeros = jnp.zeros_like(x)
    chains = ChainState(
        x=x,
        v=x - eta * by_step_size(jax.vmap(objective.point_grad)(x0)),
        x_sum=zeros,
        v_sum=zeros,
        diverged_at=jnp.full((n_step_sizes, n_chains), -1, jnp.int32),
    )
    buffer = jnp.zeros((record_steps.shape[0], n_step_sizes, n_chains, dim), dtype)
    records = Records(buffer, buffer, buffer, buffer)
    per_chain = jax.vmap(fast_sgd_step, in_axes=(None, 0, 0, 0, None, None))
    fast_step = jax.vmap(per_chain, in_axes=(None, 0, 0, None, 0, None))
    pair_step = jax.vmap(sgd_step, in_axes=(None, 0, 0, 0, None, None))  # one step size per pair

    def record_if_due(records, slot, step_index, write):
        """`write(records)` if `step_index` is the next record step, and move to the next slot."""
        is_record = step_index == record_steps[slot]
        records = jax.lax.cond(is_record, write, lambda records: records, records)
        return records, slot + is_record.astype(slot.dtype)

    def fast_block(chains, records, slot, eps, noise_sums, first_step, n_block_steps):
        """Steps 1..n_block_steps of the block for every pair with no bookkeeping (`fast_sgd_step`).

        Returns the chains after it, the noise's prefix sums, the records, the next record slot,
        the path, and the pairs that diverged in it (`(S, C)` bool): their numbers are non-finite
        and must be redone. A pair frozen in an
        earlier block is stepped too (no select per step) but keeps its state and records.
        """
        frozen = chains.diverged_at >= 0
        keep_frozen = lambda new, old: jnp.where(frozen[..., None], old, new)
        v_start = chains.v

        def totals(v, v_block_sum, noise_sum):
            return _sums_so_far(chains.x_sum, chains.v_sum, v_start, v_block_sum, v, eta, noise_sum[None])

        def step(j, carry):
            x, v, v_block_sum, noise_sums, records, slot, path = carry
            x, v, v_block_sum = fast_step(objective, v, v_block_sum, eps[j], step_sizes, radius_squared)
            # The noise's prefix sums, shared by the step sizes; entries past this step are left
            # from the last block, never read.
            noise_sums = noise_sums.at[j + 1].set(noise_sums[j] + eps[j])

            def write(records):
                x_sum, v_sum = totals(v, v_block_sum, noise_sums[j + 1])
                values = Records(x=x, v=v, x_sum=x_sum, v_sum=v_sum)
                values = jax.tree.map(keep_frozen, values, Records(chains.x, chains.v, chains.x_sum, chains.v_sum))
                return jax.tree.map(lambda buffer, value: buffer.at[slot].set(value), records, values)

            records, slot = record_if_due(records, slot, first_step + j + 1, write)
            if trajectory:
                path = path.at[j].set(keep_frozen(x, chains.x))
            return x, v, v_block_sum, noise_sums, records, slot, path

        path = jnp.zeros((NOISE_BLOCK_STEPS,) + chains.x.shape, dtype) if trajectory else None
        carry = (chains.x, chains.v, jnp.zeros_like(chains.v), noise_sums, records, slot, path)
        x, v, v_block_sum, noise_sums, records, slot, path = jax.lax.fori_loop(0, n_block_steps, step, carry)
        x_sum, v_sum = totals(v, v_block_sum, noise_sums[n_block_steps])
        after = ChainState(
            x=keep_frozen(x, chains.x),
            v=keep_frozen(v, chains.v),
            x_sum=keep_frozen(x_sum, chains.x_sum),
            v_sum=keep_frozen(v_sum, chains.v_sum),
            diverged_at=chains.diverged_at,
        )
        diverged = ~frozen & ~jnp.all(jnp.isfinite(v_block_sum), axis=-1)
        return after, noise_sums, records, slot, path, diverged

    def replay(start, after, records, path, diverged, eps, slot, first_step, n_block_steps):
        """Redo the block with every step checked (`sgd_step`) for the pairs in `diverged`,
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
            v_start, x_sum, v_sum = at(start.v), at(start.x_sum), at(start.v_sum)

            def totals(state, noise_sum):
                return _sums_so_far(x_sum, v_sum, v_start, state.v_block_sum, state.v, eta_k, noise_sum)

            def step(j, carry):
                state, noise_sum, records, slot, pair_path = carry
                state = pair_step(objective, state, eps[j, c], eta_k[:, 0], j.astype(jnp.int8), divergence_radius)
                # The noise over the steps taken, summed in the order of the fast block's prefix sums.
                noise_sum = jnp.where((state.taken.astype(jnp.int32) > j)[:, None], noise_sum + eps[j, c], noise_sum)

                def write(records):
                    x_sum, v_sum = totals(state, noise_sum)
                    values = Records(x=state.x, v=state.v, x_sum=x_sum, v_sum=v_sum)
                    return jax.tree.map(lambda buffer, value: buffer.at[slot, s, c].set(value, mode="drop"), records, values)

                records, slot = record_if_due(records, slot, first_step + j + 1, write)
                if trajectory:
                    pair_path = pair_path.at[j].set(state.x)
                return state, noise_sum, records, slot, pair_path

            state = StepState(x=at(start.x), v=v_start, v_block_sum=jnp.zeros_like(v_start), taken=jnp.zeros(s.shape, jnp.int8))
            pair_path = jnp.zeros((NOISE_BLOCK_STEPS,) + v_start.shape, dtype) if trajectory else None
            carry = (state, jnp.zeros_like(v_start), records, slot, pair_path)
            state, noise_sum, records, _, pair_path = jax.lax.fori_loop(0, n_block_steps, step, carry)
            x_sum, v_sum = totals(state, noise_sum)
            refused = state.taken.astype(jnp.int32) < n_block_steps
            after = ChainState(
                x=put(after.x, state.x),
                v=put(after.v, state.v),
                x_sum=put(after.x_sum, x_sum),
                v_sum=put(after.v_sum, v_sum),
                diverged_at=put(after.diverged_at, jnp.where(refused, first_step + state.taken.astype(jnp.int32) + 1, -1)),
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
        eps = noise_block(noise, seed, chain_indices, block_index, dim, dtype)  # (C, B, dim)
        eps = jnp.swapaxes(eps, 0, 1)  # (B, C, dim); steps past n_block_steps are never used
        after, noise_sums, records_after, slot_after, path, diverged = fast_block(
            chains, records, slot, eps, noise_sums, first_step, n_block_steps
        )
        # Only the pairs that diverged (rare) take the exact replay's numbers; the others keep
        # the fast block's, so no chain's result depends on its neighbours.
        after, records_after, path = replay(chains, after, records_after, path, diverged, eps, slot, first_step, n_block_steps)
        if progress:
            progress_callback(block_index, n_steps, after=after)
        return (after, noise_sums, records_after, slot_after), path

    noise_sums = jnp.zeros((NOISE_BLOCK_STEPS + 1, n_chains, dim), dtype)  # entry 0 stays 0
    n_blocks = -(-n_steps // NOISE_BLOCK_STEPS)
    carry = (chains, noise_sums, records, jnp.asarray(0, jnp.int32))
    (chains, _, records, _), path = jax.lax.scan(block, carry, jnp.arange(n_blocks, dtype=jnp.int32))
    if trajectory:
        path = path.reshape((-1,) + path.shape[2:])[:n_steps]
    return records, chains, path


def run_blocks(block, carry, n_steps: int, trajectory: bool):
    """Drive `block(carry, block_index, n_block_steps) -> (carry, path)` over n_steps: a scan over
    the full noise blocks, then one call for the remainder. Returns `(carry, path)` with the
    blocks' paths joined along steps (`None` unless `trajectory`)."""
    n_full_blocks, remainder = divmod(n_steps, NOISE_BLOCK_STEPS)
    paths = []
    if n_full_blocks:
        carry, path = jax.lax.scan(
            partial(block, n_block_steps=NOISE_BLOCK_STEPS), carry, jnp.arange(n_full_blocks, dtype=jnp.int32)
        )
        if trajectory:
            paths.append(path.reshape((-1,) + path.shape[2:]))
    if remainder:
        carry, path = block(carry, jnp.asarray(n_full_blocks, jnp.int32), remainder)
        if trajectory:
            paths.append(path)
    return carry, (jnp.concatenate(paths) if trajectory else None)
