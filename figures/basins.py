"""Basin occupancy against the step size: the share of chains (or of the exact law) in each basin."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from figures.style import estimator_style, finish, log_ticks, set_title, styled

__all__ = ["plot_basins"]


def _basin_label(label) -> str:
    """A label as given, or a point's coordinates as plain numbers (never NumPy reprs)."""
    if isinstance(label, str):
        return label
    coordinates = np.asarray(label, dtype=float).reshape(-1)
    text = ", ".join(f"{value:.3g}" for value in coordinates)
    return f"x = {text}" if coordinates.size == 1 else f"({text})"


@styled
def plot_basins(step_sizes, occupancy: dict, basin_labels, *, n_chains=None, title=None, ax=None, path=None):
    """Fraction of chains in each basin vs eta: one panel per basin, one line per estimator.

    **Arguments:**

    - `step_sizes`: `(S,)`.
    - `occupancy`: estimator -> `(S, n_basins)` fractions (e.g. from `basin_occupancy`).
    - `basin_labels`: one label per basin: a string, or the basin's point (drawn as plain numbers).
    - `n_chains`: the number of chains behind each fraction (an int, `(S,)`, or a dict
      estimator -> either); with it every point gets its binomial standard error
      sqrt(p (1 - p) / n) as an error bar.
    - `title`: a first title line for every panel (above "basin: ...").
    - `ax`: a sequence of `n_basins` Axes to draw into (e.g. a row of the user's grid).
    - `path`: as in `plot_tradeoff`.

    **Returns:** the new `Figure`, or the sequence `ax` when given.
    """
    basin_labels = [_basin_label(label) for label in basin_labels]
    eta = np.asarray(step_sizes, float)
    for name, fractions in occupancy.items():
        if np.shape(fractions) != (eta.size, len(basin_labels)):
            raise ValueError(f"occupancy[{name!r}] must have shape ({eta.size}, {len(basin_labels)}), got {np.shape(fractions)}")
    counts = {}
    for name in occupancy:
        given = n_chains.get(name) if isinstance(n_chains, dict) else n_chains
        if given is not None:
            count = np.asarray(given, float)
            if count.ndim > 1 or count.size not in (1, eta.size) or not np.all(count >= 1):
                raise ValueError(f"n_chains for {name!r} must be a count >= 1 or {eta.size} of them (one per step size), got {given!r}")
            counts[name] = np.broadcast_to(count, eta.shape)
    if ax is None:
        n = len(basin_labels)
        fig, grid = plt.subplots(1, n, figsize=(3.6 * n, 3.2), squeeze=False)
        axes, drawn_on = list(grid[0]), fig
    else:
        axes = [ax] if isinstance(ax, Axes) else list(np.ravel(np.asarray(ax, dtype=object)))
        if len(axes) != len(basin_labels) or not all(isinstance(a, Axes) for a in axes):
            raise ValueError(f"ax must be a sequence of {len(basin_labels)} Axes (one per basin), got {ax!r}")
        fig, drawn_on = axes[0].figure, ax
    for b, (panel, label) in enumerate(zip(axes, basin_labels)):
        for name, fractions in occupancy.items():
            style = estimator_style(name)
            p = np.asarray(fractions, float)[:, b]
            error = np.sqrt(p * (1 - p) / counts[name]) if name in counts else None
            panel.errorbar(eta, p, yerr=error, color=style["color"], marker=style["marker"], ms=3.5, capsize=2, elinewidth=0.8,
                           label=style["label"])
        panel.set(xscale="log", ylim=(-0.03, 1.03), xlabel=r"step size $\eta$")
        set_title(panel, title, f"basin: {label}")
        log_ticks(panel, eta)
    axes[0].set_ylabel("fraction of chains" + (r" ($\pm$ binomial se)" if counts else ""))
    axes[0].legend(frameon=False, fontsize=7)
    return finish(fig, drawn_on, path)
