"""Experiment configs: a TOML file describing a sweep, validated completely before any simulation.

    name = "quadratic_rates"
    description = "last iterate vs averages on an ill-conditioned quadratic"

    [objective]
    kind = "quadratic"            # one of OBJECTIVE_KINDS (see `asgd list`), or "python":
    hessian = [1.0, 0.1]          # ... and its parameters
    center = [1.0, -1.0]          # (kind = "python": function = "module:make", [objective.args];
                                  #  see `asgd.python_objective`)
    search_box = [-3.0, 3.0]      # optional, any kind: the box holding every minimizer, [lower,
                                  # upper] numbers or dim-vectors, where minimizers, v*(eta) and
                                  # the figures' wells are searched (needed by a kind = "python"
                                  # objective without its own search_box for targets other than
                                  # "point", and by the basins/landscape figures)

    [noise]
    family = "gaussian"           # gaussian | rademacher | uniform | student_t (additive), or
                                  # hessian_aligned | loss_scaled | label_noise | state_dependent
                                  # (C depends on x; targets minimizer or point only: see
                                  # ADDITIVE_ONLY_TARGETS; state_dependent: cov = "module:fn",
                                  # fn(x) -> (d, d), looked up as a kind = "python" objective)
    scale = 1.0                   # or covariance = [[...]] (gaussian); df = 4.0 (student_t);
                                  # f_min = 0.0 (loss_scaled; default: found on the search box)

    [run]
    step_sizes = [0.01, 0.1, 1.0]
    n_steps = [1000, 10000]       # one horizon or several: each (seed, horizon) is a sweep point
    n_chains = 4096
    seeds = [0]
    x0 = [3.0, 3.0]               # one start, one per chain, or "stationary": each chain drawn
                                  # from the exact stationary law at each step size (dim <= 2,
                                  # additive noise; its grid: [theory] n_grid and bounds)
    tail_fraction = 0.5           # optional
    checkpoints = 8               # optional
    method = "sgd"                # optional: "sgd" | "exact"
    chunk_size = 4096             # optional

    [target]
    kind = "minimizer"            # minimizer | smoothed | local | penalized | point
                                  # (local: argmin F_eta in the basin where most chains are)
    point = [1.0, -1.0]           # only for kind = "point"

    [output]
    estimators = ["x", "x_avg", "x_tail", "v", "v_avg"]  # tabulated and drawn (default: all five
                                  # tabulated, the figures draw x, x_avg, x_tail)
    figures = ["tradeoff", "rates"]  # landscape and chains: 1-D objectives only
    per_seed = false              # optional: figures pool the seeds (default) or one panel per seed

    [theory]                      # optional: the exact long-run law beside the simulation
    stationary = true             # dim 1 or 2: the law at the run's horizons (theory.finite_time_law), and
                                  # for additive noise the long-run law (theory.stationary_law)
    n_grid = 2001                 # optional: cells per axis (default 2001 in 1-D, 101 in 2-D; at most
                                  # 100001 in 1-D, 1001 in 2-D: the law's matrix must fit in memory)
    bounds = [-5.0, 5.0]          # optional: the grid's box, [lower, upper] numbers or dim-vectors

    [quick]                       # overrides of [run] for --quick
    n_chains = 512
    n_grid = 801                  # ... and of theory.n_grid

Every error names the key, the value and what is allowed (`ConfigError`, a `ValueError`).
A file with `kind = "network"` is the network experiment (`asgd.network_config`).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
from pathlib import Path
from typing import Any

import numpy as np

import objectives
import simulate
from asgd import python_objective
from asgd.network_config import NetworkConfig, parse_network_config
from asgd.schema import ConfigError, check_keys, choice, fail, integer, list_of, read_toml, real, table
from asgd.sweep_figures import FIGURES as FIGURE_KINDS
from asgd.targets import TARGETS
from objectives.base import FixedBox  # objective.search_box, as from_function's search_box=
from simulate.exact import applicable_form

__all__ = ["ConfigError", "ExperimentConfig", "load_config", "parse_config", "OBJECTIVE_KINDS", "NOISE_FAMILIES"]

#: `noise.family` -> its constructor: the additive families (`objectives.noise_families`), then
#: the noise whose covariance depends on x (`objectives.state_noise`; `state_dependent`'s `cov`
#: is a "module:function" name, resolved as a Python objective's function is).
NOISE_FAMILIES = {name: family.constructor for name, family in simulate.noise.TABLE.items()} | {
    "hessian_aligned": simulate.noise.hessian_aligned,
    "loss_scaled": simulate.noise.loss_scaled,
    "label_noise": simulate.noise.label_noise,
    "state_dependent": simulate.noise.state_dependent,
}

#: Targets and figures that exist for additive noise only. F_eta(v) = E f(v - eta eps), P_eta and
#: v*(eta) = argmin F_eta come from the drift identity E[x_{k+1} | x_k] = v_k with v following SGD
#: on F_eta, whose noise must not depend on x; with state-dependent noise (unbiased) only
#: E_pi grad f = 0 survives, which names no point. Such a sweep measures the distance to
#: argmin f ("minimizer") or a given point; its exact law is the one at the run's horizons (`asgd.law_rows`).
ADDITIVE_ONLY_TARGETS = tuple(name for name, target in TARGETS.items() if target.additive_only)
ADDITIVE_ONLY_FIGURES = tuple(name for name, figure in FIGURE_KINDS.items() if figure.additive_only)  # F_eta, P_eta

#: The objectives a sweep config may name (`objective.kind`): constructors that need only
#: numbers. Finite sums need data; the network experiment (`asgd.network`) builds them.
OBJECTIVE_KINDS = {
    "quadratic": objectives.quadratic,
    "rippled_quadratic": objectives.rippled_quadratic,
    "valley_2d": objectives.valley_2d,
    "gaussian_wells": objectives.gaussian_wells,
    "sharp_flat": objectives.sharp_flat,
}

#: The names of `[target] kind` and `[output] figures`: the keys of their tables
#: (`asgd.targets.TARGETS`, `asgd.sweep_figures.FIGURES`), with what each needs.
TARGET_KINDS = tuple(TARGETS)
FIGURES = tuple(FIGURE_KINDS)
ONE_D_FIGURES = tuple(name for name, figure in FIGURE_KINDS.items() if figure.one_d)  # they draw f(x) over a line

_TOP_KEYS = {"name", "description", "objective", "noise", "run", "target", "output", "theory", "quick"}
_RUN_KEYS = {
    "step_sizes", "n_steps", "n_chains", "seeds", "x0", "tail_fraction", "checkpoints", "method", "chunk_size",
}
_RUN_REQUIRED = {"step_sizes", "n_steps", "n_chains", "x0"}
#: `run.x0 = "stationary"`: the chains start from the exact stationary law at each step size.
STATIONARY_START = "stationary"
_TARGET_KEYS = {"kind", "point"}
_OUTPUT_KEYS = {"estimators", "figures", "per_seed"}
_THEORY_KEYS = {"stationary", "n_grid", "bounds"}
#: The most cells per axis of [theory]'s grid, by dimension: the law's sparse matrix has a row per
#: cell, each as wide as the noise's reach (1e9 cells was a MemoryError traceback).
MAX_LAW_CELLS = {1: 100_001, 2: 1_001}
_QUICK_KEYS = _RUN_KEYS | {"n_grid"}  # n_grid overrides theory.n_grid


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
    per_seed: bool  # [output]: one panel per seed instead of pooling the seeds' chains
    stationary: bool  # [theory]: draw and tabulate the exact long-run law (theory.stationary_law)
    law_n_grid: int | None
    law_bounds: tuple | None  # (lower, upper), numbers or dim-tuples
    raw: dict  # the config as read (after --quick overrides), for metadata
    config_dir: str | None = None  # the config file's folder: where a kind = "python" module is looked up first
    search_box: tuple | None = None  # objective.search_box: (lower, upper), numbers or dim-tuples

    @functools.cached_property
    def objective(self) -> objectives.Objective:
        """Built once per config (a user's Python factory runs once, and every consumer gets the
        same object, so its compiled programs are shared)."""
        if self.objective_kind == "python":
            params = self.objective_params
            built = python_objective.make_objective(params["function"], params.get("args"), self.config_dir)
        else:
            built = OBJECTIVE_KINDS[self.objective_kind](**_as_arrays(self.objective_params))
        if self.search_box is None:
            return built
        return dataclasses.replace(built, search_box=FixedBox(*self.search_box, dim=built.dim))

    @functools.cached_property
    def noise(self):
        params = dict(self.noise_params)
        family = params.pop("family")
        cov = params.pop("cov", None)
        if cov is not None:  # state_dependent: the function C(x), named "module:function"
            params["cov"] = python_objective.resolve(cov, self.config_dir, key="noise.cov")
        return NOISE_FAMILIES[family](**_as_arrays(params))

    @property
    def stationary_start(self) -> bool:
        """`run.x0 = "stationary"`: every chain starts from the exact stationary law at its step
        size (`theory.stationary_starts`, drawn from (seed, chain)); `x0` is then that string."""
        return isinstance(self.x0, str) and self.x0 == STATIONARY_START

    def sweep_points(self) -> list[tuple[int, int]]:
        """(seed, n_steps) pairs, each one `simulate.run` call over all step sizes."""
        return [(seed, horizon) for seed in self.seeds for horizon in self.horizons]

    def run_kwargs(self, seed: int, n_steps: int) -> dict:
        """`simulate.run`'s arguments for the sweep point (seed, n_steps); with a stationary
        start, x0 is left for the caller (one start per step size: `asgd.sweep.run_point`)."""
        kwargs = dict(
            step_sizes=np.asarray(self.step_sizes),
            n_steps=n_steps,
            n_chains=self.n_chains,
            x0=None if self.stationary_start else np.asarray(self.x0, dtype=np.float64),
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


def parse_config(data: dict, *, quick: bool = False, source: str = "config", config_dir: str | None = None) -> ExperimentConfig:
    """Validate a config dict (as read from TOML); build nothing expensive. Raises `ConfigError`.

    `config_dir`: where a `kind = "python"` objective's module is looked up first; default the
    folder of `source` when it is a `.toml` path (`asgd plot` passes the folder recorded in the
    result folder's `metadata.json`)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the config must be a TOML table")
    check_keys(data, _TOP_KEYS, "")
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str) or name in ("", ".", "..") or any(c in name for c in "/\\ \0"):
        fail("name", name, "the experiment name (results go to OUT/<name>/) must be one folder name: not empty, '.' or '..', without slashes, spaces or NUL")
    description = data.get("description", "")
    if not isinstance(description, str):
        fail("description", description, "must be a string")

    # [objective]
    objective_table = table(data, "objective", required=True)
    kind = choice("objective.kind", objective_table.pop("kind", None), sorted(OBJECTIVE_KINDS) + ["python"])
    search_box = objective_table.pop("search_box", None)
    if search_box is not None:
        search_box = _bounds(search_box, "objective.search_box")
    if kind == "python":
        check_keys(objective_table, python_objective.KEYS, "objective")
        if "function" not in objective_table:
            fail("objective.function", None, "missing (required with kind = 'python'): 'module:function' returning an Objective")
    else:
        check_keys(objective_table, inspect.signature(OBJECTIVE_KINDS[kind]).parameters, "objective")
        _check_numbers(objective_table, "objective", text_keys=("name",))

    # [noise]
    noise_table = table(data, "noise", required=True)
    family = choice("noise.family", noise_table.get("family"), sorted(NOISE_FAMILIES))
    check_keys(noise_table, {*inspect.signature(NOISE_FAMILIES[family]).parameters, "family"}, "noise")
    _check_numbers(noise_table, "noise", text_keys=("family", "cov"))

    # [run] with [quick] overrides
    run_table = table(data, "run", required=True)
    check_keys(run_table, _RUN_KEYS, "run")
    quick_table = table(data, "quick")
    check_keys(quick_table, _QUICK_KEYS, "quick")
    theory_table = table(data, "theory")
    check_keys(theory_table, _THEORY_KEYS, "theory")
    if not quick and quick_table:
        # The --quick variant is checked too, so a bad [quick] value fails now, named quick.KEY,
        # not in the first --quick run.
        parse_config(data, quick=True, source=source, config_dir=config_dir)
    if quick:
        run_table.update({k: v for k, v in quick_table.items() if k in _RUN_KEYS})
        if "n_grid" in quick_table:
            theory_table["n_grid"] = quick_table["n_grid"]

    def key(name: str) -> str:  # the key a run value came from: [quick] overrides under --quick
        return f"quick.{name}" if quick and name in quick_table else f"run.{name}"

    for required in sorted(_RUN_REQUIRED - set(run_table)):
        fail(f"run.{required}", None, "missing (required)")
    step_sizes = list_of(key("step_sizes"), run_table["step_sizes"], lambda k, v: real(k, v, lo=0, open_lo=True))
    horizons = list_of(key("n_steps"), run_table["n_steps"], integer)
    n_chains = integer(key("n_chains"), run_table["n_chains"])
    seeds = list_of(key("seeds"), run_table.get("seeds", [0]), lambda k, v: integer(k, v, lo=0, hi=2**32 - 1))
    x0 = run_table["x0"]
    if isinstance(x0, str) and x0 != STATIONARY_START:
        fail(key("x0"), x0, f"must be a list of numbers (one point), a list of such lists (one per chain) or {STATIONARY_START!r}")
    rows = [v for v in x0 if isinstance(v, list)] if isinstance(x0, list) else []
    if rows and (len(rows) != len(x0) or len({len(r) for r in rows}) != 1):  # ragged: NumPy would nest lists
        fail(key("x0"), x0, "must be a list of numbers (one point) or a list of equally long lists of numbers (one per chain)")
    x0_array = np.asarray(x0, dtype=object)
    if x0 != STATIONARY_START and (not isinstance(x0, list) or x0_array.ndim not in (1, 2)):
        fail(key("x0"), x0, f"must be a list of numbers (one point), a list of such lists (one per chain) or {STATIONARY_START!r}")
    for v in x0_array.ravel() if x0 != STATIONARY_START else ():
        real(key("x0"), v)
    tail_fraction = real(key("tail_fraction"), run_table.get("tail_fraction", 0.5), lo=0, hi=1, open_lo=True)
    checkpoints = run_table.get("checkpoints", 8)
    if isinstance(checkpoints, list):
        list_of(key("checkpoints"), checkpoints, integer, allow_scalar=False)
    else:
        integer(key("checkpoints"), checkpoints)
    method = choice(key("method"), run_table.get("method", "sgd"), ("sgd", "exact"))
    chunk_size = run_table.get("chunk_size")
    if chunk_size is not None:
        integer(key("chunk_size"), chunk_size)

    # [target]
    target_table = table(data, "target") or {"kind": "minimizer"}
    check_keys(target_table, _TARGET_KEYS, "target")
    target_kind = choice("target.kind", target_table.get("kind", "minimizer"), TARGETS)
    target_point = target_table.get("point")
    if TARGETS[target_kind].needs_point != (target_point is not None):
        given = [name for name, target in TARGETS.items() if target.needs_point]
        fail("target.point", target_point, f"is required with target.kind = {given[0]!r} and allowed only there")
    if target_point is not None:
        target_point = list_of("target.point", target_point, real, allow_scalar=False)

    # [output]
    output_table = table(data, "output")
    check_keys(output_table, _OUTPUT_KEYS, "output")
    estimators = list_of(
        "output.estimators",
        output_table.get("estimators", list(simulate.ESTIMATORS)),
        lambda k, v: choice(k, v, simulate.ESTIMATORS),
        allow_scalar=False,
    )
    figures = list_of(
        "output.figures",
        output_table.get("figures", ["tradeoff"]),
        lambda k, v: choice(k, v, FIGURE_KINDS),
        allow_scalar=False,
        nonempty=False,
    )
    per_seed = output_table.get("per_seed", False)
    if not isinstance(per_seed, bool):
        fail("output.per_seed", per_seed, "must be true or false")

    # [theory]
    stationary = theory_table.get("stationary", False)
    if not isinstance(stationary, bool):
        fail("theory.stationary", stationary, "must be true or false")
    if "n_grid" in quick_table:
        integer("quick.n_grid", quick_table["n_grid"], lo=16, hi=MAX_LAW_CELLS[1])
    law_n_grid = theory_table.get("n_grid")
    if law_n_grid is not None:
        law_n_grid = integer("theory.n_grid", law_n_grid, lo=16, hi=MAX_LAW_CELLS[1])
    law_bounds = theory_table.get("bounds")
    if law_bounds is not None:
        law_bounds = _bounds(law_bounds, "theory.bounds")

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
        x0=x0 if x0 == STATIONARY_START else tuple(map(tuple, x0)) if x0_array.ndim == 2 else tuple(x0),
        tail_fraction=tail_fraction,
        checkpoints=tuple(checkpoints) if isinstance(checkpoints, list) else checkpoints,
        method=method,
        chunk_size=chunk_size,
        target_kind=target_kind,
        target_point=target_point,
        estimators=estimators,
        figures=figures,
        per_seed=per_seed,
        stationary=stationary,
        law_n_grid=law_n_grid,
        law_bounds=law_bounds,
        raw={**data, "run": run_table, **({"theory": theory_table} if theory_table else {})},
        config_dir=config_dir if config_dir is not None else python_objective.config_folder(source),
        search_box=search_box,
    )
    _check_buildable(config)
    return config


