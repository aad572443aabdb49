"""The compiled core: many SGD chains for many step sizes, streamed through one `lax.scan`.

One step of one chain at step size eta. With v_k = x_k - eta grad f(x_k) (the paper's sequence:
SGD on the smoothed F), the update x_{k+1} = x_k - eta (grad f(x_k) + eps_{k+1}) reads

    x_{k+1} = v_k - eta eps_{k+1}
    v_{k+1} = x_{k+1} - eta grad f(x_{k+1})

so each step costs one gradient and depends on the previous step only through v_k. The carry
holds x, v and running sums, never a trajectory, so memory does not grow with n_steps.

Chains are `vmap`ped; step sizes are `vmap`ped over the chains with the *same* noise (common
random numbers). Steps run in blocks of `NOISE_BLOCK_STEPS`: an outer scan draws the noise of a
block for every chain in one call, an inner scan applies it.

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
sums stop growing, so nothing downstream becomes NaN. Inside a block a chain carries `taken`,
the number of steps it has taken in this block (int8; -1 for a chain frozen in an earlier
block): a step is taken only if every earlier step of the block was. The first refused step is
`diverged_at`, set at the end of the block.

**Why it is written this way.** XLA:CPU gives each array the loop writes its own pass over
memory (it has no multi-output loop fusion), and with 10^5 chains each pass costs a third to a
half of the gradient of `sharp_flat`. Keeping only (x, v, sum v, taken) per step, instead of
(x, grad, sum x, sum v, diverged, diverged_at), and setting `diverged_at` once per block, cuts
the passes: 1.5x on `sharp_flat`, 2x on a dense 100-D quadratic (benchmarks/README.md).

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

from simulate.randomness import NOISE_BLOCK_STEPS, noise_block

__all__ = [
    "COMPILER_OPTIONS",
    "ChainState",
    "Records",
    "StepState",
    "progress_callback",
    "report_progress_to",
    "run_blocks",
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
    """What the step loop carries for one chain within a noise block (the engine batches it over
    step sizes and chains)."""

    x: jax.Array  # (dim,)
    v: jax.Array  # (dim,)
    v_block_sum: jax.Array  # (dim,) sum of v_j over the steps taken in this block
    taken: jax.Array  # () int8: steps taken in this block; -1 for a chain frozen before it


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


def _totals(chains: ChainState, block: StepState, v_start, noise_sums, step_sizes) -> tuple[jax.Array, jax.Array]:
    """(x_sum, v_sum) including the n steps each chain took so far in the current block:

        sum x_j = v_start + sum v_j - v_n - eta P_n     (module docstring)

    `chains` (totals before the block), `block` and `v_start` have leaves `(S, C, ...)`;
    `noise_sums` `(B + 1, C, dim)` holds P_n = sum_{j < n} eps_j of the block for every n reached.
    """
    # P_n for the n steps each chain took, picked elementwise: a gather would make XLA exchange
    # data between devices when the chains are sharded.
    shape = block.v.shape
    steps_taken = jnp.broadcast_to(jnp.maximum(block.taken, 0).astype(jnp.int32)[..., None], shape)
    taken_noise = jax.lax.select_n(steps_taken, *(jnp.broadcast_to(p[None], shape) for p in noise_sums))
    x_block_sum = v_start + block.v_block_sum - block.v - step_sizes[:, None, None] * taken_noise
    return chains.x_sum + x_block_sum, chains.v_sum + block.v_block_sum


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

#: How many times at most a run with `progress=True` reports to the host.
PROGRESS_REPORTS = 100

# The host function that hears of finished blocks (see `report_progress_to`). Kept outside the
# compiled code, so a new listener does not recompile.
_progress_listener = None


class report_progress_to:
    """Context manager: while open, `listener(n_steps_done)` is called from runs compiled with
    `progress=True`, after every few full noise blocks (at most `PROGRESS_REPORTS` times per run;
    a final partial block is not reported: the caller knows when the run is over).

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


