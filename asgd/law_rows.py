"""The exact law beside a sweep's simulation: `[theory] stationary = true`.

For a config that asks, the sweep adds two kinds of exact rows to `results.csv` (the simulated
rows have `source = "simulation"`; a folder written before the column existed reads as all
simulation):

At the run's own start and horizons, `source = "law"` (`theory.finite_time_law`, from the
config's x0, one point or one per chain, or with `run.x0 = "stationary"` from the stationary law
itself on its own grid, for every checkpoint T of every run): for each
estimator the run reports (`x`, `x_avg`, `x_tail`, `v`, `v_avg`), `mse` = E|estimator_T -
target|^2 exactly, on the cell chain; `law_regime` = "finite_time". These are the values each
simulated point should match within its standard errors, and the tradeoff figure draws them
under the points. Noise whose covariance depends on x (`hessian_aligned`, `loss_scaled`,
`label_noise`, `state_dependent`) gets these rows from its own kernel (`theory.state_dependent`),
and only these: where it vanishes at a minimizer the chain is absorbed and has no stationary law
to tabulate (`theory.absorption` says where it ends), so `compute_law` returns None for it.

As T -> infinity (additive noise), `source = "stationary"` (`theory.stationary_law`, for the config's step sizes,
the same targets). For each step size eta and each checkpoint T of the run:

- estimator `x`: `mse` = E_pi |x - target|^2, the last iterate's floor (the same for every T);
- estimator `x_avg`: `mse` = |E_pi x - target|^2 + tr(Sigma_avg) / T (`law.averaged_mse`: the
  large-T approximation for a chain started at stationarity; the transient from x0 is excluded;
  inf where the law is metastable);
- estimator `x_avg_bias`: `mse` = |E_pi x - target|^2 (`law.averaged_bias`), the limit of the
  average's error as T -> infinity (the same for every T).

Exact rows have `seed` and `mse_se` empty (no sampling, so no standard error), `n_chains = 0` and
`n_diverged = 0`. `mse_grid_error` is the grid's error estimate of that quantity: twice its change
on a grid of half as many cells per axis, 2 |q - q_coarse|, the rule of
`StationaryLaw.discretization_error` applied to q itself (nan where q is inf); empty on
simulated rows.

Metastability. The global law may be one no run reaches (`sharp_flat` at small eta, started in
the sharp well: the escape time is e^160 steps). Each stationary row carries `law_regime`, the
verdict of `law.relevant(minimizers(f), basin of x0, T)`: "stationary" (T >= 10 relaxation
times: the run sees this law), "quasi_stationary" (T <= escape time / 10: the run stays in x0's
basin and sees that basin's quasi-stationary law, not this one) or "neither". The basin of x0 is
that of its first point when x0 gives one point per chain. The finite-time rows need no such
verdict: they are exact at T from x0 whatever the regime.

`arrays.npz` gets `law/step_sizes`, `law/grid` (cell centres, `(N, d)`), `law/density`
(`(S,) + grid shape`); `metadata.json` gets `law`: n_grid, bounds, the solver per step size, the
mass per step sent out of the box, the grid error of E_pi x, the relaxation times, and the regime
per step size at the largest T.
"""

from __future__ import annotations

import numpy as np

from analysis import minima
from analysis.basins import assign_basins
from simulate.run import checkpoint_schedule
from theory.finite_time import FiniteTimeLaw, finite_time_law
from theory.stationary import StationaryLaw, stationary_law
from asgd.config import ExperimentConfig
from asgd.schema import ConfigError

__all__ = ["LAW_ESTIMATORS", "compute_finite_law", "compute_law", "finite_rows", "law_rows", "law_arrays", "law_metadata", "regimes"]

#: The estimators a law row may carry, each from the simulated estimator whose limit it is.
LAW_ESTIMATORS = {"x": "x", "x_avg": "x_avg", "x_avg_bias": "x_avg"}


def compute_law(config: ExperimentConfig) -> StationaryLaw | None:
    """The law for the config's step sizes (None for noise that depends on x: module docstring);
    a step size without a law is a `ConfigError` (naming run.x0 when the chains start from it)."""
    if not config.noise.additive:
        return None
    asked = 'run.x0 = "stationary" (the chains start from the stationary law)' if config.stationary_start else "theory.stationary = true"
    try:
        return stationary_law(config.objective, config.noise, np.asarray(config.step_sizes), bounds=_bounds(config), n_grid=config.law_n_grid)
    except ValueError as error:
        raise ConfigError(f"{asked}: {error} (theory.n_grid and theory.bounds set the grid)") from None


def _bounds(config: ExperimentConfig):
    if config.law_bounds is None:
        return None
    return tuple(np.asarray(end, dtype=np.float64) for end in config.law_bounds)


def checkpoints(config: ExperimentConfig) -> list[int]:
    """Every checkpoint step of every run of the config (the horizons of the finite-time law)."""
    return sorted({int(t) for horizon in config.horizons for t in checkpoint_schedule(int(horizon), config.checkpoints)})


