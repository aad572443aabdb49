"""Figures of a result folder, drawn from its files alone (`asgd plot` re-draws without simulating).

Reads `metadata.json` (the config), `results.csv` and the saved sweep points, and writes the
figures the config's [output] asks for as `<figure>.png` and `<figure>.pdf` in the folder.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import simulate
from analysis import plots
from analysis.basins import basin_occupancy
from analysis.errors import ErrorTable
from analysis.minima import minimizers
from asgd.config import parse_config
from asgd.result_folder import (
    DAMAGED_FILE_ERRORS,
    ResultFolderError,
    ResultFolderWarning,
    read_metadata,
    read_results,
)
from asgd.sweep import RESULT_COLUMNS, point_path
from objectives import penalized, smoothed

__all__ = ["draw_figures", "law_curves"]


def law_curves(law_rows: list[dict], horizon: int) -> dict:
    """The tradeoff figure's exact curves from the `source = "law"` rows at T = `horizon`:
    estimator -> (step sizes, mse, reached), `reached` True where `law_regime` is "stationary"
    (the run sees the law; elsewhere the curve is drawn dotted). The floor for `x`, bias +
    variance / T for `x_avg`; `x_avg_bias` is tabulated but not drawn."""
    curves = {}
    for name in ("x", "x_avg"):
        rows = sorted((r for r in law_rows if r["estimator"] == name and r["n_steps"] == horizon), key=lambda r: r["step_size"])
        if rows:
            curves[name] = (
                np.array([r["step_size"] for r in rows], float),
                np.array([r["mse"] for r in rows], float),
                np.array([r["law_regime"] == "stationary" for r in rows]),
            )
    return curves


#: Figures drawn from a saved sweep point (`points/`), not from `results.csv` alone.
POINT_FIGURES = ("landscape", "chains", "basins")


def _warn_nan(path: Path, rows: list[dict], simulated: list[dict]) -> None:
    """Warn, naming the file and lines, about simulated rows whose mse or mse_se is NaN: they
    are drawn without a point or error bar, and a reader of the figure would not know."""
    line_of = {id(row): index + 2 for index, row in enumerate(rows)}  # line 1 is the header
    for column in ("mse", "mse_se"):
        lines = [line_of[id(r)] for r in simulated if isinstance(r[column], float) and np.isnan(r[column])]
        if lines:
            warnings.warn(
                f"{str(path)!r}: {column} is NaN on line(s) {', '.join(map(str, lines))} (all or all but one chain "
                f"diverged, or a damaged file); those rows are drawn without {'a point' if column == 'mse' else 'error bars'}",
                ResultFolderWarning,
                stacklevel=3,
            )


def _saved_point(path: Path, figures: list[str]) -> simulate.SimulationResult:
    """The saved sweep point the figures `figures` are drawn from; missing or damaged is a
    `ResultFolderError` naming the file."""
    if not path.exists():
        raise ResultFolderError(f"{str(path)!r}: missing; the figures {figures} are drawn from the saved sweep points")
    try:
        return simulate.SimulationResult.load(path)
    except DAMAGED_FILE_ERRORS as error:
        raise ResultFolderError(f"{str(path)!r}: damaged sweep point ({type(error).__name__}: {error})") from None


def draw_figures(result_dir) -> list[Path]:
    """Draw every figure named in the folder's config; returns the PNG paths written."""
    folder = Path(result_dir)
    meta = read_metadata(folder)
    if not isinstance(meta.get("config"), dict):
        raise ResultFolderError(f"{str(folder / 'metadata.json')!r}: damaged, it has no 'config' table")
    config = parse_config(meta["config"], source=meta.get("experiment", "config"))
    results_path = folder / "results.csv"
    rows = read_results(results_path, RESULT_COLUMNS[:8], numeric=("seed", "step_size", "n_steps", "n_chains", "mse", "mse_se"))
    simulated = [r for r in rows if r.get("source", "simulation") == "simulation"]  # older folders: no column
    _warn_nan(results_path, rows, simulated)
    seed, horizon = config.seeds[0], max(config.horizons)
    table = ErrorTable(r for r in simulated if r["seed"] == seed)
    final = table.select(n_steps=horizon)
    law = law_curves([r for r in rows if r.get("source") == "law"], horizon)
    f, noise = config.objective, config.noise
    step_sizes = np.asarray(config.step_sizes)
    needs_point = [name for name in config.figures if name in POINT_FIGURES]
    result = _saved_point(point_path(folder / "points", seed, horizon), needs_point) if needs_point else None
    target_label = {"smoothed": r"$v^*(\eta)$", "local": r"argmin $F_\eta$ in the chains' basin", "penalized": r"argmin $P_\eta$", "minimizer": r"argmin $f$", "point": "the target"}
    written = []

    def done(fig, name):
        plots.save(fig, folder / name)
        plt.close(fig)
        written.append(folder / f"{name}.png")

    for figure in config.figures:
        if figure == "tradeoff":
            fig = plots.plot_tradeoff(
                final, law or None, ylabel=f"mean squared distance to {target_label[config.target_kind]}",
                title=f"{config.name}: T = {horizon}, {config.n_chains} chains",
            )
            done(fig, "tradeoff")
        elif figure == "rates":
            for eta in sorted({step_sizes[len(step_sizes) // 2], step_sizes[-1]}):
                done(plots.plot_rates(table, float(eta), fit_from=max(1, horizon // 100)), f"rates_eta{eta:g}")
        elif figure == "landscape" and f.dim == 1:
            shown = step_sizes[:: max(1, len(step_sizes) // 3)]
            lo, hi = np.min(result.x) - 0.5, np.max(result.x) + 0.5
            fig = plots.plot_landscape(
                f, smoothed=[(float(e), smoothed(f, noise, float(e))) for e in shown],
                penalized=[(float(shown[0]), penalized(f, noise, float(shown[0])))],
                minimizers=minimizers(f).points, bounds=(max(lo, -5), min(hi, 5)),
            )
            done(fig, "landscape")
        elif figure == "chains" and f.dim == 1:
            done(plots.plot_chains(f, result, -1, estimators=("x", "x_avg")), "chains")
        elif figure == "basins":
            wells = minimizers(f).points
            wells = wells[np.argsort(wells[:, 0])]
            occupancy = {
                name: basin_occupancy(result.estimator(name), wells, mask=~result.diverged)
                for name in config.estimators
            }
            labels = [f"x = {p[0]:.2f}" if f.dim == 1 else f"{tuple(np.round(p, 2))}" for p in wells]
            done(plots.plot_basins(step_sizes, occupancy, labels), "basins")
    return written
