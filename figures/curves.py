"""Error curves: the error of each estimator against the step size (`plot_tradeoff`) and against
the horizon T (`plot_rates`), with error bands and the exact theory curves dashed over them."""

from __future__ import annotations

import numpy as np
from matplotlib import patheffects
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from analysis.errors import ErrorTable
from analysis.rates import fit_rate
from figures.style import estimator_style, finish, log_ticks, new_axes, set_title, styled

__all__ = ["plot_rates", "plot_tradeoff"]


# The legend sits beside the axes (five estimators leave no empty corner) and the layout keeps
# it inside the figure, so the figure is wider than the 5 x 3.4 inch axes area it used to crop to.
_WITH_LEGEND_BESIDE = (7.5, 3.4)


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


def _number(value: float) -> str:
    text = f"{value:.2f}"
    return text[1:] if text == "-0.00" else text


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


# The exact curves are drawn over the simulated points with a white edge: a curve that agrees
# with the points would otherwise vanish under markers of its own colour.
_OVER_POINTS = dict(zorder=3.5, path_effects=[patheffects.Stroke(linewidth=3.2, foreground="white", alpha=0.9), patheffects.Normal()])


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
        # A segment is drawn in `linestyle` when both its ends are reached, dotted otherwise.
        # Unreached values (a metastable law: floors far off, variance / T huge) leave the axis
        # limits alone: they are clipped rather than squeezing the simulated curves.
        ax.plot(x, np.where(reached, values, np.nan), linestyle, color=color, lw=1.5, gid=f"theory:{name}", **_OVER_POINTS)
        for i in np.flatnonzero(~(reached[:-1] & reached[1:])):
            # add_artist, unlike plot, leaves the data limits alone.
            ax.add_artist(Line2D(x[i : i + 2], values[i : i + 2], linestyle=":", color=color, lw=1.2, alpha=0.7, gid=f"theory-unreached:{name}", **_OVER_POINTS))


def _legend(ax, theory: dict | None, linestyle: str) -> None:
    """The legend beside the axes (curves of five estimators leave no empty corner inside)."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        # The bands are often thinner than the markers: the legend says what they are.
        handles.append(Patch(color="0.45", alpha=0.25, lw=0))
        labels.append("band: $\\pm$2 se (may hide\nunder the markers)")
    if theory:
        handles.append(Line2D([], [], color="0.3", linestyle=linestyle, lw=1.5))
        labels.append("exact law (theory)")
        if any(len(c) > 2 and not np.all(c[2]) for c in theory.values()):
            handles.append(Line2D([], [], color="0.3", linestyle=":", lw=1.2, alpha=0.7))
            labels.append("exact law, not reached in T steps")
    if handles:
        ax.legend(handles, labels, frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


@styled
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
    - `estimators`: which to draw (default: all in the table, in table order); `theory`
      curves of other estimators are left out too.
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
    fig, ax, made = new_axes(ax, size=_WITH_LEGEND_BESIDE)
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
    if theory and estimators is not None:
        theory = {name: curve for name, curve in theory.items() if name in estimators}
    _theory_lines(ax, theory, "--")
    if critical_step_size is not None:
        critical = float(critical_step_size)
        if not (np.isfinite(critical) and critical > 0):
            raise ValueError(f"critical_step_size must be a finite number > 0, got {critical_step_size!r}")
        ax.axvline(critical, color="0.35", ls=":", lw=1.1, gid="critical_step_size",
                   label=critical_label or rf"critical step size $\eta_c$ = {critical:.3g}")
    ax.set(xscale="log", yscale="log", xlabel=r"step size $\eta$", ylabel=ylabel or r"mean squared distance to $v^*(\eta)$")
    if len(table):
        log_ticks(ax, table.column("step_size"))
    facts = ", ".join(part for part in (f"T = {horizon} steps" if horizon is not None else "", _chain_count(table)) if part)
    set_title(ax, title, facts)
    _legend(ax, theory, "--")
    return finish(fig, fig if made else ax, path)


@styled
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
    fig, ax, made = new_axes(ax, size=_WITH_LEGEND_BESIDE)
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
    set_title(ax, title, rf"$\eta$ = {step_size:g}, {_chain_count(rows_eta)}")
    _legend(ax, theory, ":")
    return finish(fig, fig if made else ax, path)
