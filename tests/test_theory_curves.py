"""`theory` closed-form curves: against their own exact law, direct NumPy Monte Carlo, and the engine."""

import numpy as np
import pytest

import analysis
import objectives
import simulate
import theory

HESSIAN = np.array([[1.5, 0.4], [0.4, 0.3]])
COVARIANCE = np.array([[0.5, 0.1], [0.1, 0.2]])  # does not commute with the Hessian
CENTER, X0 = np.array([0.5, -1.0]), np.array([1.5, 0.0])


def test_mse_curves_equal_the_full_law_on_every_grid_point():
    step_sizes, horizons = [0.05, 0.4, 1.2], [1, 2, 7, 300, 20_000]
    curves = theory.quadratic_mse_curves(HESSIAN, COVARIANCE, step_sizes, horizons, X0, CENTER, tail_fraction=0.3)
    assert set(curves) == set(theory.ESTIMATORS)
    for i, eta in enumerate(step_sizes):
        for k, horizon in enumerate(horizons):
            law = theory.quadratic_law(HESSIAN, COVARIANCE, eta, horizon, X0, CENTER, tail_fraction=0.3)
            for name in theory.ESTIMATORS:
                assert curves[name][i, k] == pytest.approx(law.mse(name, CENTER), rel=1e-11), (name, eta, horizon)
    only = theory.quadratic_mse_curves(HESSIAN, COVARIANCE, 0.4, 300, X0, CENTER, estimators=["x_avg"])
    np.testing.assert_allclose(only["x_avg"], theory.quadratic_mse(HESSIAN, COVARIANCE, 0.4, 300, X0, CENTER), rtol=1e-12)


def test_mse_curves_reach_the_known_limits_and_flag_divergence():
    h, sigma = np.diag([2.0, 0.5]), np.diag([1.0, 3.0])
    curves = theory.quadratic_mse_curves(h, sigma, [0.3, 1.5], [100_000], [1.0, 1.0])
    assert curves["x"][0, 0] == pytest.approx(theory.last_iterate_floor(h, sigma, 0.3), rel=1e-9)
    asymptote = theory.averaged_mse_asymptotic(h, sigma, 100_000)
    assert curves["x_avg"][0, 0] == pytest.approx(asymptote, rel=1e-3)  # corrections O(1/(eta h T))
    assert np.all(np.isinf([curves[name][1, 0] for name in theory.ESTIMATORS]))  # 1.5 * 2 > 2
    with pytest.raises(ValueError, match="estimators must be among"):
        theory.quadratic_mse_curves(h, sigma, 0.3, 10, [0.0, 0.0], estimators=["x_ema"])
    with pytest.raises(ValueError, match="n_steps must be integers >= 1"):
        theory.quadratic_mse_curves(h, sigma, 0.3, [0, 10], [0.0, 0.0])


def test_law_matches_direct_monte_carlo_of_the_linear_recursion():
    # e_k = (I - eta H) e_{k-1} - eta eps_k sampled with NumPy: independent of simulate and theory.
    rng = np.random.default_rng(2)
    eta, n_steps, n, tail = 0.4, 60, 20_000, 0.5
    m = 30
    e = np.tile(X0 - CENTER, (n, 1))
    factor = np.linalg.cholesky(COVARIANCE)
    total, tail_total, v_total = np.zeros_like(e), np.zeros_like(e), np.zeros_like(e)
    for k in range(1, n_steps + 1):
        e = e - eta * e @ HESSIAN - eta * rng.normal(size=(n, 2)) @ factor.T
        total += e
        v_total += e - eta * e @ HESSIAN
        if k > n_steps - m:
            tail_total += e
    samples = {"x": e, "x_avg": total / n_steps, "x_tail": tail_total / m, "v": e - eta * e @ HESSIAN, "v_avg": v_total / n_steps}
    law = theory.quadratic_law(HESSIAN, COVARIANCE, eta, n_steps, X0, CENTER, tail_fraction=tail)
    for name, sample in samples.items():
        point = sample + CENTER
        mean, cov = law.marginal(name)
        assert np.all(np.abs(point.mean(0) - mean) < 4.5 * np.sqrt(np.diag(cov) / n)), name
        squared = np.sum(sample**2, axis=-1)
        se = np.sqrt(law.mse_variance(name, CENTER) / n)
        assert abs(squared.mean() - law.mse(name, CENTER)) < 4.5 * se, name
        assert squared.var() == pytest.approx(law.mse_variance(name, CENTER), rel=0.1), name


def test_error_table_of_the_engine_matches_the_theory_curves():
    # The whole chain: simulate.run -> analysis.errors -> theory.quadratic_mse_curves, MSE within
    # 4.5 exact standard errors at every step size, checkpoint and estimator (50 comparisons).
    f = objectives.quadratic(HESSIAN, CENTER)
    noise = simulate.noise.gaussian(covariance=COVARIANCE)
    step_sizes, checkpoints = [0.1, 1.0], [1, 4, 16, 64, 200]
    result = simulate.run(f, step_sizes=step_sizes, n_steps=200, n_chains=4000, x0=X0, noise=noise,
                          checkpoints=checkpoints, tail_fraction=0.3, seed=11)
    table = analysis.errors(result, CENTER)
    curves = theory.quadratic_mse_curves(HESSIAN, COVARIANCE, step_sizes, checkpoints, X0, CENTER, tail_fraction=0.3)
    compared = 0
    for row in table:
        i, k = step_sizes.index(row["step_size"]), checkpoints.index(row["n_steps"])
        law = theory.quadratic_law(HESSIAN, COVARIANCE, row["step_size"], row["n_steps"], X0, CENTER, tail_fraction=0.3)
        se = np.sqrt(law.mse_variance(row["estimator"], CENTER) / row["n_chains"])
        expected = curves[row["estimator"]][i, k]
        assert abs(row["mse"] - expected) <= 4.5 * se + 1e-5 * expected, row
        assert row["mse_se"] == pytest.approx(se, rel=0.15)  # the table's own se estimates the exact one
        compared += 1
    assert compared == 2 * 5 * 5
