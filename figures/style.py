"""The house style of every figure, and what every plot function shares: a new figure or the
caller's axes, saving PNG and PDF atomically, titles, log ticks.

Figures for papers, in one style: matplotlib only, colour-blind-safe, labelled axes.

Every function draws into a new figure, or into the user's axes given as `ax=` (one `Axes`;
`plot_basins` takes one per basin), so it can be one panel of a multi-panel figure. It returns
what it drew on: the new `Figure`, or the given `ax` (the sequence for `plot_basins`). Given
`path` (with or without a .png/.pdf suffix) it also saves `path.png` and `path.pdf` of the
figure drawn on, each written atomically (temporary file, then rename). Tables are
`ErrorTable`s or pandas DataFrames with the same columns.

The house style is public: `RCPARAMS`, applied by the `style()` context manager (or by
`matplotlib.rc_context(RCPARAMS)` / `plt.style.use(RCPARAMS)`). A figure made inside it keeps
it when saved outside it: fonts are fixed on the artists when they are made, and the figure
carries a constrained layout engine (`figure.constrained_layout.use`) that fits titles, labels
and the legends beside the axes into the canvas at every draw, `fig.savefig` included.
(`savefig.bbox = "tight"` is not in the style on purpose: savefig reads it at save time, so
it would not follow the figure.) One colour and marker per estimator (Okabe-Ito palette,
`ESTIMATOR_STYLE`), the same in every figure; sequences of step sizes use the viridis map
(ordered, colour-blind-safe). Nothing here picks a backend: under Agg (headless) everything
works, and figures are left open for the caller (close them with `plt.close(fig)` in loops).
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import Formatter, LogFormatterSciNotation, NullFormatter

from simulate.files import write_bytes

__all__ = ["ESTIMATOR_STYLE", "OKABE_ITO", "RCPARAMS", "estimator_style", "finish", "house_style", "log_ticks", "new_axes", "save", "set_title", "style", "styled", "tidy_log_axes", "values_on"]

# Okabe & Ito (2008): distinguishable under the common colour-vision deficiencies.
OKABE_ITO = ["#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7"]
ESTIMATOR_STYLE = {
    "x": dict(color="#D55E00", marker="o", label=r"last iterate $x_T$"),
    "x_avg": dict(color="#0072B2", marker="s", label=r"uniform average $\bar x_T$"),
    "x_tail": dict(color="#009E73", marker="^", label=r"tail average"),
    "v": dict(color="#CC79A7", marker="v", label=r"gradient step from $x_T$: $v_T = x_T - \eta\nabla f(x_T)$"),
    "v_avg": dict(color="#56B4E9", marker="D", label=r"average of gradient steps $\bar v_T$"),
}
#: The house style as matplotlib rcParams (see the module docstring for what a figure keeps).
RCPARAMS = {
    "font.size": 9,
    "axes.labelsize": 9,
    "axes.titlesize": 9,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 110,
    "figure.constrained_layout.use": True,
}


def estimator_style(name: str) -> dict:
    """Colour, marker and legend label of an estimator (grey for names outside `ESTIMATOR_STYLE`)."""
    return dict(ESTIMATOR_STYLE.get(name, dict(color="0.45", marker=".", label=name)))


def style():
    """A context manager applying the house style `RCPARAMS` to the figures made inside it:
    `with plots.style(): fig, axes = plt.subplots(...)`, then draw with `ax=`."""
    return plt.rc_context(RCPARAMS)


#: The former name of `style`.
house_style = style


def styled(plot):
    """Run a plotting function inside the house style, so every artist it creates uses it."""

    @functools.wraps(plot)
    def wrapper(*args, **kwargs):
        with plt.rc_context(RCPARAMS):
            return plot(*args, **kwargs)

    return wrapper


def save(fig, path) -> list[Path]:
    """Save `fig` as `path.png` (200 dpi) and `path.pdf` (a .png/.pdf suffix is dropped), atomically."""
    base = Path(path)
    base = base.with_suffix("") if base.suffix.lower() in (".png", ".pdf") else base
    tidy_log_axes(fig)
    written = []
    # A figure without a layout engine (made outside the style) is cropped to its artists instead.
    crop = {} if fig.get_layout_engine() is not None else {"bbox_inches": "tight"}
    for suffix, kwargs in ((".png", {"dpi": 200, **crop}), (".pdf", crop)):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=suffix[1:], **kwargs)
        written.append(write_bytes(base.with_name(base.name + suffix), buffer.getvalue()))
    return written


def new_axes(ax, size=(5.0, 3.4)):
    """(figure, axes, made): a new figure in the house style, or the caller's `ax` and its figure."""
    if ax is None:
        fig, axes = plt.subplots(figsize=size)
        return fig, axes, True
    if not isinstance(ax, Axes):
        raise ValueError(f"ax must be a matplotlib Axes, got {type(ax).__name__}")
    return ax.figure, ax, False


