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

`simulate.run` evaluates s(1..n_steps) once on the host and rejects a schedule whose multipliers
are not finite and positive, naming the first bad step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from objectives import validation

__all__ = ["Schedule", "constant", "cosine_decay", "custom", "multipliers", "step_decay", "swa"]


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
        shown = [f"{value.tolist()}" if value.ndim else f"{value.item():g}" for value in values]
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
    decay_steps = validation.positive_int("decay_steps", decay_steps)
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
    try:
        steps = np.asarray(boundaries)
    except Exception:
        steps = np.asarray([None])
    if steps.ndim != 1 or steps.size == 0 or not np.issubdtype(steps.dtype, np.integer) or steps[0] < 1 or np.any(np.diff(steps) <= 0):
        raise ValueError(f"boundaries must be a non-empty list of strictly increasing integer steps >= 1, got {boundaries!r}")
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
    decay_start = validation.integer("decay_start", decay_start, lo=0)
    decay_end = validation.integer("decay_end", decay_end, lo=decay_start + 1, note="decay_end > decay_start")
    final = validation.real("final", final, lo=0.0, hi=1.0, open_lo=True)
    params = (jnp.asarray(decay_start, jnp.int32), jnp.asarray(decay_end, jnp.int32), jnp.asarray(final, jnp.float32))
    return Schedule("swa", _swa, params, ("decay_start", "decay_end", "final"))


def custom(fn: Callable) -> Schedule:
    """s(k) = fn(k) for any JAX function of the int32 step k (k >= 1) returning a float scalar.

    The function is static: pass the same function object to reuse compiled code.
    """
    if not callable(fn):
        raise ValueError(f"fn must be a function k -> multiplier, got {fn!r}")
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
    return np.asarray(_multipliers(schedule, jnp.arange(1, n_steps + 1, dtype=jnp.int32)), np.float64)


# One jitted function for every schedule (a pytree argument): new numbers do not recompile.
_multipliers = jax.jit(lambda schedule, steps: jax.vmap(schedule)(steps))
