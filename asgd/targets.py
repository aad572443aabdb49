"""The targets a sweep measures its errors to (`[target] kind`): one table, name -> what it is.

`TARGETS[name]` is a `TargetKind`. A target either moves with the step size (`solution`: the
`SolutionPath` of v*(eta) = argmin F_eta or of argmin P_eta, from `analysis.solutions`) or is
one point for every step size (`point`). The config's validator takes the names and the
restrictions from this table and `asgd.sweep` / the figures ask it, so a new target is one entry.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from analysis import minima, solutions

__all__ = ["TARGETS", "TargetKind"]


class TargetKind(NamedTuple):
    """One target.

    - `label`: what the figures call it ("mean squared distance to <label>");
    - `solution(f, noise, step_sizes)`: its `SolutionPath` where it depends on the step size,
      else None, and then `point(config)`: the one point `(dim,)` of every step size;
    - `additive_only`: it needs F_eta or P_eta, which exist for additive noise only;
    - `per_point`: taken from each sweep point's chains (the minimizer of F_eta in their basin),
      so it names no single target per step size (the exact law cannot use it);
    - `needs_point`: the config gives it (`target.point`);
    - `quadratic_centre`: on a quadratic it is the minimizer c (the closed forms' centre).
    """

    label: str
    solution: Callable | None = None
    point: Callable | None = None
    additive_only: bool = False
    per_point: bool = False
    needs_point: bool = False
    quadratic_centre: bool = False


def _minimizer(config) -> np.ndarray:
    """argmin f: the objective's closed form where it has one, else the global search."""
    f = config.objective
    return np.asarray(f.minimizer(f.params) if f.minimizer else minima.global_minimizer(f), dtype=np.float64)


def _given(config) -> np.ndarray:
    return np.asarray(config.target_point, dtype=np.float64)


#: Every target a sweep may measure against, in the order the config reference names them.
TARGETS: dict[str, TargetKind] = {
    "minimizer": TargetKind(r"argmin $f$", point=_minimizer, quadratic_centre=True),
    "smoothed": TargetKind(r"$v^*(\eta)$", solution=solutions.smoothed_solution, additive_only=True, quadratic_centre=True),
    "local": TargetKind(r"argmin $F_\eta$ in the chains' basin", solution=solutions.smoothed_solution, additive_only=True, per_point=True),
    "penalized": TargetKind(r"argmin $P_\eta$", solution=solutions.penalized_solution, additive_only=True, quadratic_centre=True),
    "point": TargetKind("the target", point=_given, needs_point=True),
}
