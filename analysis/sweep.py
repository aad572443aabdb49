"""Run a configured sweep into a result folder, resumably.

A sweep is a list of points (seed, n_steps); each point is one `simulate.run` call over all step
sizes. Each finished point is saved at once (atomically) under `points/`; running the same sweep
again skips the saved points, so an interrupted sweep (Ctrl-C, crash) loses at most the point
in progress. A folder made by a different config is refused unless `fresh=True`.

The folder, once complete:

- `results.csv`: one row per experiment x seed x estimator x step size x checkpoint, columns
  `experiment, seed, estimator, step_size, n_steps, n_chains, mse, mse_se, n_diverged, target`;
- `arrays.npz`: the final estimators of every chain, keys `seed{s}_T{T}/{estimator}`, plus
  `step_sizes` and `targets` (one target point per step size);
- `metadata.json`: the config, versions, JAX backend and devices, git commit, wall time;
- the figures, PNG and PDF.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import shutil
import subprocess
import sys
import time
from importlib import metadata as importlib_metadata
from pathlib import Path

import jax
import numpy as np

import simulate
from analysis import storage
from analysis.config import ConfigError, ExperimentConfig
from analysis.progress import Progress

__all__ = ["SweepOutcome", "run_sweep", "compute_targets", "save_result", "load_result", "environment"]

RESULT_COLUMNS = [
    "experiment", "seed", "estimator", "step_size", "n_steps", "n_chains", "mse", "mse_se", "n_diverged", "target",
]


@dataclasses.dataclass
class SweepOutcome:
    out_dir: Path
    rows: list[dict]
    results: dict[tuple[int, int], simulate.SimulationResult]
    targets: np.ndarray
    resumed: int
    wall_time: float


def compute_targets(config: ExperimentConfig) -> np.ndarray:
    """One target point per step size, shape `(S, dim)`, as the config's [target] asks."""
    from analysis import minima

    f, noise = config.objective, config.noise
    step_sizes = np.asarray(config.step_sizes)
    if config.target_kind == "point":
        point = np.asarray(config.target_point, dtype=np.float64)
    elif config.target_kind == "minimizer":
        closed_form = f.minimizer
        point = np.asarray(closed_form(f.params) if closed_form else minima.global_minimizer(f), dtype=np.float64)
    elif config.target_kind == "smoothed":
        return np.asarray(minima.smoothed_solution(f, noise, step_sizes), dtype=np.float64)
    else:
        return np.asarray(minima.penalized_solution(f, noise, step_sizes), dtype=np.float64)
    return np.broadcast_to(point, (step_sizes.size, f.dim)).copy()


def save_result(path, result: simulate.SimulationResult) -> Path:
    """A `SimulationResult` as `.npz` (estimators, checkpoints, flags, inputs as JSON)."""
    arrays = {name: getattr(result, name) for name in simulate.ESTIMATORS}
    arrays.update({f"checkpoints/{name}": value for name, value in result.checkpoints.items()})
    arrays.update(
        diverged=result.diverged,
        diverged_at=result.diverged_at,
        checkpoint_steps=result.checkpoint_steps,
        step_sizes=result.step_sizes,
        metadata=np.asarray(json.dumps(result.metadata())),
    )
    return storage.write_npz(path, **arrays)


def load_result(path) -> simulate.SimulationResult:
    """Inverse of `save_result` (the noise model is kept as its description)."""
    with np.load(path) as data:
        meta = json.loads(str(data["metadata"]))
        return simulate.SimulationResult(
            **{name: data[name] for name in simulate.ESTIMATORS},
            diverged=data["diverged"],
            diverged_at=data["diverged_at"],
            checkpoint_steps=data["checkpoint_steps"],
            checkpoints={name: data[f"checkpoints/{name}"] for name in simulate.ESTIMATORS},
            step_sizes=data["step_sizes"],
            n_steps=meta["n_steps"],
            n_chains=meta["n_chains"],
            seed=meta["seed"],
            tail_fraction=meta["tail_fraction"],
            noise=meta["noise"],
            objective_name=meta["objective"],
            dim=meta["dim"],
            dtype=meta["dtype"],
            divergence_radius=meta["divergence_radius"],
            method=meta["method"],
        )


