"""Figures for papers, in one style: matplotlib only, colour-blind-safe, labelled axes.

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
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from analysis import atomic_files
from analysis.errors import ErrorTable
from analysis.rates import fit_rate

__all__ = [
    "ESTIMATOR_STYLE",
    "OKABE_ITO",
    "RCPARAMS",
    "estimator_style",
    "style",
    "house_style",
    "landscape_bounds",
    "save",
    "plot_tradeoff",
    "plot_rates",
    "plot_landscape",
    "plot_chains",
    "plot_basins",
    "plot_valley",
]

# Okabe & Ito (2008): distinguishable under the common colour-vision deficiencies.
OKABE_ITO = ["#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7"]
ESTIMATOR_STYLE = {
    "x": dict(color="#D55E00", marker="o", label=r"last iterate $x_T$"),
    "x_avg": dict(color="#0072B2", marker="s", label=r"uniform average $\bar x_T$"),
    "x_tail": dict(color="#009E73", marker="^", label=r"tail average"),
    "v": dict(color="#CC79A7", marker="v", label=r"$v_T = x_T - \eta\nabla f(x_T)$"),
    "v_avg": dict(color="#56B4E9", marker="D", label=r"$\bar v_T$"),
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


def _styled(plot):
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
    written = []
    # A figure without a layout engine (made outside the style) is cropped to its artists instead.
    crop = {} if fig.get_layout_engine() is not None else {"bbox_inches": "tight"}
    for suffix, kwargs in ((".png", {"dpi": 200, **crop}), (".pdf", crop)):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=suffix[1:], **kwargs)
        written.append(atomic_files.write_bytes(base.with_name(base.name + suffix), buffer.getvalue()))
    return written


# The legend sits beside the axes (five estimators leave no empty corner) and the layout keeps
# it inside the figure, so the figure is wider than the 5 x 3.4 inch axes area it used to crop to.
_WITH_LEGEND_BESIDE = (7.5, 3.4)


def _target(ax, size=(5.0, 3.4)):
    """(figure, axes, made): a new figure in the house style, or the caller's `ax` and its figure."""
    if ax is None:
        fig, axes = plt.subplots(figsize=size)
        return fig, axes, True
    if not isinstance(ax, Axes):
        raise ValueError(f"ax must be a matplotlib Axes, got {type(ax).__name__}")
    return ax.figure, ax, False


def _finish(fig, drawn_on, path):
    if path is not None:
        save(fig, path)
    return drawn_on


def _as_table(table) -> ErrorTable:
    """An `ErrorTable` as is; a pandas DataFrame (or an iterable of dicts) with the same columns."""
    return table if isinstance(table, ErrorTable) else ErrorTable(table)


def _chain_count(table) -> str:
    """"N chains" (chains run: counted + diverged) of a table's rows, and how many seeds it pools
    ("" for a table without the counts)."""
    if not len(table) or not {"n_chains", "n_diverged"} <= set(table.columns()):
        return ""
    total = int(np.max(table.column("n_chains").astype(int) + table.column("n_diverged").astype(int)))
    seeds = int(np.max(table.column("n_seeds"))) if "n_seeds" in table.columns() else 1
    return f"{total} chains" + (f" ({seeds} seeds pooled)" if seeds > 1 else "")


def _title(ax, title, subtitle: str) -> None:
    """The user's `title` on the first line, the run's facts (T, chains) on the second."""
    ax.set_title(subtitle if not title else (f"{title}\n{subtitle}" if subtitle else title))


def _number(value: float) -> str:
    text = f"{value:.2f}"
    return text[1:] if text == "-0.00" else text


def _values_on(function, grid: np.ndarray, what: str) -> np.ndarray:
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


def _band(ax, rows, x_column: str, style: dict) -> None:
    """The mse curve of `rows` against `x_column` with a band: bootstrap interval, else +-2 se."""
    x = rows.column(x_column).astype(float)
    mse = rows.column("mse").astype(float)
    if "mse_lo" in rows.columns():
        lo, hi = rows.column("mse_lo").astype(float), rows.column("mse_hi").astype(float)
    else:
        se = rows.column("mse_se").astype(float)
        lo, hi = mse - 2 * se, mse + 2 * se
    order = np.argsort(x)
    x, mse, lo, hi = x[order], mse[order], lo[order], hi[order]
    with np.errstate(invalid="ignore"):
        lo = np.where(lo > 0, lo, mse * 1e-3)  # a log axis cannot show a band that crosses zero
    ax.plot(x, mse, color=style["color"], marker=style["marker"], ms=3.5, lw=1.3, label=style["label"])
    finite = np.isfinite(mse) & np.isfinite(lo) & np.isfinite(hi)
    ax.fill_between(x, np.where(finite, lo, np.nan), np.where(finite, hi, np.nan), color=style["color"], alpha=0.2, lw=0)


