"""The near-tie trap (analysis.ties): on sharp_flat just below the critical step size, v*(eta) is in
the sharp well by 1.4% of F_eta while chains started in the flat well stay there. The chains'
basin is found, a NearTieWarning names the step size, both minimizers and the margin, and
target="local" gives the minimizer of F_eta in the flat well, in the library and the CLI."""

import warnings

import numpy as np
import pytest

import analysis
import objectives
import simulate
from analysis import NearTieWarning
from asgd.config import ConfigError, parse_config
from asgd.sweep import run_sweep

STEP_SIZES = [0.02, 0.07]  # margins F_eta(flat) - F_eta(sharp): 9.3% (no warning) and 1.4% (warning)
NOISE = simulate.noise.gaussian(1.0)


@pytest.fixture(scope="module")
def flat_chains():
    f = objectives.sharp_flat()
    result = simulate.run(f, step_sizes=STEP_SIZES, n_steps=2000, n_chains=64, x0=[1.0], noise=NOISE, seed=0)
    assert np.all(result.x[..., 0] > 0)  # every chain stays in the flat well (x > 0)
    return f, result


def test_chains_in_the_other_basin_by_a_small_margin_warn_with_eta_both_basins_and_the_margin(flat_chains):
    f, result = flat_chains
    with warnings.catch_warnings(record=True) as heard:
        warnings.simplefilter("always")
        path = analysis.smoothed_solution(f, NOISE, STEP_SIZES, chains=result.x, mask=~result.diverged)
    near = [w for w in heard if issubclass(w.category, NearTieWarning)]
    assert len(near) == 1 and issubclass(NearTieWarning, analysis.TieWarning)
    assert near[0].filename == __file__  # points at the caller
    message = str(near[0].message)
    sharp, flat = path.minima[1].points[0, 0], path.minima[1].points[1, 0]
    assert sharp < 0 < flat and path.points[1, 0] == sharp  # v*(0.07) is the sharp well's
    margin = path.minima[1].values[1] - path.minima[1].values[0]
    assert 0.01 < margin < 0.02
    for text in ("step_size=0.07", "100% of the chains", f"[{float(flat)!r}]", f"[{float(sharp)!r}]", f"{margin:.3g}", "1.4%", "target='local'"):
        assert text in message, text


def test_target_local_is_the_smoothed_minimizer_where_the_chains_are(flat_chains):
    f, result = flat_chains
    with pytest.warns(NearTieWarning):
        local = analysis.smoothed_solution(f, NOISE, STEP_SIZES, chains=result.x, target="local")
    assert local.target == "local" and np.all(local.points[:, 0] > 0)
    np.testing.assert_array_equal(local.chain_fraction, [1.0, 1.0])
    # A stationary point of F_eta in the flat well, with its F_eta value; the margin over v*(eta).
    for s in range(2):
        member = objectives.smoothed(f, NOISE, STEP_SIZES[s])
        assert abs(float(member.grad(local.points[s])[0])) < 1e-3
        np.testing.assert_allclose(local.values[s], float(member.value(local.points[s])), rtol=1e-5)
        np.testing.assert_allclose(local.margin[s], local.values[s] - local.minima[s].values[0], rtol=1e-12)
    # The errors to the local target are those of estimators in the flat well, not the distance between wells.
    to_global = analysis.errors(result, analysis.smoothed_solution(f, NOISE, STEP_SIZES), checkpoints=False).select(estimator="x_avg")
    to_local = analysis.errors(result, local, checkpoints=False).select(estimator="x_avg")
    assert np.all(to_local.column("mse") < 0.01) and to_global.column("mse")[1] > 3.0


def test_no_counted_chain_keeps_v_star_and_bad_arguments_are_named(flat_chains):
    f, result = flat_chains
    nobody = np.zeros(result.diverged.shape, bool)
    local = analysis.smoothed_solution(f, NOISE, STEP_SIZES, chains=result.x, mask=nobody, target="local")
    assert np.all(np.isnan(local.chain_fraction)) and np.all(local.points[:, 0] < 0)
    with pytest.raises(ValueError, match="target='local' needs chains="):
        analysis.smoothed_solution(f, NOISE, STEP_SIZES, target="local")
    with pytest.raises(ValueError, match=r"target must be one of \['global', 'local'\], got 'nearest'"):
        analysis.smoothed_solution(f, NOISE, STEP_SIZES, chains=result.x, target="nearest")
    with pytest.raises(ValueError, match=r"chains must have shape \(n_step_sizes, n_chains, dim\) = \(2, C, 1\).*got \(64, 1\)"):
        analysis.smoothed_solution(f, NOISE, STEP_SIZES, chains=result.x[0])
    with pytest.raises(ValueError, match="near_tie must be"):
        analysis.smoothed_solution(f, NOISE, STEP_SIZES, chains=result.x, near_tie=-0.1)


def _config(target="local", **theory):
    return {
        "name": "near_tie",
        "objective": {"kind": "sharp_flat"},
        "noise": {"family": "gaussian", "scale": 1.0},
        "run": {"step_sizes": STEP_SIZES, "n_steps": 400, "n_chains": 32, "x0": [1.0]},
        "target": {"kind": target},
        "output": {"estimators": ["x_avg"], "figures": []},
        **({"theory": theory} if theory else {}),
    }


def test_a_config_with_target_local_measures_errors_in_the_chains_basin(tmp_path):
    with pytest.warns(NearTieWarning, match="step_size=0.07"):
        outcome = run_sweep(parse_config(_config("local")), tmp_path, quiet=True)
    mse = {row["step_size"]: row["mse"] for row in outcome.rows if row["n_steps"] == 400}
    assert max(mse.values()) < 0.05  # in the flat well; v*(0.07) is 1.96 away, an error of ~3.8
    saved = np.load(tmp_path / "arrays.npz")  # run_sweep writes into the folder it is given
    assert np.all(saved["seed0_T400/target"][:, 0] > 0) and saved["targets"][1, 0] < 0
    with pytest.raises(ConfigError, match="theory.stationary = True: needs one target per step size; target.kind = 'local'"):
        parse_config(_config("local", stationary=True))
