"""Step-size schedules: the step size of step k is eta_k = eta * s(k), for every kernel.

`eta` is a step size of the run's grid (`simulate.run(step_sizes=...)`, still a vmapped axis:
one compiled call covers every peak step size) and s(k) > 0 the schedule's multiplier of step
k >= 1, the update that produces x_k:

    x_k = x_{k-1} - eta_k g(x_{k-1}, draw_k)          (SGD; SAM and momentum likewise use eta_k)

A schedule is a pytree: its numbers are traced (a new final fraction does not recompile), its
formula static. The family, each as in optax where optax has it (the count t = k - 1 of
updates already made; tested against optax):

- `constant()`:                          s(k) = 1 (the default; runs the exact code of no schedule).
- `cosine_decay(decay_steps, final)`:    s(k) = final + (1 - final) (1 + cos(pi min(k - 1, D) / D)) / 2
                                         (`optax.cosine_decay_schedule(1, D, alpha=final)`;
                                         Loshchilov & Hutter 2017, without restarts).
- `step_decay(boundaries, factor)`:      s(k) = factor^#{b in boundaries : k > b}
                                         (`optax.piecewise_constant_schedule` with one factor).
- `swa(decay_start, decay_end, final)`:  1 up to step decay_start, linear to `final` at step
                                         decay_end, then `final` (Izmailov et al. 2018, SWA's
                                         schedule; average the constant phase with the tail average).
- `custom(fn)`:                          s(k) = fn(k) for a JAX function of the int32 step k; the
                                         function is static (a new function recompiles).

Step counts (decay_steps, boundaries, decay_start, decay_end) are Python integers in
[0 or 1, MAX_STEP = 2**31 - 2], the int32 range the driver counts steps in: a larger one would
wrap around in int32. `simulate.run` checks, before compiling, that every multiplier s(1..n_steps)
is finite and > 0 (`check`), naming the first bad step, without an array of n_steps numbers: the
three built-in families never increase, so their smallest multiplier is s(n_steps); a custom one
is evaluated in blocks of `CHECK_BLOCK` steps, each reduced to its first bad step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from objectives import validation

__all__ = ["MAX_STEP", "Schedule", "check", "constant", "cosine_decay", "custom", "multipliers", "step_decay", "swa"]

#: The largest step count a schedule (and the driver, which counts steps in int32 up to the
#: sentinel n_steps + 1) can hold.
MAX_STEP = 2**31 - 2

#: Steps per evaluation when `check` scans a custom schedule (memory stays O(CHECK_BLOCK)).
CHECK_BLOCK = 2**20


def _step_count(name: str, value, lo: int) -> int:
    """A step count as a Python int in [lo, MAX_STEP] (NumPy integers accepted; bools refused)."""
    return validation.integer(name, value, lo=lo, hi=MAX_STEP, note="a step count; the driver counts steps in int32")


@dataclasses.dataclass(frozen=True)
class Schedule:
    """s(k) = `multiplier(k, params)` for the int32 step k >= 1 (a scalar, or any shape).

    A pytree: `params` are leaves (traced); `name`, `multiplier` and `param_names` (what the
    params are, for `repr`) are static, and the multipliers of the family are module-level, so two
    schedules of one kind share compiled code.
    """

    name: str
    multiplier: Callable
    params: Any = ()
    param_names: tuple[str, ...] = ()

    def __call__(self, k):
        """s(k), the multiplier of the step size at step k (int32 array); float32 (the params' dtype)."""
        return self.multiplier(k, self.params)

    def __repr__(self) -> str:
        if self.name == "custom":
            return f"custom({getattr(self.multiplier.fn, '__name__', 'fn')})"
        values = [np.asarray(value) for value in self.params]
        shown = [f"{value.tolist()}" if value.ndim or value.dtype.kind in "iu" else f"{value.item():g}" for value in values]
        return f"{self.name}(" + ", ".join(f"{name}={value}" for name, value in zip(self.param_names, shown)) + ")"


jax.tree_util.register_dataclass(Schedule, data_fields=["params"], meta_fields=["name", "multiplier", "param_names"])


def _one(k, params):
    return jnp.ones(jnp.shape(k), jnp.float32)


def constant() -> Schedule:
    """s(k) = 1: every step uses the grid's step size (the default; `simulate.run` runs it as no schedule)."""
    return Schedule("constant", _one)


def _cosine(k, params):
    decay_steps, final = params
    t = jnp.minimum(k - 1, decay_steps).astype(final.dtype)
    cosine = 0.5 * (1 + jnp.cos(jnp.pi * t / decay_steps.astype(final.dtype)))
    return final + (1 - final) * cosine


def cosine_decay(decay_steps: int, final: float = 0.0) -> Schedule:
    """Cosine decay from 1 at step 1 to `final` at step decay_steps + 1, then `final`.

    **Arguments:** `decay_steps` D >= 1 (usually n_steps); `final` the last multiplier, in [0, 1]
    (0 reaches a zero step size: the last steps stand still).
    """
    decay_steps = _step_count("decay_steps", decay_steps, 1)
    final = validation.real("final", final, lo=0.0, hi=1.0)
    return Schedule("cosine_decay", _cosine, (jnp.asarray(decay_steps, jnp.int32), jnp.asarray(final, jnp.float32)), ("decay_steps", "final"))


def _steps(k, params):
    boundaries, factor = params
    passed = jnp.sum(jnp.asarray(k)[..., None] > boundaries, axis=-1)
    return factor ** passed.astype(factor.dtype)


def step_decay(boundaries, factor: float = 0.1) -> Schedule:
    """Multiply the step size by `factor` after each boundary: s(k) = factor^#{b : k > b}.

    **Arguments:** `boundaries` strictly increasing steps >= 1 (a list; step b is the last one
    at the old step size); `factor` in (0, 1].
    """
    allowed = f"boundaries must be a non-empty list of strictly increasing integer steps in [1, {MAX_STEP}]"
    try:
        values = list(boundaries)
    except TypeError:
        raise ValueError(f"{allowed}, got {boundaries!r}") from None
    # Each boundary a Python int checked one by one: np.asarray(...).astype(int32) would wrap
    # 3_000_000_000 to -1294967296 and start the decay at step 1.
    try:
        steps = np.asarray([validation.integer("boundary", b, lo=1, hi=MAX_STEP) for b in values], np.int64)
    except ValueError:
        raise ValueError(f"{allowed}, got {boundaries!r}") from None
    if steps.size == 0 or np.any(np.diff(steps) <= 0):
        raise ValueError(f"{allowed}, got {boundaries!r}")
    factor = validation.real("factor", factor, lo=0.0, hi=1.0, open_lo=True)
    return Schedule("step_decay", _steps, (jnp.asarray(steps, jnp.int32), jnp.asarray(factor, jnp.float32)), ("boundaries", "factor"))


def _swa(k, params):
    decay_start, decay_end, final = params
    fraction = jnp.clip((k - decay_start).astype(final.dtype) / (decay_end - decay_start).astype(final.dtype), 0, 1)
    return 1 + (final - 1) * fraction


def swa(decay_start: int, decay_end: int, final: float) -> Schedule:
    """SWA's schedule (Izmailov et al. 2018): s(k) = 1 for k <= decay_start, then linear down to
    `final` at k = decay_end, then `final` (the constant phase whose iterates SWA averages: use the
    tail average over the last n_steps - decay_end steps).

    **Arguments:** `decay_start` >= 0; `decay_end` > decay_start; `final` in (0, 1].
    """
    decay_start = _step_count("decay_start", decay_start, 0)
    decay_end = validation.integer("decay_end", decay_end, lo=decay_start + 1, hi=MAX_STEP, note="decay_end > decay_start")
    final = validation.real("final", final, lo=0.0, hi=1.0, open_lo=True)
    params = (jnp.asarray(decay_start, jnp.int32), jnp.asarray(decay_end, jnp.int32), jnp.asarray(final, jnp.float32))
    return Schedule("swa", _swa, params, ("decay_start", "decay_end", "final"))


def custom(fn: Callable) -> Schedule:
    """s(k) = fn(k) for any JAX function of the int32 step k (k >= 1) returning a float scalar.

    The function is static: pass the same function object to reuse compiled code.
    """
    if not callable(fn):
        raise ValueError(f"fn must be a function k -> multiplier, got {fn!r}")
    # Traced once here, so that a Python branch on k or a float(k) is refused by name now, not
    # as a tracer error from inside the driver's compiled loop.
    try:
        probe = jax.eval_shape(fn, jax.ShapeDtypeStruct((), jnp.int32))
    except Exception as error:
        first_line = (str(error).strip().splitlines() or [""])[0]
        raise ValueError(
            "fn must be a JAX-traceable function of the int32 step k (use jnp.where, not if; no float(k)); "
            f"fn(k) raised {type(error).__name__}: {first_line}"
        ) from error
    dtype = getattr(probe, "dtype", None)
    if getattr(probe, "shape", None) != () or dtype is None or not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)):
        shown = f"shape {probe.shape}, dtype {probe.dtype}" if hasattr(probe, "shape") else type(probe).__name__
        raise ValueError(f"fn must return a real scalar multiplier for the int32 step k, got {shown}")
    return Schedule("custom", _Custom(fn))


