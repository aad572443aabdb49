"""Figures of a result folder, drawn from its files alone (`asgd plot` re-draws without simulating).

Reads `metadata.json` (the config), `results.csv` and the saved sweep points, and writes the
figures the config's [output] asks for as `<figure>.png` and `<figure>.pdf` in the folder.

Several seeds are pooled: the tables by `analysis.pool` (every chain of every seed as one
sample), the chains and basin occupancies by concatenating the seeds' chains, and the titles
say "k seeds pooled" with the total chain count. With `[output] per_seed = true` each seed gets
its own panel instead (its title names the seed). No seed is left out.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import simulate
import figures as plots
from analysis.errors import ErrorTable, pool
from asgd.config import ExperimentConfig, parse_config
from asgd.result_folder import (
    DAMAGED_FILE_ERRORS,
    ResultFolderError,
    ResultFolderWarning,
    read_metadata,
    read_results,
)
from asgd.sweep import RESULT_COLUMNS, check_point, point_path
from asgd.sweep_figures import FIGURES, Drawing
from asgd.targets import TARGETS
from objectives import SHARP_FLAT_CRITICAL_STEP_SIZE
from theory.quadratic import quadratic_mse_curves

__all__ = ["DRAWN_BY_DEFAULT", "describe", "draw_figures", "drawn_estimators", "law_curves", "quadratic_curves"]


def law_curves(law_rows: list[dict], horizon: int) -> dict:
    """The tradeoff figure's exact curves at T = `horizon`: from the `source = "law"` rows (the
    exact law at T from x0, every estimator: solid), or in folders without them the long-run
    rows (`source = "law"` then, `"stationary"` now: estimator -> (step sizes, mse, reached),
    `reached` True where `law_regime` is "stationary"; the floor for `x`, bias + variance / T for
    `x_avg`; elsewhere dotted; `x_avg_bias` is tabulated but not drawn)."""
    finite = [r for r in law_rows if r.get("law_regime") == "finite_time"]
    curves = {}
    names = sorted({r["estimator"] for r in finite}) if finite else ("x", "x_avg")
    for name in names:
        rows = sorted((r for r in (finite or law_rows) if r["estimator"] == name and r["n_steps"] == horizon), key=lambda r: r["step_size"])
        if rows:
            curves[name] = (
                np.array([r["step_size"] for r in rows], float),
                np.array([r["mse"] for r in rows], float),
                np.array([r["law_regime"] in ("stationary", "finite_time") for r in rows]),
            )
    return curves


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


def _saved_point(path: Path, figures: list[str], config: ExperimentConfig, seed: int, horizon: int) -> simulate.SimulationResult:
    """The saved sweep point (seed, horizon) the figures `figures` are drawn from; missing,
    damaged, or recording another seed, horizon or config (`asgd.sweep.check_point`) is a
    `ResultFolderError` naming the file."""
    if not path.exists():
        raise ResultFolderError(f"{str(path)!r}: missing; the figures {figures} are drawn from the saved sweep points")
    try:
        result = simulate.SimulationResult.load(path)
    except DAMAGED_FILE_ERRORS as error:
        raise ResultFolderError(f"{str(path)!r}: damaged sweep point ({type(error).__name__}: {error})") from None
    check_point(config, path, seed, horizon, result)
    return result


def critical_step_size(config: ExperimentConfig) -> tuple[float, str] | None:
    """A critical eta known in closed form, with its legend label, or None.

    - a quadratic: 2 / lambda_max(H), beyond which SGD diverges;
    - `sharp_flat` under isotropic Gaussian noise of scale s: SHARP_FLAT_CRITICAL_STEP_SIZE / s,
      where argmin F_eta jumps from the sharp to the flat well (F_eta depends on eta s only).
    """
    f = config.objective
    if config.objective_kind == "quadratic":
        curvature = np.max(np.linalg.eigvalsh(np.asarray(f.hessian(np.zeros(f.dim)), np.float64)))
        return (2.0 / curvature, rf"$2/\lambda_{{\max}}$ = {2.0 / curvature:.3g} (SGD diverges beyond)") if curvature > 0 else None
    noise = config.noise_params
    model = config.noise
    if config.objective_kind == "sharp_flat" and model.additive and model.standard_law.gaussian and model.is_isotropic and np.ndim(noise.get("scale", 1.0)) == 0:
        eta = SHARP_FLAT_CRITICAL_STEP_SIZE / float(noise.get("scale", 1.0))
        return eta, rf"$\eta_c$ = {eta:.3g} ($v^*(\eta)$ jumps to the flat well)"
    return None


def quadratic_curves(config: ExperimentConfig, checkpoints) -> dict | None:
    """The closed-form E|estimator_T - c|^2 of a quadratic config with Gaussian noise started at
    one point (`theory.quadratic_mse_curves`): estimator -> `(S, K)` at the `checkpoints` (K);
    None for any other config, or a target other than the minimizer c (which is also v*(eta)
    and the penalized solution on a quadratic)."""
    f, model = config.objective, config.noise
    if config.stationary_start:  # the chains start spread over the law: no single x0 for the closed forms
        return None
    x0 = np.asarray(config.x0, dtype=np.float64).reshape(-1, f.dim)
    if config.objective_kind != "quadratic" or not (model.additive and model.standard_law.gaussian) or len(np.unique(x0, axis=0)) != 1:
        return None
    if not TARGETS[config.target_kind].quadratic_centre or config.method not in ("sgd", "exact"):
        return None
    centre = np.asarray(f.minimizer(f.params), np.float64)
    hessian = np.asarray(f.hessian(centre), np.float64)
    names = [name for name in config.estimators if name in simulate.ESTIMATORS]
    return quadratic_mse_curves(
        hessian, np.asarray(model.covariance(f.dim), np.float64), np.asarray(config.step_sizes), np.asarray(checkpoints),
        x0[0], centre, config.tail_fraction, estimators=names,
    )


#: What the figures draw when `[output] estimators` is not given (all five are still tabulated):
#: three lines a slide can hold. Given, the key's list is drawn as is.
DRAWN_BY_DEFAULT = ("x", "x_avg", "x_tail")

def drawn_estimators(config: ExperimentConfig) -> tuple[str, ...]:
    """The estimators the figures draw: `[output] estimators` when the config gives it, else
    `DRAWN_BY_DEFAULT` (those of them the config tabulates)."""
    if "estimators" in (config.raw.get("output") or {}):
        return tuple(config.estimators)
    return tuple(name for name in DRAWN_BY_DEFAULT if name in config.estimators)


def describe(config: ExperimentConfig, objective) -> str:
    """The objective and the noise, for a figure's title: "sharp_flat, gaussian noise (scale 1)"."""
    params = {k: v for k, v in config.noise_params.items() if k != "family"}
    settings = ", ".join(f"{k} {v:g}" if isinstance(v, (int, float)) else k for k, v in params.items())
    return f"{objective.name}, {config.noise_params['family']} noise" + (f" ({settings})" if settings else "")


