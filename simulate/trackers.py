"""Estimators as trackers: a state the driver streams beside any kernel, and its readout.

A tracker is a small set of pure functions over an explicit state, like an optax transformation
(`init` / `update`), plus a readout on the host:

    state_0   = init(x_0, v_0)                       at the start of the run
    running   = start_block(state)                   at the start of each noise block
    running   = update(running, x_k, v_k, k)         after each step k of the block
    state_t   = finish(state, running, sums)         the state through step t (recorded at the
                                                     record steps; the new state at the block's end)
    estimates = readout(recorded)                    on the host, at every checkpoint

`sums` holds the block sums of x and v over the block's steps so far, which the driver computes
once for all trackers (`BlockSums`; for SGD with additive noise the sum of x comes from the
kernel's v-carry, `simulate.kernels`). Keeping sums per block and adding them to the state at the
block's end keeps float32 rounding near that of pairwise summation and the same in any chunking.

The built-in trackers (`built_in`), for the iterates x_k of a chain and v_k = x_k - eta grad f(x_k):

    last iterate:   x(t) = x_t                                       (no state: the driver records x)
    averages:       x_sum_t = sum_{k<=t} x_k,  x_avg(t) = x_sum_t / t,  x_tail(t) = (x_sum_t - x_sum_{t-m}) / m
    v:              v_sum_t = sum_{k<=t} v_k,  v(t) = v_t,  v_avg(t) = v_sum_t / t
    EMA (beta):     e_t = beta e_{t-1} + (1 - beta) x_t, e_0 = 0,  x_ema(t) = e_t / (1 - beta^t)

with m = ceil(tail_fraction t) (`tail_length`); x_ema is `optax.ema(beta, debias=True)` of the x_k.
A user's estimator is one more tracker (`tracker`): it runs in the same compiled loop, and the
result holds it by name.

A chain the driver freezes at step k (`simulate.driver`: it left the ball or became non-finite)
stays at its last good state from step k on, as its trajectory does; the driver stops updating
its trackers there. The built-in readouts add that state for the steps from k on, so their
estimators are those of the returned trajectory, finite, never averaged into NaN. A user's
tracker reads its state as frozen at the last good step.

What v means: for SGD v_k is the paper's sequence (SGD on the smoothed F); for the other kernels
it is the same formula at their iterates, a diagnostic (one full gradient more per step).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "BUILT_IN_ESTIMATORS",
    "ESTIMATORS",
    "BlockSums",
    "Recorded",
    "Records",
    "Tracker",
    "averages",
    "built_in",
    "ema",
    "last_iterate",
    "read_out",
    "tail_length",
    "tracker",
    "v_averages",
]


class BlockSums(NamedTuple):
    """The sums over the current block's steps so far, `(..., dim)`: of x, and of v when tracked."""

    x: jax.Array | None
    v: jax.Array | None


class Records(NamedTuple):
    """The state at the record steps, leaves `(n_records, n_step_sizes, n_chains, ...)`: the
    iterate x, v (None when untracked), and every tracker's state by tracker name."""

    x: jax.Array
    v: jax.Array | None
    tracked: dict[str, Any]


def _same(state, params):
    return state


def _running(state, running, sums, params):
    return running


def _no_steps(checkpoint_steps, params):
    return np.zeros(0, np.int64)


@dataclasses.dataclass(frozen=True)
class Tracker:
    """An estimator the driver streams: the functions of the module docstring over arrays with
    leading axes `(...)` (step sizes and chains, or replayed pairs) and a trailing `dim`.

    - `name`: the key of its state in `Records.tracked`; `names`: the estimators `readout` gives.
    - `init(x, v, params) -> state`; `start_block(state, params) -> running`;
      `update(running, x, v, step, params) -> running`; `finish(state, running, sums, params) -> state`.
      v is None when no tracker `uses_v`; `step` is the int32 step k.
    - `readout(recorded, params) -> {name: sequence of (S, C, dim) arrays, one per checkpoint}`,
      from a `Recorded` view (NumPy, on the host).
    - `sums`: the block sums `finish` reads ("x", "v"); `uses_v`: it needs v_k;
      `record_steps(checkpoint_steps, params)`: steps besides the checkpoints its readout reads.

    A pytree: `params` are leaves (traced: a new value does not recompile); the rest is static,
    so the functions should be defined once (module level), not rebuilt for every run.
    """

    name: str
    names: tuple[str, ...]
    init: Callable
    update: Callable
    readout: Callable
    params: Any = ()
    start_block: Callable = _same
    finish: Callable = _running
    sums: tuple[str, ...] = ()
    uses_v: bool = False
    record_steps: Callable = _no_steps


jax.tree_util.register_dataclass(
    Tracker,
    data_fields=["params"],
    meta_fields=["name", "names", "init", "update", "readout", "start_block", "finish", "sums", "uses_v", "record_steps"],
)


