"""Figures for papers, in one style: matplotlib only, colour-blind-safe, labelled axes.

Every function draws into a new figure, or into the user's axes given as `ax=` (one `Axes`;
`plot_basins` takes one per basin), so it can be one panel of a multi-panel figure. It returns
what it drew on: the new `Figure`, or the given `ax` (the sequence for `plot_basins`). Given
`path` (with or without a .png/.pdf suffix) it also saves `path.png` and `path.pdf` of the
figure drawn on, each written atomically. Tables are `analysis.ErrorTable`s or pandas
DataFrames with the same columns.

- `figures.style`: the house style (`RCPARAMS`, `style()`, `ESTIMATOR_STYLE`) and `save`;
- `figures.curves`: error against the step size (`plot_tradeoff`) and the horizon (`plot_rates`);
- `figures.landscape`: landscapes, where chains end, 2-D valleys;
- `figures.basins`: basin occupancy against the step size.
"""

from figures.basins import basin_names, plot_basins
from figures.curves import plot_rates, plot_tradeoff
from figures.landscape import landscape_bounds, plot_chains, plot_landscape, plot_valley
from figures.style import ESTIMATOR_STYLE, OKABE_ITO, RCPARAMS, estimator_style, house_style, save, style, tidy_log_axes

__all__ = [
    "ESTIMATOR_STYLE",
    "OKABE_ITO",
    "RCPARAMS",
    "estimator_style",
    "style",
    "house_style",
    "landscape_bounds",
    "save",
    "tidy_log_axes",
    "basin_names",
    "plot_tradeoff",
    "plot_rates",
    "plot_landscape",
    "plot_chains",
    "plot_basins",
    "plot_valley",
]