def _named(section: str, params: dict, error: Exception) -> str | None:
    """A constructor's message that opens with one of the table's keys (`scale must be ...`),
    as one line naming the config key and its value; None when it names no key of the table."""
    text = str(error)
    first = re.match(r"[A-Za-z_]\w*", text)
    if first is None or first.group(0) not in params:
        return None
    name = first.group(0)
    return f"{section}.{name} = {params[name]!r}: {text}"


def _check_numbers(section: dict, where: str, text_keys=()) -> None:
    """Every value of the table `[where]` but `text_keys` is a number or a (nested) list of
    numbers: a constructor would otherwise fail deep inside NumPy without naming the key."""
    for name, value in section.items():
        if name in text_keys:
            if not isinstance(value, str):
                fail(f"{where}.{name}", value, "must be a string")
            continue
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(item)
            else:
                real(f"{where}.{name}", item)


def _bounds(value, key: str) -> tuple:
    """A box (theory.bounds, objective.search_box): [lower, upper], each a number or a list of
    numbers (one per axis), lower < upper."""
    if not isinstance(value, list) or len(value) != 2:
        fail(key, value, "must be [lower, upper], numbers or lists of numbers (one per axis)")
    ends = []
    for end in value:
        if isinstance(end, list):
            ends.append(tuple(list_of(key, end, real, allow_scalar=False)))
        else:
            ends.append(real(key, end))
    lower, upper = (np.atleast_1d(np.asarray(e, dtype=np.float64)) for e in ends)
    if lower.shape != upper.shape and lower.size != 1 and upper.size != 1:
        fail(key, value, "lower and upper must have the same length")
    if not np.all(lower < upper):
        fail(key, value, "must have lower < upper on every axis")
    return tuple(ends)


