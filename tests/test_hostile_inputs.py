"""Hostile inputs, as a careful user makes them by mistake: each is refused with the right
exception type and a message that names the argument (or the config key) it is about.

Every case fails at the boundary, before anything is compiled, so the whole file runs in
seconds. Cases already covered by the other test files are not repeated here.
"""

import copy
import warnings

import jax.numpy as jnp
import numpy as np
import pytest

import analysis
import objectives
import simulate
import theory
from asgd.config import ConfigError, load_config, parse_config
import support

QUADRATIC = objectives.quadratic([1.0, 2.0], [0.0, 0.0])
LINE = objectives.quadratic(1.0, [0.0])
RUN = dict(step_sizes=[0.1], n_steps=10, n_chains=4, x0=[0.0, 0.0])


def _run(**changes):
    return simulate.run(QUADRATIC, **{**RUN, **changes})


def _result():
    """A tiny finished run (no compilation: method="exact" samples on the host's NumPy path)."""
    return simulate.run(LINE, step_sizes=[0.1, 0.2], n_steps=8, n_chains=3, x0=[1.0], method="exact", checkpoints=2)


# ---- simulate.run ----------------------------------------------------------------------------

RUN_CASES = [
    (dict(step_sizes=[0.1, 1j]), ValueError, "step_sizes must be real"),
    (dict(step_sizes=[[0.1, 0.2]]), ValueError, "step_sizes must be a number or a non-empty 1-D sequence"),
    (dict(step_sizes="0.1"), ValueError, "step_sizes must be finite numbers > 0, got '0.1'"),
    (dict(x0=[True, False]), ValueError, "x0 must be an array of numbers"),
    (dict(step_sizes=[0.1, float("inf")]), ValueError, "step_sizes must be finite and > 0"),
    (dict(step_sizes=None), ValueError, "step_sizes must be finite numbers > 0, got None"),
    (dict(step_sizes=[0.1, None]), ValueError, r"step_sizes must be finite numbers > 0, got \[0.1, None\]"),
    (dict(n_steps=2**31), ValueError, r"n_steps must be <= 2147483646 \(2\*\*31 - 2"),
    (dict(n_steps=10.0), ValueError, "n_steps must be an integer >= 1, got 10.0"),
    (dict(n_steps=np.float64(10)), ValueError, "n_steps must be an integer >= 1"),
    (dict(n_steps=True), ValueError, "n_steps must be an integer >= 1, got True"),
    (dict(n_chains="4"), ValueError, "n_chains must be an integer >= 1"),
    (dict(n_chains=-2), ValueError, "n_chains must be an integer >= 1"),
    (dict(x0=np.array([1.0 + 2.0j, 0.0])), ValueError, r"x0 must be real .*got complex values"),
    (dict(x0=[[1.0, 0.0], [0.0, 1j], [0.0, 0.0], [0.0, 0.0]]), ValueError, "x0 must be real"),
    (dict(x0=[[1.0, 0.0], [1.0]]), ValueError, r"x0 must be an array of numbers of shape \(2,\) or \(4, 2\)"),
    (dict(x0="origin"), ValueError, "x0 must be an array of numbers"),
    (dict(x0=[0.0, np.inf]), ValueError, "x0 must be finite"),
    (dict(x0=np.zeros((3, 2))), ValueError, r"x0 must have shape \(2,\) .* \(n_chains, dim\) = \(4, 2\)"),
    (dict(x0=None), ValueError, "x0 must"),
    (dict(seed=1.5), ValueError, r"seed must be an integer in \[0, 2\*\*32\)"),
    (dict(seed="0"), ValueError, "seed must be an integer"),
    (dict(tail_fraction=1j), ValueError, "tail_fraction must be a number in"),
    (dict(tail_fraction=np.complex128(0.5)), ValueError, "tail_fraction must be a number in"),
    (dict(checkpoints=[1.5, 10]), ValueError, "checkpoints must be an int or a non-empty list of integer steps"),
    (dict(checkpoints=[5, 5]), ValueError, "checkpoints must be strictly increasing"),
    (dict(checkpoints=[0, 5]), ValueError, "checkpoints must be strictly increasing steps in"),
    (dict(checkpoints=True), ValueError, "checkpoints must be"),
    (dict(chunk_size=0), ValueError, "chunk_size must be an integer >= 1"),
    (dict(divergence_radius=float("nan")), ValueError, "divergence_radius must be a number > 0"),
    (dict(divergence_radius="big"), ValueError, "divergence_radius must be a number > 0"),
    (dict(dtype="int32"), ValueError, "dtype must be float32 or float64"),
    (dict(dtype="float16"), ValueError, "dtype must be float32 or float64"),
    (dict(dtype="banana"), ValueError, "dtype must be float32 or float64"),
    (dict(shard="yes"), ValueError, "shard must be one of"),
    (dict(first_chain=-1), ValueError, "first_chain must be an integer in"),
    (dict(method="adam"), ValueError, "method must be one of"),
    (dict(method="exact", algorithm=simulate.sam(0.1)), ValueError, "method='exact' covers SGD"),
    (dict(method="exact", trajectory=True), ValueError, "trajectory=True needs method='sgd'"),
    (dict(trajectory=True, n_steps=10**8), ValueError, "trajectory=True would keep"),
    (dict(progress="bar"), ValueError, "progress must be True, False or a function"),
    (dict(ema_decay=1.0), ValueError, r"ema_decay must be a number in \(0, 1\)"),
    (dict(ema_decay="0.9"), ValueError, "ema_decay must be a number in"),
    (dict(track_v="yes"), ValueError, "track_v must be one of"),
    (dict(noise="gaussian"), ValueError, "noise must be a model from simulate.noise"),
    (dict(noise=simulate.noise.gaussian(covariance=np.eye(3))), ValueError, "noise covariance is 3-dimensional"),
    (dict(noise=simulate.noise.minibatch(2)), ValueError, r"noise=minibatch\(...\) needs a finite-sum objective"),
    (dict(algorithm="sam"), ValueError, "algorithm must be a kernel"),
]


