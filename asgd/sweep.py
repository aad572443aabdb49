"""Run a configured sweep into a result folder, resumably.

A sweep is a list of points (seed, n_steps); each point is one `simulate.run` call over all step
sizes. Each finished point is saved at once (atomically) under `points/`; running the same sweep
again skips the saved points, so an interrupted sweep (Ctrl-C, crash) loses at most the point
in progress. A folder made by a different config is refused unless `fresh=True`.

The folder, once complete:

- `results.csv`: one row per experiment x seed x estimator x step size x checkpoint, columns
  `experiment, seed, estimator, step_size, n_steps, n_chains, mse, mse_se, n_diverged, target,
  source, law_regime, mse_grid_error, horizon`; `n_steps` is the checkpoint step t, `horizon` the
  run's T (with several horizons, runs of T = 200 and T = 400 both have rows at t = 100);
  simulated rows have `source = "simulation"` and `law_regime`, `mse_grid_error` empty. With `[theory] stationary = true`, rows with `source = "law"` follow: the exact
  law of every estimator at each checkpoint from run.x0, and rows with `source = "stationary"`:
  the long-run law's values (estimators `x`, `x_avg`, `x_avg_bias`; see `asgd.law_rows`);
- `arrays.npz`: the final estimators of every chain, keys `seed{s}_T{T}/{estimator}`, plus
  `step_sizes` and `targets` (one target point per step size; v*(eta) for target.kind = "local",
  whose targets are `seed{s}_T{T}/target`, per sweep point), and `law/...` with the law;
- `metadata.json`: the config, versions, JAX backend and devices, git commit, wall time, and
  `law` (its settings) with the law;
- `points/seed{s}_T{T}.npz`: every sweep point's whole `SimulationResult` (`SimulationResult.load`);
- the figures, PNG and PDF.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Callable, Hashable, NamedTuple

import numpy as np

import simulate
import theory
from analysis import ties
from analysis.errors import errors
from asgd import interrupts, law_rows, result_folder
from asgd.distributed import SINGLE, Cluster
from asgd.config import ExperimentConfig
from asgd.schema import ConfigError
from asgd.targets import TARGETS
from simulate.progress import StepBar
from simulate.result import join_step_sizes

__all__ = [
    "Point", "SweepOutcome", "SweepPlan", "claim", "plan_sweep", "resume_points", "run_point", "run_sweep", "simulate_points", "tabulate", "check_point", "compute_targets", "load_point", "point_disagreement", "point_path",
    "point_targets", "target_path",
]

RESULT_COLUMNS = [
    "experiment", "seed", "estimator", "step_size", "n_steps", "n_chains", "mse", "mse_se", "n_diverged", "target",
    "source", "law_regime", "mse_grid_error", "horizon",
]


@dataclasses.dataclass
class SweepOutcome:
    out_dir: Path
    rows: list[dict]
    results: dict[tuple[int, int], simulate.SimulationResult]
    targets: np.ndarray
    resumed: int
    wall_time: float


def target_path(config: ExperimentConfig):
    """The `SolutionPath` of the config's target (smoothed, local: v*(eta); penalized: argmin
    P_eta; `asgd.targets.TARGETS`), or None for the targets that do not depend on the step size."""
    solution = TARGETS[config.target_kind].solution
    return None if solution is None else solution(config.objective, config.noise, np.asarray(config.step_sizes))


def compute_targets(config: ExperimentConfig, path=None) -> np.ndarray:
    """One target point per step size, shape `(S, dim)`, as the config's [target] asks (for
    target.kind = "local", v*(eta): the local targets depend on each run's chains, see
    `point_targets`). `path`: the `target_path` if already computed."""
    target = TARGETS[config.target_kind]
    if target.solution is not None:
        return np.asarray(target_path(config) if path is None else path, dtype=np.float64)
    return np.broadcast_to(target.point(config), (len(config.step_sizes), config.objective.dim)).copy()


def point_targets(config: ExperimentConfig, path, targets: np.ndarray, result) -> np.ndarray:
    """The targets of one sweep point `(S, dim)`. With a step-size-dependent target, the chains
    (`result.x`) are checked for the near-tie trap (`analysis.ties`: a `NearTieWarning` where most
    chains sit in another basin than the target's, close in value); target.kind = "local" takes
    the minimizer in the chains' basin."""
    if path is None:
        return targets
    local = ties.local_path(path, result.x, mask=~result.diverged, stacklevel=3)
    return np.asarray(local.points, dtype=np.float64) if TARGETS[config.target_kind].per_point else targets


def point_path(points_dir, seed: int, horizon: int) -> Path:
    """Where the sweep point (seed, n_steps = horizon) is saved (`SimulationResult.save`)."""
    return Path(points_dir) / f"seed{seed}_T{horizon}.npz"


def load_point(path) -> simulate.SimulationResult | None:
    """The sweep point saved at `path`, or `None` with a warning naming the file when it cannot
    be read: the point is then recomputed (same seed, same numbers) and the file replaced."""
    return result_folder.load_or_redo(path, simulate.SimulationResult.load, "sweep point", "computing it again")


def point_disagreement(config: ExperimentConfig, seed: int, horizon: int, result) -> str | None:
    """What a saved sweep point records that disagrees with its file name (seed, horizon) or the
    folder's config (step sizes, chains, objective, noise, checkpoints, ...), or None.

    A point copied under another seed's name, or left by another config whose `sweep.json` was
    edited, would otherwise be pooled as if it were this point."""
    kwargs = config.run_kwargs(seed, horizon)
    expected = {
        "seed": seed,
        "n_steps": horizon,
        "n_chains": config.n_chains,
        "dim": config.objective.dim,
        "objective_name": config.objective.name,
        "tail_fraction": kwargs["tail_fraction"],
        "method": config.method,
        "noise": config.noise.describe(),
        "step_sizes": np.asarray(config.step_sizes, np.float64).tolist(),
        "checkpoint_steps": simulate.checkpoint_schedule(horizon, config.checkpoints).tolist(),
    }
    for name, want in expected.items():
        got = getattr(result, name)
        got = got.tolist() if isinstance(got, np.ndarray) else got.describe() if hasattr(got, "describe") else got
        if got != want:
            return f"it records {name} = {got!r}, the folder's config and the file name say {want!r}"
    return None


def check_point(config: ExperimentConfig, path, seed: int, horizon: int, result) -> None:
    """Refuse (`ResultFolderError` naming the file) a saved point that `point_disagreement` finds wrong."""
    problem = point_disagreement(config, seed, horizon, result)
    if problem:
        raise result_folder.ResultFolderError(_misplaced(path, problem))


def _misplaced(path, problem: str) -> str:
    return (f"{str(path)!r}: this sweep point does not belong here: {problem}; remove the file to recompute it, "
            "or --fresh to start the folder over")


def _rows(config: ExperimentConfig, seed: int, result, targets: np.ndarray) -> list[dict]:
    table = errors(result, targets)
    rows = []
    for record in table.to_records():
        if record["estimator"] not in config.estimators:
            continue
        rows.append(
            {
                "experiment": config.name,
                "seed": seed,
                **{k: record[k] for k in ("estimator", "step_size", "n_steps", "n_chains", "mse", "mse_se", "n_diverged")},
                "target": config.target_kind,
                "source": "simulation",
                "horizon": result.n_steps,
            }
        )
    return rows


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    """What a sweep computes before it touches the folder (a config error surfaces before any
    file): the target `solution` path (or None), the `targets` `(S, d)`, and with `[theory]` the
    long-run `law` (also with `run.x0 = "stationary"`: the chains' start) and the finite-T laws
    `finite_law`. Only the writing process holds them."""

    solution: object
    targets: np.ndarray | None
    law: object
    finite_law: object


def plan_sweep(config: ExperimentConfig, cluster: Cluster = SINGLE) -> SweepPlan:
    """Step 1 of a sweep: targets and laws, before anything is written."""
    if not cluster.is_writer:
        return SweepPlan(None, None, None, None)
    solution = target_path(config)
    targets = compute_targets(config, solution)
    # The chains of run.x0 = "stationary" start from the same law that [theory] tabulates.
    law = law_rows.compute_law(config) if config.stationary or config.stationary_start else None
    finite_law = law_rows.compute_finite_law(config, law) if config.stationary else None
    return SweepPlan(solution, targets, law, finite_law)


def claim(config: ExperimentConfig, out_dir, *, fresh: bool, cluster: Cluster = SINGLE) -> tuple[Path, Path]:
    """Step 2: the result folder claimed for this config by process 0, agreed by every process:
    (the folder, its points/ folder)."""
    out, points_dir, claim_error = Path(out_dir), Path(out_dir) / "points", None
    if cluster.is_writer:
        try:
            out = result_folder.check_out_dir(out_dir)
            points_dir = result_folder.claim_folder(out, config.name, config.raw, fresh=fresh)
        except ValueError as error:
            claim_error = error
    if not cluster.agree(claim_error is None):
        raise claim_error or ConfigError(f"process 0 could not claim --out {str(out)!r}; see its error")
    return out, points_dir


class Point(NamedTuple):
    """One unit of resumable work: the `key` its result is filed under, the `path` it is saved
    at, and its `steps` (its share of the progress bar)."""

    key: Hashable
    path: Path
    steps: int


def resume_points(points: list[Point], *, load: Callable, compute: Callable, save: Callable, label: str, quiet: bool,
                  check: Callable | None = None, cluster: Cluster = SINGLE) -> tuple[dict, int]:
    """The resume loop of every result folder (sweep points, network training runs): each point
    is `load(key, path)` where its file exists (None for a damaged file: computed again), refused
    where `check(key, saved)` names a problem (`ResultFolderError` naming the file), else
    `compute(key, progress)` and `save(path, result)` at once, so an interruption loses at most
    the point in progress. `progress(done, total)` moves the bar within the point.

    With a `cluster`, process 0 reads and writes the files and every process follows its
    decisions (`Cluster.agree`); `compute` runs on all. Returns ({key: result}, the number
    resumed); the results only on the writing process."""
    writer = cluster.is_writer
    results, resumed, finished = {}, 0, 0
    progress = StepBar(total=sum(point.steps for point in points), label=label, enabled=False if quiet or not writer else None)
    for point in points:
        interrupts.check()
        result = load(point.key, point.path) if writer and point.path.exists() else None
        problem = None if result is None or check is None else check(point.key, result)
        if not cluster.agree(problem is None):
            raise result_folder.ResultFolderError(_misplaced(point.path, problem) if writer else "process 0 refused a saved sweep point; see its error")
        if cluster.agree(result is not None):
            resumed += 1
        else:
            within = None
            if progress.enabled:
                within = lambda done, total, base=finished, steps=point.steps: progress.update_to(base + steps * done // total)  # noqa: E731
            result = compute(point.key, within)
            if writer:
                save(point.path, result)
        finished += point.steps
        progress.update_to(finished)
        if writer:
            results[point.key] = result
    progress.close()
    return results, resumed


def run_point(config: ExperimentConfig, seed: int, horizon: int, *, n_chains: int, first_chain: int = 0, start_law=None, progress=None):
    """`simulate.run` of one sweep point's chains first_chain .. first_chain + n_chains - 1.

    With `run.x0 = "stationary"` each step size starts from its own stationary law
    (`theory.stationary_starts` of `start_law`: chain i's start from (seed, i) alone), which one
    `simulate.run` call cannot take: one run per step size, joined (`simulate.result.join_step_sizes`).
    Each run draws the same noise for chain i (the randomness contract), so the result is the
    one a single call with per-step-size starts would give."""
    kwargs = {**config.run_kwargs(seed, horizon), "n_chains": n_chains, "first_chain": first_chain}
    if not config.stationary_start:
        return simulate.run(config.objective, **kwargs, progress=progress)
    starts = theory.stationary_starts(start_law, seed, np.arange(first_chain, first_chain + n_chains))
    step_sizes, runs = kwargs.pop("step_sizes"), []
    for s, eta in enumerate(step_sizes):
        within = None if progress is None else lambda done, total, s=s: progress(s * total + done, len(step_sizes) * total)  # noqa: E731
        runs.append(simulate.run(config.objective, **{**kwargs, "x0": starts[s]}, step_sizes=[eta], progress=within))
    return join_step_sizes(runs)


def simulate_points(config: ExperimentConfig, points_dir: Path, *, quiet: bool, cluster: Cluster = SINGLE, start_law=None) -> tuple[dict, int]:
    """Step 3, resumable (`resume_points`): every sweep point, loaded from `points_dir` where
    saved (and checked against the config), else simulated and saved at once. Returns
    ({(seed, T): result}, the number resumed); the results only on the writing process.
    `start_law`: the stationary law the chains of `run.x0 = "stationary"` start from (the
    plan's; computed here when None, as on the processes that do not write)."""
    if config.stationary_start and start_law is None:
        start_law = law_rows.compute_law(config)
    first_chain, n_mine = cluster.chain_slice(config.n_chains)

    def run(point, progress):  # this process's slice of the chains, gathered
        mine = run_point(config, *point, n_chains=n_mine, first_chain=first_chain, start_law=start_law, progress=progress)
        return cluster.gather(mine, config.n_chains)

    return resume_points(
        [Point((seed, horizon), point_path(points_dir, seed, horizon), horizon) for seed, horizon in config.sweep_points()],
        load=lambda point, path: load_point(path), compute=run, save=lambda path, result: result.save(path),
        check=lambda point, result: point_disagreement(config, *point, result), label=config.name, quiet=quiet, cluster=cluster,
    )


def tabulate(config: ExperimentConfig, plan: SweepPlan, results: dict) -> tuple[list[dict], dict, dict]:
    """Step 4: the rows of results.csv, the arrays of arrays.npz and the law's metadata, from the
    plan and the points alone."""
    rows, local_targets = [], {}
    for (seed, horizon), result in results.items():
        here = point_targets(config, plan.solution, plan.targets, result)
        if TARGETS[config.target_kind].per_point:
            local_targets[f"seed{seed}_T{horizon}/target"] = here
        rows.extend(_rows(config, seed, result, here))
    arrays = {f"seed{s}_T{t}/{name}": getattr(r, name) for (s, t), r in results.items() for name in simulate.ESTIMATORS}
    arrays.update({f"seed{s}_T{t}/diverged": r.diverged for (s, t), r in results.items()})
    arrays.update(local_targets)
    extra = {}
    if plan.law is not None and config.stationary:  # (run.x0 = "stationary" alone: the law is the start, not tabulated)
        horizons = sorted({row["n_steps"] for row in rows})
        regime = law_rows.regimes(config, plan.law, horizons)
        # A law row at T describes a run of T steps: its horizon is T.
        rows.extend({**row, "horizon": row["n_steps"]} for row in law_rows.law_rows(config, plan.law, plan.targets, horizons, regime))
        arrays.update(law_rows.law_arrays(plan.law))
        extra["law"] = law_rows.law_metadata(plan.law, regime[horizons[-1]])
    if plan.finite_law is not None:  # (noise that depends on x: these rows only)
        rows.extend({**row, "horizon": row["n_steps"]} for row in law_rows.finite_rows(config, plan.finite_law, plan.targets))
    return rows, arrays, extra


def run_sweep(config: ExperimentConfig, out_dir, *, fresh: bool = False, quiet: bool = False,
              cluster: Cluster = SINGLE) -> SweepOutcome | None:
    """Run every sweep point not already saved in `out_dir`; write the tables and arrays.

    One way through: `plan_sweep` (targets, laws) -> `claim` (the folder) -> `simulate_points`
    (resumable) -> `tabulate` (rows, arrays) -> `result_folder.write_results`; each step reads
    only what the steps before it produced. With a `cluster` of several processes
    (`asgd.distributed`), each runs its slice of every point's chains; process 0 claims the
    folder, saves the gathered points and writes the files, and gets the outcome; the other
    processes get `None`.
    """
    start = time.perf_counter()
    plan = plan_sweep(config, cluster)
    out, points_dir = claim(config, out_dir, fresh=fresh, cluster=cluster)
    # A failure before any point is saved releases the claim (the corrected config may then run here).
    with result_folder.released_on_failure(out) if cluster.is_writer else contextlib.nullcontext():
        results, resumed = simulate_points(config, points_dir, quiet=quiet, cluster=cluster, start_law=plan.law)
        if not cluster.is_writer:
            return None
        rows, arrays, extra = tabulate(config, plan, results)
        wall_time = time.perf_counter() - start
        result_folder.write_results(
            out, rows, RESULT_COLUMNS, {"step_sizes": np.asarray(config.step_sizes), "targets": plan.targets, **arrays},
            {
                **extra,
                "experiment": config.name,
                "description": config.description,
                "config": config.raw,
                # Where a kind = "python" objective's module was found: `asgd plot` looks there.
                "config_dir": config.config_dir,
                "seeds": list(config.seeds),
                "targets": plan.targets,
                "resumed_points": resumed,
                "processes": cluster.num_processes,
                "wall_time_s": wall_time,
            },
        )
        return SweepOutcome(out, rows, results, plan.targets, resumed, wall_time)