def environment() -> dict:
    """Versions, backend and devices, git commit: what is needed to re-run a result."""
    versions = {"python": platform.python_version()}
    for package in ("asgd-smoothing", "jax", "jaxlib", "numpy", "matplotlib"):
        try:
            versions[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            versions[package] = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, cwd=Path(__file__).parent
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "versions": versions,
        "jax_backend": jax.default_backend(),
        "device_count": jax.device_count(),
        "devices": [str(d) for d in jax.devices()],
        "x64": bool(jax.config.jax_enable_x64),
        "git_commit": commit,
        "platform": platform.platform(),
        "command": sys.argv,
    }


def _fingerprint(config: ExperimentConfig) -> str:
    canonical = json.dumps(config.raw, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _rows(config: ExperimentConfig, seed: int, result, targets: np.ndarray) -> list[dict]:
    from analysis.errors import errors

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
            }
        )
    return rows


def claim_folder(out_dir, name: str, fingerprint: str, *, fresh: bool) -> Path:
    """Make `out_dir` the result folder of the config `name` with `fingerprint`; returns its
    `points/` folder, where finished pieces of work are saved for resuming.

    A folder holding another config's results is refused (`ConfigError`) unless `fresh`, which
    discards the saved points.
    """
    out = Path(out_dir)
    points_dir = out / "points"
    manifest_path = out / "sweep.json"
    if fresh and out.exists():
        shutil.rmtree(points_dir, ignore_errors=True)
        manifest_path.unlink(missing_ok=True)
    if manifest_path.exists():
        previous = json.loads(manifest_path.read_text())
        if previous.get("fingerprint") != fingerprint:
            raise ConfigError(
                f"--out {str(out)!r} holds results of a different config ({previous.get('experiment')!r}, "
                f"fingerprint {previous.get('fingerprint')}); use --fresh to overwrite or another --out"
            )
    storage.write_json(manifest_path, {"experiment": name, "fingerprint": fingerprint})
    return points_dir


def run_sweep(config: ExperimentConfig, out_dir, *, fresh: bool = False, quiet: bool = False) -> SweepOutcome:
    """Run every sweep point not already saved in `out_dir`; write the tables and arrays."""
    start = time.perf_counter()
    out = Path(out_dir)
    points_dir = claim_folder(out, config.name, _fingerprint(config), fresh=fresh)

    targets = compute_targets(config)
    objective = config.objective
    results, rows, resumed = {}, [], 0
    points = config.sweep_points()
    progress = Progress(total=sum(horizon for _, horizon in points), label=config.name, enabled=not quiet)
    finished = 0
    for seed, horizon in points:
        path = points_dir / f"seed{seed}_T{horizon}.npz"
        if path.exists():
            result = load_result(path)
            resumed += 1
        else:
            # The bar moves within the point too: the engine reports every few noise blocks.
            within = None
            if progress.enabled:
                within = lambda done, total, base=finished, horizon=horizon: progress.update(base + horizon * done / total)  # noqa: E731
            result = simulate.run(objective, **config.run_kwargs(seed, horizon), progress=within)
            save_result(path, result)
        finished += horizon
        progress.update(finished)
        results[(seed, horizon)] = result
        rows.extend(_rows(config, seed, result, targets))
    progress.close()

    storage.write_csv(out / "results.csv", rows, RESULT_COLUMNS)
    arrays = {f"seed{s}_T{t}/{name}": getattr(r, name) for (s, t), r in results.items() for name in simulate.ESTIMATORS}
    arrays.update({f"seed{s}_T{t}/diverged": r.diverged for (s, t), r in results.items()})
    storage.write_npz(out / "arrays.npz", step_sizes=np.asarray(config.step_sizes), targets=targets, **arrays)
    wall_time = time.perf_counter() - start
    storage.write_json(
        out / "metadata.json",
        {
            "experiment": config.name,
            "description": config.description,
            "config": config.raw,
            "seeds": list(config.seeds),
            "targets": targets,
            "resumed_points": resumed,
            "wall_time_s": wall_time,
            **environment(),
        },
    )
    return SweepOutcome(out, rows, results, targets, resumed, wall_time)
