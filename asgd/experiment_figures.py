"""Figures of a result folder, drawn from its files alone (`asgd plot` re-draws without simulating).

Reads `metadata.json` (the config), `results.csv` and the saved sweep points, and writes the
figures the config's [output] asks for as `<figure>.png` and `<figure>.pdf` in the folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import simulate
from analysis import plots
from analysis.basins import basin_occupancy
from analysis.errors import ErrorTable
from analysis.minima import minimizers
from asgd.config import parse_config
from asgd.result_folder import read_csv
from asgd.sweep import point_path
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


def draw_figures(result_dir) -> list[Path]:
    """Draw every figure named in the folder's config; returns the PNG paths written."""
    folder = Path(result_dir)
    meta = json.loads((folder / "metadata.json").read_text())
    config = parse_config(meta["config"], source=meta.get("experiment", "config"))
    rows = read_csv(folder / "results.csv")
    simulated = [r for r in rows if r.get("source", "simulation") == "simulation"]  # older folders: no column
    seed, horizon = config.seeds[0], max(config.horizons)
    table = ErrorTable(r for r in simulated if r["seed"] == seed)
    final = table.select(n_steps=horizon)
    law = law_curves([r for r in rows if r.get("source") == "law"], horizon)
    f, noise = config.objective, config.noise
    step_sizes = np.asarray(config.step_sizes)
    result = simulate.SimulationResult.load(point_path(folder / "points", seed, horizon))
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
