"""Which basin does each returned point sit in, and how sharp is the objective there?

`basin_occupancy` assigns each point to a basin, either the nearest local minimizer ("nearest")
or the minimizer that deterministic gradient descent from the point reaches ("descent", run in
JAX, vmapped: the true basin of attraction, up to the step and iteration count), and returns
the fraction of (non-diverged) chains per basin. `sharpness_summary` averages the Hessian trace
tr Hess f at the points: the sharpness of the solutions SGD returns.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["basin_occupancy", "assign_basins", "sharpness_summary", "Sharpness"]


def assign_basins(points, minimizers, objective=None, *, method: str = "nearest", descent_steps: int = 2000, descent_step_size: float = 0.01) -> np.ndarray:
    """Basin index (into `minimizers`) of each point: `points` `(..., d)`, `minimizers` `(B, d)`."""
    points = np.asarray(points, dtype=np.float64)
    centers = np.asarray(minimizers, dtype=np.float64)
    if centers.ndim != 2 or centers.shape[-1] != points.shape[-1]:
        raise ValueError(f"minimizers must have shape (n_basins, {points.shape[-1]}), got {centers.shape}")
    if method == "descent":
        if objective is None:
            raise ValueError("method='descent' needs the objective")

        def descend(x):
            return jax.lax.fori_loop(0, descent_steps, lambda _, y: y - descent_step_size * objective.point_grad(y), x)

        flat = points.reshape(-1, points.shape[-1])
        points = np.asarray(jax.jit(jax.vmap(descend))(jnp.asarray(flat)), np.float64).reshape(points.shape)
    elif method != "nearest":
        raise ValueError(f"method must be 'nearest' or 'descent', got {method!r}")
    distances = np.sum((points[..., None, :] - centers) ** 2, axis=-1)
    return np.argmin(distances, axis=-1)


def basin_occupancy(points, minimizers, objective=None, *, mask=None, method: str = "nearest", **descent) -> np.ndarray:
    """Fraction of chains per basin: `points` `(S, C, d)` -> `(S, n_basins)`.

    `mask` `(S, C)`: chains to count (e.g. `~result.diverged`); each row sums to 1 over them.
    """
    labels = assign_basins(points, minimizers, objective, method=method, **descent)
    keep = np.ones(labels.shape, bool) if mask is None else np.asarray(mask, bool)
    n_basins = np.asarray(minimizers).shape[0]
    counts = np.stack([np.sum((labels == b) & keep, axis=-1) for b in range(n_basins)], axis=-1)
    return counts / np.maximum(keep.sum(axis=-1, keepdims=True), 1)


class Sharpness(NamedTuple):
    mean: np.ndarray  # (S,) mean of tr Hess f at the points
    se: np.ndarray  # (S,) its standard error
    n_chains: np.ndarray  # (S,) chains counted


def sharpness_summary(objective, points, mask=None) -> Sharpness:
    """Mean and standard error of tr Hess f at `points` `(S, C, d)` per step size."""
    traces = np.asarray(objective.hessian_trace(jnp.asarray(points)), np.float64)  # (S, C)
    keep = np.ones(traces.shape, bool) if mask is None else np.asarray(mask, bool)
    mean = np.array([t[k].mean() for t, k in zip(traces, keep)])
    se = np.array([t[k].std(ddof=1) / np.sqrt(k.sum()) if k.sum() > 1 else np.nan for t, k in zip(traces, keep)])
    return Sharpness(mean, se, keep.sum(axis=-1))
