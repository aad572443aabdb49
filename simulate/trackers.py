"""Averages as trackers: running sums the driver updates beside any kernel, and their readout.

For the iterates x_k of a chain (and v_k = x_k - eta grad f(x_k) when tracked) the driver keeps

    x_sum_t = sum_{k<=t} x_k,   v_sum_t = sum_{k<=t} v_k,   e_t = beta e_{t-1} + (1 - beta) x_t, e_0 = 0,

recorded at a few steps. From those records (`estimators_at_checkpoints`):

    x_avg(t) = x_sum_t / t,   x_tail(t) = (x_sum_t - x_sum_{t-m}) / m,   v_avg(t) = v_sum_t / t,
    x_ema(t) = e_t / (1 - beta^t)   (the debiased EMA, `optax.ema(beta, debias=True)` of the x_k).

A chain the driver freezes at step k (`simulate.driver`: it left the ball or became
non-finite) stays at its last good state from step k on, as its trajectory does: the driver
stops its sums, and the readout adds that state for the steps from k on, so every estimator of
a frozen chain is that of its returned trajectory, finite, and never averaged into NaN.

Sums are kept per noise block (`Running`) and added to the totals (`Averages`) at the block's
end, which keeps float32 rounding near that of pairwise summation and the same in any chunking.

What v means: for SGD v_k is the paper's sequence (SGD on the smoothed F); for the other kernels
it is the same formula at their iterates, a diagnostic (one full gradient more per step).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "Averages",
    "Records",
    "Running",
    "Trackers",
    "add_step",
    "estimators_at_checkpoints",
    "initial_averages",
    "start_block",
    "totals",
]


@dataclasses.dataclass(frozen=True)
class Trackers:
    """What the driver tracks besides x and the sum of x: v and its sum (`track_v`, static) and
    the EMA with decay `ema_decay` (a traced leaf; `None`: no EMA)."""

    track_v: bool = True
    ema_decay: Any = None


jax.tree_util.register_dataclass(Trackers, data_fields=["ema_decay"], meta_fields=["track_v"])


class Averages(NamedTuple):
    """The running totals of one or many chains, each `(..., dim)`; untracked ones are None."""

    x_sum: jax.Array
    v_sum: jax.Array | None
    x_ema: jax.Array | None  # e_t, not debiased


class Running(NamedTuple):
    """Within a noise block: the sums over the block's steps so far, and the EMA."""

    x: jax.Array | None  # None when the kernel derives it from v (SGD's v-carry)
    v: jax.Array | None
    x_ema: jax.Array | None


class Records(NamedTuple):
    """The state at the record steps, each `(n_records, n_step_sizes, n_chains, dim)`; untracked
    ones are None."""

    x: jax.Array
    v: jax.Array | None
    x_sum: jax.Array
    v_sum: jax.Array | None
    x_ema: jax.Array | None = None


def initial_averages(x: jax.Array, trackers: Trackers) -> Averages:
    zeros = jnp.zeros_like(x)
    return Averages(x_sum=zeros, v_sum=zeros if trackers.track_v else None, x_ema=None if trackers.ema_decay is None else zeros)


def start_block(averages: Averages, sum_x: bool, sum_v: bool) -> Running:
    """Empty block sums (of x if `sum_x`, of v if `sum_v`), the EMA carried on."""
    zeros = jnp.zeros_like(averages.x_sum)
    return Running(x=zeros if sum_x else None, v=zeros if sum_v else None, x_ema=averages.x_ema)


def add_step(running: Running, x, v, trackers: Trackers) -> Running:
    """The block sums and the EMA after one more step with iterate x and v (v None if untracked)."""
    beta = trackers.ema_decay
    return Running(
        x=None if running.x is None else running.x + x,
        v=None if running.v is None else running.v + v,
        x_ema=None if running.x_ema is None else beta * running.x_ema + (1 - beta) * x,
    )


def totals(averages: Averages, running: Running, x_block_sum) -> Averages:
    """The totals through the current step: before the block plus the block's sums."""
    return Averages(
        x_sum=averages.x_sum + x_block_sum,
        v_sum=None if averages.v_sum is None else averages.v_sum + running.v,
        x_ema=running.x_ema,
    )


def estimators_at_checkpoints(
    records: Records, record_steps, checkpoint_steps, tails, dtype, names, ema_decay=None, diverged_at=None
) -> dict[str, np.ndarray]:
    """The estimators `names` at each checkpoint t from the state recorded at `record_steps`
    (NumPy, on the host): the formulas of the module docstring with the prefix sum at step 0
    zero, computed in float64 and returned as `dtype` arrays `(K, S, C, dim)`.

    A chain with `diverged_at` = k >= 1 `(S, C)` (None: none diverged) stays at its last good
    state from step k on, as its trajectory does: x_j = x_{k-1} and v_j = v_{k-1} for j >= k.
    The driver stops its sums there and records that state, so here each prefix sum at a step
    s >= k gains (s - k + 1) x_{k-1} (and v_{k-1}), and the EMA e_s = beta^h e_{k-1} + (1 - beta^h)
    x_{k-1} with h = s - k + 1. Only v_0 can be non-finite (every later state was checked): when
    grad f(x0) is not finite, the chain is flagged at step 1 and its v is x0, so every estimator
    of such a chain is x0.
    """
    slot_of = {int(step): slot for slot, step in enumerate(record_steps)}
    never = np.iinfo(np.int64).max
    diverged_at = np.full(records.x.shape[1:3], -1, np.int64) if diverged_at is None else np.asarray(diverged_at, np.int64)
    first_frozen = np.where(diverged_at >= 1, diverged_at, never)  # int64: `never` must not wrap

    def held(step):
        """`(S, C, 1)` float64: the steps 1..`step` at which the chain stood at its frozen state."""
        return np.maximum(0, step - first_frozen + 1).astype(np.float64)[..., None]

    def frozen_v(slot):
        x, v = records.x[slot].astype(np.float64), records.v[slot].astype(np.float64)
        return np.where(np.all(np.isfinite(v), axis=-1, keepdims=True), v, x)  # v_0 not finite: x0

    def prefix_sum(buffer, step, frozen):
        if step == 0:
            return np.zeros(buffer.shape[1:], np.float64)
        slot = slot_of[int(step)]
        return buffer[slot].astype(np.float64) + held(step) * frozen(slot)

    x_at = lambda slot: records.x[slot].astype(np.float64)  # noqa: E731
    values = {name: [] for name in names}
    for t, m in zip(checkpoint_steps.tolist(), tails.tolist()):
        values["x"].append(records.x[slot_of[t]])
        values["x_avg"].append(prefix_sum(records.x_sum, t, x_at) / t)
        values["x_tail"].append((prefix_sum(records.x_sum, t, x_at) - prefix_sum(records.x_sum, t - m, x_at)) / m)
        if "v" in names:
            values["v"].append(frozen_v(slot_of[t]))
            values["v_avg"].append(prefix_sum(records.v_sum, t, frozen_v) / t)
        if "x_ema" in names:
            decay = float(ema_decay) ** held(t)
            e = decay * records.x_ema[slot_of[t]].astype(np.float64) + (1.0 - decay) * x_at(slot_of[t])
            values["x_ema"].append(e / (1.0 - float(ema_decay) ** t))
    return {name: np.stack(stack).astype(dtype) for name, stack in values.items()}
