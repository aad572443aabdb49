"""The paper's identity, checked on simulated chains.

For v_k = x_k - eta grad f(x_k) and x_{k+1} = x_k - eta (grad f(x_k) + eps_{k+1}),

    v_{k+1} = v_k - eta grad F_eta(v_k) + zeta_{k+1},    E[zeta_{k+1} | v_k] = 0,

with F_eta(v) = E f(v - eta eps) (Nitanda et al. 2024, after Kleinberg, Li and Yuan 2018): the
*conditional mean drift* of v is a gradient step on the smoothed objective. The identity is
exact in law when x_{k+1} = v_k - eta eps_{k+1}, which is the update; `drift_check` estimates
E[v_{k+1} - v_k | v_k in bin] from every step of every chain of a trajectory and compares it with
-eta grad F_eta at the binned v_k (averaged over the v_k in each bin, so wide bins are not biased).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

__all__ = ["DriftCheck", "drift_check"]


class DriftCheck(NamedTuple):
    centers: np.ndarray  # (B,) mean projected v_k in each bin
    drift: np.ndarray  # (B,) empirical mean of the projected v_{k+1} - v_k
    drift_se: np.ndarray  # (B,) its standard error
    predicted: np.ndarray  # (B,) mean of the projected -eta grad F(v_k) over the bin
    count: np.ndarray  # (B,) transitions in the bin

    def z_scores(self) -> np.ndarray:
        return (self.drift - self.predicted) / self.drift_se


def drift_check(trajectory, f, smoothed_grad, step_size: float, *, n_bins: int = 30, direction=None, min_count: int = 200, burn_in: int = 0) -> DriftCheck:
    """Binned E[v_{k+1} - v_k | v_k] from a trajectory against -eta grad F_eta(v_k).

    **Arguments:**

    - `trajectory`: iterates x_0..x_T of many chains at one step size, `(T+1, C, d)` (e.g.
      `result.trajectory[:, s]` of `simulate.run(..., trajectory=True)`).
    - `f`: the objective; `smoothed_grad`: v -> grad F_eta(v), batched over `(..., d)` (for
      example `objectives.smoothed(f, noise, step_size).grad`).
    - `step_size`: eta of that trajectory.
    - `n_bins`: equal-count bins of the projected v_k; `direction`: unit vector `(d,)` to project
      on (default the first coordinate); `min_count`: drop bins with fewer transitions;
      `burn_in`: skip the first steps.

    **Returns:** a `DriftCheck` of per-bin arrays.
    """
    x = np.asarray(trajectory, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"trajectory must have shape (T+1, n_chains, dim), got {x.shape}")
    dim = x.shape[-1]
    u = np.zeros(dim) if direction is None else np.asarray(direction, dtype=np.float64)
    if direction is None:
        u[0] = 1.0
    v = x - step_size * np.asarray(f.grad(jnp.asarray(x, jnp.result_type(float))), np.float64)
    v_now, v_next = v[burn_in:-1].reshape(-1, dim), v[burn_in + 1 :].reshape(-1, dim)
    projected = v_now @ u
    step = (v_next - v_now) @ u
    predicted = -step_size * np.asarray(smoothed_grad(jnp.asarray(v_now, jnp.result_type(float))), np.float64) @ u
    edges = np.quantile(projected, np.linspace(0, 1, n_bins + 1))
    which = np.clip(np.searchsorted(edges, projected, side="right") - 1, 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        inside = which == b
        n = int(inside.sum())
        if n < min_count:
            continue
        rows.append((projected[inside].mean(), step[inside].mean(), step[inside].std(ddof=1) / np.sqrt(n), predicted[inside].mean(), n))
    centers, drift, se, pred, count = (np.array(c) for c in zip(*rows))
    return DriftCheck(centers, drift, se, pred, count.astype(int))
