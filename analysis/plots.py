"""Figures for papers, in one style: matplotlib only, colour-blind-safe, labelled axes.

Every function returns a `Figure`; given `path` (with or without a suffix) it also saves
`path.png` and `path.pdf`, each written atomically. One colour per estimator (Okabe-Ito palette),
the same in every figure.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from analysis import storage
from analysis.rates import fit_rate

__all__ = [
    "ESTIMATOR_STYLE",
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


def _figure(ncols: int = 1, size=(5.0, 3.4)):
    with plt.rc_context(_RC):
        fig, axes = plt.subplots(1, ncols, figsize=(size[0] * ncols, size[1]), squeeze=False)
    return fig, axes[0]


def save(fig, path) -> list[Path]:
    """Save `fig` as PNG and PDF next to `path` (suffix ignored), atomically."""
    base = Path(path)
    base = base.with_suffix("") if base.suffix in (".png", ".pdf") else base
    written = []
    for suffix, kwargs in ((".png", {"dpi": 200}), (".pdf", {})):
        buffer = io.BytesIO()
        with plt.rc_context(_RC):
            fig.savefig(buffer, format=suffix[1:], **kwargs)
        written.append(storage.write_bytes(base.with_name(base.name + suffix), buffer.getvalue()))
    return written


def _finish(fig, path):
    fig.tight_layout()
    if path is not None:
        save(fig, path)
    return fig


def _band(ax, rows, x_column, style, label=True):
    x = rows.column(x_column).astype(float)
    mse = rows.column("mse").astype(float)
    if "mse_lo" in rows.columns():
        lo, hi = rows.column("mse_lo").astype(float), rows.column("mse_hi").astype(float)
    else:
        se = rows.column("mse_se").astype(float)
        lo, hi = mse - 2 * se, mse + 2 * se
    order = np.argsort(x)
    x, mse, lo, hi = x[order], mse[order], lo[order], hi[order]
    lo = np.where(lo > 0, lo, mse * 1e-3)  # a log axis cannot show a band that crosses zero
    ax.plot(x, mse, color=style["color"], marker=style["marker"], ms=3.5, lw=1.3, label=style["label"] if label else None)
    ax.fill_between(x, lo, hi, color=style["color"], alpha=0.2, lw=0)


def plot_tradeoff(table, theory: dict | None = None, *, estimators=None, ylabel=None, title=None, path=None):
    """Error to the target vs eta, one line per estimator with a +-2 se (or bootstrap) band.

    `table`: an `ErrorTable` at one horizon (select it first). `theory`: optional dict
    estimator -> (step_sizes, values) drawn dashed.
    """
    fig, (ax,) = _figure()
    present = list(dict.fromkeys(table.column("estimator")))
    for name in estimators or present:
        rows = table.select(estimator=name)
        if len(rows):
            _band(ax, rows, "step_size", ESTIMATOR_STYLE.get(name, dict(color="0.4", marker=".", label=name)))
    for name, (eta, values) in (theory or {}).items():
        ax.plot(eta, values, "--", color=ESTIMATOR_STYLE.get(name, {}).get("color", "0.3"), lw=1, label=f"theory ({name})")
    horizons = sorted(set(table.column("n_steps").tolist())) if len(table) else []
    ax.set(xscale="log", yscale="log", xlabel=r"step size $\eta$",
           ylabel=ylabel or r"mean squared distance to $v^*(\eta)$")
    ax.set_title(title or (f"T = {horizons[-1]} steps" if horizons else ""))
    ax.legend(frameon=False)
    return _finish(fig, path)


def plot_rates(table, step_size: float, *, fits: bool = True, fit_from: int = 1, theory: dict | None = None, estimators=None, path=None):
    """Error vs T (checkpoints) per estimator at one step size, fitted log-log slopes in the legend.

    `fit_from`: fit only checkpoints with T >= fit_from. `theory`: estimator -> (T, values).
    """
    fig, (ax,) = _figure()
    rows_eta = table.select(step_size=float(step_size))
    for name in estimators or list(dict.fromkeys(rows_eta.column("estimator"))):
        rows = rows_eta.select(estimator=name)
        style = dict(ESTIMATOR_STYLE.get(name, dict(color="0.4", marker=".", label=name)))
        steps, mse = rows.column("n_steps"), rows.column("mse")
        late = (steps >= fit_from) & (mse > 0)
        if fits and late.sum() >= 3:
            rate = fit_rate(steps[late], mse[late], weights=1 / np.maximum(rows.column("mse_se")[late], 1e-300) ** 2)
            style["label"] = f"{style['label']}: slope {rate.slope:.2f}"
        _band(ax, rows, "n_steps", style)
    for name, (steps, values) in (theory or {}).items():
        ax.plot(steps, values, ":", color="0.2", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="steps $T$", ylabel="mean squared distance to target",
           title=rf"$\eta$ = {step_size:g}")
    ax.legend(frameon=False)
    return _finish(fig, path)


def plot_landscape(f, *, smoothed=(), penalized=(), minimizers=None, bounds=(-2.5, 2.5), n_points=801, path=None):
    """A 1-D objective f, its smoothings F_eta and penalized P_eta, with minimizers marked.

    `smoothed`, `penalized`: sequences of (eta, Objective). `minimizers`: points `(n, 1)` on f.
    """
    fig, (ax,) = _figure(size=(5.5, 3.6))
    grid = np.linspace(bounds[0], bounds[1], n_points)[:, None]
    ax.plot(grid[:, 0], np.asarray(f.value(grid)), color="k", lw=1.8, label="$f$")
    colors = plt.cm.viridis(np.linspace(0.15, 0.85, max(len(smoothed), 1)))
    for color, (eta, objective) in zip(colors, smoothed):
        values = np.asarray(objective.value(grid))
        ax.plot(grid[:, 0], values, color=color, lw=1.3, label=rf"$F_\eta$, $\eta$={eta:g}")
        ax.plot(grid[np.argmin(values), 0], values.min(), "o", color=color, ms=4)
    for color, (eta, objective) in zip(colors, penalized):
        ax.plot(grid[:, 0], np.asarray(objective.value(grid)), "--", color=color, lw=1, label=rf"$P_\eta$, $\eta$={eta:g}")
    if minimizers is not None:
        points = np.asarray(minimizers, dtype=float).reshape(-1, 1)
        ax.plot(points[:, 0], np.asarray(f.value(points)), "kx", ms=6, label="minima of $f$")
    ax.set(xlabel="$x$", ylabel="objective value")
    ax.legend(frameon=False, fontsize=7)
    return _finish(fig, path)


def plot_chains(f, result, step_size_index: int = -1, *, estimators=("x", "x_avg"), bounds=None, bins=120, path=None):
    """Histograms of the final estimators over the 1-D landscape (non-diverged chains only)."""
    fig, (ax,) = _figure(size=(5.5, 3.6))
    keep = ~np.asarray(result.diverged[step_size_index])
    values = {name: np.asarray(result.estimator(name)[step_size_index][keep, 0], float) for name in estimators}
    everything = np.concatenate(list(values.values()))
    lo, hi = bounds or (everything.min() - 0.2, everything.max() + 0.2)
    edges = np.linspace(lo, hi, bins + 1)
    for name, points in values.items():
        style = ESTIMATOR_STYLE.get(name, dict(color="0.4", label=name))
        ax.hist(points, bins=edges, density=True, histtype="stepfilled", alpha=0.35, color=style["color"], label=style["label"])
    twin = ax.twinx()
    grid = np.linspace(lo, hi, 600)[:, None]
    twin.plot(grid[:, 0], np.asarray(f.value(grid)), color="k", lw=1.2)
    twin.set_ylabel("$f(x)$")
    eta = float(result.step_sizes[step_size_index])
    ax.set(xlabel="$x$", ylabel="density of chains", title=rf"{result.n_chains} chains, $\eta$ = {eta:g}, T = {result.n_steps}")
    ax.legend(frameon=False, loc="upper left")
    return _finish(fig, path)


def plot_basins(step_sizes, occupancy: dict, basin_labels, *, path=None):
    """Fraction of chains in each basin vs eta; one panel per basin, one line per estimator.

    `occupancy`: estimator -> `(S, n_basins)` fractions.
    """
    basin_labels = list(basin_labels)
    fig, axes = _figure(ncols=len(basin_labels), size=(3.6, 3.2))
    eta = np.asarray(step_sizes, float)
    for b, (ax, label) in enumerate(zip(axes, basin_labels)):
        for name, fractions in occupancy.items():
            style = ESTIMATOR_STYLE.get(name, dict(color="0.4", marker=".", label=name))
            ax.plot(eta, np.asarray(fractions)[:, b], color=style["color"], marker=style["marker"], ms=3.5, label=style["label"])
        ax.set(xscale="log", ylim=(-0.03, 1.03), xlabel=r"step size $\eta$", title=f"basin: {label}")
    axes[0].set_ylabel("fraction of chains")
    axes[0].legend(frameon=False, fontsize=7)
    return _finish(fig, path)


def plot_valley(f, trajectories, averaged_paths=None, *, bounds=((-2.0, 2.0), (-1.0, 3.0)), levels=30, path=None):
    """Contours of a 2-D objective with a few SGD trajectories `(n, T+1, 2)` and their running averages."""
    fig, (ax,) = _figure(size=(5.0, 4.2))
    (x_lo, x_hi), (y_lo, y_hi) = bounds
    xs, ys = np.linspace(x_lo, x_hi, 300), np.linspace(y_lo, y_hi, 300)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1)
    values = np.asarray(f.value(grid))
    ax.contour(xs, ys, np.log1p(values - values.min()), levels=levels, cmap="Greys", linewidths=0.6)
    trajectories = np.asarray(trajectories)
    for i, path_i in enumerate(trajectories):
        ax.plot(path_i[:, 0], path_i[:, 1], lw=0.5, alpha=0.6, color=OKABE_ITO[1 + i % 7],
                label="SGD paths" if i == 0 else None)
    if averaged_paths is not None:
        for i, path_i in enumerate(np.asarray(averaged_paths)):
            ax.plot(path_i[:, 0], path_i[:, 1], lw=1.8, color="k", label="running average" if i == 0 else None)
            ax.plot(path_i[-1, 0], path_i[-1, 1], "k*", ms=9)
    ax.set(xlim=(x_lo, x_hi), ylim=(y_lo, y_hi), xlabel="$x_1$", ylabel="$x_2$")
    ax.legend(frameon=False, loc="upper right")
    return _finish(fig, path)
