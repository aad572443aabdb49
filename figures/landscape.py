"""Landscapes and where the chains end: a 1-D objective with its smoothings and minima
(`plot_landscape`), the chains' end points over it (`plot_chains`), and paths on a 2-D valley
(`plot_valley`)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from figures.style import OKABE_ITO, estimator_style, finish, new_axes, set_title, styled, values_on

__all__ = ["landscape_bounds", "plot_chains", "plot_landscape", "plot_valley"]


def landscape_bounds(minimizers, points=None) -> tuple[float, float]:
    """An x range for a 1-D landscape, scaled to its wells: the minimizers with half their spread
    (at least 1) on either side, widened to the 1st-99th percentile of `points` (e.g. where the
    averaged chains ended) when given; (-2.5, 2.5) without minimizers or points."""
    lo, hi = np.inf, -np.inf
    if minimizers is not None and np.size(minimizers):
        wells = np.asarray(minimizers, dtype=float).reshape(-1)
        pad = max(0.5 * (wells.max() - wells.min()), 1.0)
        lo, hi = wells.min() - pad, wells.max() + pad
    if points is not None and np.size(points):
        ends = np.percentile(np.asarray(points, dtype=float).reshape(-1), [1, 99])
        lo, hi = min(lo, ends[0]), max(hi, ends[1])
    return (float(lo), float(hi)) if lo < hi else (-2.5, 2.5)


@styled
def plot_landscape(f, *, smoothed=(), penalized=(), minimizers=None, bounds=None, n_points: int = 801, title=None, ax=None, path=None):
    """A 1-D objective f with its smoothings F_eta and penalized objectives P_eta, minima marked.

    **Arguments:**

    - `f`: a 1-D objective (anything with `.value` on `(n, 1)`), or a callable.
    - `smoothed`, `penalized`: sequences of (eta, F) where F is an objective, a callable of the
      grid `(n_points, 1)`, or its `n_points` values on the grid. The global minimum of each
      F_eta on the grid is marked with a dot.
    - `minimizers`: points `(n, 1)` (local minima of f), marked with crosses.
    - `bounds`: the x range; default scaled to the wells, `landscape_bounds(minimizers)`: the
      minimizers with half their spread (at least 1) on either side. `n_points`: the grid size.
    - `title`: the title (e.g. the objective, the noise and the run); the legend, beside the
      axes, names every curve and marker.
    - `ax`, `path`: as in `plot_tradeoff`.

    **Returns:** the new `Figure`, or `ax` when given.
    """
    if getattr(f, "dim", 1) != 1:
        raise ValueError(f"plot_landscape draws 1-D objectives, got f of dim={f.dim}")
    fig, ax, made = new_axes(ax, size=(7.0, 3.6))
    bounds = landscape_bounds(minimizers) if bounds is None else bounds
    grid = np.linspace(bounds[0], bounds[1], n_points)[:, None]
    ax.plot(grid[:, 0], values_on(f, grid, "f"), color="k", lw=1.8, label="$f$")
    colors = plt.cm.viridis(np.linspace(0.1, 0.85, max(len(smoothed), len(penalized), 1)))
    for color, (eta, objective) in zip(colors, smoothed):
        values = values_on(objective, grid, f"smoothed objective at eta={eta:g}")
        ax.plot(grid[:, 0], values, color=color, lw=1.3, label=rf"$F_\eta$, $\eta$ = {eta:g}")
        ax.plot(grid[np.argmin(values), 0], values.min(), "o", color=color, ms=4, gid="smoothed_minimizer")
    for color, (eta, objective) in zip(colors, penalized):
        values = values_on(objective, grid, f"penalized objective at eta={eta:g}")
        ax.plot(grid[:, 0], values, "--", color=color, lw=1.0, label=rf"$P_\eta$, $\eta$ = {eta:g}")
    if minimizers is not None:
        points = np.asarray(minimizers, dtype=float).reshape(-1, 1)
        ax.plot(points[:, 0], values_on(f, points, "f"), "kx", ms=6, label="local minima of $f$")
    handles, labels = ax.get_legend_handles_labels()
    if len(smoothed):
        # One entry for the dots: each sits on its F_eta, in its colour.
        handles.append(Line2D([], [], linestyle="", marker="o", ms=4, color="0.35"))
        labels.append(r"$v^*(\eta)$ = argmin $F_\eta$ (dot, its colour)")
    ax.set(xlabel="$x$", ylabel="objective value", xlim=bounds)
    if title:
        ax.set_title(title)
    ax.legend(handles, labels, frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return finish(fig, fig if made else ax, path)


@styled
def plot_chains(f, result, step_size_index: int = -1, *, estimators=("x", "x_avg"), bounds=None, bins: int = 120, title=None, ax=None,
                path=None):
    """Densities of the final estimators of all non-diverged chains over a 1-D landscape.

    **Arguments:**

    - `f`: the 1-D objective, drawn grey and rescaled to the height of the densities (its
      values are not read off an axis: the shape says where the wells are).
    - `result`: a `SimulationResult` of a 1-D objective, or a sequence of them (several seeds
      of the same sweep): their chains are pooled, and the title says how many seeds.
    - `step_size_index`: which step size of the result.
    - `estimators`: the estimators to histogram.
    - `bounds`: the x range (default: the range of the points, padded); `bins`: histogram bins.
    - `title`: the first line of the title; the second always says the chains, eta and T.
    - `ax`, `path`: as in `plot_tradeoff`.

    **Returns:** the new `Figure`, or `ax` when given.
    """
    results = list(result) if isinstance(result, Sequence) else [result]
    if not results:
        raise ValueError("result must be a SimulationResult or a non-empty sequence of them, got an empty sequence")
    for r in results:
        if r.dim != 1:
            raise ValueError(f"plot_chains draws 1-D results, got dim={r.dim}")
    etas = {float(r.step_sizes[step_size_index]) for r in results}
    if len(etas) != 1:
        raise ValueError(f"result: the pooled results must share their step sizes, got eta = {sorted(etas)} at index {step_size_index}")
    fig, ax, made = new_axes(ax, size=(5.5, 3.6))
    keeps = [~np.asarray(r.diverged[step_size_index], bool) for r in results]
    values = {
        name: np.concatenate([np.asarray(r.estimator(name)[step_size_index][keep, 0], float) for r, keep in zip(results, keeps)])
        for name in estimators
    }
    if bounds is None:
        everything = np.concatenate(list(values.values()))
        bounds = (everything.min() - 0.2, everything.max() + 0.2) if everything.size else (-1.0, 1.0)
    lo, hi = bounds
    edges = np.linspace(lo, hi, bins + 1)
    for name, points in values.items():
        style = estimator_style(name)
        ax.hist(points, bins=edges, density=True, histtype="stepfilled", alpha=0.35, color=style["color"], label=style["label"])
    # f on the densities' own axis (no second y axis): scaled to span 90% of their height.
    grid = np.linspace(lo, hi, 600)[:, None]
    landscape = values_on(f, grid, "f")
    top = ax.get_ylim()[1]
    spread = np.ptp(landscape) or 1.0
    ax.plot(grid[:, 0], 0.9 * top * (landscape - landscape.min()) / spread, color="0.3", lw=1.2, label="$f$ (rescaled)", gid="landscape")
    eta = etas.pop()
    kept, ran = sum(int(k.sum()) for k in keeps), sum(r.n_chains for r in results)
    pooled = f", {len(results)} seeds pooled" if len(results) > 1 else ""
    ax.set(xlim=(lo, hi), ylim=(0, top), xlabel="$x$", ylabel="density of chains")
    set_title(ax, title, rf"{kept} of {ran} chains non-diverged{pooled}; $\eta$ = {eta:g}, T = {results[0].n_steps}")
    ax.legend(frameon=False, loc="upper left")
    return finish(fig, fig if made else ax, path)


@styled
def plot_valley(f, trajectories, averaged_paths=None, *, bounds=((-2.0, 2.0), (-1.0, 3.0)), levels: int = 30, ax=None, path=None):
    """Contours of a 2-D objective with a few SGD paths and their running averages.

    **Arguments:**

    - `f`: a 2-D objective (`.value` on `(..., 2)`), or a callable of such points.
    - `trajectories`: `(n, T+1, 2)` iterates of n chains.
    - `averaged_paths`: optional `(n, T+1, 2)` running averages, drawn thick and black with
      their end point starred.
    - `bounds`: ((x1 lo, x1 hi), (x2 lo, x2 hi)); `levels`: contour levels of log(1 + f - min f).
    - `ax`, `path`: as in `plot_tradeoff`.

    **Returns:** the new `Figure`, or `ax` when given.
    """
    trajectories = np.asarray(trajectories, float)
    if trajectories.ndim != 3 or trajectories.shape[-1] != 2:
        raise ValueError(f"trajectories must have shape (n, T+1, 2), got {trajectories.shape}")
    fig, ax, made = new_axes(ax, size=(5.0, 4.2))
    (x_lo, x_hi), (y_lo, y_hi) = bounds
    xs, ys = np.linspace(x_lo, x_hi, 300), np.linspace(y_lo, y_hi, 300)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1)
    values = np.asarray(f.value(grid) if hasattr(f, "value") else f(grid), float)
    ax.contour(xs, ys, np.log1p(values - values.min()), levels=levels, colors="0.6", linewidths=0.6)
    for i, path_i in enumerate(trajectories):
        ax.plot(path_i[:, 0], path_i[:, 1], lw=0.5, alpha=0.6, color=OKABE_ITO[1 + i % 7], label="SGD paths" if i == 0 else None)
    if averaged_paths is not None:
        for i, path_i in enumerate(np.asarray(averaged_paths, float)):
            ax.plot(path_i[:, 0], path_i[:, 1], lw=1.8, color="k", label="running averages" if i == 0 else None)
            ax.plot(path_i[-1, 0], path_i[-1, 1], "k*", ms=9)
    ax.set(xlim=(x_lo, x_hi), ylim=(y_lo, y_hi), xlabel="$x_1$", ylabel="$x_2$")
    ax.legend(frameon=False, loc="upper right")
    return finish(fig, fig if made else ax, path)
