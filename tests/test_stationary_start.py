"""`run.x0 = "stationary"`: chains start from the exact stationary law at each step size, drawn
from (seed, chain) alone, and the finite-time law rows start from the same law."""

import dataclasses
import json

import numpy as np
import pytest

import objectives
import simulate
import theory
from asgd import law_rows, result_folder
from asgd.config import ConfigError, load_config
from asgd.sweep import run_point, run_sweep
from simulate.result import join_step_sizes

#: rippled_quadratic (f''' != 0) at two step sizes whose laws differ (variance and mean), with
#: checkpoints from T = 1: a chain that did not start at its own step size's law is seen before
#: it relaxes.
STATIONARY = {
    "name": "stationary_start",
    "objective": {"kind": "rippled_quadratic"},
    "run": {"step_sizes": [0.05, 0.15], "n_steps": [16], "n_chains": 4096, "seeds": [3], "x0": "stationary", "checkpoints": [1, 4, 16]},
    "output": {"figures": [], "estimators": ["x", "x_avg", "x_tail"]},
    "target": {"kind": "point", "point": [0.0]},
    "theory": {"stationary": True, "n_grid": 601, "bounds": [-2.5, 3.0]},
}


def _by_key(rows, source):
    return {(r["estimator"], r["step_size"], r["n_steps"]): r for r in rows if r["source"] == source}


def test_chains_started_from_the_law_stay_there_and_the_law_rows_say_so(small_config, tmp_path):
    config = load_config(small_config(**STATIONARY))
    outcome = run_sweep(config, tmp_path / "out", quiet=True)
    rows = result_folder.read_csv(tmp_path / "out" / "results.csv")
    simulated, law, stationary = (_by_key(rows, source) for source in ("simulation", "law", "stationary"))
    assert len(law) == 3 * 2 * 3 and set(simulated) == set(law)
    # x_T from pi is at pi at every T: the finite-time rows of x equal the long-run floor.
    for (name, eta, t), row in law.items():
        if name == "x":
            np.testing.assert_allclose(row["mse"], stationary[("x", eta, t)]["mse"], rtol=1e-9)
    # Every simulated point within 4.5 standard errors (+ the law's grid error) of its exact row.
    for key, row in simulated.items():
        exact = law[key]
        assert abs(row["mse"] - exact["mse"]) < 4.5 * row["mse_se"] + exact["mse_grid_error"], (key, row["mse"], row["mse_se"], exact["mse"])
    # And the means, which the rows above do not see separately: E x_T = E x_avg_T = E_pi x.
    with np.load(tmp_path / "out" / "arrays.npz") as arrays:  # the law the sweep started from
        density, centres = arrays["law/density"], arrays["law/grid"][:, 0]
    mean = density @ centres
    grid_error = np.array(json.loads((tmp_path / "out" / "metadata.json").read_text())["law"]["discretization_error"])
    result = outcome.results[(3, 16)]
    for name in ("x", "x_avg"):
        for k in range(3):
            draws = result.checkpoints[name][k][:, :, 0].astype(np.float64)
            se = draws.std(axis=1, ddof=1) / np.sqrt(draws.shape[1])
            assert np.all(np.abs(draws.mean(axis=1) - mean) < 4.5 * se + grid_error), (name, k)


def test_starts_depend_on_seed_and_chain_only_and_follow_the_cell_law():
    f, noise = objectives.quadratic(np.array([2.0]), np.array([0.5])), simulate.noise.gaussian(1.0)
    law = theory.stationary_law(f, noise, [0.1, 0.4], bounds=(-2.0, 3.0), n_grid=401)
    starts = theory.stationary_starts(law, 7, np.arange(8192))
    np.testing.assert_array_equal(theory.stationary_starts(law, 7, np.arange(300, 310)), starts[:, 300:310])
    assert not np.array_equal(theory.stationary_starts(law, 8, np.arange(10)), starts[:, 300:310])
    # the cell law's mean and variance (+ h^2 / 12 from the uniform draw within a cell), within 4.5 SE
    variance = law.covariance[:, 0, 0] + law.grid.widths[0] ** 2 / 12
    se_mean, se_var = np.sqrt(variance / starts.shape[1]), variance * np.sqrt(2 / starts.shape[1])
    assert np.all(np.abs(starts[..., 0].mean(axis=1) - law.mean[:, 0]) < 4.5 * se_mean)
    assert np.all(np.abs(starts[..., 0].var(axis=1) - variance) < 4.5 * se_var)
    with pytest.raises(ValueError, match="chain_indices"):
        theory.stationary_starts(law, 7, [-1, 2])