@pytest.mark.parametrize("changes, error, message", RUN_CASES, ids=[m for _, _, m in RUN_CASES])
def test_simulate_run_refuses_a_bad_argument_by_name(changes, error, message):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. NumPy's ComplexWarning: refused, not warned about
        with pytest.raises(error, match=message):
            _run(**changes)


def test_n_steps_beyond_int32_still_works_with_the_exact_sampler():
    # The limit of the stepping loop does not apply to method="exact", which samples the law.
    result = simulate.run(LINE, step_sizes=[0.1], n_steps=2**40, n_chains=2, x0=[1.0], method="exact", checkpoints=1)
    assert result.n_steps == 2**40 and np.all(np.isfinite(result.x_avg))


# ---- noise models and kernels ----------------------------------------------------------------

NOISE_CASES = [
    (lambda: simulate.noise.gaussian(np.complex128(1.0 + 1.0j)), "scale must be a non-negative finite number"),
    (lambda: simulate.noise.gaussian(1j), "scale must be a non-negative finite number"),
    (lambda: simulate.noise.rademacher(float("inf")), "scale must be a non-negative finite number"),
    (lambda: simulate.noise.uniform(None), "scale must be a non-negative finite number"),
    (lambda: simulate.noise.student_t(1.0, df="four"), "df must be a number > 2"),
    (lambda: simulate.noise.student_t(1.0, df=np.complex128(4.0)), "df must be a number > 2"),
    (lambda: simulate.noise.student_t(1.0, df=float("inf")), "df must be > 2"),
    (lambda: simulate.noise.gaussian(covariance=np.eye(2) * (1 + 1j)), r"covariance must be real"),
    (lambda: simulate.noise.gaussian(covariance="identity"), "covariance must be a square matrix"),
    (lambda: simulate.noise.gaussian(covariance=[[1.0, np.nan], [np.nan, 1.0]]), "covariance must be finite"),
    (lambda: simulate.noise.gaussian(covariance=np.ones((2, 3))), "covariance must be a square matrix"),
    (lambda: simulate.noise.minibatch(0), "batch_size must be an integer >= 1"),
    (lambda: simulate.noise.minibatch(2.0), "batch_size must be an integer >= 1"),
    (lambda: simulate.noise.minibatch(True), "batch_size must be an integer >= 1"),
    (lambda: simulate.noise.minibatch(2, replace="yes"), "replace must be True or False"),
    (lambda: simulate.sam(-0.1), "radius must be a finite number >= 0"),
    (lambda: simulate.sam("wide"), "radius must be a finite number >= 0"),
    (lambda: simulate.momentum(1.0), r"beta must be a number in \[0, 1\)"),
    (lambda: simulate.momentum(-0.5), r"beta must be a number in \[0, 1\)"),
]


