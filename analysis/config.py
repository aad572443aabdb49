"""Experiment configs: a TOML file describing a sweep, validated completely before any simulation.

    name = "quadratic_rates"
    description = "last iterate vs averages on an ill-conditioned quadratic"

    [objective]
    kind = "quadratic"            # a catalog constructor (see `asgd list`)
    hessian = [1.0, 0.1]          # ... and its parameters
    center = [1.0, -1.0]

    [noise]
    family = "gaussian"           # gaussian | rademacher | uniform | student_t
    scale = 1.0                   # or covariance = [[...]] (gaussian); df = 4.0 (student_t)

    [run]
    step_sizes = [0.01, 0.1, 1.0]
    n_steps = [1000, 10000]       # one horizon or several: each (seed, horizon) is a sweep point
    n_chains = 4096
    seeds = [0]
    x0 = [3.0, 3.0]
    tail_fraction = 0.5           # optional
    checkpoints = 8               # optional
    method = "sgd"                # optional: "sgd" | "exact"
    chunk_size = 4096             # optional

    [target]
    kind = "minimizer"            # minimizer | smoothed | penalized | point
    point = [1.0, -1.0]           # only for kind = "point"

    [output]
    estimators = ["x", "x_avg", "x_tail", "v", "v_avg"]
    figures = ["tradeoff", "rates"]

    [quick]                       # overrides of [run] for --quick
    n_chains = 512

Every error names the key, the value and what is allowed (`ConfigError`, a `ValueError`).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

import objectives
import simulate

__all__ = ["ConfigError", "ExperimentConfig", "load_config", "parse_config", "OBJECTIVE_KINDS", "NOISE_FAMILIES"]


class ConfigError(ValueError):
    """A config that cannot be run: names the key, the value and what is allowed."""


NOISE_FAMILIES = {
    "gaussian": simulate.noise.gaussian,
    "rademacher": simulate.noise.rademacher,
    "uniform": simulate.noise.uniform,
    "student_t": simulate.noise.student_t,
}

# Constructors a config may name: every public catalog function that returns an Objective.
_NOT_CONSTRUCTORS = {
    "from_function", "smoothed", "penalized", "Objective",
    # finite sums need data: the network experiment (analysis/network.py) builds them
    "finite_sum", "accuracy", "example_gradient_covariance", "least_squares", "logistic_regression", "mlp",
    "hessian_vector_product", "hutchinson_trace", "top_eigenvalue",
}
OBJECTIVE_KINDS = {
    name: getattr(objectives, name)
    for name in getattr(objectives, "__all__", [])
    if callable(getattr(objectives, name)) and name not in _NOT_CONSTRUCTORS and not inspect.isclass(getattr(objectives, name))
}

TARGET_KINDS = ("minimizer", "smoothed", "penalized", "point")
FIGURES = ("tradeoff", "rates", "landscape", "chains", "basins")

_TOP_KEYS = {"name", "description", "objective", "noise", "run", "target", "output", "quick"}
_RUN_KEYS = {
    "step_sizes", "n_steps", "n_chains", "seeds", "x0", "tail_fraction", "checkpoints", "method", "chunk_size",
}
_RUN_REQUIRED = {"step_sizes", "n_steps", "n_chains", "x0"}
_TARGET_KEYS = {"kind", "point"}
_OUTPUT_KEYS = {"estimators", "figures"}


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """A validated sweep. `objective` and `noise` are built; everything else is plain data."""

    name: str
    description: str
    objective_kind: str
    objective_params: dict
    noise_params: dict
    step_sizes: tuple[float, ...]
    horizons: tuple[int, ...]
    n_chains: int
    seeds: tuple[int, ...]
    x0: tuple
    tail_fraction: float
    checkpoints: Any
    method: str
    chunk_size: int | None
    target_kind: str
    target_point: tuple | None
    estimators: tuple[str, ...]
    figures: tuple[str, ...]
    raw: dict  # the config as read (after --quick overrides), for metadata

    @property
    def objective(self) -> objectives.Objective:
        return OBJECTIVE_KINDS[self.objective_kind](**_as_arrays(self.objective_params))

    @property
    def noise(self):
        params = dict(self.noise_params)
        family = params.pop("family")
        return NOISE_FAMILIES[family](**_as_arrays(params))

    def sweep_points(self) -> list[tuple[int, int]]:
        """(seed, n_steps) pairs, each one `simulate.run` call over all step sizes."""
        return [(seed, horizon) for seed in self.seeds for horizon in self.horizons]

    def run_kwargs(self, seed: int, n_steps: int) -> dict:
        kwargs = dict(
            step_sizes=np.asarray(self.step_sizes),
            n_steps=n_steps,
            n_chains=self.n_chains,
            x0=np.asarray(self.x0, dtype=np.float64),
            noise=self.noise,
            seed=seed,
            tail_fraction=self.tail_fraction,
            checkpoints=self.checkpoints,
            method=self.method,
        )
        if self.chunk_size is not None:
            kwargs["chunk_size"] = self.chunk_size
        return kwargs


def _as_arrays(params: dict) -> dict:
    return {k: (np.asarray(v, dtype=np.float64) if isinstance(v, list) else v) for k, v in params.items()}


def _fail(key: str, value, allowed: str):
    raise ConfigError(f"{key} = {value!r}: {allowed}")


def _check_unknown(table: dict, allowed: set, where: str):
    for key in table:
        if key not in allowed:
            _fail(f"{where}{key}", table[key], f"unknown key; allowed keys in [{where.rstrip('.') or 'top level'}]: {sorted(allowed)}")


def _number(key, value, *, positive=False, integer=False, lo=None, hi=None):
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or (not integer and not math.isfinite(value)):
        _fail(key, value, f"must be {'an integer' if integer else 'a finite number'}")
    if positive and value <= 0:
        _fail(key, value, "must be > 0")
    if lo is not None and value < lo:
        _fail(key, value, f"must be >= {lo}")
    if hi is not None and value > hi:
        _fail(key, value, f"must be <= {hi}")
    return value


def _list_of(key, value, check, *, allow_scalar=True, nonempty=True):
    if not isinstance(value, list):
        if allow_scalar:
            value = [value]
        else:
            _fail(key, value, "must be a list")
    if nonempty and not value:
        _fail(key, value, "must not be empty")
    return tuple(check(f"{key}[{i}]", v) for i, v in enumerate(value))


def parse_config(data: dict, *, quick: bool = False, source: str = "config") -> ExperimentConfig:
    """Validate a config dict (as read from TOML); build nothing expensive. Raises `ConfigError`."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the config must be a TOML table")
    _check_unknown(data, _TOP_KEYS, "")
    for table in ("objective", "noise", "run"):
        if table not in data:
            _fail(f"[{table}]", None, "missing; required tables: [objective], [noise], [run]")
        if not isinstance(data[table], dict):
            _fail(f"[{table}]", data[table], "must be a table")
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str) or not name or any(c in name for c in "/\\ "):
        _fail("name", name, "must be a non-empty string without spaces or slashes")
    description = data.get("description", "")
    if not isinstance(description, str):
        _fail("description", description, "must be a string")

    # [objective]
    objective_table = dict(data["objective"])
    kind = objective_table.pop("kind", None)
    if kind not in OBJECTIVE_KINDS:
        _fail("objective.kind", kind, f"must be one of {sorted(OBJECTIVE_KINDS)}")
    signature = inspect.signature(OBJECTIVE_KINDS[kind])
    accepted = {p for p in signature.parameters if p not in ("self",)}
    _check_unknown(objective_table, accepted, "objective.")

    # [noise]
    noise_table = dict(data["noise"])
    family = noise_table.get("family")
    if family not in NOISE_FAMILIES:
        _fail("noise.family", family, f"must be one of {sorted(NOISE_FAMILIES)}")
    noise_accepted = set(inspect.signature(NOISE_FAMILIES[family]).parameters) | {"family"}
    _check_unknown(noise_table, noise_accepted, "noise.")

    # [run] with [quick] overrides
    run_table = dict(data["run"])
    _check_unknown(run_table, _RUN_KEYS, "run.")
    if "quick" in data:
        if not isinstance(data["quick"], dict):
            _fail("[quick]", data["quick"], "must be a table of [run] overrides")
        _check_unknown(data["quick"], _RUN_KEYS, "quick.")
        if quick:
            run_table.update(data["quick"])
    for key in sorted(_RUN_REQUIRED - set(run_table)):
        _fail(f"run.{key}", None, "missing (required)")
    step_sizes = _list_of("run.step_sizes", run_table["step_sizes"], lambda k, v: float(_number(k, v, positive=True)))
    horizons = _list_of("run.n_steps", run_table["n_steps"], lambda k, v: _number(k, v, integer=True, lo=1))
    n_chains = _number("run.n_chains", run_table["n_chains"], integer=True, lo=1)
    seeds = _list_of("run.seeds", run_table.get("seeds", [0]), lambda k, v: _number(k, v, integer=True, lo=0, hi=2**32 - 1))
    x0 = run_table["x0"]
    x0_array = np.asarray(x0, dtype=object)
    if not isinstance(x0, list) or x0_array.ndim not in (1, 2):
        _fail("run.x0", x0, "must be a list of numbers (one point) or a list of such lists (one per chain)")
    for v in x0_array.ravel():
        _number("run.x0", v)
    tail_fraction = float(_number("run.tail_fraction", run_table.get("tail_fraction", 0.5), positive=True, hi=1.0))
    checkpoints = run_table.get("checkpoints", 8)
    if isinstance(checkpoints, list):
        _list_of("run.checkpoints", checkpoints, lambda k, v: _number(k, v, integer=True, lo=1), allow_scalar=False)
    else:
        _number("run.checkpoints", checkpoints, integer=True, lo=1)
    method = run_table.get("method", "sgd")
    if method not in ("sgd", "exact"):
        _fail("run.method", method, "must be 'sgd' or 'exact'")
    chunk_size = run_table.get("chunk_size")
    if chunk_size is not None:
        _number("run.chunk_size", chunk_size, integer=True, lo=1)

    # [target]
    target_table = dict(data.get("target", {"kind": "minimizer"}))
    _check_unknown(target_table, _TARGET_KEYS, "target.")
    target_kind = target_table.get("kind", "minimizer")
    if target_kind not in TARGET_KINDS:
        _fail("target.kind", target_kind, f"must be one of {list(TARGET_KINDS)}")
    target_point = target_table.get("point")
    if (target_kind == "point") != (target_point is not None):
        _fail("target.point", target_point, "is required with target.kind = 'point' and allowed only there")
    if target_point is not None:
        target_point = _list_of("target.point", target_point, lambda k, v: float(_number(k, v)), allow_scalar=False)

    # [output]
    output_table = dict(data.get("output", {}))
    _check_unknown(output_table, _OUTPUT_KEYS, "output.")
    estimators = _list_of(
        "output.estimators",
        output_table.get("estimators", list(simulate.ESTIMATORS)),
        lambda k, v: v if v in simulate.ESTIMATORS else _fail(k, v, f"must be one of {list(simulate.ESTIMATORS)}"),
        allow_scalar=False,
    )
    figures = _list_of(
        "output.figures",
        output_table.get("figures", ["tradeoff"]),
        lambda k, v: v if v in FIGURES else _fail(k, v, f"must be one of {list(FIGURES)}"),
        allow_scalar=False,
        nonempty=False,
    )

    config = ExperimentConfig(
        name=name,
        description=description,
        objective_kind=kind,
        objective_params=objective_table,
        noise_params=noise_table,
        step_sizes=step_sizes,
        horizons=horizons,
        n_chains=n_chains,
        seeds=seeds,
        x0=tuple(map(tuple, x0)) if x0_array.ndim == 2 else tuple(x0),
        tail_fraction=tail_fraction,
        checkpoints=tuple(checkpoints) if isinstance(checkpoints, list) else checkpoints,
        method=method,
        chunk_size=chunk_size,
        target_kind=target_kind,
        target_point=target_point,
        estimators=estimators,
        figures=figures,
        raw={**data, "run": run_table},
    )
    _check_buildable(config)
    return config


