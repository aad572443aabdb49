"""Figures for papers, in one style: matplotlib only, colour-blind-safe, labelled axes.

Every function returns a `Figure`; given `path` (with or without a .png/.pdf suffix) it also
saves `path.png` and `path.pdf`, each written atomically (temporary file, then rename). One
colour and marker per estimator (Okabe-Ito palette, `ESTIMATOR_STYLE`), the same in every
figure; sequences of step sizes use the viridis map (ordered, colour-blind-safe). Nothing here
picks a backend: under Agg (headless) everything works, and figures are left open for the
caller (close them with `plt.close(fig)` in loops).
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from analysis import atomic_files
from analysis.rates import fit_rate

__all__ = [
    "ESTIMATOR_STYLE",
    "OKABE_ITO",
    "estimator_style",
    "house_style",
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
_RC = {
    "font.size": 9,
    "axes.labelsize": 9,
    "axes.titlesize": 9,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 110,
    "savefig.bbox": "tight",
}


def estimator_style(name: str) -> dict:
    """Colour, marker and legend label of an estimator (grey for names outside `ESTIMATOR_STYLE`)."""
    return dict(ESTIMATOR_STYLE.get(name, dict(color="0.45", marker=".", label=name)))


def house_style():
    """A context manager applying the house style (fonts, spines, dpi) to figures made inside it."""
    return plt.rc_context(_RC)


def _styled(plot):
    """Run a plotting function inside the house style, so every artist it creates uses it."""

    @functools.wraps(plot)
    def wrapper(*args, **kwargs):
        with plt.rc_context(_RC):
            return plot(*args, **kwargs)

    return wrapper


def save(fig, path) -> list[Path]:
    """Save `fig` as `path.png` (200 dpi) and `path.pdf` (a .png/.pdf suffix is dropped), atomically."""
    base = Path(path)
    base = base.with_suffix("") if base.suffix.lower() in (".png", ".pdf") else base
    written = []
    with plt.rc_context(_RC):
        for suffix, kwargs in ((".png", {"dpi": 200}), (".pdf", {})):
            buffer = io.BytesIO()
            fig.savefig(buffer, format=suffix[1:], **kwargs)
            written.append(atomic_files.write_bytes(base.with_name(base.name + suffix), buffer.getvalue()))
    return written


def _figure(ncols: int = 1, size=(5.0, 3.4)):
    fig, axes = plt.subplots(1, ncols, figsize=(size[0] * ncols, size[1]), squeeze=False)
    return fig, axes[0]


def _finish(fig, path):
    fig.tight_layout()
    if path is not None:
        save(fig, path)
    return fig


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
def plot_tradeoff(table, theory: dict | None = None, *, n_steps: int | None = None, estimators=None, ylabel=None, title=None, path=None):
    """Error to the target vs eta, one line per estimator with an error band, log axes.

    **Arguments:**

    - `table`: an `ErrorTable`; only the rows at horizon `n_steps` are drawn (default: the
      largest n_steps in the table).
    - `theory`: optional dict estimator -> (step_sizes, values) or (step_sizes, values,
      reached), drawn dashed in its colour; dotted and faint where `reached` is False (a law
      the run does not see in T steps, e.g. a metastable one).
    - `estimators`: which to draw (default: all in the table, in table order).
    - `ylabel`, `title`: override the defaults ("mean squared distance to v*(eta)", "T = ...").
    - `path`: where to save PNG and PDF.

    The band is the bootstrap interval when the table has `mse_lo`/`mse_hi`, else mse +- 2 se.
    """
    fig, (ax,) = _figure()
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
    ax.set(xscale="log", yscale="log", xlabel=r"step size $\eta$", ylabel=ylabel or r"mean squared distance to $v^*(\eta)$")
    if len(table):
        _log_ticks(ax, table.column("step_size"))
    ax.set_title(title if title is not None else (f"T = {horizon} steps" if horizon is not None else ""))
    _legend(ax, theory, "--")
    return _finish(fig, path)


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
    path=None,
):
    """Error vs T (the checkpoints) per estimator at one step size, with fitted log-log slopes.

    **Arguments:**

    - `table`: an `ErrorTable` with several checkpoints.
    - `step_size`: the eta to draw (must be in the table).
    - `fits`: put `fit_rate`'s slope and 95% interval in the legend, fitted on the tail of the
      curve: the checkpoints with T >= `fit_from` (default: the later half of the checkpoints),
      weighted by the standard errors when all are positive.
    - `theory`: optional dict estimator -> (T, values), drawn dotted in its colour.
    - `estimators`, `path`: as in `plot_tradeoff`; `ylabel` (default "mean squared distance
      to the target": name the target, e.g. "... to $v^*(\\eta)$").
    """
    fig, (ax,) = _figure()
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
    ax.set(xscale="log", yscale="log", xlabel="steps $T$", ylabel=ylabel or "mean squared distance to the target",
           title=rf"$\eta$ = {step_size:g}")
    _legend(ax, theory, ":")
    return _finish(fig, path)


@_styled
def plot_landscape(f, *, smoothed=(), penalized=(), minimizers=None, bounds=(-2.5, 2.5), n_points: int = 801, path=None):
    """A 1-D objective f with its smoothings F_eta and penalized objectives P_eta, minima marked.

    **Arguments:**

    - `f`: a 1-D objective (anything with `.value` on `(n, 1)`), or a callable.
    - `smoothed`, `penalized`: sequences of (eta, F) where F is an objective, a callable of the
      grid `(n_points, 1)`, or its `n_points` values on the grid. The global minimum of each
      F_eta on the grid is marked with a dot.
    - `minimizers`: points `(n, 1)` (local minima of f), marked with crosses.
    - `bounds`: the x range; `n_points`: the grid size.
    """
    fig, (ax,) = _figure(size=(5.5, 3.6))
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
    return _finish(fig, path)


@_styled
def plot_chains(f, result, step_size_index: int = -1, *, estimators=("x", "x_avg"), bounds=None, bins: int = 120, path=None):
    """Densities of the final estimators of all non-diverged chains over a 1-D landscape.

    **Arguments:**

    - `f`: the 1-D objective, drawn on a second axis.
    - `result`: a `SimulationResult` of a 1-D objective.
    - `step_size_index`: which step size of the result.
    - `estimators`: the estimators to histogram.
    - `bounds`: the x range (default: the range of the points, padded); `bins`: histogram bins.
    """
    if result.dim != 1:
        raise ValueError(f"plot_chains draws 1-D results, got dim={result.dim}")
    fig, (ax,) = _figure(size=(5.5, 3.6))
    keep = ~np.asarray(result.diverged[step_size_index], bool)
    values = {name: np.asarray(result.estimator(name)[step_size_index][keep, 0], float) for name in estimators}
    if bounds is None:
        everything = np.concatenate(list(values.values()))
        bounds = (everything.min() - 0.2, everything.max() + 0.2) if everything.size else (-1.0, 1.0)
    lo, hi = bounds
    edges = np.linspace(lo, hi, bins + 1)
    for name, points in values.items():
        style = estimator_style(name)
        ax.hist(points, bins=edges, density=True, histtype="stepfilled", alpha=0.35, color=style["color"], label=style["label"])
    twin = ax.twinx()
    grid = np.linspace(lo, hi, 600)[:, None]
    twin.plot(grid[:, 0], _values_on(f, grid, "f"), color="k", lw=1.2)
    twin.set_ylabel("$f(x)$")
    eta = float(result.step_sizes[step_size_index])
    ax.set(xlim=(lo, hi), xlabel="$x$", ylabel="density of chains",
           title=rf"{int(keep.sum())} of {result.n_chains} chains (non-diverged), $\eta$ = {eta:g}, T = {result.n_steps}")
    ax.legend(frameon=False, loc="upper left")
    return _finish(fig, path)


@_styled
def plot_basins(step_sizes, occupancy: dict, basin_labels, *, path=None):
    """Fraction of chains in each basin vs eta: one panel per basin, one line per estimator.

    `occupancy`: estimator -> `(S, n_basins)` fractions (e.g. from `basin_occupancy`);
    `basin_labels`: one label per basin.
    """
    basin_labels = list(basin_labels)
    eta = np.asarray(step_sizes, float)
    for name, fractions in occupancy.items():
        if np.shape(fractions) != (eta.size, len(basin_labels)):
            raise ValueError(f"occupancy[{name!r}] must have shape ({eta.size}, {len(basin_labels)}), got {np.shape(fractions)}")
    fig, axes = _figure(ncols=len(basin_labels), size=(3.6, 3.2))
    for b, (ax, label) in enumerate(zip(axes, basin_labels)):
        for name, fractions in occupancy.items():
            style = estimator_style(name)
            ax.plot(eta, np.asarray(fractions, float)[:, b], color=style["color"], marker=style["marker"], ms=3.5, label=style["label"])
        ax.set(xscale="log", ylim=(-0.03, 1.03), xlabel=r"step size $\eta$", title=f"basin: {label}")
        _log_ticks(ax, eta)
    axes[0].set_ylabel("fraction of chains")
    axes[0].legend(frameon=False, fontsize=7)
    return _finish(fig, path)


@_styled
def plot_valley(f, trajectories, averaged_paths=None, *, bounds=((-2.0, 2.0), (-1.0, 3.0)), levels: int = 30, path=None):
    """Contours of a 2-D objective with a few SGD paths and their running averages.

    **Arguments:**

    - `f`: a 2-D objective (`.value` on `(..., 2)`), or a callable of such points.
    - `trajectories`: `(n, T+1, 2)` iterates of n chains.
    - `averaged_paths`: optional `(n, T+1, 2)` running averages, drawn thick and black with
      their end point starred.
    - `bounds`: ((x1 lo, x1 hi), (x2 lo, x2 hi)); `levels`: contour levels of log(1 + f - min f).
    """
    trajectories = np.asarray(trajectories, float)
    if trajectories.ndim != 3 or trajectories.shape[-1] != 2:
        raise ValueError(f"trajectories must have shape (n, T+1, 2), got {trajectories.shape}")
    fig, (ax,) = _figure(size=(5.0, 4.2))
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
    return _finish(fig, path)