@pytest.mark.parametrize("make, message", NOISE_CASES, ids=[m for _, m in NOISE_CASES])
def test_noise_models_and_kernels_refuse_a_bad_parameter_by_name(make, message):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=message):
            make()


# ---- objectives ------------------------------------------------------------------------------

OBJECTIVE_CASES = [
    (lambda: objectives.quadratic("abc", [0.0]), "hessian must be a scalar, a vector"),
    (lambda: objectives.quadratic([1.0, 1j]), "hessian must be real"),
    (lambda: objectives.quadratic(1.0, "c"), "center must be a vector"),
    (lambda: objectives.quadratic(1.0, [0.0, np.nan]), "center must be finite"),
    (lambda: objectives.quadratic([1.0, 2.0], dim=3), "dim=3 disagrees"),
    (lambda: objectives.rippled_quadratic(curvature=-1.0), "curvature must be positive, got -1.0"),
    (lambda: objectives.rippled_quadratic(dim=0), "dim must be a positive integer"),
    (lambda: objectives.rippled_quadratic(amplitude=[0.1, 0.2], dim=3), "dim=3 disagrees with amplitude, of length 2"),
    (lambda: objectives.valley_2d(floor_curvature=-1.0), "floor_curvature must be positive"),
    (lambda: objectives.valley_2d(bend="up"), "bend must be a number, got 'up'"),
    (lambda: objectives.gaussian_wells([1.0, 2.0], [[0.0]], [1.0]), r"centers has shape \(1, 1\) but depths has K=2 wells"),
    (lambda: objectives.gaussian_wells([1.0], [[0.0]], [-1.0]), "widths must be positive"),
    (lambda: objectives.gaussian_wells([1.0], [[0.0]], [1.0], confinement=-1.0), "confinement must be non-negative"),
    (lambda: objectives.from_function("x**2", 1), "fn must be a callable"),
    (lambda: objectives.from_function(lambda x: x[5] ** 2, 2), r"fn indexes x out of its bounds .*index 5"),
    (lambda: objectives.from_function(lambda x: jnp.sum(x).astype(jnp.int32), 2), "fn must return a real floating scalar.*int32"),
    (lambda: objectives.from_function(lambda x: jnp.sum(x).astype(jnp.complex64), 2), "fn must return a real floating scalar.*complex64"),
    (lambda: objectives.from_function(lambda x: x[0] > 0, 2), "fn must return a real floating scalar.*bool"),
    (lambda: objectives.from_function(lambda x: (x[0], x[1]), 2), "fn must return a scalar .*got a tuple"),
    (lambda: objectives.from_function(lambda x: float(x[0]), 2), "fn must be a JAX-traceable function"),
    (lambda: objectives.from_function(lambda x: jnp.sum(x), 1.5), "dim must be a positive integer"),
    (lambda: objectives.least_squares("abc", [1.0]), r"features must be a 2-D array"),
    (lambda: objectives.least_squares(np.ones((3, 2)), [1.0, 2.0]), r"targets must have shape \(3,\)"),
    (lambda: objectives.least_squares(np.ones((3, 2)), [1.0, 2.0, 1j]), "targets must be real"),
    (lambda: objectives.least_squares(np.ones((2, 2)), [1.0, 2.0], l2=-1.0), "l2 must be a finite number >= 0"),
    (lambda: objectives.logistic_regression(np.ones((3, 2)), [0.5, 1.0, 0.0]), "labels must be integers"),
    (lambda: objectives.logistic_regression(np.ones((3, 2)), [0, 1, 5], n_classes=2), "n_classes must be an integer >= 2"),
    (lambda: objectives.smoothed(LINE, simulate.noise.gaussian(1.0), -0.1), "step_size must be finite and >= 0"),
    (lambda: objectives.smoothed(LINE, simulate.noise.gaussian(1.0), 0.1, method="magic"), "method must be one of"),
    (lambda: objectives.penalized(LINE, simulate.noise.gaussian(1.0), "small"), "step_size must be finite numbers >= 0, got 'small'"),
]