def compute_finite_law(config: ExperimentConfig, law: StationaryLaw | None = None) -> tuple[FiniteTimeLaw, FiniteTimeLaw]:
    """(the finite-time law at every checkpoint from the config's x0, the same on a grid of half
    as many cells per axis for the grid error); a config the law refuses is a `ConfigError`.

    With `run.x0 = "stationary"`, `law` is the start (`compute_law`): the finite-time laws start
    from it on its own grid and from `law.coarse` on the coarse one, so the law of x_T stays pi."""
    f = config.objective
    horizons = checkpoints(config)

    def finite(start, n_grid, coarsen=False, bounds=_bounds(config)):
        return finite_time_law(
            f, config.noise, np.asarray(config.step_sizes), x0=start, n_steps=horizons, bounds=bounds,
            n_grid=n_grid, tail_fraction=config.tail_fraction, coarsen=coarsen,
        )

    try:
        if config.stationary_start:
            return finite(law, None, bounds=None), finite(law.coarse, None, bounds=None)
        x0 = np.asarray(config.x0, dtype=np.float64).reshape(-1, f.dim)
        start = x0[0] if len(np.unique(x0, axis=0)) == 1 else x0
        # fewer cells where the kernel is wide (large step sizes): the same accuracy per step, far cheaper
        fine = finite(start, config.law_n_grid, coarsen=True)
        return fine, finite(start, fine.n_cells // 2)
    except ValueError as error:
        raise ConfigError(f"theory.stationary = true (the law at the run's horizons from run.x0): {error} (theory.n_grid and theory.bounds set the grid)") from None


def finite_rows(config: ExperimentConfig, laws: tuple[FiniteTimeLaw, FiniteTimeLaw], targets: np.ndarray) -> list[dict]:
    """The `source = "law"` rows: every estimator the runs report x step size x checkpoint T,
    E|estimator_T - target|^2 from x0 exactly (module docstring)."""
    law, coarse = laws
    rows = []
    for estimator in config.estimators:
        if estimator not in law.means:
            continue
        value, grid_error = law.mse(estimator, targets), 2.0 * np.abs(law.mse(estimator, targets) - coarse.mse(estimator, targets))
        for h, n_steps in enumerate(law.n_steps.tolist()):
            for s, eta in enumerate(law.step_sizes):
                rows.append({
                    "experiment": config.name, "seed": "", "estimator": estimator, "step_size": float(eta),
                    "n_steps": n_steps, "n_chains": 0, "mse": float(value[h, s]), "mse_se": "", "n_diverged": 0,
                    "target": config.target_kind, "source": "law", "law_regime": "finite_time",
                    "mse_grid_error": float(grid_error[h, s]),
                })
    return rows


def regimes(config: ExperimentConfig, law: StationaryLaw, horizons) -> dict[int, np.ndarray]:
    """T -> `law.relevant(...)` per step size `(S,)`, for a run started at the config's x0
    ("stationary" at every T for a run started from the law itself)."""
    f = config.objective
    if config.stationary_start:
        return {int(t): np.full(len(law.step_sizes), "stationary", dtype=object) for t in horizons}
    wells = np.asarray(minima.minimizers(f).points, dtype=np.float64)
    start = np.asarray(config.x0, dtype=np.float64).reshape(-1, f.dim)[:1]
    basin = int(assign_basins(start, wells, f, method="descent")[0])
    horizons = sorted({int(t) for t in horizons})
    return dict(zip(horizons, law.relevant(wells, basin, horizons)))


def _quantity(law: StationaryLaw, estimator: str, targets: np.ndarray, n_steps: int) -> np.ndarray:
    if estimator == "x":
        return law.mse(targets)
    if estimator == "x_avg":
        return law.averaged_mse(targets, n_steps)
    return law.averaged_bias(targets)


def _grid_error(value: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """2 |q - q_coarse| where both are finite; nan where either is inf (a metastable law's
    averaged error: no grid error to state, and inf - inf would warn)."""
    value, coarse = np.asarray(value, np.float64), np.asarray(coarse, np.float64)
    finite = np.isfinite(value) & np.isfinite(coarse)
    return 2.0 * np.abs(np.subtract(value, coarse, out=np.full_like(value, np.nan), where=finite))


def law_rows(config: ExperimentConfig, law: StationaryLaw, targets: np.ndarray, horizons, regime: dict) -> list[dict]:
    """The `source = "stationary"` rows: estimator x step size x checkpoint T (module docstring)."""
    rows = []
    for estimator, simulated in LAW_ESTIMATORS.items():
        if simulated not in config.estimators:
            continue
        for n_steps in sorted(int(t) for t in horizons):
            value = _quantity(law, estimator, targets, n_steps)
            grid_error = _grid_error(value, _quantity(law.coarse, estimator, targets, n_steps)) if law.coarse is not None else np.full_like(value, np.nan)
            for s, eta in enumerate(law.step_sizes):
                rows.append({
                    "experiment": config.name, "seed": "", "estimator": estimator, "step_size": float(eta),
                    "n_steps": n_steps, "n_chains": 0, "mse": float(value[s]), "mse_se": "", "n_diverged": 0,
                    "target": config.target_kind, "source": "stationary", "law_regime": str(regime[n_steps][s]),
                    "mse_grid_error": float(grid_error[s]),
                })
    return rows


def law_arrays(law: StationaryLaw) -> dict:
    """The law's arrays for `arrays.npz`, under the `law/` prefix."""
    return {"law/step_sizes": law.step_sizes, "law/grid": law.grid.points, "law/density": law.density}


def law_metadata(law: StationaryLaw, regime_at_end: np.ndarray) -> dict:
    """The law's settings and diagnostics for `metadata.json` (key `law`)."""
    return {
        "n_grid": int(law.grid.n_cells),
        "bounds": [np.asarray(law.grid.lower).tolist(), np.asarray(law.grid.upper).tolist()],
        "step_sizes": law.step_sizes.tolist(),
        "method": list(law.method),
        "out_of_box": law.out_of_box.tolist(),
        "discretization_error": law.discretization_error.tolist(),
        "relaxation_time": law.relaxation_time.tolist(),
        "regime_at_largest_T": [str(r) for r in regime_at_end],
    }
