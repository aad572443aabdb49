"""The figures a sweep config may ask for (`[output] figures`): one table, name -> how it is drawn.

`FIGURES[name]` is a `FigureKind`: the function that draws it from a `Drawing` (what
`asgd.experiment_figures.draw_figures` reads from a result folder once) and what it needs. The
config's validator takes the names and the needs (1-D objective, additive noise) from this
table, and `draw_figures` calls the function, so a new figure is one function and one entry.

A draw function returns `[(file stem, figure)]`: one figure, or several (`rates` draws one per
step size it shows); the caller saves them as `<stem>.png` and `<stem>.pdf`.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import matplotlib.pyplot as plt
import numpy as np

import figures as plots
from analysis.basins import basin_occupancy
from analysis.minima import minimizers
from objectives import penalized, smoothed

__all__ = ["FIGURES", "Drawing", "FigureKind"]


class Drawing(NamedTuple):
    """What the figures of one result folder are drawn from.

    - `objective`, `noise`: the config's, built;
    - `step_sizes` `(S,)`, `horizon` (the longest run's T), `checkpoints` (its checkpoint steps);
    - `panels`: (title, `ErrorTable`, [`SimulationResult`]) per panel: one pooled panel, or one
      per seed with `[output] per_seed`; `results`: every seed's saved point (None where no
      figure asked for points);
    - `about`: the title's "name: objective, noise"; `drawn`: the estimators drawn; `ylabel`;
    - `law`: estimator -> (step sizes, mse[, reached]) exact curves at T = horizon, or {};
      `closed`: the quadratic's closed forms estimator -> `(S, K)` at `checkpoints`, or None;
    - `critical`: (eta, legend label) of a critical step size known in closed form, or None.
    """

    objective: object
    noise: object
    step_sizes: np.ndarray
    horizon: int
    checkpoints: list
    panels: list
    results: list
    about: str
    drawn: tuple
    ylabel: str
    law: dict
    closed: dict | None
    critical: tuple | None


class FigureKind(NamedTuple):
    """One figure: `draw(drawing) -> [(stem, figure)]`; `one_d`: it draws f over a line (1-D
    objectives only); `additive_only`: it draws F_eta and P_eta (additive noise only);
    `from_points`: it reads the saved sweep points (`points/`), not `results.csv` alone."""

    draw: Callable[[Drawing], list]
    one_d: bool = False
    additive_only: bool = False
    from_points: bool = False


# Why an average's fitted slope on a rates figure lies below -1 (-1.27 on quadratic_rates at
# eta = 0.2): its error is variance / T plus the start's bias, which decays as 1/T^2.
_RATES_NOTE = ("an average's error is variance / T plus the bias of\n"
               r"its start, of order $|x_0 - x^*|^2/(\eta\lambda T)^2$: its slope lies" "\n"
               r"below $-1$ until $\eta\lambda T \gg 1$ ($\lambda$: smallest curvature)")


def _panels(n_rows: int, n_columns: int, size=(5.0, 3.4)):
    """A figure of n_rows x n_columns axes in the house style."""
    with plots.style():
        return plt.subplots(n_rows, n_columns, figsize=(size[0] * n_columns, size[1] * n_rows), squeeze=False)


def _pooled_chains(results: list, name: str) -> tuple[np.ndarray, np.ndarray]:
    """One estimator's final points `(S, sum_s C_s, d)` and the divergence mask of every seed, concatenated."""
    return (np.concatenate([r.estimator(name) for r in results], axis=1),
            np.concatenate([np.asarray(r.diverged, bool) for r in results], axis=1))


def tradeoff(d: Drawing) -> list:
    """The error at T = horizon against the step size, with the exact curves where known."""
    fig, axes = _panels(1, len(d.panels), size=(7.5, 3.4))
    critical = dict(critical_step_size=d.critical[0], critical_label=d.critical[1]) if d.critical else {}
    for ax, (title, table, _) in zip(axes[0], d.panels):
        plots.plot_tradeoff(table.select(n_steps=d.horizon), d.law or None, estimators=d.drawn, ylabel=d.ylabel, title=title, ax=ax, **critical)
    return [("tradeoff", fig)]