@pytest.mark.parametrize("make, message", OBJECTIVE_CASES, ids=[m for _, m in OBJECTIVE_CASES])
def test_objective_constructors_refuse_a_bad_argument_by_name(make, message):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=message):
            make()


# ---- analysis --------------------------------------------------------------------------------

ANALYSIS_CASES = [
    (lambda r: analysis.errors({"x": 1}, [0.0]), TypeError, "result must be a simulate.SimulationResult .*got dict"),
    (lambda r: analysis.errors(None, [0.0]), TypeError, "result must be a simulate.SimulationResult .*got NoneType"),
    (lambda r: analysis.errors(r, [0.0], estimators="x_ema"), ValueError, "estimators must be among"),
    (lambda r: analysis.errors(r, [0.0], estimators=[]), ValueError, "estimators must be among"),
    (lambda r: analysis.errors(r, [0.0], estimators=3), ValueError, "estimators must be among"),
    (lambda r: analysis.errors(r, [1j]), ValueError, "target must be real"),
    (lambda r: analysis.errors(r, "zero"), ValueError, "target must be an array of numbers"),
    (lambda r: analysis.errors(r, [0.0], confidence=1.0), ValueError, r"confidence must be a number in \(0, 1\)"),
    (lambda r: analysis.errors(r, [0.0], bootstrap=2.5), ValueError, "bootstrap must be an integer >= 0"),
    (lambda r: analysis.errors(r, [0.0], seed=-3), ValueError, "seed must be an integer in"),
    (lambda r: theory.stationary_law(LINE, simulate.noise.gaussian(1.0), [0.1, -0.1]), ValueError, "step_sizes must be finite and > 0"),
    (lambda r: theory.stationary_law(LINE, simulate.noise.gaussian(1.0), [0.1], n_grid=1), ValueError, "n_grid must be an integer >= 16"),
    (lambda r: theory.stationary_law(LINE, simulate.noise.gaussian(1.0), [0.1], max_leak=2.0), ValueError, r"max_leak must be a number in \(0, 1\)"),
    (lambda r: theory.stationary_law(LINE, "gaussian", [0.1]), ValueError, "noise must be a noise model"),
    (lambda r: analysis.smoothed_solution(LINE, simulate.noise.gaussian(1.0), [1j]), ValueError, "step_sizes must be real"),
    (lambda r: analysis.smoothed_solution(LINE, simulate.noise.gaussian(1.0), [0.1], n_starts=0), ValueError, "n_starts must be an integer >= 1"),
    (lambda r: analysis.penalized_solution(LINE, simulate.noise.gaussian(1.0), "eta"), ValueError, "step_sizes must be finite numbers >= 0, got 'eta'"),
    (lambda r: analysis.minimizers(LINE, n_starts=-1), ValueError, "n_starts must be an integer >= 1"),
    (lambda r: analysis.minimizers(LINE, bounds=[1.0, -1.0]), ValueError, "bounds must be finite with lower < upper"),
    (lambda r: analysis.fit_rate([0.1, 0.2], [1.0]), ValueError, "x and y must have the same length"),
    (lambda r: analysis.fit_rate([0.1, 0.2, 0.3], [1.0, 2.0, 3.0], confidence=2.0), ValueError, r"confidence must be a number in \(0, 1\)"),
    (lambda r: analysis.basin_occupancy(np.zeros((3, 1)), np.zeros((2, 1)), method="closest"), ValueError, "method must be 'nearest' or 'descent', got 'closest'"),
]


@pytest.mark.parametrize("call, error, message", ANALYSIS_CASES, ids=[m for _, _, m in ANALYSIS_CASES])
def test_analysis_functions_refuse_a_bad_argument_by_name(call, error, message):
    result = _result()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(error, match=message):
            call(result)


