"""The smoothed solution v*(eta) = argmin F_eta and the penalized solution argmin P_eta over a
grid of step sizes, each in one compiled search over a batch of objectives (one per step size).

Near ties that matter for a simulation (the chains in one basin, v*(eta) in another, close in
value) are `analysis.ties`'s: pass the chains for the `NearTieWarning`, and `target="local"` for
the minimizer in the chains' basin.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

import objectives
from analysis.minima import as_minima
from analysis.search import SearchOptions, box_name, distinct_minima, is_tie, run_search
from analysis.ties import NEAR_TIE, TieWarning, local_path
from objectives import Objective
from objectives import validation as check

__all__ = ["SOLUTION_SEARCH", "SolutionPath", "penalized_solution", "smoothed_solution"]

#: The search's defaults for v*(eta): fewer starts than `minimizers`, since F_eta has few wells.
SOLUTION_SEARCH = dict(n_starts=64, n_candidates=16)


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


def _solution_path(f, batch, eta, bounds, options: SearchOptions) -> SolutionPath:
    found = run_search(f, batch, eta.shape[0], bounds, options, default_n_grid=1001 if f.dim == 1 else 101)
    out, lower, upper, dtype, tolerance, tie_tolerance = found.out, found.lower, found.upper, found.dtype, found.tolerance, found.tie_tolerance
    size, dim = eta.shape[0], f.dim
    points, runner_up = np.full((size, dim), np.nan), np.full((size, dim), np.nan)
    values, traces, runner_up_values = np.full(size, np.nan), np.full(size, np.nan), np.full(size, np.nan)
    tied, counts = np.zeros(size, bool), np.zeros(size, np.int64)
    every = []
    for s in range(size):
        kept = distinct_minima(out, s, lower, upper, dtype, tolerance)
        counts[s] = len(kept)
        every.append(as_minima(found, s, dim, kept))
        if not kept:
            continue
        points[s], values[s], traces[s] = out["points"][s][kept[0]], out["values"][s][kept[0]], out["hessian_traces"][s][kept[0]]
        if len(kept) > 1:
            runner_up[s], runner_up_values[s] = out["points"][s][kept[1]], out["values"][s][kept[1]]
        tied[s] = is_tie(out["values"][s][kept], tie_tolerance)
    if np.any(counts == 0):
        raise ValueError(
            f"no local minimizer of {batch.name!r} found in the box lower={lower.tolist()}, upper={upper.tolist()} "
            f"for step sizes {eta[counts == 0].tolist()}: widen {box_name(f, bounds)} or raise n_grid/n_starts"
        )
    if np.any(tied):
        warnings.warn(
            f"the two lowest minima of {batch.name!r} tie within tolerance at step sizes {eta[tied].tolist()}; "
            "returning the first of each, see .tied and .runner_up",
            TieWarning,
            stacklevel=3,
        )
    return SolutionPath(eta, points, values, traces, tied, runner_up, runner_up_values, counts, batch.name, tuple(every))


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
    chains=None,
    mask=None,
    target: str = "global",
    near_tie: float = NEAR_TIE,
    **search,
) -> SolutionPath:
    """v*(eta) = argmin F_eta for each step size, F_eta(v) = E f(v - eta eps), in one compiled call.

    `objectives.smoothed(f, noise, step_sizes)` is a batch of S objectives (the step size is a
    traced leaf); the grid search and Newton refinement are `vmap`ped over it, so a new grid of
    the same length does not recompile. `np.asarray(result)` has shape `(S, dim)`.

    **Arguments:**

    - `f`, `noise`, `step_sizes`: as in `objectives.smoothed` (step sizes: a number or a 1-D vector).
    - `bounds`: the search box (default f's closed-form `search_box`).
    - `method`, `order`, `n_samples`, `smoothing_seed`: passed to `objectives.smoothed`.
    - `**search`: the fields of `analysis.search.SearchOptions` (`n_grid`, default 1001 in 1-D
      and 101 in 2-D; `n_starts`, default 64; `n_candidates`, default the 16 lowest grid minima;
      `n_iterations`, `seed`, `tolerance`, `tie_tolerance` as in `minimizers`).
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
    path = _solution_path(f, batch, eta, bounds, SearchOptions.of(search, **SOLUTION_SEARCH))
    return _at_chains(path, chains, mask, target, near_tie)


def penalized_solution(
    f: Objective,
    noise,
    step_sizes,
    bounds=None,
    *,
    chains=None,
    mask=None,
    target: str = "global",
    near_tie: float = NEAR_TIE,
    **search,
) -> SolutionPath:
    """argmin P_eta for each step size, P_eta = f + (eta^2/2) tr(Sigma Hess f); as `smoothed_solution`
    (`chains`, `target="local"`: the same near-tie check and local target, on P_eta; `**search`:
    the same search options and defaults)."""
    eta = check.step_sizes("step_sizes", step_sizes, allow_zero=True)
    batch = objectives.penalized(f, noise, eta)
    path = _solution_path(f, batch, eta, bounds, SearchOptions.of(search, **SOLUTION_SEARCH))
    return _at_chains(path, chains, mask, target, near_tie)