def test_joined_runs_are_one_run_per_step_size():
    f = objectives.quadratic(np.array([2.0]), np.array([0.5]))
    kwargs = dict(n_steps=20, n_chains=8, x0=[1.0], seed=1, checkpoints=3)
    whole = simulate.run(f, step_sizes=[0.1, 0.3], **kwargs)
    joined = join_step_sizes([simulate.run(f, step_sizes=[eta], **kwargs) for eta in (0.1, 0.3)])
    for name in ("x", "x_avg", "v_avg", "diverged_at", "step_sizes"):
        np.testing.assert_array_equal(getattr(joined, name), getattr(whole, name))
    np.testing.assert_array_equal(joined.checkpoints["x_tail"], whole.checkpoints["x_tail"])
    with pytest.raises(ValueError, match="seed"):
        join_step_sizes([whole, dataclasses.replace(whole, seed=2)])


@pytest.mark.parametrize(
    "tables, message",
    [
        ({"objective": {"kind": "quadratic", "hessian": [1.0, 1.0, 1.0], "center": [0.0, 0.0, 0.0]}}, r"run\.x0.*dim 1 or 2"),
        ({"noise": {"family": "hessian_aligned", "scale": 1.0}}, r"run\.x0.*additive noise"),
        ({"run": {"x0": "stationry"}}, r"run\.x0.*'stationary'"),
    ],
)
def test_a_start_the_law_cannot_give_is_refused_naming_run_x0(small_config, tables, message):
    with pytest.raises(ConfigError, match=message):
        load_config(small_config(**{"run": {"x0": "stationary"}} | tables if "run" not in tables else tables))


def test_a_step_size_without_a_law_is_refused_naming_run_x0(small_config, tmp_path):
    # bounds that cut off the law: refused before anything is written, naming run.x0
    config = load_config(small_config(**{"run": {"x0": "stationary"}, "theory": {"bounds": [-1.3, -0.7], "n_grid": 101}}))
    with pytest.raises(ConfigError, match=r'run\.x0 = "stationary".*bounds'):
        run_sweep(config, tmp_path / "out", quiet=True)
    assert not (tmp_path / "out").exists()


def test_a_point_split_between_processes_is_the_same_point(small_config):
    """Chains 8..15 of a stationary-start point are the same whether a process runs chains 0..15
    or 8..23 (what `asgd.distributed` gathers): starts and noise both from (seed, i) alone. And
    the finite-time law the law rows come from stays at pi: E x_T = E x_avg_T = E x_tail_T = E_pi x,
    E v_T = E v_avg_T = E_pi v and Cov x_T = Cov_pi x at every checkpoint."""
    config = load_config(small_config(**{**STATIONARY, "run": {**STATIONARY["run"], "n_chains": 16}}))
    law = law_rows.compute_law(config)
    first, second = (run_point(config, 3, 16, n_chains=16, first_chain=c, start_law=law) for c in (0, 8))
    for name in ("x", "x_avg", "x_tail"):
        np.testing.assert_array_equal(getattr(first, name)[:, 8:], getattr(second, name)[:, :8])
    # and the law rows' finite-time law, started from pi, keeps every estimator's mean at E_pi at every T
    finite, _ = law_rows.compute_finite_law(config, law)
    for name, mean in (("x", law.mean), ("x_avg", law.mean), ("x_tail", law.mean), ("v", law.mean_v), ("v_avg", law.mean_v)):
        np.testing.assert_allclose(finite.mean(name), np.broadcast_to(mean, finite.mean(name).shape), rtol=1e-8, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(finite.covariance("x"), np.broadcast_to(law.covariance, finite.covariance("x").shape), rtol=1e-8)
