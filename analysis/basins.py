"""Which basin does each returned point sit in, and how sharp is the objective there?

`basin_occupancy` assigns each point to a basin and returns the fraction of the counted
(non-diverged) chains per basin. Two assignments:

- `method="nearest"`: the nearest of the given local minimizers (Euclidean). Cheap and exact
  when the basins are the Voronoi cells of the minimizers; wrong for points that sit past a
  barrier closer to the other minimizer (asymmetric wells).
- `method="descent"`: run deterministic gradient descent from every point (JAX, vmapped, one
  compiled loop) and take the minimizer nearest to where it ends: the basin of attraction of
  the gradient flow, up to the step and iteration count. The step size defaults to
  1 / (largest Hessian eigenvalue over the minimizers), and every move is clipped to a quarter
  of the smallest distance between minimizers, so a steep wall cannot throw a point across a
  basin. A point that has not converged after `descent_steps` (a plateau) is still assigned by
  its end point.

`sharpness_summary` averages the Hessian trace tr Hess f at the points: the sharpness of the
solutions SGD returns, per step size.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from objectives import validation as check

__all__ = ["Sharpness", "assign_basins", "basin_occupancy", "sharpness_summary"]


@functools.partial(jax.jit, static_argnames=("n_steps",))
def _descend(objective, points, step_size, max_move, *, n_steps: int):
    """Gradient descent with moves clipped to `max_move`, from every row of `points` `(n, d)`."""
    tiny = jnp.finfo(points.dtype).tiny

    def from_point(x):
        def step(_, y):
            g = objective.point_grad(y)
            norm = jnp.sqrt(jnp.sum(g * g))
            return y - jnp.minimum(step_size, max_move / jnp.maximum(norm, tiny)) * g

        return jax.lax.fori_loop(0, n_steps, step, x)

    return jax.vmap(from_point)(points)


def _default_descent_step(objective, centers: np.ndarray) -> float:
    curvature = np.max(np.linalg.eigvalsh(np.asarray(objective.hessian(jnp.asarray(centers)), np.float64)))
    return 1.0 / curvature if np.isfinite(curvature) and curvature > 0 else 0.01


def assign_basins(
    points,
    minimizers,
    objective=None,
    *,
    method: str = "nearest",
    descent_steps: int = 500,
    descent_step_size: float | None = None,
) -> np.ndarray:
    """Basin index (into `minimizers`) of each point (see the module docstring for `method`).

    **Arguments:**

    - `points`: `(..., d)`.
    - `minimizers`: `(n_basins, d)` local minimizers of the objective.
    - `objective`: the `objectives.Objective` (needed by `method="descent"`).
    - `method`: "nearest" or "descent".
    - `descent_steps`, `descent_step_size`: the descent's iterations and step (default: 1 / the
      largest Hessian eigenvalue at the minimizers).

    **Returns:** integer array `(...)`.
    """
    points = np.asarray(points, dtype=np.float64)
    centers = np.asarray(minimizers, dtype=np.float64)
    if points.ndim < 1:
        raise ValueError(f"points must have shape (..., dim), got a scalar {points!r}")
    if centers.ndim != 2 or centers.shape[0] < 1 or centers.shape[-1] != points.shape[-1]:
        raise ValueError(f"minimizers must have shape (n_basins, {points.shape[-1]}), got {centers.shape}")
    if not np.all(np.isfinite(centers)):  # a NaN distance wins every argmin: the NaN minimizer took all the mass
        raise ValueError(f"minimizers must be finite, got {centers.tolist()}")
    if method == "descent":
        if objective is None or not hasattr(objective, "point_grad"):
            raise ValueError(f"method='descent' needs the objective (an objectives.Objective), got {objective!r}")
        descent_steps = check.positive_int("descent_steps", descent_steps)
        if descent_step_size is None:
            step = _default_descent_step(objective, centers)
        else:
            step = check.positive_float("descent_step_size", descent_step_size)
        gaps = np.sqrt(np.sum((centers[:, None] - centers[None]) ** 2, axis=-1))[np.triu_indices(len(centers), 1)]
        max_move = 0.25 * gaps.min() if gaps.size and gaps.min() > 0 else np.inf
        dtype = jnp.result_type(float)
        flat = jnp.asarray(points.reshape(-1, points.shape[-1]), dtype)
        ends = _descend(objective, flat, jnp.asarray(step, dtype), jnp.asarray(max_move, dtype), n_steps=int(descent_steps))
        points = np.asarray(ends, np.float64).reshape(points.shape)
    elif method != "nearest":
        raise ValueError(f"method must be 'nearest' or 'descent', got {method!r}")
    distances = np.sum((points[..., None, :] - centers) ** 2, axis=-1)
    return np.argmin(distances, axis=-1)


def basin_occupancy(points, minimizers, objective=None, *, mask=None, method: str = "nearest", **descent) -> np.ndarray:
    """Fraction of the counted chains in each basin: `points` `(..., C, d)` -> `(..., n_basins)`.

    **Arguments:**

    - `points`: estimators of C chains, e.g. `result.x_avg` `(S, C, d)`.
    - `minimizers`: `(n_basins, d)`; the output's last axis follows their order.
    - `objective`: for `method="descent"`.
    - `mask`: `(..., C)` bool, the chains to count (e.g. `~result.diverged`); default all.
    - `method`, `**descent`: see `assign_basins`.

    **Returns:** fractions that sum to 1 over the basins; a row with no counted chain is NaN
    (there is nothing to take a fraction of).
    """
    labels = assign_basins(points, minimizers, objective, method=method, **descent)
    keep = np.ones(labels.shape, bool) if mask is None else np.asarray(mask, bool)
    if keep.shape != labels.shape:
        raise ValueError(f"mask must have the shape of the points without dim, {labels.shape}, got {keep.shape}")
    n_basins = np.asarray(minimizers).shape[0]
    counts = np.sum((labels[..., None] == np.arange(n_basins)) & keep[..., None], axis=-2)
    total = keep.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, counts / np.maximum(total, 1), np.nan)


class Sharpness(NamedTuple):
    """tr Hess f at the points, per step size (NaN where fewer chains than needed)."""

    mean: np.ndarray  # (S,) mean over the counted chains (NaN if none)
    se: np.ndarray  # (S,) its standard error sd / sqrt(n) (NaN if fewer than 2)
    n_chains: np.ndarray  # (S,) chains counted


def sharpness_summary(objective, points, mask=None) -> Sharpness:
    """Mean and standard error of tr Hess f at `points` `(S, C, d)` over the chains in `mask` `(S, C)`."""
    points = np.asarray(points)
    if points.ndim != 3 or points.shape[-1] != objective.dim:
        raise ValueError(f"points must have shape (S, C, {objective.dim}), got {points.shape}")
    traces = np.asarray(objective.hessian_trace(jnp.asarray(points, jnp.result_type(float))), np.float64)  # (S, C)
    keep = np.ones(traces.shape, bool) if mask is None else np.asarray(mask, bool)
    if keep.shape != traces.shape:
        raise ValueError(f"mask must have shape {traces.shape}, got {keep.shape}")
    n = keep.sum(axis=-1)
    mean = np.array([t[k].mean() if k.any() else np.nan for t, k in zip(traces, keep)])
    se = np.array([t[k].std(ddof=1) / np.sqrt(k.sum()) if k.sum() > 1 else np.nan for t, k in zip(traces, keep)])
    return Sharpness(mean, se, n)