def tail_length(n_steps: int, tail_fraction: float) -> int:
    """m = ceil(tail_fraction * n_steps), the number of iterates in the tail average (>= 1)."""
    # round() first so that 0.3 * 10 = 3.0000000000000004 gives 3, not 4.
    return max(1, math.ceil(round(tail_fraction * n_steps, 9)))


class Recorded:
    """What the driver recorded, as a tracker's readout reads it (NumPy, on the host).

    - `checkpoint_steps` `(K,)`; `state(step)`: this tracker's state at a recorded step;
      `x(step)`, `v(step)`: the iterate and v there (`(S, C, dim)`);
    - `held(step)` `(S, C, 1)` float64: how many of the steps 1..`step` a frozen chain stood at
      its last good state (0 for chains that never diverged).
    """

    def __init__(self, records: Records, record_steps, checkpoint_steps, diverged_at, name=None):
        self.records, self.checkpoint_steps, self.name = records, checkpoint_steps, name
        self._slot = {int(step): slot for slot, step in enumerate(record_steps)}
        never = np.iinfo(np.int64).max
        diverged_at = np.full(records.x.shape[1:3], -1, np.int64) if diverged_at is None else np.asarray(diverged_at, np.int64)
        self._first_frozen = np.where(diverged_at >= 1, diverged_at, never)  # int64: `never` must not wrap

    def state(self, step):
        return jax.tree.map(lambda buffer: buffer[self._slot[int(step)]], self.records.tracked[self.name])

    def x(self, step):
        return self.records.x[self._slot[int(step)]]

    def v(self, step):
        """v_t in float64; where v_0 is not finite (grad f(x0) NaN: the chain was frozen at step
        1, the only state not checked) x0, as the chain's every estimator is."""
        x, v = self.x(step).astype(np.float64), self.records.v[self._slot[int(step)]].astype(np.float64)
        return np.where(np.all(np.isfinite(v), axis=-1, keepdims=True), v, x)

    def held(self, step):
        return np.maximum(0, step - self._first_frozen + 1).astype(np.float64)[..., None]


def read_out(trackers, records: Records, record_steps, checkpoint_steps, dtype, diverged_at=None) -> dict[str, np.ndarray]:
    """Every tracker's estimators at each checkpoint, `{name: (K, S, C, dim) dtype array}` in the
    trackers' order, from the state recorded at `record_steps` (a chain with `diverged_at` = k >= 1
    `(S, C)` was frozen at step k; None: none diverged)."""
    values = {}
    for tracker in trackers:
        recorded = Recorded(records, record_steps, checkpoint_steps, diverged_at, tracker.name)
        values.update(tracker.readout(recorded, tracker.params))
    return {name: np.stack(stack).astype(dtype) for name, stack in values.items()}


# ---- the built-in trackers -------------------------------------------------------------------


def _no_state(x, v, params):
    return None


def _keep(running, x, v, step, params):
    return running


def _zeros(x, v, params):
    return jnp.zeros_like(x)


def _no_running(state, params):
    return None


def _read_last(recorded, params):
    return {"x": [recorded.x(t) for t in recorded.checkpoint_steps.tolist()]}


def last_iterate() -> Tracker:
    """x_t, the iterate (the driver records x; no state)."""
    return Tracker("x", ("x",), _no_state, _keep, _read_last)


def _prefix_sum(recorded, step, frozen):
    """sum_{k<=step} of the summed quantity along the returned path (float64): the recorded sum
    plus, for a frozen chain, its held state once for every step from the freeze on."""
    if step == 0:  # the prefix sum at step 0 is zero: nothing was recorded
        return np.zeros(recorded.records.x.shape[1:], np.float64)
    return recorded.state(step).astype(np.float64) + recorded.held(step) * frozen(step)


def _add_x(state, running, sums, params):
    return state + sums.x


def _read_averages(recorded, tail_fraction):
    x_at = lambda step: recorded.x(step).astype(np.float64)  # noqa: E731
    values = {"x_avg": [], "x_tail": []}
    for t in recorded.checkpoint_steps.tolist():
        m = tail_length(t, float(tail_fraction))
        values["x_avg"].append(_prefix_sum(recorded, t, x_at) / t)
        values["x_tail"].append((_prefix_sum(recorded, t, x_at) - _prefix_sum(recorded, t - m, x_at)) / m)
    return values


def _tail_starts(checkpoint_steps, tail_fraction):
    return np.array([t - tail_length(int(t), float(tail_fraction)) for t in checkpoint_steps], np.int64)


def averages(tail_fraction: float = 0.5) -> Tracker:
    """x_avg (uniform average of x_1..x_t) and x_tail (average of the last ceil(tail_fraction t)),
    from the prefix sums of x."""
    return Tracker("x_sum", ("x_avg", "x_tail"), _zeros, _keep, _read_averages, tail_fraction,
                   start_block=_no_running, finish=_add_x, sums=("x",), record_steps=_tail_starts)


