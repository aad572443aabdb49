"""Update rules as kernels: pure `init`/`step` functions over an explicit per-chain state.

A kernel is the update of one chain, nothing else; `simulate.driver` owns the noise blocks,
averages, records, divergence, sharding and progress, and runs every kernel the same way:

    state_0     = init(gradient, objective, x_0, eta, params)
    state_{k+1} = step(gradient, objective, state_k, draw_{k+1}, eta, params)

with `gradient` a source from `simulate.gradients` (g(x, draw) = `gradient.grad(objective, x,
draw)`), `draw_{k+1}` that chain's draw for step k + 1 under the randomness contract, and the
iterate x_k = `state_k.x`, `(dim,)`. `params` are the kernel's hyperparameters, traced (a new
SAM radius or momentum does not recompile). The three kernels:

- `sgd()`:            x_{k+1} = x_k - eta g(x_k, draw_{k+1}).
- `sam(radius)`:      x_{k+1} = x_k - eta g(x_k + rho g_k / ||g_k||, draw_{k+1}),
                      g_k = g(x_k, draw_{k+1}) (Foret et al. 2021; both gradients on one draw).
- `momentum(beta)`:   m_{k+1} = g(x_k, draw_{k+1}) + beta m_k,  x_{k+1} = x_k - eta m_{k+1},
                      m_0 = 0 (heavy ball as `optax.sgd(eta, momentum=beta)`).

**The block sum of x** (`Summation`, `Kernel.summation(gradient)`): the driver asks the kernel
for sum_j x_j over a block's steps so far, which the averages need. By default the driver sums x;
a kernel may answer from other sums instead (SGD's v-carry below), so the driver never asks which
kernel it runs.

The driver derives from `step` the two steps it runs: `poisoned_step` (no checks; a chain that
left the ball gets NaN in every leaf, which its block sums keep) and `is_good` (the checked step
of the exact replay: the new state is taken only if its x is in the ball and every leaf is
finite). So every kernel gets the poison-and-replay fast path.

**SGD's v-carry.** With additive noise, g(x, eps) = grad f(x) + eps, SGD runs in the paper's
variables: v_k = x_k - eta grad f(x_k) is carried and x_{k+1} = v_k - eta eps_{k+1}: one gradient
a step, and the sum of the x_k follows from that of the v_k and of the noise (`sgd_block_sum_of_x`),
so the driver accumulates only v, and the noise's sum once per chain for all step sizes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from objectives import validation

__all__ = [
    "Kernel",
    "MomentumState",
    "SAMState",
    "SGDState",
    "Summation",
    "is_good",
    "momentum",
    "poisoned_step",
    "sam",
    "sgd",
    "sgd_block_sum_of_x",
]


class Summation(NamedTuple):
    """How the driver gets the block sum of x, sum_{j=1..n} x_j over a block's first n steps, for
    one kernel and gradient source (static; `Kernel.summation(gradient)`).

    - `v_in_state`: the state carries v = x - eta grad f(x) as `state.v` (the driver computes none);
    - `sums`: the block sum the driver keeps for it, "x" (of the iterates) or "v";
    - `start(x) -> private`: the kernel's own sums at the block's start, for chains shaped as x
      `(..., dim)` (None: none), `add(private, draw) -> private` after a step with `draw`, per
      chain: the driver shares them between the step sizes;
    - `x_sum(running, private, start_state, state, step_size) -> (..., dim)`: the block sum of x
      from the driver's sums `running` (`.x`, `.v`), the private sums, the state at the block's
      start and now.
    """

    v_in_state: bool
    sums: str
    start: Callable
    add: Callable
    x_sum: Callable


def _no_private(x):
    return None


def _same_private(private, draw):
    return private


def _summed(running, private, start_state, state, step_size):
    return running.x


def summed_x(gradient) -> Summation:
    """The default: the driver sums the iterates."""
    return Summation(v_in_state=False, sums="x", start=_no_private, add=_same_private, x_sum=_summed)


@dataclasses.dataclass(frozen=True)
class Kernel:
    """An update rule: `init(gradient, objective, x0, step_size, params) -> state` and
    `step(gradient, objective, state, draw, step_size, params) -> state` for one chain.

    A pytree: `params` are leaves (traced); `name`, the functions and `summation` (the block sum
    of x, `Summation`) are static, and the functions are module-level, so two kernels of one kind
    share their compiled code.
    """

    name: str
    init: Callable
    step: Callable
    params: Any = ()
    param_name: str | None = None  # what `params` is (a single number), for `repr`
    summation: Callable = summed_x  # summation(gradient) -> Summation
    reported_as: str | None = None  # the `SimulationResult` field that reports `params`, if any

    def __repr__(self) -> str:
        return self.name + (f"({self.param_name}={float(self.params):g})" if self.param_name else "()")

    def reported(self) -> dict:
        """The result fields this kernel fills (SAM: `{"sam_radius": rho}`), on the host."""
        return {self.reported_as: float(self.params)} if self.reported_as else {}


jax.tree_util.register_dataclass(
    Kernel, data_fields=["params"], meta_fields=["name", "init", "step", "param_name", "summation", "reported_as"]
)


def poisoned_step(kernel: Kernel, gradient, objective, state, draw, step_size, radius_squared):
    """`kernel.step` with no bookkeeping: the leaves the next step reads (all; v alone under SGD's
    v-carry) are NaN if the new x lies outside the ball ||x||^2 <= `radius_squared` or is not
    finite (non-finite gradients make x or the other leaves NaN by themselves)."""
    new = kernel.step(gradient, objective, state, draw, step_size, kernel.params)
    poison = lambda leaf: jnp.where(jnp.sum(new.x * new.x) <= radius_squared, leaf, jnp.nan)  # noqa: E731
    if kernel.summation(gradient).v_in_state:  # the next step reads v alone: x stays as computed
        return new._replace(v=poison(new.v))
    return jax.tree.map(poison, new)


def is_good(state, radius, *others) -> jax.Array:
    """() bool: x in the ball ||x|| <= radius and every leaf of `state` and `others` finite.

    One reduction checks everything: 0 * leaf is 0 for a finite leaf and NaN otherwise, which
    fails the comparison."""
    total = state.x * state.x
    for leaf in jax.tree.leaves((state._replace(x=None), others)):
        total = total + 0 * leaf
    return jnp.sum(total) <= radius * radius


# ---- SGD -------------------------------------------------------------------------------------


class SGDState(NamedTuple):
    """x `(dim,)`, and with additive noise v = x - eta grad f(x) `(dim,)` (else None)."""

    x: jax.Array
    v: jax.Array | None


def _sgd_init(gradient, objective, x0, step_size, params):
    if gradient.additive:
        return SGDState(x=x0, v=x0 - step_size * objective.point_grad(x0))
    return SGDState(x=x0, v=None)


def _sgd_step(gradient, objective, state, draw, step_size, params):
    if gradient.additive:  # x_{k+1} = x_k - eta (grad f(x_k) + eps) = v_k - eta eps
        x = state.v - step_size * draw
        return SGDState(x=x, v=x - step_size * objective.point_grad(x))
    return SGDState(x=state.x - step_size * gradient.grad(objective, state.x, draw), v=None)


def sgd() -> Kernel:
    """Plain SGD, x_{k+1} = x_k - eta g(x_k, draw_{k+1}) (with additive noise in the v-carry form)."""
    return Kernel("sgd", _sgd_init, _sgd_step, (), summation=_sgd_summation)


def sgd_block_sum_of_x(v_start, v_block_sum, v, step_size, noise_sum):
    """sum_{j=1..n} x_j over n SGD steps from the v-carry (additive noise): since x_j = v_{j-1} -
    eta eps_j, it is v_0 + sum_{j=1..n} v_j - v_n - eta sum_{j=1..n} eps_j, with v_0 = `v_start`,
    `v_block_sum` the sum of v_j, v_n = `v` and `noise_sum` the sum of eps_j."""
    return v_start + v_block_sum - v - step_size * noise_sum


def _add_draw(noise_sum, draw):
    return noise_sum + draw


def _sgd_x_sum(running, noise_sum, start_state, state, step_size):
    return sgd_block_sum_of_x(start_state.v, running.v, state.v, step_size, noise_sum)


def _sgd_summation(gradient) -> Summation:
    """With additive noise (the v-carry) the driver sums v, the kernel the noise; else x."""
    if not gradient.additive:
        return summed_x(gradient)
    return Summation(v_in_state=True, sums="v", start=jnp.zeros_like, add=_add_draw, x_sum=_sgd_x_sum)


# ---- SAM -------------------------------------------------------------------------------------


class SAMState(NamedTuple):
    x: jax.Array  # (dim,)


def _sam_init(gradient, objective, x0, step_size, params):
    return SAMState(x=x0)


def _sam_step(gradient, objective, state, draw, step_size, radius):
    g = gradient.grad(objective, state.x, draw)
    norm = jnp.sqrt(jnp.sum(g * g))
    # A zero gradient gives no ascent direction: stay at x (no 0/0).
    ascent = state.x + radius * g / jnp.where(norm > 0, norm, 1)
    return SAMState(x=state.x - step_size * gradient.grad(objective, ascent, draw))


def sam(radius: float) -> Kernel:
    """Sharpness-aware minimization with radius rho >= 0 (Foret et al. 2021): both gradients on
    the same draw; step for step `optax.contrib.sam` in opaque mode; rho = 0 is SGD exactly."""
    return Kernel("sam", _sam_init, _sam_step, validation.non_negative_float("radius", radius), "radius", reported_as="sam_radius")


# ---- heavy-ball momentum ---------------------------------------------------------------------


class MomentumState(NamedTuple):
    x: jax.Array  # (dim,)
    velocity: jax.Array  # (dim,) m_k, the accumulated gradients


def _momentum_init(gradient, objective, x0, step_size, params):
    return MomentumState(x=x0, velocity=jnp.zeros_like(x0))


def _momentum_step(gradient, objective, state, draw, step_size, beta):
    velocity = gradient.grad(objective, state.x, draw) + beta * state.velocity
    return MomentumState(x=state.x - step_size * velocity, velocity=velocity)


def momentum(beta: float) -> Kernel:
    """Heavy-ball momentum beta in [0, 1): m_{k+1} = g + beta m_k, x_{k+1} = x_k - eta m_{k+1}
    (`optax.sgd(eta, momentum=beta)`); beta = 0 is SGD."""
    beta = validation.real("beta", beta, lo=0.0, hi=1.0, open_hi=True)
    return Kernel("momentum", _momentum_init, _momentum_step, beta, "beta")
