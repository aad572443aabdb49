"""Ties between minima, and the near-tie trap: chains in one basin, v*(eta) in another.

v*(eta) = argmin F_eta is a global quantity. When two basins of F_eta have nearly the same
value, v*(eta) can sit in a basin that no chain visits within the run (the barrier between them
is high); then every estimator's error to v*(eta) is the distance between the basins, not a
property of the estimator, and a tradeoff plot shows a spike that comes from how the target is
defined. `local_path` detects this and gives the other target:

- the chains are assigned, per step size, to the nearest minimizer of F_eta (`Minima` of every
  step size, as `SolutionPath.minima` keeps them); the majority basin is where the chains are;
- the local target is that basin's minimizer of F_eta (equal to v*(eta) when the majority of
  the chains sits in v*(eta)'s basin);
- when the majority basin is not v*(eta)'s and the margin F_eta(local) - F_eta(v*) is at most
  `near_tie` x max(1, |F_eta(v*)|), a `NearTieWarning` names the step size, both minimizers,
  their values and the margin.

This module knows `SolutionPath` and `Minima` by their fields only (`analysis.minima` uses it).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from objectives import validation as check

__all__ = ["NearTieWarning", "TieWarning", "local_path"]

#: The default relative margin under which a basin mismatch is warned about (5% of max(1, |F|)).
NEAR_TIE = 0.05


class TieWarning(RuntimeWarning):
    """Two distinct minima have the same value within tolerance: the global minimizer is ambiguous."""


class NearTieWarning(TieWarning):
    """Most chains sit in a basin of F_eta other than v*(eta)'s, and the two basins' values are
    close: errors to v*(eta) measure the distance between basins (use `target="local"`)."""


def _check_chains(path, chains, mask) -> tuple[np.ndarray, np.ndarray]:
    size, dim = path.points.shape
    chains = np.asarray(chains, dtype=np.float64)
    if chains.ndim != 3 or chains.shape[0] != size or chains.shape[2] != dim:
        raise ValueError(
            f"chains must have shape (n_step_sizes, n_chains, dim) = ({size}, C, {dim}), such as result.x, got {chains.shape}"
        )
    keep = ~np.isnan(chains).any(axis=-1) if mask is None else np.asarray(mask, bool) & ~np.isnan(chains).any(axis=-1)
    if keep.shape != chains.shape[:2]:
        raise ValueError(f"mask must have shape {chains.shape[:2]} (step sizes, chains), such as ~result.diverged, got {np.shape(mask)}")
    return chains, keep


def local_path(path, chains, *, mask=None, near_tie: float = NEAR_TIE, stacklevel: int = 2):
    """The minimizer of F_eta in the basin where most chains are, per step size (see the module
    docstring); warns `NearTieWarning` where that basin is not v*(eta)'s by a small margin.

    **Arguments:**

    - `path`: a `SolutionPath` of `smoothed_solution` or `penalized_solution` (its `minima`).
    - `chains`: `(S, C, dim)` points of the chains, e.g. `result.x` (where the chains are).
    - `mask`: `(S, C)` bool, the chains to count, e.g. `~result.diverged` (default all finite).
    - `near_tie`: the relative margin under which a mismatch is warned about (>= 0).

    **Returns:** a `SolutionPath` with `target="local"`: `points`, `values`, `hessian_traces` of the
    majority basin's minimizer; `chain_fraction` `(S,)` the fraction of counted chains there
    (NaN where no chain counts: then v*(eta) is kept); `margin` `(S,)` F_eta(local) - F_eta(v*).
    """
    near_tie = check.non_negative_float("near_tie", near_tie)
    chains, keep = _check_chains(path, chains, mask)
    points, values, traces = path.points.copy(), path.values.copy(), path.hessian_traces.copy()
    fraction, margin = np.full(len(points), np.nan), np.zeros(len(points))
    warned = []
    for s, minima in enumerate(path.minima):
        counted = chains[s][keep[s]]
        if counted.shape[0] == 0 or len(minima) == 0:
            continue
        nearest = np.argmin(np.sum((counted[:, None, :] - minima.points[None]) ** 2, axis=-1), axis=-1)
        counts = np.bincount(nearest, minlength=len(minima))
        best = int(np.argmax(counts))  # ties go to the lower F_eta (minima are sorted by value)
        fraction[s] = counts[best] / counted.shape[0]
        points[s], values[s], traces[s] = minima.points[best], minima.values[best], minima.hessian_traces[best]
        margin[s] = minima.values[best] - minima.values[0]
        if best != 0 and margin[s] <= near_tie * max(1.0, abs(minima.values[0])):
            warned.append(s)
    for s in warned:
        minima, eta = path.minima[s], path.step_sizes[s]
        relative = margin[s] / max(1.0, abs(minima.values[0]))
        warnings.warn(
            f"near tie at step_size={eta:g}: {fraction[s]:.0%} of the chains sit in the basin of {points[s].tolist()} "
            f"(F_eta = {values[s]:.6g}), while v*(eta) = {minima.points[0].tolist()} (F_eta = {minima.values[0]:.6g}) "
            f"is lower by only {margin[s]:.3g} ({relative:.1%} of max(1, |F_eta(v*)|), under near_tie={near_tie:g}); "
            "errors to v*(eta) measure the distance between the basins. target='local' gives the minimizer in the chains' basin",
            NearTieWarning,
            stacklevel=stacklevel,
        )
    return dataclasses.replace(
        path, points=points, values=values, hessian_traces=traces, target="local", chain_fraction=fraction, margin=margin
    )