def _check_buildable(config: ExperimentConfig) -> None:
    """Build the objective and noise model and check dimensions: still no simulation."""
    try:
        objective = config.objective
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(_named("objective", config.objective_params, error) or f"[objective] kind = {config.objective_kind!r}: {error}") from None
    try:
        noise = config.noise
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(_named("noise", config.noise_params, error) or f"[noise] family = {config.noise_params['family']!r}: {error}") from None
    dim = objective.dim
    if noise.fixed_dim is not None and noise.fixed_dim != dim:
        fail("noise.covariance", config.noise_params.get("covariance"), f"must be {dim}x{dim} to match objective dim={dim}")
    flat = [figure for figure in config.figures if FIGURE_KINDS[figure].one_d]
    if dim != 1 and flat:
        fail("output.figures", list(config.figures), f"{flat[0]!r} draws 1-D objectives only, and objective {config.objective_kind!r} has dim {dim}")
    if config.stationary_start:
        # The starts are drawn from the exact law (theory.stationary_law), which lives on a grid
        # in 1-D and 2-D for additive noise; whether it exists at these step sizes is known only
        # once it is solved (asgd.law_rows.start_law, before anything is written).
        if dim not in (1, 2):
            fail("run.x0", STATIONARY_START, f"needs an objective of dim 1 or 2 (the stationary law lives on a grid), got {config.objective_kind!r} of dim {dim}")
        if not noise.additive:
            fail("run.x0", STATIONARY_START, f"needs additive noise ({', '.join(simulate.noise.FAMILIES)}) for the stationary law, not {noise!r}")
        if config.law_n_grid is not None and config.law_n_grid > MAX_LAW_CELLS[dim]:
            fail("theory.n_grid", config.law_n_grid, f"must be at most {MAX_LAW_CELLS[dim]} cells per axis in {dim}-D (the law's matrix must fit in memory)")
        x0 = np.zeros((1, dim))  # for the checks below: the law's grid is checked when it is solved
    else:
        x0 = np.asarray(config.x0, dtype=np.float64)
        if x0.shape[-1] != dim or (x0.ndim == 2 and x0.shape[0] != config.n_chains):
            fail("run.x0", list(config.x0), f"must have {dim} coordinates (objective dim), or be n_chains={config.n_chains} such points")
    if config.objective_kind == "python" and not config.stationary_start:
        # A user's function that is NaN (or inf) where the chains start would make every chain
        # diverge at step 1, then fail in the figures with a matplotlib message.
        start = x0.reshape(-1, dim)[0]
        value, gradient = objective.value(start), objective.grad(start)
        if not (np.isfinite(np.asarray(value)).all() and np.isfinite(np.asarray(gradient)).all()):
            fail("objective.function", config.objective_params["function"],
                 f"its objective at run.x0 = {start.tolist()} has value {float(value)} and gradient {np.asarray(gradient).tolist()}: "
                 "both must be finite where the chains start")
    if config.target_point is not None and len(config.target_point) != dim:
        fail("target.point", list(config.target_point), f"must have {dim} coordinates (objective dim)")
    if config.stationary:
        if dim not in (1, 2):
            fail("theory.stationary", True, f"needs an objective of dim 1 or 2 (the law lives on a grid), got {config.objective_kind!r} of dim {dim}")
        if TARGETS[config.target_kind].per_point:
            fail("theory.stationary", True, f"needs one target per step size; target.kind = {config.target_kind!r} depends on each run's chains (use 'smoothed')")
        if config.law_n_grid is not None and config.law_n_grid > MAX_LAW_CELLS[dim]:
            fail("theory.n_grid", config.law_n_grid, f"must be at most {MAX_LAW_CELLS[dim]} cells per axis in {dim}-D (the law's matrix must fit in memory)")
    if not noise.additive:
        try:  # what simulate.run checks first: a finite sum for label noise, f_min, C at the starts
            noise.bind(objective).check(objective, x0.reshape(-1, dim))
        except ValueError as error:
            fail("noise.family", config.noise_params["family"], str(error))
        if TARGETS[config.target_kind].additive_only:
            fail(
                "target.kind", config.target_kind,
                f"does not exist for {config.noise_params['family']} noise (its covariance depends on x): F_eta, P_eta and "
                "v*(eta) are defined for additive noise; use 'minimizer' or 'point'",
            )
        drawn = [figure for figure in config.figures if FIGURE_KINDS[figure].additive_only]
        if drawn:
            fail("output.figures", list(config.figures), f"{drawn[0]!r} draws F_eta and P_eta, which do not exist for {config.noise_params['family']} noise")
    for key, box in (("theory.bounds", config.law_bounds), ("objective.search_box", config.search_box)):
        for end in box or ():
            if isinstance(end, tuple) and len(end) != dim:
                fail(key, [list(e) if isinstance(e, tuple) else e for e in box], f"each end must be a number or {dim} numbers (objective dim)")
    if isinstance(config.checkpoints, tuple) and max(config.checkpoints) > min(config.horizons):
        fail("run.checkpoints", list(config.checkpoints), f"must not exceed the shortest horizon n_steps={min(config.horizons)}")
    # What the first simulate.run call would check, checked now: before anything is written.
    checkpoints = list(config.checkpoints) if isinstance(config.checkpoints, tuple) else config.checkpoints
    for horizon in config.horizons:
        try:
            simulate.checkpoint_schedule(horizon, checkpoints)
        except ValueError as error:
            fail("run.checkpoints", checkpoints, str(error))
    if config.method == "exact":
        try:
            applicable_form(objective, noise, np.asarray(config.step_sizes))
        except ValueError as error:
            fail("run.method", "exact", str(error))


def load_config(path: str | Path, *, quick: bool = False) -> ExperimentConfig | NetworkConfig:
    """Read and validate a TOML config. Raises `ConfigError` (also for unreadable files).

    Returns an `ExperimentConfig`, or an `asgd.network_config.NetworkConfig` for a file with
    `kind = "network"` (the small-network experiment has its own schema).
    """
    data = read_toml(path)
    if data.get("kind") == "network":
        return parse_network_config(data, quick=quick, source=str(path))
    return parse_config(data, quick=quick, source=str(path))
