"""Local and global minimizers of objectives, and the smoothed solution v*(eta) over a step-size grid.

Search, in one compiled call per objective (or per batch of objectives, one per step size):

1. Start points. dim <= 2: a dense grid over the search box; its discrete local minima (no
   lower neighbour, 2 or 8 neighbours, strictly lower than one of them so flat plateaus are
   skipped) are the starts, the `n_candidates` lowest of them. dim > 2: the `n_starts` lowest of
   32 x `n_starts` uniform points in the box (fixed seed).
2. Refinement: `n_iterations` saddle-free damped Newton steps in JAX,
   p = -V diag(1 / max(|lambda|, delta)) V^T grad f (Hessian V diag(lambda) V^T), its length capped
   at a tenth of the box diagonal, with backtracking (Armijo) along p, iterates clipped to the
   box; a full step is also taken when the Hessian is positive definite and the gradient norm
   drops (quadratic convergence to machine precision even where f no longer decreases in
   floating point).
3. Acceptance (NumPy): a refined point is a local minimizer when the Newton step there is below
   `tolerance` x box diagonal (or the gradient is that small relative to the curvature), no
   Hessian eigenvalue is below -sqrt(eps) x scale (no saddles) and the largest eigenvalue exceeds
   sqrt(eps) (no flat plateaus). Points closer than 1e-4 x box diagonal are merged. A connected
   set of minima (a flat valley floor) shows up as several tied points along it.

Ties: when the two lowest distinct minima differ by at most `tie_tolerance` x max(1, |value|),
the result is flagged (`tied`) and a `TieWarning` is emitted; the lower one is still returned,
with the runner-up alongside, never chosen silently. Near ties that matter for a simulation
(the chains in one basin, v*(eta) in another, close in value) are `analysis.ties`'s: pass the
chains to `smoothed_solution` for the `NearTieWarning`, and `target="local"` for the minimizer in
the chains' basin.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

import objectives
from objectives import Objective
from analysis.ties import NEAR_TIE, TieWarning, local_path
from objectives import validation as check

__all__ = [
    "TieWarning",
    "Minima",
    "GlobalMinimum",
    "SolutionPath",
    "minimizers",
    "global_minimizer",
    "smoothed_solution",
    "penalized_solution",
]

_BACKTRACKING_STEPS = 16
_MERGE_FRACTION = 1e-4
_SCREENING_FACTOR = 32  # dim > 2: Newton starts from the n_starts lowest of 32 n_starts uniform points


@dataclasses.dataclass(frozen=True)
class Minima:
    """The local minimizers of one objective, sorted by value (lowest first).

    - `points`: `(n, dim)`; `values`, `hessian_traces`: `(n,)`.
    - `labels`: `(n,)` int, a basin label: the rank of the minimizer in lexicographic order of its
      coordinates (left to right in 1-D), so the same basin keeps its label while the minima
      are reordered by value (for example across step sizes).
    - `tied`: True when the two lowest values tie within the tie tolerance.
    - `lower`, `upper`: `(dim,)` the search box.
    """

    points: np.ndarray
    values: np.ndarray
    hessian_traces: np.ndarray
    labels: np.ndarray
    tied: bool
    lower: np.ndarray
    upper: np.ndarray

    def __len__(self) -> int:
        return int(self.values.shape[0])


@dataclasses.dataclass(frozen=True)
class GlobalMinimum:
    """The lowest minimizer found; `np.asarray(result)` is `point`.

    - `point`: `(dim,)`, `value`, `hessian_trace`: floats.
    - `tied`: the runner-up has the same value within tolerance (a `TieWarning` was emitted).
    - `runner_up`, `runner_up_value`: the second-lowest distinct minimizer (`nan` if none).
    - `minima`: every minimizer found (`Minima`).
    """

    point: np.ndarray
    value: float
    hessian_trace: float
    tied: bool
    runner_up: np.ndarray
    runner_up_value: float
    minima: Minima

    def __array__(self, dtype=None, copy=None):
        return np.array(self.point, dtype=dtype)


@dataclasses.dataclass(frozen=True)
class SolutionPath:
    """v*(eta): the global minimizer of F_eta (or P_eta) for each step size; `np.asarray(path)` is `points`.

    - `step_sizes`: `(S,)`; `points`: `(S, dim)`; `values`, `hessian_traces`: `(S,)`.
    - `tied`: `(S,)` bool, True where the two lowest minima tie (a `TieWarning` was emitted).
    - `runner_up`: `(S, dim)`, `runner_up_values`: `(S,)`, the second-lowest distinct minimum (nan if none).
    - `n_minima`: `(S,)` the number of distinct local minima found among the candidates.
    - `objective_name`: the name of the smoothed (or penalised) objective.
    - `minima`: per step size, every distinct minimizer found (`Minima`, sorted by value).
    - `target`: "global" (v*(eta)), or "local" (`points` are the minimizers of the basins where
      most chains are; then `chain_fraction` `(S,)` is the fraction of chains there and
      `margin` `(S,)` the excess of their F_eta over the global minimum; see `analysis.ties`).
    """

    step_sizes: np.ndarray
    points: np.ndarray
    values: np.ndarray
    hessian_traces: np.ndarray
    tied: np.ndarray
    runner_up: np.ndarray
    runner_up_values: np.ndarray
    n_minima: np.ndarray
    objective_name: str
    minima: tuple = ()
    target: str = "global"
    chain_fraction: np.ndarray | None = None
    margin: np.ndarray | None = None

    def __array__(self, dtype=None, copy=None):
        return np.array(self.points, dtype=dtype)


# ---- compiled search -------------------------------------------------------------------------


def _discrete_minima(values: jax.Array) -> jax.Array:
    """Grid points no higher than any neighbour and lower than at least one (1-D or 2-D grids)."""
    padded = jnp.pad(values, 1, constant_values=jnp.inf)
    shifts = [(-1,), (1,)] if values.ndim == 1 else [(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1) if (i, j) != (0, 0)]
    no_higher = jnp.ones(values.shape, bool)
    lower_somewhere = jnp.zeros(values.shape, bool)
    for shift in shifts:
        window = tuple(slice(1 + s, 1 + s + n) for s, n in zip(shift, values.shape))
        neighbour = padded[window]
        no_higher = no_higher & (values <= neighbour)
        lower_somewhere = lower_somewhere | (values < neighbour)
    return no_higher & lower_somewhere & jnp.isfinite(values)


def _newton_refine(objective: Objective, x0: jax.Array, lower, upper, *, n_iterations: int):
    """Saddle-free damped Newton from one start; returns the final point and its diagnostics."""
    max_step = 0.1 * jnp.linalg.norm(upper - lower)
    alphas = 0.5 ** jnp.arange(_BACKTRACKING_STEPS, dtype=x0.dtype)

    def modified_step(x):
        grad = objective.point_grad(x)
        eigenvalues, eigenvectors = jnp.linalg.eigh(objective.point_hessian(x))
        floor = 1e-8 * jnp.maximum(1.0, jnp.max(jnp.abs(eigenvalues)))
        step = -eigenvectors @ ((eigenvectors.T @ grad) / jnp.maximum(jnp.abs(eigenvalues), floor))
        length = jnp.linalg.norm(step)
        step = step * jnp.minimum(1.0, max_step / jnp.where(length > 0, length, 1.0))
        return grad, eigenvalues, step

    def iterate(x, _):
        value = objective.point_value(x)
        grad, eigenvalues, step = modified_step(x)
        candidates = jnp.clip(x[None, :] + alphas[:, None] * step[None, :], lower[None, :], upper[None, :])
        values = jax.vmap(objective.point_value)(candidates)
        armijo = values <= value + 1e-4 * ((candidates - x[None, :]) @ grad)
        armijo = armijo & jnp.isfinite(values)
        newton_grad = objective.point_grad(candidates[0])
        positive_definite = eigenvalues[0] > 0
        polish = positive_definite & (jnp.linalg.norm(newton_grad) < jnp.linalg.norm(grad))
        accept = armijo.at[0].set(armijo[0] | polish)
        first = jnp.argmax(accept)
        x_new = jnp.where(jnp.any(accept), candidates[first], x)
        x_new = jnp.where(jnp.all(jnp.isfinite(x_new)), x_new, x)
        return x_new, None

    x, _ = jax.lax.scan(iterate, x0, None, length=n_iterations)
    grad, eigenvalues, step = modified_step(x)
    return dict(
        points=x,
        values=objective.point_value(x),
        grad_norms=jnp.linalg.norm(grad),
        step_norms=jnp.linalg.norm(step),
        min_eigenvalues=eigenvalues[0],
        max_eigenvalues=eigenvalues[-1],
        hessian_traces=jnp.sum(eigenvalues),
    )


@partial(jax.jit, static_argnames=("batch_size", "grid_shape", "n_candidates", "n_iterations"))
def _search(batch, grid, lower, upper, *, batch_size, grid_shape, n_candidates, n_iterations):
    """For each member of a batch of objectives: refine the `n_candidates` lowest discrete minima
    of a regular grid of shape `grid_shape`, or (`grid_shape=None`) the lowest screening points."""

    def search(member):
        values = jax.vmap(member.point_value)(grid)
        values = jnp.where(jnp.isnan(values), jnp.inf, values)
        if grid_shape is None:
            is_minimum = jnp.isfinite(values)
        else:
            is_minimum = _discrete_minima(values.reshape(grid_shape)).reshape(-1)
        scores, indices = jax.lax.top_k(-jnp.where(is_minimum, values, jnp.inf), n_candidates)
        refine = partial(_newton_refine, member, lower=lower, upper=upper, n_iterations=n_iterations)
        out = jax.vmap(refine)(grid[indices])
        out["valid"] = jnp.isfinite(scores)
        return out

    return jax.vmap(search, axis_size=batch_size)(batch)


# ---- validation and set-up -------------------------------------------------------------------


def _working_dtype():
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


def _cast_objective(objective: Objective, dtype) -> Objective:
    def cast(leaf):
        leaf = np.asarray(leaf)
        return leaf.astype(dtype) if np.issubdtype(leaf.dtype, np.floating) else leaf

    return jax.tree.map(cast, objective)


def _check_objective(objective) -> None:
    if not isinstance(objective, Objective):
        raise ValueError(f"objective must be an objectives.Objective, got {type(objective).__name__}")
    if objective.batch is not None:
        raise ValueError(
            f"objective {objective.name!r} is a batch (one per step size): use smoothed_solution / "
            "penalized_solution, or take one member with jax.tree.map(lambda a: a[i], objective)"
        )


def _search_box(objective: Objective, bounds) -> tuple[np.ndarray, np.ndarray]:
    dim = objective.dim
    if bounds is None:
        box, minimizer = objective.search_box, objective.minimizer
        if box is not None:
            lower, upper = box(objective.params)
        elif minimizer is not None:  # a quadratic: a box around its closed-form minimizer
            center = np.asarray(minimizer(objective.params), dtype=np.float64)
            lower, upper = center - 1.0 - np.abs(center), center + 1.0 + np.abs(center)
        else:
            raise ValueError(
                f"objective {objective.name!r} has no default search box (no closed-form search_box "
                f"or minimizer): pass bounds=(lower, upper), each a number or a vector of shape ({dim},)"
            )
    else:
        try:
            lower, upper = bounds
        except (TypeError, ValueError):
            raise ValueError(f"bounds must be a pair (lower, upper), got {bounds!r}") from None
    try:
        lower = np.broadcast_to(np.asarray(lower, dtype=np.float64), (dim,)).copy()
        upper = np.broadcast_to(np.asarray(upper, dtype=np.float64), (dim,)).copy()
    except (TypeError, ValueError):
        raise ValueError(
            f"bounds must be (lower, upper), each a number or a vector of shape ({dim},), got {bounds!r}"
        ) from None
    if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper)) and np.all(lower < upper)):
        raise ValueError(f"bounds must be finite with lower < upper, got lower={lower.tolist()}, upper={upper.tolist()}")
    return lower, upper


def _default_tolerances(dtype, tie_tolerance, tolerance):
    precise = jnp.dtype(dtype) == jnp.float64
    tie = (1e-9 if precise else 1e-5) if tie_tolerance is None else check.non_negative_float("tie_tolerance", tie_tolerance)
    tol = (1e-7 if precise else 1e-3) if tolerance is None else check.positive_float("tolerance", tolerance)
    return tie, tol


def _run_search(batch, batch_size, lower, upper, *, n_grid, n_starts, n_candidates, n_iterations, seed, dtype):
    """Dispatch to the grid (dim <= 2) or multi-start search; NumPy arrays `(S, k, ...)`."""
    dim = batch.dim
    if dim <= 2:
        axes = [np.linspace(lower[i], upper[i], n_grid) for i in range(dim)]
        grid = np.stack([g.reshape(-1) for g in np.meshgrid(*axes, indexing="ij")], axis=-1)
        grid_shape, n_candidates = (n_grid,) * dim, min(n_candidates, grid.shape[0])
    else:
        unit = np.random.default_rng(seed).uniform(size=(_SCREENING_FACTOR * n_starts, dim))
        grid, grid_shape, n_candidates = lower + (upper - lower) * unit, None, n_starts
    out = _search(
        batch, jnp.asarray(grid, dtype), jnp.asarray(lower, dtype), jnp.asarray(upper, dtype),
        batch_size=batch_size, grid_shape=grid_shape, n_candidates=n_candidates, n_iterations=n_iterations,
    )
    return {key: np.asarray(value, dtype=np.float64 if key != "valid" else bool) for key, value in out.items()}


def _distinct_minima(out: dict, s: int, lower, upper, dtype, tolerance: float):
    """Indices of the accepted, merged minima of batch member s, sorted by value."""
    diagonal = float(np.linalg.norm(upper - lower))
    curvature = np.maximum(1.0, np.abs(out["max_eigenvalues"][s]))
    root_eps = math.sqrt(float(jnp.finfo(dtype).eps))
    accepted = (
        out["valid"][s]
        & np.isfinite(out["values"][s])
        & ((out["step_norms"][s] <= tolerance * diagonal) | (out["grad_norms"][s] <= tolerance * diagonal * curvature))
        & (out["min_eigenvalues"][s] >= -root_eps * curvature)
        & (out["max_eigenvalues"][s] > root_eps)
    )
    order = [i for i in np.argsort(out["values"][s], kind="stable") if accepted[i]]
    kept: list[int] = []
    for i in order:
        if all(np.linalg.norm(out["points"][s][i] - out["points"][s][j]) > _MERGE_FRACTION * diagonal for j in kept):
            kept.append(i)
    return kept


def _is_tie(values: np.ndarray, tie_tolerance: float) -> bool:
    return values.size >= 2 and abs(values[1] - values[0]) <= tie_tolerance * max(1.0, abs(values[0]))


# ---- public functions ------------------------------------------------------------------------


def minimizers(
    objective: Objective,
    bounds=None,
    *,
    n_grid: int | None = None,
    n_starts: int = 256,
    n_candidates: int = 256,
    n_iterations: int = 50,
    seed: int = 0,
    tolerance: float | None = None,
    tie_tolerance: float | None = None,
) -> Minima:
    """Every local minimizer of `objective` in a box, each with its value, Hessian trace and basin label.

    See the module docstring for the search. Runs in float64 under JAX's x64 mode, else float32.

    **Arguments:**

    - `objective`: an `Objective` (not a batch).
    - `bounds`: `(lower, upper)`, numbers or `(dim,)` vectors; default the objective's
      `search_box` (every catalog objective has one), else a box around its closed-form
      `minimizer` (quadratics: c +- (1 + |c|)); other objectives need `bounds`.
    - `n_grid`: grid points per axis for dim <= 2 (default 2001 in 1-D, 201 in 2-D).
    - `n_starts`: Newton starts for dim > 2, the lowest of 32 x `n_starts` uniform points (default 256).
    - `n_candidates`: at most this many grid minima are refined (default 256).
    - `n_iterations`: Newton iterations (default 50).
    - `seed`: the seed of the start points (dim > 2).
    - `tolerance`: acceptance, relative to the box diagonal (default 1e-7 in float64, 1e-3 in float32).
    - `tie_tolerance`: relative tie tolerance (default 1e-9 in float64, 1e-5 in float32).

    **Returns:** `Minima`, sorted by value.
    """
    _check_objective(objective)
    batch = jax.tree.map(lambda leaf: np.asarray(leaf)[None], objective)
    out, lower, upper, dtype, tolerance, tie_tolerance = _checked_search(
        objective, batch, 1, bounds, n_grid=n_grid if n_grid is not None else (2001 if objective.dim == 1 else 201),
        n_starts=n_starts, n_candidates=n_candidates, n_iterations=n_iterations, seed=seed,
        tolerance=tolerance, tie_tolerance=tie_tolerance,
    )
    kept = _distinct_minima(out, 0, lower, upper, dtype, tolerance)
    return _as_minima(out, 0, kept, objective.dim, lower, upper, tie_tolerance)


def _checked_search(f, batch, size, bounds, *, n_grid, n_starts, n_candidates, n_iterations, seed, tolerance, tie_tolerance):
    """Check the search settings and run the compiled search over the `size` members of `batch`
    (objectives of `f`'s dimension stacked on a leading axis) in `f`'s search box.

    Returns (search output, lower, upper, working dtype, tolerance, tie_tolerance).
    """
    lower, upper = _search_box(f, bounds)
    dtype = _working_dtype()
    tie_tolerance, tolerance = _default_tolerances(dtype, tie_tolerance, tolerance)
    out = _run_search(
        _cast_objective(batch, dtype), size, lower, upper,
        n_grid=check.integer("n_grid", n_grid, lo=3), n_starts=check.positive_int("n_starts", n_starts),
        n_candidates=check.positive_int("n_candidates", n_candidates),
        n_iterations=check.positive_int("n_iterations", n_iterations), seed=seed, dtype=dtype,
    )
    return out, lower, upper, dtype, tolerance, tie_tolerance


def global_minimizer(objective: Objective, bounds=None, **search) -> GlobalMinimum:
    """The lowest local minimizer found by `minimizers` (same arguments); `np.asarray(result)` is the point.

    **Raises:** `ValueError` when no minimizer is found in the box. Emits a `TieWarning` (and sets
    `tied`) when the two lowest minima tie within tolerance.
    """
    minima = minimizers(objective, bounds, **search)
    if len(minima) == 0:
        raise ValueError(
            f"no local minimizer of {objective.name!r} found in the box lower={minima.lower.tolist()}, "
            f"upper={minima.upper.tolist()}: widen bounds= or raise n_grid/n_starts"
        )
    nan_point = np.full(objective.dim, np.nan)
    if minima.tied:
        warnings.warn(
            f"the two lowest minima of {objective.name!r} tie within tolerance: "
            f"{minima.points[0].tolist()} ({minima.values[0]:.12g}) and {minima.points[1].tolist()} "
            f"({minima.values[1]:.12g}); returning the first, see .runner_up",
            TieWarning,
            stacklevel=2,
        )
    return GlobalMinimum(
        point=minima.points[0],
        value=float(minima.values[0]),
        hessian_trace=float(minima.hessian_traces[0]),
        tied=minima.tied,
        runner_up=minima.points[1] if len(minima) > 1 else nan_point,
        runner_up_value=float(minima.values[1]) if len(minima) > 1 else math.nan,
        minima=minima,
    )


def _solution_path(
    f, batch, eta, bounds, *, n_grid, n_starts, n_candidates, n_iterations, seed, tolerance, tie_tolerance
) -> SolutionPath:
    out, lower, upper, dtype, tolerance, tie_tolerance = _checked_search(
        f, batch, eta.shape[0], bounds, n_grid=n_grid if n_grid is not None else (1001 if f.dim == 1 else 101),
        n_starts=n_starts, n_candidates=n_candidates, n_iterations=n_iterations, seed=seed,
        tolerance=tolerance, tie_tolerance=tie_tolerance,
    )
    size, dim = eta.shape[0], f.dim
    points, runner_up = np.full((size, dim), np.nan), np.full((size, dim), np.nan)
    values, traces, runner_up_values = np.full(size, np.nan), np.full(size, np.nan), np.full(size, np.nan)
    tied, counts = np.zeros(size, bool), np.zeros(size, np.int64)
    every = []
    for s in range(size):
        kept = _distinct_minima(out, s, lower, upper, dtype, tolerance)
        counts[s] = len(kept)
        every.append(_as_minima(out, s, kept, dim, lower, upper, tie_tolerance))
        if not kept:
            continue
        points[s], values[s], traces[s] = out["points"][s][kept[0]], out["values"][s][kept[0]], out["hessian_traces"][s][kept[0]]
        if len(kept) > 1:
            runner_up[s], runner_up_values[s] = out["points"][s][kept[1]], out["values"][s][kept[1]]
        tied[s] = _is_tie(out["values"][s][kept], tie_tolerance)
    if np.any(counts == 0):
        raise ValueError(
            f"no local minimizer of {batch.name!r} found in the box lower={lower.tolist()}, upper={upper.tolist()} "
            f"for step sizes {eta[counts == 0].tolist()}: widen bounds= or raise n_grid/n_starts"
        )
    if np.any(tied):
        warnings.warn(
            f"the two lowest minima of {batch.name!r} tie within tolerance at step sizes {eta[tied].tolist()}; "
            "returning the first of each, see .tied and .runner_up",
            TieWarning,
            stacklevel=3,
        )
    return SolutionPath(eta, points, values, traces, tied, runner_up, runner_up_values, counts, batch.name, tuple(every))


def _as_minima(out: dict, s: int, kept: list[int], dim: int, lower, upper, tie_tolerance: float) -> Minima:
    """The distinct minima `kept` of batch member s, as `Minima` (labels: lexicographic rank)."""
    points = out["points"][s][kept].reshape(-1, dim)
    values = out["values"][s][kept]
    labels = np.empty(len(kept), dtype=np.int64)
    labels[np.lexsort(points.T[::-1])] = np.arange(len(kept))
    return Minima(points, values, out["hessian_traces"][s][kept], labels, _is_tie(values, tie_tolerance), lower, upper)


def _at_chains(path: SolutionPath, chains, mask, target: str, near_tie: float) -> SolutionPath:
    """With chains given: warn on the near-tie trap; with target="local", the chains' basins."""
    target = check.one_of("target", target, ("global", "local"))
    if chains is None:
        if target == "local":
            raise ValueError("target='local' needs chains=: the points of the chains (S, C, dim), e.g. result.x")
        return path
    local = local_path(path, chains, mask=mask, near_tie=near_tie, stacklevel=4)
    return local if target == "local" else path


def smoothed_solution(
    f: Objective,
    noise,
    step_sizes,
    bounds=None,
    *,
    method: str = "auto",
    order: int | None = None,
    n_samples: int = objectives.smoothing.DEFAULT_N_SAMPLES,
    smoothing_seed: int = 0,
    n_grid: int | None = None,
    n_starts: int = 64,
    n_candidates: int = 16,
    n_iterations: int = 50,
    seed: int = 0,
    tolerance: float | None = None,
    tie_tolerance: float | None = None,
    chains=None,
    mask=None,
    target: str = "global",
    near_tie: float = NEAR_TIE,
) -> SolutionPath:
    """v*(eta) = argmin F_eta for each step size, F_eta(v) = E f(v - eta eps), in one compiled call.

    `objectives.smoothed(f, noise, step_sizes)` is a batch of S objectives (the step size is a
    traced leaf); the grid search and Newton refinement are `vmap`ped over it, so a new grid of
    the same length does not recompile. `np.asarray(result)` has shape `(S, dim)`.

    **Arguments:**

    - `f`, `noise`, `step_sizes`: as in `objectives.smoothed` (step sizes: a number or a 1-D vector).
    - `bounds`: the search box (default f's closed-form `search_box`).
    - `method`, `order`, `n_samples`, `smoothing_seed`: passed to `objectives.smoothed`.
    - `n_grid`: grid points per axis for dim <= 2 (default 1001 in 1-D, 101 in 2-D).
    - `n_starts`, `n_candidates`, `n_iterations`, `seed`, `tolerance`, `tie_tolerance`: as in
      `minimizers` (defaults 64 starts, the 16 lowest grid minima, 50 iterations).
    - `chains`: optional `(S, C, dim)` points of simulated chains (e.g. `result.x`, with `mask`
      `(S, C)` such as `~result.diverged`): a `NearTieWarning` is emitted where most chains sit
      in another basin of F_eta than v*(eta), whose value is within `near_tie` x max(1, |F|)
      (default 5%); see `analysis.ties`.
    - `target`: "global" (v*(eta), default) or "local": the minimizer of F_eta in the basin where
      most chains are (needs `chains`).

    **Returns:** a `SolutionPath` (points, values, Hessian traces, tie flags, runner-ups, every minimum).
    """
    eta = check.step_sizes("step_sizes", step_sizes, allow_zero=True)
    batch = objectives.smoothed(f, noise, eta, method=method, order=order, n_samples=n_samples, seed=smoothing_seed)
    path = _solution_path(
        f, batch, eta, bounds, n_grid=n_grid, n_starts=n_starts, n_candidates=n_candidates,
        n_iterations=n_iterations, seed=seed, tolerance=tolerance, tie_tolerance=tie_tolerance,
    )
    return _at_chains(path, chains, mask, target, near_tie)


def penalized_solution(
    f: Objective,
    noise,
    step_sizes,
    bounds=None,
    *,
    n_grid: int | None = None,
    n_starts: int = 64,
    n_candidates: int = 16,
    n_iterations: int = 50,
    seed: int = 0,
    tolerance: float | None = None,
    tie_tolerance: float | None = None,
    chains=None,
    mask=None,
    target: str = "global",
    near_tie: float = NEAR_TIE,
) -> SolutionPath:
    """argmin P_eta for each step size, P_eta = f + (eta^2/2) tr(Sigma Hess f); as `smoothed_solution`
    (`chains`, `target="local"`: the same near-tie check and local target, on P_eta)."""
    eta = check.step_sizes("step_sizes", step_sizes, allow_zero=True)
    batch = objectives.penalized(f, noise, eta)
    path = _solution_path(
        f, batch, eta, bounds, n_grid=n_grid, n_starts=n_starts, n_candidates=n_candidates,
        n_iterations=n_iterations, seed=seed, tolerance=tolerance, tie_tolerance=tie_tolerance,
    )
    return _at_chains(path, chains, mask, target, near_tie)