# ---- the CLI's config loader -----------------------------------------------------------------

CONFIG = {
    "name": "hostile",
    "objective": {"kind": "quadratic", "hessian": [1.0, 0.5], "center": [0.0, 1.0]},
    "noise": {"family": "gaussian", "scale": 1.0},
    "run": {"step_sizes": [0.1], "n_steps": 20, "n_chains": 8, "seeds": [0], "x0": [1.0, 1.0]},
    "target": {"kind": "minimizer"},
    "output": {"estimators": ["x", "x_avg"], "figures": ["tradeoff"]},
}

CONFIG_CASES = [
    ("run.n_steps", 2.5, r"run.n_steps\[0\] = 2.5: must be an integer"),
    ("run.n_chains", "many", "run.n_chains = 'many': must be an integer"),
    ("run.chunk_size", 0, "run.chunk_size = 0: must be an integer >= 1"),
    ("run.seeds", [2**32], r"run.seeds\[0\] = 4294967296"),
    ("run.method", "adam", "run.method = 'adam': must be one of"),
    ("run.checkpoints", 0, "run.checkpoints = 0: must be an integer >= 1"),
    ("noise.scale", "loud", "scale.*loud"),  # the key's name, with the value
    ("noise.family", 3, "noise.family = 3: must be one of"),
    ("output.estimators", ["x", "median"], r"output.estimators\[1\] = 'median': must be one of"),
    ("output.figures", ["pie"], r"output.figures\[0\] = 'pie': must be one of"),
    ("target.kind", "origin", "target.kind = 'origin': must be one of"),
]