@partial(jax.jit, static_argnames=("n_steps", "dtype", "trajectory", "progress"), compiler_options=COMPILER_OPTIONS)
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

    **Returns:** `(records, final_state, trajectory)`: `Records` with `(n_records + 1, S, C, dim)`
    buffers (the last slot is never written), the final `ChainState`, and the iterates
    `(n_steps, S, C, dim)` when `trajectory` else `None`.
    """
    objective = _cast_floating(objective, dtype)
    noise = _cast_floating(noise, dtype)
    step_sizes = step_sizes.astype(dtype)
    x0 = x0.astype(dtype)
    divergence_radius = divergence_radius.astype(dtype)
    n_chains, dim = x0.shape
    n_step_sizes = step_sizes.shape[0]
    assert NOISE_BLOCK_STEPS < 127, "the int8 `taken` counter holds at most 127 steps"

    by_step_size = lambda leaf: jnp.broadcast_to(leaf, (n_step_sizes,) + leaf.shape)
    x = by_step_size(x0)
    zeros = jnp.zeros_like(x)
    chains = ChainState(
        x=x,
        v=x - step_sizes[:, None, None] * by_step_size(jax.vmap(objective.point_grad)(x0)),
        x_sum=zeros,
        v_sum=zeros,
        diverged_at=jnp.full((n_step_sizes, n_chains), -1, jnp.int32),
    )
    buffer = jnp.zeros((record_steps.shape[0], n_step_sizes, n_chains, dim), dtype)
    records = Records(buffer, buffer, buffer, buffer)

    per_chain = jax.vmap(sgd_step, in_axes=(None, 0, 0, None, None, None))
    batched_step = jax.vmap(per_chain, in_axes=(None, 0, None, 0, None, None))

    def block(carry, block_index, n_block_steps):
        chains, noise_sums, records, slot = carry
        eps = noise_block(noise, seed, chain_indices, block_index, dim, dtype)  # (C, B, dim)
        eps = jnp.swapaxes(eps, 0, 1)  # (B, C, dim); steps past n_block_steps are never used
        first_step = block_index * NOISE_BLOCK_STEPS  # int32: x64 mode must not promote the steps
        v_start = chains.v

        def step(carry, inputs):
            state, noise_sums, records, slot = carry
            step_in_block, step_eps = inputs
            state = batched_step(objective, state, step_eps, step_sizes, step_in_block, divergence_radius)
            # The noise's prefix sums, one step after the other (a chain's sums depend only on
            # its own noise); entries past this step are left from the last block, never read.
            j = step_in_block.astype(jnp.int32)
            noise_sums = noise_sums.at[j + 1].set(noise_sums[j] + step_eps)
            step_index = first_step + j + 1
            is_record = step_index == record_steps[slot]

            def record(records):
                x_sum, v_sum = _totals(chains, state, v_start, noise_sums, step_sizes)
                values = Records(x=state.x, v=state.v, x_sum=x_sum, v_sum=v_sum)
                return jax.tree.map(lambda buffer, value: buffer.at[slot].set(value), records, values)

            records = jax.lax.cond(is_record, record, lambda records: records, records)
            slot = slot + is_record.astype(slot.dtype)
            return (state, noise_sums, records, slot), (state.x if trajectory else None)

        state = StepState(
            x=chains.x,
            v=chains.v,
            v_block_sum=jnp.zeros_like(chains.v),
            taken=jnp.where(chains.diverged_at >= 0, -1, 0).astype(jnp.int8),
        )
        steps_in_block = jnp.arange(n_block_steps, dtype=jnp.int8)
        (state, noise_sums, records, slot), path = jax.lax.scan(
            step, (state, noise_sums, records, slot), (steps_in_block, eps[:n_block_steps])
        )

        x_sum, v_sum = _totals(chains, state, v_start, noise_sums, step_sizes)
        refused = (state.taken >= 0) & (state.taken < n_block_steps)
        chains = ChainState(
            x=state.x,
            v=state.v,
            x_sum=x_sum,
            v_sum=v_sum,
            diverged_at=jnp.where(refused, first_step + state.taken.astype(jnp.int32) + 1, chains.diverged_at),
        )
        if progress and n_block_steps == NOISE_BLOCK_STEPS:
            # Full blocks only: the scan keeps their reports in order. The last, partial block
            # is reported by the host when the run returns (XLA may send an unordered report from
            # outside the loop first, and ordered callbacks are refused on several devices).
            progress_callback(block_index, n_steps, after=chains)
        return (chains, noise_sums, records, slot), path

    noise_sums = jnp.zeros((NOISE_BLOCK_STEPS + 1, n_chains, dim), dtype)  # entry 0 stays 0
    carry, path = run_blocks(block, (chains, noise_sums, records, jnp.asarray(0, jnp.int32)), n_steps, trajectory)
    chains, _, records, _ = carry
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
