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
  tracker's running state, and at the block's end each tracker folds them into its state. The
  block sum of x is the kernel's answer (`kernels.Summation`): the sum of the iterates by
  default; for SGD with additive noise (its v-carry) the sum of v and the kernel's own sum of
  the noise (once per chain, for all step sizes) give it. The driver never asks which kernel it
  runs.
- **One plan, module-level blocks.** What the blocks read and never change (kernel, sources,
  trackers, step sizes, record steps, flags) is a frozen `blocks.Plan` built once per run
  (`_plan`); a block, its fast pass and its replay are module-level functions of it
  (`simulate.blocks`).
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
from typing import Any

import jax
import jax.numpy as jnp
import jaxlib
from jax.sharding import Mesh, PartitionSpec

from simulate.blocks import REPLAY_BATCH, Chains, Plan, initial_chains, run_block
from simulate.kernels import Kernel
from simulate.randomness import NOISE_BLOCK_STEPS

__all__ = ["COMPILER_OPTIONS", "Chains", "REPLAY_BATCH", "simulate_chains"]


def _cast_floating(tree, dtype):
    """Cast the floating leaves of a pytree to `dtype` (so float64 parameters cannot promote a
    float32 simulation); integer leaves keep their type."""

    def cast(leaf):
        leaf = jnp.asarray(leaf)
        return leaf.astype(dtype) if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf

    return jax.tree.map(cast, tree)


def _compiler_options() -> dict:
    """XLA:CPU options for the driver (other backends accept and ignore them: checked on a GPU).

    - YNNPACK fusions off: XLA:CPU hands small per-point reductions (a sum over 2 wells, over 2
      coordinates) to YNNPACK, which runs them as scalar code (jax-ml/jax#37465);
    - 512-bit vectors where the CPU has them.

    Versions before the first one these options were checked on get none. What each option gave,
    and on which versions it was checked: benchmarks/README.md, "Lab notes".
    """
    version = tuple(int(part) for part in jaxlib.__version__.split(".")[:3] if part.isdigit())
    if version < (0, 10, 2):
        return {}
    return {"xla_cpu_experimental_ynn_fusion_type": "", "xla_cpu_prefer_vector_width": 512}


#: The XLA options `simulate_chains` is compiled with (see `_compiler_options`).
COMPILER_OPTIONS = _compiler_options()



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


def _plan(kernel, gradient, trackers, objective, step_sizes, chain_indices, seed, record_steps, divergence_radius, schedule, *, n_steps, dtype, trajectory, progress) -> Plan:
    kernel, gradient, trackers, objective, schedule = _cast_floating((kernel, gradient, trackers, objective, schedule), dtype)
    if schedule is not None and gradient.additive:
        gradient = _NotAdditive(gradient)
    summation = kernel.summation(gradient)
    return Plan(
        kernel=kernel, gradient=gradient, trackers=trackers, objective=objective, schedule=schedule, summation=summation,
        step_sizes=step_sizes.astype(dtype), radius=divergence_radius.astype(dtype), record_steps=record_steps, seed=seed,
        chain_indices=chain_indices, n_steps=n_steps, dtype=dtype, trajectory=trajectory, progress=progress,
        track_v=any(tracker.uses_v for tracker in trackers),
        sum_v=summation.sums == "v" or any("v" in tracker.sums for tracker in trackers),
    )



def _simulate_chains(
    kernel, gradient, trackers, objective, step_sizes, x0, chain_indices, seed, record_steps, divergence_radius, schedule, *, n_steps, dtype, trajectory, progress
):
    """`simulate_chains` on one device."""
    assert NOISE_BLOCK_STEPS < 127, "the int8 `taken` counter holds at most 127 steps"
    plan = _plan(
        kernel, gradient, trackers, objective, step_sizes, chain_indices, seed, record_steps, divergence_radius, schedule,
        n_steps=n_steps, dtype=dtype, trajectory=trajectory, progress=progress,
    )
    chains, records = initial_chains(plan, x0.astype(dtype))
    n_blocks = -(-n_steps // NOISE_BLOCK_STEPS)
    carry = (chains, records, jnp.asarray(0, jnp.int32))
    (chains, records, _), path = jax.lax.scan(partial(run_block, plan), carry, jnp.arange(n_blocks, dtype=jnp.int32))
    if trajectory:
        path = path.reshape((-1,) + path.shape[2:])[:n_steps]
    return records, chains, path