@pytest.mark.parametrize("key, value, message", CONFIG_CASES, ids=[m for _, _, m in CONFIG_CASES])
def test_config_loader_refuses_a_bad_key_by_name(key, value, message):
    data = copy.deepcopy(CONFIG)
    table, name = key.split(".")
    data[table][name] = value
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_config_file_that_is_not_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[run\nn_steps = 3\n")
    with pytest.raises(ConfigError, match="broken.toml"):
        load_config(path)


# ---- step-size schedules (issue 26) ----------------------------------------------------------

SCHEDULE_CASES = [
    # np.asarray(...).astype(int32) wrapped 3e9 to -1294967296: the decay started at step 1.
    (lambda: simulate.step_decay([3_000_000_000]), r"boundaries must be .* integer steps in \[1, 2147483646\], got \[3000000000\]"),
    (lambda: simulate.step_decay(np.array([5, 2**33])), r"boundaries must be .* in \[1, 2147483646\]"),
    (lambda: simulate.cosine_decay(2**40), r"decay_steps must be an integer in \[1, 2147483646\]"),  # was OverflowError
    (lambda: simulate.swa(0, 3_000_000_000, 0.1), r"decay_end must be an integer in \[1, 2147483646\]"),
    (lambda: simulate.swa(3e9, 4e9, 0.1), r"decay_start must be an integer in \[0, 2147483646\]"),
    # A Python branch on the traced step: refused when the schedule is made, not deep in the driver.
    (lambda: simulate.schedules.custom(lambda k: 1.0 if k < 10 else 0.5), r"fn must be a JAX-traceable function of the int32 step k .*TracerBoolConversionError"),
    (lambda: simulate.schedules.custom(lambda k: float(k)), r"fn must be a JAX-traceable function"),
    (lambda: simulate.schedules.custom(lambda k: jnp.ones(3)), r"fn must return a real scalar multiplier .*shape \(3,\)"),
    (lambda: simulate.schedules.multipliers(simulate.constant(), 2**31), r"n_steps must be an integer in \[1, 2147483646\]"),
]


@pytest.mark.parametrize("make, message", SCHEDULE_CASES, ids=[m for _, m in SCHEDULE_CASES])
def test_schedules_refuse_step_counts_int32_cannot_hold_and_untraceable_functions(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("schedule, first_bad", [
    (simulate.cosine_decay(100, final=0.0), 101),  # s(k) = 0 from step D + 1 on
    (simulate.schedules.custom(lambda k: jnp.where(k < 3_000_000, 1.0, 0.0)), 3_000_000),
])
def test_schedule_check_at_the_int32_limit_finds_the_first_bad_step_without_an_array_of_n_steps(schedule, first_bad):
    # Every multiplier was evaluated up front: 2**31 - 2 float32 numbers, 8.6 GB. Now the built-in
    # families are checked at their ends (they never increase) and a custom one in bounded blocks.
    n_steps = 2**31 - 2 if schedule.name != "custom" else 5_000_000
    with pytest.raises(ValueError, match=rf"s\({first_bad}\) = 0; every s\(k\), k = 1..n_steps={n_steps}"):
        simulate.schedules.check(schedule, n_steps)
    simulate.schedules.check(simulate.cosine_decay(2**31 - 2, final=0.1), 2**31 - 2)  # fine: no error, no 8.6 GB


# ---- saved results (issue 26) ----------------------------------------------------------------


def _tampered(tmp_path, change):
    """A saved `_result()` whose stored arrays and fields `change(arrays, fields)` edits in place."""
    import json

    path = _result().save(tmp_path / "point.npz")
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    fields = json.loads(str(arrays.pop("__fields__")))
    change(arrays, fields)
    np.savez(path, __fields__=np.asarray(json.dumps(fields)), **arrays)
    return path


def _set_value(name, value):
    def change(arrays, fields):
        fields[name]["value"] = value
    return change


def _x_as_tuple(arrays, fields):
    del arrays["x"]
    fields["x"] = {"kind": "tuple", "value": [1.0, 2.0]}


LOAD_CASES = [
    (lambda arrays, fields: arrays.update(x=np.zeros(3)), r"estimator x has shape \(3,\), not \(len\(step_sizes\), n_chains, dim\) = \(2, 3, 1\)"),
    (_set_value("n_chains", 999), r"estimator x has shape \(2, 3, 1\), not .* = \(2, 999, 1\)"),
    (lambda arrays, fields: arrays.update(step_sizes=np.array([0.1, 0.2, 0.3])), r"estimator x has shape \(2, 3, 1\), not .* = \(3, 3, 1\)"),
    (_x_as_tuple, "x must be an array, got a tuple"),
    (lambda arrays, fields: arrays.update(diverged=np.zeros((2, 4), bool)), r"diverged has shape \(2, 4\)"),
    (_set_value("n_steps", 9), r"checkpoint_steps \[.*8\] must increase and end at n_steps = 9"),
    (lambda arrays, fields: arrays.update({"checkpoints/x_avg": np.zeros((1, 2, 3, 1))}), r"checkpoints\['x_avg'\] has shape \(1, 2, 3, 1\)"),
    (_set_value("n_chains", "3"), r"n_chains = '3' is not a count"),
]


@pytest.mark.parametrize("change, message", LOAD_CASES, ids=[m for _, m in LOAD_CASES])
def test_simulation_result_load_refuses_a_file_that_disagrees_with_itself(tmp_path, change, message):
    path = _tampered(tmp_path, change)
    with pytest.raises(ValueError, match=rf"point.npz' disagrees with itself: {message}"):
        simulate.SimulationResult.load(path)


@pytest.mark.parametrize("content", [b"garbage" * 40, b"\x93NUMPY garbage"])
def test_loading_a_garbage_file_says_what_it_is_and_never_suggests_pickle(tmp_path, content):
    path = tmp_path / "point.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"point.npz' is not a file written by SimulationResult.save") as caught:
        simulate.SimulationResult.load(path)
    assert "pickle" not in str(caught.value)


# ---- configs: the law's grid, Python objectives, search boxes (issue 26) ----------------------

WELLS = """
import jax.numpy as jnp
import objectives

def make():
    return objectives.from_function(lambda x: (x[0] ** 2 - 1.0) ** 2, 1, name="{name}")

def nan_everywhere():
    return objectives.from_function(lambda x: jnp.nan * jnp.sum(x), 1, name="nan")
"""


def _python_config(folder, function):
    return support.python_config(folder / "shadow.toml", function, name="shadow")


@pytest.mark.parametrize("module", ["analysis", "simulate"])
def test_a_config_folders_module_named_like_a_library_module_is_loaded_from_its_file(tmp_path, module):
    # Was: importlib handed back the library's module: "module 'analysis' has no attribute 'make'".
    (tmp_path / f"{module}.py").write_text(WELLS.format(name=f"user_{module}"))
    config = load_config(_python_config(tmp_path, f"{module}:make"))
    assert config.objective.name == f"user_{module}"
    assert config.objective.value(np.array([0.0])) == pytest.approx(1.0)
    import analysis as library
    assert library.__file__.endswith("analysis/__init__.py")  # the library itself untouched


def test_a_config_folders_package_named_like_a_library_module_is_refused_by_name(tmp_path):
    (tmp_path / "analysis").mkdir()
    (tmp_path / "analysis" / "__init__.py").write_text("")
    (tmp_path / "analysis" / "wells.py").write_text(WELLS.format(name="pkg"))
    with pytest.raises(ConfigError, match=r"objective.function = 'analysis.wells:make': the package 'analysis' in the config's folder has the name of the module 'analysis' already imported"):
        load_config(_python_config(tmp_path, "analysis.wells:make"))


def test_a_python_objective_that_is_nan_where_the_chains_start_is_refused(tmp_path):
    # Was: every chain diverged at step 1, then matplotlib: "Data cannot be log-scaled ...".
    module = f"nan_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(WELLS.format(name="x"))
    with pytest.raises(ConfigError, match=r"objective.function = .*nan_everywhere.*at run.x0 = \[0.5\] has value nan and gradient \[nan\]: both must be finite"):
        load_config(_python_config(tmp_path, f"{module}:nan_everywhere"))


@pytest.mark.parametrize("n_grid, message", [
    (1_000_000_000, r"theory.n_grid = 1000000000: must be an integer in \[16, 100001\]"),  # was a MemoryError traceback
])
def test_a_law_grid_that_cannot_fit_in_memory_is_refused_by_key(n_grid, message):
    data = copy.deepcopy(CONFIG)
    data["objective"] = {"kind": "quadratic", "hessian": [1.0], "center": [0.0]}
    data["run"]["x0"] = [1.0]
    data["theory"] = {"stationary": True, "n_grid": n_grid}
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_a_2d_law_grid_that_cannot_fit_in_memory_is_refused_by_key():
    data = copy.deepcopy(CONFIG)
    data["theory"] = {"stationary": True, "n_grid": 5001}
    with pytest.raises(ConfigError, match=r"theory.n_grid = 5001: must be at most 1001 cells per axis in 2-D"):
        parse_config(data)


def test_out_of_memory_on_the_command_line_is_one_line(tmp_path, capsys, monkeypatch):
    from asgd import cli

    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(cli, "run_sweep", exhausted)
    path = support.python_config(tmp_path / "c.toml", "x:y")
    path.write_text(path.read_text().replace('kind = "python"\nfunction = "x:y"', 'kind = "quadratic"\nhessian = [1.0]'))
    assert cli.main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("asgd run: error: out of memory; use fewer chains") and err.count("\n") == 1, err


def test_search_box_errors_name_the_search_box_not_bounds():
    import dataclasses

    reversed_box = dataclasses.replace(objectives.from_function(lambda x: (x[0] ** 2 - 1.0) ** 2, 1), search_box=lambda params: (1.0, -1.0))
    with pytest.raises(ValueError, match=r"^the objective's search_box \(objective.search_box in a config\) must be finite with lower < upper"):
        analysis.minimizers(reversed_box)
    slope = dataclasses.replace(objectives.from_function(lambda x: x[0], 1), search_box=lambda params: (-1.0, 1.0))
    with pytest.raises(ValueError, match=r"no local minimizer .*: widen the objective's search_box \(objective.search_box in a config\) or raise"):
        analysis.global_minimizer(slope)


def test_theory_with_a_local_target_is_refused_under_additive_noise():
    # The check had slid into the non-additive branch of the validation: additive noise let it through.
    data = copy.deepcopy(CONFIG)
    data["theory"] = {"stationary": True}
    data["target"] = {"kind": "local"}
    with pytest.raises(ConfigError, match="theory.stationary = True: needs one target per step size"):
        parse_config(data)