def draw_figures(result_dir) -> list[Path]:
    """Draw every figure named in the folder's config; returns the PNG paths written."""
    folder = Path(result_dir)
    meta = read_metadata(folder)
    if not isinstance(meta.get("config"), dict):
        raise ResultFolderError(f"{str(folder / 'metadata.json')!r}: damaged, it has no 'config' table")
    # The config's folder, recorded by the run: a kind = "python" objective's module is found
    # there from any working directory (older folders: not recorded, sys.path only).
    config = parse_config(meta["config"], source=meta.get("experiment", "config"), config_dir=meta.get("config_dir"))
    results_path = folder / "results.csv"
    rows = read_results(results_path, RESULT_COLUMNS[:8], numeric=("seed", "step_size", "n_steps", "n_chains", "mse", "mse_se"))
    simulated = [r for r in rows if r.get("source", "simulation") == "simulation"]  # older folders: no column
    _warn_nan(results_path, rows, simulated)
    seeds, horizon = list(config.seeds), max(config.horizons)
    # The figures show the longest run (T = horizon) at its checkpoints; with several horizons
    # the shorter runs' rows repeat the same checkpoint steps. Older folders: one horizon, no column.
    simulated = [r for r in simulated if r.get("horizon", horizon) == horizon]
    tables = {seed: ErrorTable(r for r in simulated if r["seed"] == seed) for seed in seeds}
    pooled = pool(list(tables.values()))
    per_seed = config.per_seed and len(seeds) > 1
    law = law_curves([r for r in rows if r.get("source") in ("law", "stationary")], horizon)
    checkpoints = sorted({r["n_steps"] for r in simulated})
    closed = quadratic_curves(config, checkpoints) if checkpoints else None
    if closed is not None and not law:  # the quadratic's closed forms at T from x0, exact
        law = {name: (np.asarray(config.step_sizes, float), values[:, -1]) for name, values in closed.items()}
    needs_point = [name for name in config.figures if FIGURES[name].from_points]
    results = [_saved_point(point_path(folder / "points", seed, horizon), needs_point, config, seed, horizon) if needs_point else None for seed in seeds]
    # (title, table, results) per panel: one pooled panel, or one per seed.
    about = f"{config.name}: {describe(config, config.objective)}"
    panels = [(f"{about}, seed {seed}", tables[seed], [result]) for seed, result in zip(seeds, results)] if per_seed \
        else [(about, pooled, results)]
    drawing = Drawing(
        objective=config.objective, noise=config.noise, step_sizes=np.asarray(config.step_sizes), horizon=horizon,
        checkpoints=checkpoints, panels=panels, results=results, about=about, drawn=drawn_estimators(config),
        ylabel=f"mean squared distance to {TARGETS[config.target_kind].label}", law=law, closed=closed,
        critical=critical_step_size(config),
    )
    written = []
    for name in config.figures:
        for stem, fig in FIGURES[name].draw(drawing):
            plots.save(fig, folder / stem)
            plt.close(fig)
            written.append(folder / f"{stem}.png")
    return written
