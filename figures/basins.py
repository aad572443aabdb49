"""Basin occupancy against the step size: the share of chains (or of the exact law) in each basin."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from figures.style import estimator_style, finish, log_ticks, set_title, styled

__all__ = ["basin_names", "plot_basins"]

# Half a marker (ms = 4 at the style's 3.2-inch panel height) on the [-0.03, 1.03] axis: error
# bars shorter than this hide inside their marker, and the legend says so.
_INSIDE_MARKER = 0.012


def _point(label) -> str:
    coordinates = np.asarray(label, dtype=float).reshape(-1)
    text = ", ".join(f"{value:.3g}" for value in coordinates)
    return f"x = {text}" if coordinates.size == 1 else f"({text})"


def _basin_label(label) -> str:
    """A label as given, or "basin: " and a point's coordinates as plain numbers (never NumPy reprs)."""
    return label if isinstance(label, str) else f"basin: {_point(label)}"


def basin_names(points, sharpness) -> list[str]:
    """Panel titles that say what each basin is: its minimizer and curvature, with "sharp" and
    "flat" for the sharpest and the flattest (e.g. "sharp well at x = -1: f'' = 20").

    `points`: `(n, d)` minimizers; `sharpness`: `(n,)` their Hessian traces (`f''` in 1-D;
    `analysis.minimizers(f).hessian_traces`)."""
    points = np.asarray(points, dtype=float).reshape(len(sharpness), -1)
    sharpness = np.asarray(sharpness, dtype=float)
    what = "f''" if points.shape[1] == 1 else r"tr $\nabla^2 f$"
    names = []
    for k, (point, curvature) in enumerate(zip(points, sharpness)):
        kind = "well"
        if sharpness.size > 1 and np.ptp(sharpness) > 0:
            kind = "sharp well" if k == int(np.argmax(sharpness)) else "flat well" if k == int(np.argmin(sharpness)) else "well"
        names.append(f"{kind} at {_point(point)}: {what} = {curvature:.3g}")
    return names


@styled
def plot_basins(step_sizes, occupancy: dict, basin_labels, *, n_chains=None, title=None, ax=None, path=None):
    """Fraction of chains in each basin vs eta: one panel per basin, one line per estimator.

    **Arguments:**

    - `step_sizes`: `(S,)`.
    - `occupancy`: estimator -> `(S, n_basins)` fractions (e.g. from `basin_occupancy`).
    - `basin_labels`: one title per basin: a string (e.g. from `basin_names`: "sharp well at
      x = -1: f'' = 20"), or the basin's point (titled "basin: x = ..." in plain numbers).
    - `n_chains`: the number of chains behind each fraction (an int, `(S,)`, or a dict
      estimator -> either); with it every point gets its binomial standard error
      sqrt(p (1 - p) / n) as an error bar, drawn over the lines; the legend states the largest
      one, and that the bars hide inside the markers when all are that small.
    - `title`: a first title line for every panel (above the basin's).
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
        fig, grid = plt.subplots(1, n, figsize=(3.6 * n + 1.6, 3.2), squeeze=False)  # + the legend beside
        axes, drawn_on = list(grid[0]), fig
    else:
        axes = [ax] if isinstance(ax, Axes) else list(np.ravel(np.asarray(ax, dtype=object)))
        if len(axes) != len(basin_labels) or not all(isinstance(a, Axes) for a in axes):
            raise ValueError(f"ax must be a sequence of {len(basin_labels)} Axes (one per basin), got {ax!r}")
        fig, drawn_on = axes[0].figure, ax
    largest = 0.0
    for b, (panel, label) in enumerate(zip(axes, basin_labels)):
        for name, fractions in occupancy.items():
            style = estimator_style(name)
            p = np.asarray(fractions, float)[:, b]
            error = np.sqrt(p * (1 - p) / counts[name]) if name in counts else None
            if error is not None:
                error = np.where(error > 0, error, np.nan)  # p = 0 or 1: no bar, no lone cap on the marker
            if error is not None and np.any(np.isfinite(error)):
                largest = max(largest, float(np.nanmax(error)))
            # Thin, faint lines and bars drawn over them (black caps): a bar a few markers long
            # is seen, not hidden under the next estimator's line.
            drawn = panel.errorbar(eta, p, yerr=error, color=style["color"], marker=style["marker"], ms=4, lw=1.0, alpha=0.9,
                                   capsize=3, elinewidth=1.2, ecolor="0.15", capthick=1.0, label=style["label"])
            for bar in (*drawn[1], *drawn[2]):
                bar.set_zorder(3)
        panel.set(xscale="log", ylim=(-0.03, 1.03), xlabel=r"step size $\eta$")
        set_title(panel, title, label)
        log_ticks(panel, eta)
    axes[0].set_ylabel("fraction of chains" + (r" ($\pm$ binomial se)" if counts else ""))
    note = None
    if counts:
        note = f"bars: binomial se, at most {largest:.2g}" + (" (inside the markers)" if largest < _INSIDE_MARKER else "")
    # Beside the last panel: the curves fill each panel from corner to corner.
    axes[-1].legend(frameon=False, fontsize=7, title=note, title_fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return finish(fig, drawn_on, path)
