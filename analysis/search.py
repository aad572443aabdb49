"""The search for local minimizers in a box, shared by `analysis.minima` (one objective) and
`analysis.solutions` (a batch of objectives, one per step size).

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
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from objectives import Objective
from objectives import validation as check

__all__ = ["Search", "SearchOptions", "box_name", "distinct_minima", "is_tie", "run_search", "search_box"]

_BACKTRACKING_STEPS = 16
_MERGE_FRACTION = 1e-4
_SCREENING_FACTOR = 32  # dim > 2: Newton starts from the n_starts lowest of 32 n_starts uniform points


@dataclasses.dataclass(frozen=True)
class SearchOptions:
    """How the search runs (see the module docstring); every function that searches takes these
    as keyword arguments.

    - `n_grid`: grid points per axis for dim <= 2 (None: the caller's default).
    - `n_starts`: Newton starts for dim > 2, the lowest of 32 x `n_starts` uniform points.
    - `n_candidates`: at most this many grid minima are refined.
    - `n_iterations`: Newton iterations; `seed`: the seed of the start points (dim > 2).
    - `tolerance`: acceptance, relative to the box diagonal (None: 1e-7 in float64, 1e-3 in float32).
    - `tie_tolerance`: relative tie tolerance (None: 1e-9 in float64, 1e-5 in float32).
    """

    n_grid: int | None = None
    n_starts: int = 256
    n_candidates: int = 256
    n_iterations: int = 50
    seed: int = 0
    tolerance: float | None = None
    tie_tolerance: float | None = None

    @classmethod
    def of(cls, search: dict, **defaults) -> "SearchOptions":
        """Options from keyword arguments over `defaults`; an unknown name is refused by name."""
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(search) - names)
        if unknown:
            raise ValueError(f"unknown search option(s) {unknown}: allowed are {sorted(names)}")
        return cls(**{**defaults, **search})


@dataclasses.dataclass(frozen=True)
class Search:
    """What a search found: `out` (arrays `(S, k, ...)` by name: points, values, hessian_traces,
    grad/step norms, extreme eigenvalues, valid), the box `lower`, `upper` `(dim,)`, the working
    `dtype` and the resolved `tolerance` and `tie_tolerance`."""

    out: dict
    lower: np.ndarray
    upper: np.ndarray
    dtype: object
    tolerance: float
    tie_tolerance: float


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

def working_dtype():
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


def cast_objective(objective: Objective, dtype) -> Objective:
    def cast(leaf):
        leaf = np.asarray(leaf)
        return leaf.astype(dtype) if np.issubdtype(leaf.dtype, np.floating) else leaf

    return jax.tree.map(cast, objective)


def check_objective(objective) -> None:
    if not isinstance(objective, Objective):
        raise ValueError(f"objective must be an objectives.Objective, got {type(objective).__name__}")
    if objective.batch is not None:
        raise ValueError(
            f"objective {objective.name!r} is a batch (one per step size): use smoothed_solution / "
            "penalized_solution, or take one member with jax.tree.map(lambda a: a[i], objective)"
        )


def box_name(objective: Objective, bounds=None) -> str:
    """What set the search box, for messages: `bounds=`, or the objective's `search_box` (a
    config's objective.search_box, or the objective's own)."""
    if bounds is None and objective.search_box is not None:
        return "the objective's search_box (objective.search_box in a config)"
    return "bounds="


def search_box(objective: Objective, bounds=None) -> tuple[np.ndarray, np.ndarray]:
    """The box `(lower, upper)`, each `(dim,)`, searched for minimizers (and the law's default box):
    `bounds` (numbers or `(dim,)` vectors) when given, else the objective's `search_box`, else a
    box around its closed-form `minimizer` (quadratics: c +- (1 + |c|)); refused by name otherwise."""
    dim = objective.dim
    name = box_name(objective, bounds).rstrip("=")
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
            f"{name} must be (lower, upper), each a number or a vector of shape ({dim},), got {bounds if bounds is not None else (lower, upper)!r}"
        ) from None
    if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper)) and np.all(lower < upper)):
        raise ValueError(f"{name} must be finite with lower < upper, got lower={lower.tolist()}, upper={upper.tolist()}")
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


def distinct_minima(out: dict, s: int, lower, upper, dtype, tolerance: float):
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


def is_tie(values: np.ndarray, tie_tolerance: float) -> bool:
    return values.size >= 2 and abs(values[1] - values[0]) <= tie_tolerance * max(1.0, abs(values[0]))


def run_search(f: Objective, batch: Objective, size: int, bounds, options: SearchOptions, *, default_n_grid: int) -> Search:
    """Check `options` and run the compiled search over the `size` members of `batch` (objectives
    of `f`'s dimension stacked on a leading axis) in `f`'s search box (`bounds`, default
    `search_box(f, None)`); `default_n_grid` where `options.n_grid` is None."""
    lower, upper = search_box(f, bounds)
    dtype = working_dtype()
    tie_tolerance, tolerance = _default_tolerances(dtype, options.tie_tolerance, options.tolerance)
    n_grid = default_n_grid if options.n_grid is None else options.n_grid
    out = _run_search(
        cast_objective(batch, dtype), size, lower, upper,
        n_grid=check.integer("n_grid", n_grid, lo=3), n_starts=check.positive_int("n_starts", options.n_starts),
        n_candidates=check.positive_int("n_candidates", options.n_candidates),
        n_iterations=check.positive_int("n_iterations", options.n_iterations), seed=options.seed, dtype=dtype,
    )
    return Search(out, lower, upper, dtype, tolerance, tie_tolerance)