def rates(d: Drawing) -> list:
    """The error against the checkpoint step at the middle and the largest step size, with fitted slopes."""
    drawn, fit_from = [], max(1, d.horizon // 100)
    for eta in sorted({d.step_sizes[len(d.step_sizes) // 2], d.step_sizes[-1]}):
        fig, axes = _panels(1, len(d.panels), size=(7.5, 3.4))
        for ax, (title, table, _) in zip(axes[0], d.panels):
            exact = None
            if d.closed is not None:
                s = int(np.argmin(np.abs(d.step_sizes - eta)))
                exact = {name: (np.asarray(d.checkpoints, float), values[s]) for name, values in d.closed.items() if name in d.drawn}
            plots.plot_rates(table, float(eta), fit_from=fit_from, theory=exact, estimators=d.drawn, ylabel=d.ylabel, title=title, ax=ax)
            if any(name in ("x_avg", "v_avg") for name in d.drawn):
                ax.get_legend().set_title(f"slopes fitted on T >= {fit_from}; " + _RATES_NOTE, prop={"size": 7})
        drawn.append((f"rates_eta{eta:g}", fig))
    return drawn


def landscape(d: Drawing) -> list:
    """f, F_eta at a few step sizes and P_eta at the smallest, over where the averaged chains ended."""
    f, noise = d.objective, d.noise
    shown = d.step_sizes[:: max(1, len(d.step_sizes) // 3)]
    wells = minimizers(f).points
    # Scaled to the wells, widened to where most averaged chains ended (1% to 99%): the last
    # iterates at a large eta would stretch it until the wells look tiny.
    averaged, diverged = _pooled_chains(d.results, "x_avg")
    fig = plots.plot_landscape(
        f, smoothed=[(float(e), smoothed(f, noise, float(e))) for e in shown],
        penalized=[(float(shown[0]), penalized(f, noise, float(shown[0])))],
        minimizers=wells, bounds=plots.landscape_bounds(wells, averaged[~diverged]),
        title=f"{d.about}\nT = {d.horizon}, {averaged.shape[1]} chains per step size; x range: where their averages ended",
    )
    return [("landscape", fig)]


def chains(d: Drawing) -> list:
    """Where the chains' last iterates and averages ended, over f."""
    fig, axes = _panels(1, len(d.panels), size=(5.5, 3.6))
    for ax, (title, _, chosen) in zip(axes[0], d.panels):
        plots.plot_chains(d.objective, chosen, -1, estimators=("x", "x_avg"), title=title, ax=ax)
    return [("chains", fig)]


def basins(d: Drawing) -> list:
    """The share of chains in each well against the step size, one panel per well."""
    found = minimizers(d.objective)
    order = np.argsort(found.points[:, 0])
    wells = found.points[order]
    names = plots.basin_names(wells, found.hessian_traces[order])
    fig, axes = _panels(len(d.panels), len(wells), size=(4.4, 3.4))  # the legend beside the last panel
    for row, (title, _, chosen) in zip(axes, d.panels):
        occupancy, counted = {}, {}
        for name in d.drawn:
            points, diverged = _pooled_chains(chosen, name)
            occupancy[name] = basin_occupancy(points, wells, mask=~diverged)
            counted[name] = np.sum(~diverged, axis=1)
        n_chains = f"{sum(r.n_chains for r in chosen)} chains" + (f" ({len(chosen)} seeds pooled)" if len(chosen) > 1 else "")
        plots.plot_basins(d.step_sizes, occupancy, names, n_chains=counted, title=f"{title}\n{n_chains}, T = {d.horizon}", ax=row)
    return [("basins", fig)]


#: Every figure a sweep may draw, in the order `asgd list` and the config reference name them.
FIGURES: dict[str, FigureKind] = {
    "tradeoff": FigureKind(tradeoff),
    "rates": FigureKind(rates),
    "landscape": FigureKind(landscape, one_d=True, additive_only=True, from_points=True),
    "chains": FigureKind(chains, one_d=True, from_points=True),
    "basins": FigureKind(basins, from_points=True),
}