def finish(fig, drawn_on, path):
    tidy_log_axes(fig)
    if path is not None:
        save(fig, path)
    return drawn_on


def set_title(ax, title, subtitle: str) -> None:
    """The user's `title` on the first line, the run's facts (T, chains) on the second."""
    ax.set_title(subtitle if not title else (f"{title}\n{subtitle}" if subtitle else title))


def values_on(function, grid: np.ndarray, what: str) -> np.ndarray:
    """An objective (`.value`), a callable, or values already on the grid -> `(n_points,)`."""
    if hasattr(function, "value"):
        values = function.value(grid)
    elif callable(function):
        values = function(grid)
    else:
        values = function
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.shape != (grid.shape[0],):
        raise ValueError(f"{what} must be an objective, a callable or {grid.shape[0]} values on the grid, got shape {values.shape}")
    return values


def log_ticks(ax, values) -> None:
    """Label a log x axis at the swept values when there are few, else at decades only."""
    values = np.unique(np.asarray(values, float))
    values = values[np.isfinite(values) & (values > 0)]
    ax.xaxis.set_minor_formatter(NullFormatter())
    if 1 < values.size <= 8:
        ax.set_xticks(values, [f"{v:g}" for v in values])


class _LogLabels(Formatter):
    """Labels of a log axis that never collide: on an axis spanning 2 decades or more, the
    decades only, in matplotlib's 10^k (minor ticks unlabelled); on a shorter one, where
    matplotlib labels every minor tick as "3x10^-1 4x10^-1 ...", plain numbers (0.3, 1, 20) at
    the decades and at mantissas 2 and 5 (also 3 under 0.7 decades; outside [1e-3, 1e4], where
    a label reads "5x10^-6", between the decades only under half a decade). Decided at draw time from
    the axis' view limits, so later changes of the limits are followed."""

    def __init__(self, minor: bool):
        self.minor = minor
        self.scientific = LogFormatterSciNotation()

    def set_axis(self, axis):
        super().set_axis(axis)
        self.scientific.set_axis(axis)

    def set_locs(self, locs):
        super().set_locs(locs)
        self.scientific.set_locs(locs)

    def __call__(self, x, pos=None):
        lo, hi = sorted(self.axis.get_view_interval())
        decades = np.log10(hi / lo) if lo > 0 and np.isfinite(hi / lo) else np.inf
        if decades >= 2:
            return "" if self.minor else self.scientific(x, pos)
        if not (x > 0 and np.isfinite(x)):
            return ""
        exponent = int(np.floor(np.log10(x) + 1e-9))
        mantissa = x / 10.0**exponent
        plain = 1e-3 <= x < 1e4
        if self.minor and not (plain or decades < 0.5):
            return ""  # "5x10^-6" is three digits wide: between the decades only on a short axis
        if self.minor and not any(abs(mantissa - m) < 1e-6 for m in ((2, 3, 5) if decades < 0.7 else (2, 5))):
            return ""
        if plain:
            return f"{x:.3g}"
        return rf"$10^{{{exponent}}}$" if abs(mantissa - 1) < 1e-6 else rf"${mantissa:.3g}\times10^{{{exponent}}}$"


def tidy_log_axes(figure_or_axes) -> None:
    """Give every log axis of a figure (or of one Axes) tick labels that do not overlap
    (`_LogLabels`), where it still has matplotlib's default formatters; axes labelled by hand
    (e.g. `log_ticks` at the swept step sizes) are left alone. `save` and every plot function
    call it; call it yourself on a figure drawn without them."""
    axes = figure_or_axes.axes if hasattr(figure_or_axes, "get_axes") and not isinstance(figure_or_axes, Axes) else [figure_or_axes]
    for ax in axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() != "log":
                continue
            if type(axis.get_major_formatter()) is LogFormatterSciNotation:
                axis.set_major_formatter(_LogLabels(minor=False))
            if type(axis.get_minor_formatter()) is LogFormatterSciNotation:
                axis.set_minor_formatter(_LogLabels(minor=True))