def _add_v(state, running, sums, params):
    return state + sums.v


def _read_v(recorded, params):
    values = {"v": [], "v_avg": []}
    for t in recorded.checkpoint_steps.tolist():
        values["v"].append(recorded.v(t))
        values["v_avg"].append(_prefix_sum(recorded, t, recorded.v) / t)
    return values


def v_averages() -> Tracker:
    """v_t and v_avg (uniform average of v_1..v_t), from the prefix sums of v."""
    return Tracker("v_sum", ("v", "v_avg"), _zeros, _keep, _read_v, start_block=_no_running, finish=_add_v, sums=("v",), uses_v=True)


def _ema_update(running, x, v, step, beta):
    return beta * running + (1 - beta) * x


def _read_ema(recorded, beta):
    values = []
    for t in recorded.checkpoint_steps.tolist():
        # A frozen chain held x_{k-1} for h steps: e_t = beta^h e_{k-1} + (1 - beta^h) x_{k-1}.
        decay = float(beta) ** recorded.held(t)
        e = decay * recorded.state(t).astype(np.float64) + (1.0 - decay) * recorded.x(t).astype(np.float64)
        values.append(e / (1.0 - float(beta) ** t))
    return {"x_ema": values}


def ema(decay: float) -> Tracker:
    """x_ema, the debiased exponential moving average of the iterates with decay beta = `decay`."""
    return Tracker("x_ema", ("x_ema",), _zeros, _ema_update, _read_ema, decay)


def built_in(tail_fraction: float = 0.5, track_v: bool = True, ema_decay: float | None = None) -> tuple[Tracker, ...]:
    """The built-in trackers of a run, in the order of their estimators (`BUILT_IN_ESTIMATORS`)."""
    return (last_iterate(), averages(tail_fraction)) + ((v_averages(),) if track_v else ()) + (
        (ema(ema_decay),) if ema_decay is not None else ()
    )


#: Every built-in estimator, in order; what a run reports is a prefix-ordered subset.
BUILT_IN_ESTIMATORS = tuple(name for t in built_in(ema_decay=0.5) for name in t.names)

#: The estimators every run has by default: x (last iterate x_T), x_avg (uniform average of
#: x_1..x_T), x_tail (average of the last ceil(tail_fraction * T) iterates), v (v_T = x_T - eta
#: grad f(x_T)), v_avg (average of v_1..v_T).
ESTIMATORS = tuple(name for t in built_in() for name in t.names)


# ---- a user's tracker ------------------------------------------------------------------------


def _per_chain(fn, n_axes: int, in_axes):
    """`fn` of one chain, vmapped over `n_axes` leading axes."""
    for _ in range(n_axes):
        fn = jax.vmap(fn, in_axes=in_axes)
    return fn


@dataclasses.dataclass(frozen=True)
class _UserInit:
    """`init(x, v, params)` from a user's `init(x0)` of one chain (a static value: equal for
    the same function, so a new run with it does not recompile)."""

    fn: Callable

    def __call__(self, x, v, params):
        return _per_chain(self.fn, x.ndim - 1, 0)(x)


@dataclasses.dataclass(frozen=True)
class _UserUpdate:
    """`update(running, x, v, step, params)` from a user's `update(state, x, step)` of one chain."""

    fn: Callable

    def __call__(self, running, x, v, step, params):
        return _per_chain(self.fn, x.ndim - 1, (0, 0, None))(running, x, step)


@dataclasses.dataclass(frozen=True)
class _UserReadout:
    """`readout(recorded, params)` from a user's `readout(state, step)` of one chain."""

    name: str
    fn: Callable

    def __call__(self, recorded, params):
        read = _per_chain(self.fn, 2, (0, None))
        return {self.name: [np.asarray(read(recorded.state(t), t)) for t in recorded.checkpoint_steps.tolist()]}


def tracker(name: str, init: Callable, update: Callable, readout: Callable) -> Tracker:
    """A user's estimator `name`, from three functions of one chain:

    - `init(x0) -> state`, with x0 `(dim,)` and `state` any pytree of arrays;
    - `update(state, x, step) -> state` after step `step` (int32 k >= 1) reached iterate x;
    - `readout(state, step) -> (dim,)` the estimate at checkpoint `step` from the state there.

    The driver runs it beside every kernel, for every step size and chain (vmapped), in the same
    compiled loop; `simulate.run(..., trackers=[...])` returns it in `result.checkpoints[name]`,
    `result.estimator(name)` and `result.<name>`. Numbers the functions close over are compiled
    in (a new value recompiles; define the functions once). A chain frozen at step k (diverged)
    reads its state as it was at step k - 1.
    """
    return Tracker(name, (name,), _UserInit(init), _UserUpdate(update), _UserReadout(name, readout))
