"""The paper's identity, checked on simulated chains.

For v_k = x_k - eta grad f(x_k) and x_{k+1} = x_k - eta (grad f(x_k) + eps_{k+1}),

    v_{k+1} = v_k - eta grad F_eta(v_k) + zeta_{k+1},    E[zeta_{k+1} | past] = 0,

with F_eta(v) = E f(v - eta eps) (Nitanda et al. 2024, after Kleinberg, Li and Yuan 2018): the
*conditional mean drift* of v is a gradient step on the smoothed objective. It is exact, not an
expansion: x_{k+1} = v_k - eta eps_{k+1} with eps_{k+1} independent of the past, so
E[v_{k+1} | past] = v_k - eta E grad f(v_k - eta eps) = v_k - eta grad F_eta(v_k).

`drift_check` bins the projected v_k (u . v_k, u the first coordinate axis by default) into
equal-count bins over every step of every chain, and per bin reports

- `drift`: the empirical mean of u . (v_{k+1} - v_k);
- `predicted`: the mean of -eta u . grad F_eta(v_k) over the same v_k (exact for any bin width
  and any dim: by the tower property both sides have the same expectation given the bin);
- `drift_se`: the standard error of `drift - predicted`, sd(residual) / sqrt(n) with residual
  u . zeta_{k+1}. The residuals are martingale differences, uncorrelated along a chain even
  though the v_k are not, so this standard error is valid for transitions pooled over steps.

The identity predicts |drift - predicted| / drift_se ~ N(0, 1) in every bin; using grad f in
place of grad F_eta is detectably wrong when the smoothing matters.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from objectives import validation as check

__all__ = ["DriftCheck", "drift_check"]


class DriftCheck(NamedTuple):
    """Per-bin arrays `(B,)` of `drift_check`; bins with fewer than `min_count` transitions are dropped."""

    centers: np.ndarray  # mean projected v_k in each bin
    drift: np.ndarray  # empirical mean of the projected v_{k+1} - v_k
    drift_se: np.ndarray  # standard error of drift - predicted (see the module docstring)
    predicted: np.ndarray  # mean of the projected -eta grad F_eta(v_k) over the bin
    count: np.ndarray  # transitions in the bin

    def z_scores(self) -> np.ndarray:
        """(drift - predicted) / drift_se: standard normal in every bin if the identity holds."""
        return (self.drift - self.predicted) / self.drift_se


def _chains(result_or_chains, step_size: float) -> np.ndarray:
    """Iterates `(T+1, C, d)` of the non-diverged chains at `step_size`."""
    trajectory = getattr(result_or_chains, "trajectory", None)
    if hasattr(result_or_chains, "step_sizes"):  # a SimulationResult
        if trajectory is None:
            raise ValueError("drift_check needs the iterates: run simulate.run(..., trajectory=True)")
        step_sizes = np.asarray(result_or_chains.step_sizes, np.float64)
        where = np.flatnonzero(np.isclose(step_sizes, step_size, rtol=1e-9, atol=0.0))
        if where.size != 1:
            raise ValueError(f"step_size must be one of the result's step sizes {step_sizes.tolist()}, got {step_size}")
        # A diverged chain is frozen after it leaves: its zero moves are not SGD transitions.
        keep = ~np.asarray(result_or_chains.diverged[where[0]], bool)
        return np.asarray(trajectory[:, where[0]][:, keep], np.float64)
    chains = np.asarray(result_or_chains, np.float64)
    if chains.ndim != 3:
        raise ValueError(
            f"chains must be a SimulationResult with a trajectory or iterates of shape (T+1, n_chains, dim), "
            f"got shape {chains.shape}"
        )
    return chains


def drift_check(
    result_or_chains,
    f,
    smoothed_grad,
    step_size: float,
    *,
    n_bins: int = 30,
    direction=None,
    min_count: int = 200,
    burn_in: int = 0,
) -> DriftCheck:
    """Binned E[v_{k+1} - v_k | v_k] from simulated chains against -eta grad F_eta(v_k).

    **Arguments:**

    - `result_or_chains`: a `SimulationResult` from `simulate.run(..., trajectory=True)` (the
      step size `step_size` is picked from it and diverged chains are left out), or iterates
      x_0..x_T of many chains at one step size, `(T+1, C, d)` (e.g. `result.trajectory[:, s]`).
    - `f`: the objective (its `.grad` gives v_k = x_k - eta grad f(x_k)).
    - `smoothed_grad`: v -> grad F_eta(v), batched over `(..., d)` (for example
      `objectives.smoothed(f, noise, step_size).grad`).
    - `step_size`: eta.
    - `n_bins`: equal-count bins of the projected v_k.
    - `direction`: vector `(d,)` to project on (normalised here; default the first coordinate).
    - `min_count`: drop bins with fewer transitions.
    - `burn_in`: skip transitions from the first `burn_in` steps.

    **Returns:** a `DriftCheck` of per-bin arrays (see the module docstring).
    """
    step_size = check.positive_float("step_size", step_size)
    n_bins = check.positive_int("n_bins", n_bins)
    x = _chains(result_or_chains, step_size)
    n_steps, n_chains, dim = x.shape[0] - 1, x.shape[1], x.shape[2]
    if not 0 <= burn_in < n_steps:
        raise ValueError(f"burn_in must be in [0, n_steps={n_steps}), got {burn_in}")
    if n_chains == 0:
        raise ValueError("no chains to check: every chain diverged")
    if direction is None:
        u = np.zeros(dim)
        u[0] = 1.0
    else:
        u = np.asarray(direction, dtype=np.float64)
        if u.shape != (dim,) or not np.linalg.norm(u) > 0:
            raise ValueError(f"direction must be a non-zero vector of shape ({dim},), got {direction!r}")
        u = u / np.linalg.norm(u)
    dtype = jnp.result_type(float)
    v = x - step_size * np.asarray(f.grad(jnp.asarray(x, dtype)), np.float64)
    v_now, v_next = v[burn_in:-1].reshape(-1, dim), v[burn_in + 1 :].reshape(-1, dim)
    projected = v_now @ u
    step = (v_next - v_now) @ u
    predicted = -step_size * np.asarray(smoothed_grad(jnp.asarray(v_now, dtype)), np.float64).reshape(-1, dim) @ u
    residual = step - predicted
    edges = np.quantile(projected, np.linspace(0, 1, n_bins + 1))
    which = np.clip(np.searchsorted(edges, projected, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    kept = np.flatnonzero(count >= max(min_count, 2))
    if kept.size == 0:
        raise ValueError(
            f"no bin has min_count={min_count} transitions ({projected.size} transitions in {n_bins} bins): "
            "use fewer bins, more chains or steps, or a smaller min_count"
        )

    def per_bin(values):
        return np.bincount(which, weights=values, minlength=n_bins)[kept] / count[kept]

    residual_mean = per_bin(residual)
    residual_var = (per_bin(residual**2) - residual_mean**2) * count[kept] / (count[kept] - 1)
    return DriftCheck(
        centers=per_bin(projected),
        drift=per_bin(step),
        drift_se=np.sqrt(np.maximum(residual_var, 0.0) / count[kept]),
        predicted=per_bin(predicted),
        count=count[kept].astype(int),
    )