class _Custom:
    """(k, params) -> fn(k) as float32; equal (so sharing compiled code) when `fn` is the same."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, k, params):
        return jnp.asarray(self.fn(k), jnp.float32)

    def __eq__(self, other):
        return isinstance(other, _Custom) and other.fn is self.fn

    def __hash__(self):
        return hash(("custom-schedule", id(self.fn)))


def multipliers(schedule: Schedule, n_steps: int) -> np.ndarray:
    """s(1), ..., s(n_steps) as float64 NumPy `(n_steps,)` (evaluated with JAX in float32, as the
    driver does when it runs in float32)."""
    n_steps = _step_count("n_steps", n_steps, 1)
    return np.asarray(_multipliers(schedule, jnp.arange(1, n_steps + 1, dtype=jnp.int32)), np.float64)


def check(schedule: Schedule, n_steps: int) -> None:
    """Raise `ValueError` naming the first step k in 1..n_steps whose multiplier s(k) is not
    finite and > 0; memory O(CHECK_BLOCK), whatever n_steps.

    cosine_decay, step_decay and swa never increase in k, so s(1) and s(n_steps) decide (float32
    rounding cannot make a non-increasing formula dip below its value at n_steps). A constant
    schedule is 1. Anything else is scanned in blocks of CHECK_BLOCK steps (one compiled shape;
    the last block repeats step n_steps), each reduced on the device to its first bad step.
    """
    n_steps = _step_count("n_steps", n_steps, 1)
    if schedule.name == "constant":
        return
    if schedule.name in ("cosine_decay", "step_decay", "swa"):
        ends = np.asarray(_multipliers(schedule, jnp.asarray([1, n_steps], jnp.int32)), np.float64)
        bad = [k for k, value in zip((1, n_steps), ends) if not (np.isfinite(value) and value > 0)]
        if bad:
            # The first bad step: bisect on the non-increasing multiplier (O(log n_steps) evaluations).
            lo, hi = 1, bad[0]
            while lo < hi:
                mid = (lo + hi) // 2
                value = float(_multipliers(schedule, jnp.asarray([mid], jnp.int32))[0])
                lo, hi = (mid + 1, hi) if np.isfinite(value) and value > 0 else (lo, mid)
            _refuse(schedule, n_steps, hi, float(_multipliers(schedule, jnp.asarray([hi], jnp.int32))[0]))
        return
    for start in range(1, n_steps + 1, CHECK_BLOCK):
        first_bad, value = _first_bad(schedule, jnp.asarray(start, jnp.int32), jnp.asarray(n_steps, jnp.int32))
        if int(first_bad) > 0:
            _refuse(schedule, n_steps, int(first_bad), float(value))


def _refuse(schedule, n_steps, step, value):
    raise ValueError(
        f"schedule {schedule!r} gives step-size multiplier s({step}) = {value:g}; "
        f"every s(k), k = 1..n_steps={n_steps}, must be finite and > 0"
    )


# One jitted function for every schedule (a pytree argument): new numbers do not recompile.
_multipliers = jax.jit(lambda schedule, steps: jax.vmap(schedule)(steps))


@jax.jit
def _first_bad(schedule, start, n_steps):
    """(first step k in [start, start + CHECK_BLOCK) ∩ [1, n_steps] with s(k) not finite and > 0,
    or 0; s there)."""
    steps = jnp.minimum(start + jnp.arange(CHECK_BLOCK, dtype=jnp.int32), n_steps)
    values = jax.vmap(schedule)(steps)
    bad = ~(jnp.isfinite(values) & (values > 0))
    where = jnp.argmax(bad)
    return jnp.where(bad[where], steps[where], 0), values[where]