def _theory_lines(ax, theory: dict | None, linestyle: str) -> None:
    """Each curve `(x, values)` or `(x, values, reached)`: where `reached` (bool per point) is
    False the run does not see that law, and the curve is drawn dotted and faint there, without
    widening the axes. Every line gets the gid "theory:<estimator>" (reached part) or "theory-unreached:<estimator>"."""
    for name, curve in (theory or {}).items():
        x, values = np.asarray(curve[0], float), np.asarray(curve[1], float)
        reached = np.ones(x.shape, bool) if len(curve) < 3 else np.asarray(curve[2], bool)
        color = estimator_style(name)["color"]
        order = np.argsort(x)
        x, values, reached = x[order], values[order], reached[order]
        # A segment is solid when both its ends are reached, dotted otherwise; under the points.
        # Unreached values (a metastable law: floors far off, variance / T huge) leave the axis
        # limits alone: they are clipped rather than squeezing the simulated curves.
        ax.plot(x, np.where(reached, values, np.nan), linestyle, color=color, lw=1.1, zorder=1.8, gid=f"theory:{name}")
        for i in np.flatnonzero(~(reached[:-1] & reached[1:])):
            # add_artist, unlike plot, leaves the data limits alone.
            ax.add_artist(Line2D(x[i : i + 2], values[i : i + 2], linestyle=":", color=color, lw=1.0, alpha=0.5, zorder=1.8, gid=f"theory-unreached:{name}"))