def _check_buildable(config: ExperimentConfig) -> None:
    """Build the objective and noise model and check dimensions: still no simulation."""
    try:
        objective = config.objective
    except (TypeError, ValueError) as error:
        raise ConfigError(f"[objective] kind = {config.objective_kind!r}: {error}") from None
    try:
        noise = config.noise
    except (TypeError, ValueError) as error:
        raise ConfigError(f"[noise] family = {config.noise_params['family']!r}: {error}") from None
    dim = objective.dim
    if noise.fixed_dim is not None and noise.fixed_dim != dim:
        _fail("noise.covariance", config.noise_params.get("covariance"), f"must be {dim}x{dim} to match objective dim={dim}")
    x0 = np.asarray(config.x0, dtype=np.float64)
    if x0.shape[-1] != dim or (x0.ndim == 2 and x0.shape[0] != config.n_chains):
        _fail("run.x0", list(config.x0), f"must have {dim} coordinates (objective dim), or be n_chains={config.n_chains} such points")
    if config.target_point is not None and len(config.target_point) != dim:
        _fail("target.point", list(config.target_point), f"must have {dim} coordinates (objective dim)")
    if isinstance(config.checkpoints, tuple) and max(config.checkpoints) > min(config.horizons):
        _fail("run.checkpoints", list(config.checkpoints), f"must not exceed the shortest horizon n_steps={min(config.horizons)}")


def load_config(path: str | Path, *, quick: bool = False):
    """Read and validate a TOML config. Raises `ConfigError` (also for unreadable files).

    Returns an `ExperimentConfig`, or a `analysis.network.NetworkConfig` for a file with
    `kind = "network"` (the small-network experiment has its own schema).
    """
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read config {str(path)!r}: {error.strerror or error}") from None
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    if data.get("kind") == "network":
        from analysis.network import parse_network_config

        return parse_network_config(data, quick=quick, source=str(path))
    return parse_config(data, quick=quick, source=str(path))