def _legend(ax, theory: dict | None, linestyle: str) -> None:
    """The legend beside the axes (curves of five estimators leave no empty corner inside)."""
    handles, labels = ax.get_legend_handles_labels()
    if theory:
        handles.append(Line2D([], [], color="0.3", linestyle=linestyle, lw=1.1))
        labels.append("exact law (theory)")
        if any(len(c) > 2 and not np.all(c[2]) for c in theory.values()):
            handles.append(Line2D([], [], color="0.3", linestyle=":", lw=1.0, alpha=0.5))
            labels.append("exact law, not reached in T steps")
    if handles:
        ax.legend(handles, labels, frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def _log_ticks(ax, values) -> None:
    """Label a log x axis at the swept values when there are few, else at decades only."""
    values = np.unique(np.asarray(values, float))
    values = values[np.isfinite(values) & (values > 0)]
    ax.xaxis.set_minor_formatter(NullFormatter())
    if 1 < values.size <= 8:
        ax.set_xticks(values, [f"{v:g}" for v in values])


@_styled
def plot_tradeoff(
    table,
    theory: dict | None = None,
    *,
    n_steps: int | None = None,
    estimators=None,
    ylabel=None,
    title=None,
    critical_step_size: float | None = None,
    critical_label: str | None = None,
    ax=None,
    path=None,
):
    """Error to the target vs eta, one line per estimator with an error band, log axes.

    **Arguments:**

    - `table`: an `ErrorTable` (or a DataFrame with its columns; a pooled table from `pool`
      too); only the rows at horizon `n_steps` are drawn (default: the largest n_steps).
    - `theory`: optional dict estimator -> (step_sizes, values) or (step_sizes, values,
      reached), drawn dashed in its colour; dotted and faint where `reached` is False (a law
      the run does not see in T steps, e.g. a metastable one).
    - `estimators`: which to draw (default: all in the table, in table order).
    - `ylabel`: default "mean squared distance to v*(eta)"; name the table's target.
    - `title`: the first line of the title; the second always says T and the number of chains
      run (counted + diverged; "k seeds pooled" for a pooled table).
    - `critical_step_size`: a known critical eta (e.g. 2 / lambda_max on a quadratic, where SGD
      diverges; the eta where argmin F_eta jumps wells), drawn as a dotted vertical line with
      the legend entry `critical_label` (default "critical step size").
    - `ax`: draw into this Axes instead of a new figure; `path`: where to save PNG and PDF.

    The band is the bootstrap interval when the table has `mse_lo`/`mse_hi`, else mse +- 2 se.

    **Returns:** the new `Figure`, or `ax` when given.
    """
    table = _as_table(table)
    fig, ax, made = _target(ax, size=_WITH_LEGEND_BESIDE)
    horizon = None
    if len(table):
        horizon = int(max(table.column("n_steps"))) if n_steps is None else int(n_steps)
        table = table.select(n_steps=horizon)
        if not len(table):
            raise ValueError(f"n_steps={n_steps} is not a horizon of the table")
    for name in estimators or list(dict.fromkeys(table.column("estimator").tolist())):
        rows = table.select(estimator=name)
        if len(rows):
            _band(ax, rows, "step_size", estimator_style(name))
    _theory_lines(ax, theory, "--")
    if critical_step_size is not None:
        critical = float(critical_step_size)
        if not (np.isfinite(critical) and critical > 0):
            raise ValueError(f"critical_step_size must be a finite number > 0, got {critical_step_size!r}")
        ax.axvline(critical, color="0.35", ls=":", lw=1.1, gid="critical_step_size",
                   label=critical_label or rf"critical step size $\eta_c$ = {critical:.3g}")
    ax.set(xscale="log", yscale="log", xlabel=r"step size $\eta$", ylabel=ylabel or r"mean squared distance to $v^*(\eta)$")
    if len(table):
        _log_ticks(ax, table.column("step_size"))
    facts = ", ".join(part for part in (f"T = {horizon} steps" if horizon is not None else "", _chain_count(table)) if part)
    _title(ax, title, facts)
    _legend(ax, theory, "--")
    return _finish(fig, fig if made else ax, path)


@_styled
def plot_rates(
    table,
    step_size: float,
    *,
    fits: bool = True,
    fit_from: int | None = None,
    theory: dict | None = None,
    estimators=None,
    ylabel=None,
    title=None,
    ax=None,
    path=None,
):
    """Error vs T (the checkpoints) per estimator at one step size, with fitted log-log slopes.

    **Arguments:**

    - `table`: an `ErrorTable` (or a DataFrame with its columns) with several checkpoints.
    - `step_size`: the eta to draw (must be in the table).
    - `fits`: put `fit_rate`'s slope and 95% interval in the legend, fitted on the tail of the
      curve: the checkpoints with T >= `fit_from` (default: the later half of the checkpoints),
      weighted by the standard errors when all are positive.
    - `theory`: optional dict estimator -> (T, values), drawn dotted in its colour.
    - `estimators`, `ax`, `path`: as in `plot_tradeoff`; `ylabel` (default "mean squared
      distance to the target": name the target, e.g. "... to $v^*(\\eta)$").
    - `title`: the first line of the title; the second always says eta and the chains run.

    **Returns:** the new `Figure`, or `ax` when given.
    """
    table = _as_table(table)
    fig, ax, made = _target(ax, size=_WITH_LEGEND_BESIDE)
    rows_eta = table.select(step_size=float(step_size))
    if not len(rows_eta):
        available = sorted(set(table.column("step_size").tolist())) if len(table) else []
        raise ValueError(f"step_size must be one of the table's step sizes {available}, got {step_size}")
    for name in estimators or list(dict.fromkeys(rows_eta.column("estimator").tolist())):
        rows = rows_eta.select(estimator=name)
        if not len(rows):
            continue
        style = estimator_style(name)
        steps, mse, se = rows.column("n_steps").astype(float), rows.column("mse").astype(float), rows.column("mse_se").astype(float)
        if fits:
            ordered = np.sort(np.unique(steps))
            start = ordered[len(ordered) // 2] if fit_from is None else fit_from
            late = (steps >= start) & np.isfinite(mse) & (mse > 0)
            if late.sum() >= 3:
                weighted = np.all(np.isfinite(se[late]) & (se[late] > 0))
                rate = fit_rate(steps[late], mse[late], weights=1 / se[late] ** 2 if weighted else None)
                style["label"] = f"{style['label']}: slope {_number(rate.slope)} [{_number(rate.slope_lo)}, {_number(rate.slope_hi)}]"
        _band(ax, rows, "n_steps", style)
    _theory_lines(ax, theory, ":")
    ax.set(xscale="log", yscale="log", xlabel="steps $T$", ylabel=ylabel or "mean squared distance to the target")
    _title(ax, title, rf"$\eta$ = {step_size:g}, {_chain_count(rows_eta)}")
    _legend(ax, theory, ":")
    return _finish(fig, fig if made else ax, path)


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


@_styled
def plot_landscape(f, *, smoothed=(), penalized=(), minimizers=None, bounds=None, n_points: int = 801, ax=None, path=None):
    """A 1-D objective f with its smoothings F_eta and penalized objectives P_eta, minima marked.

    **Arguments:**

    - `f`: a 1-D objective (anything with `.value` on `(n, 1)`), or a callable.
    - `smoothed`, `penalized`: sequences of (eta, F) where F is an objective, a callable of the
      grid `(n_points, 1)`, or its `n_points` values on the grid. The global minimum of each
      F_eta on the grid is marked with a dot.
    - `minimizers`: points `(n, 1)` (local minima of f), marked with crosses.
    - `bounds`: the x range; default scaled to the wells, `landscape_bounds(minimizers)`: the
      minimizers with half their spread (at least 1) on either side. `n_points`: the grid size.
    - `ax`, `path`: as in `plot_tradeoff`.

    **Returns:** the new `Figure`, or `ax` when given.
    """
    if getattr(f, "dim", 1) != 1:
        raise ValueError(f"plot_landscape draws 1-D objectives, got f of dim={f.dim}")
    fig, ax, made = _target(ax, size=(5.5, 3.6))
    bounds = landscape_bounds(minimizers) if bounds is None else bounds
    grid = np.linspace(bounds[0], bounds[1], n_points)[:, None]
    ax.plot(grid[:, 0], _values_on(f, grid, "f"), color="k", lw=1.8, label="$f$")
    colors = plt.cm.viridis(np.linspace(0.1, 0.85, max(len(smoothed), len(penalized), 1)))
    for color, (eta, objective) in zip(colors, smoothed):
        values = _values_on(objective, grid, f"smoothed objective at eta={eta:g}")
        ax.plot(grid[:, 0], values, color=color, lw=1.3, label=rf"$F_\eta$, $\eta$ = {eta:g}")
        ax.plot(grid[np.argmin(values), 0], values.min(), "o", color=color, ms=4)
    for color, (eta, objective) in zip(colors, penalized):
        values = _values_on(objective, grid, f"penalized objective at eta={eta:g}")
        ax.plot(grid[:, 0], values, "--", color=color, lw=1.0, label=rf"$P_\eta$, $\eta$ = {eta:g}")
    if minimizers is not None:
        points = np.asarray(minimizers, dtype=float).reshape(-1, 1)
        ax.plot(points[:, 0], _values_on(f, points, "f"), "kx", ms=6, label="local minima of $f$")
    ax.set(xlabel="$x$", ylabel="objective value", xlim=bounds)
    ax.legend(frameon=False, fontsize=7)
    return _finish(fig, fig if made else ax, path)


@_styled
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
    fig, ax, made = _target(ax, size=(5.5, 3.6))
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
    landscape = _values_on(f, grid, "f")
    top = ax.get_ylim()[1]
    spread = np.ptp(landscape) or 1.0
    ax.plot(grid[:, 0], 0.9 * top * (landscape - landscape.min()) / spread, color="0.3", lw=1.2, label="$f$ (rescaled)", gid="landscape")
    eta = etas.pop()
    kept, ran = sum(int(k.sum()) for k in keeps), sum(r.n_chains for r in results)
    pooled = f", {len(results)} seeds pooled" if len(results) > 1 else ""
    ax.set(xlim=(lo, hi), ylim=(0, top), xlabel="$x$", ylabel="density of chains")
    _title(ax, title, rf"{kept} of {ran} chains non-diverged{pooled}; $\eta$ = {eta:g}, T = {results[0].n_steps}")
    ax.legend(frameon=False, loc="upper left")
    return _finish(fig, fig if made else ax, path)


def _basin_label(label) -> str:
    """A label as given, or a point's coordinates as plain numbers (never NumPy reprs)."""
    if isinstance(label, str):
        return label
    coordinates = np.asarray(label, dtype=float).reshape(-1)
    text = ", ".join(f"{value:.3g}" for value in coordinates)
    return f"x = {text}" if coordinates.size == 1 else f"({text})"


@_styled
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
        _title(panel, title, f"basin: {label}")
        _log_ticks(panel, eta)
    axes[0].set_ylabel("fraction of chains" + (r" ($\pm$ binomial se)" if counts else ""))
    axes[0].legend(frameon=False, fontsize=7)
    return _finish(fig, drawn_on, path)


@_styled
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
    fig, ax, made = _target(ax, size=(5.0, 4.2))
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
    return _finish(fig, fig if made else ax, path)
