"""SGD on a quadratic with Gaussian noise against its exact law (a linear Gaussian recursion).

`theory.quadratic_law` gives the mean and covariance of x_T, x_avg, x_tail, v_T and
v_avg for every T (derived in its docstring). The simulated mean squared distance to the
minimizer must match within a few Monte Carlo standard errors, the standard error coming from
the exact variance of ||y - c||^2 under that law.
"""

import numpy as np
import pytest

import objectives
import simulate
import theory

N_SIGMA = 4.5  # ~150 comparisons per test: a 4.5-sigma band fails by chance with p < 1e-3 overall


def _assert_matches_law(result, hessian, noise_covariance, x0, center):
    checked = 0
    for s, step_size in enumerate(result.step_sizes):
        for k, t in enumerate(result.checkpoint_steps):
            law = theory.quadratic_law(hessian, noise_covariance, step_size, int(t), x0, center, result.tail_fraction)
            for name in simulate.ESTIMATORS:
                values = result.checkpoints[name][k, s].astype(np.float64)
                squared = np.sum((values - center) ** 2, axis=-1)
                expected = law.mse(name, center)
                se = np.sqrt(law.mse_variance(name, center) / values.shape[0])
                assert abs(squared.mean() - expected) <= N_SIGMA * se + 1e-6 * expected + 1e-9, (
                    f"{name} at eta={step_size}, T={t}: simulated {squared.mean():.6g}, exact {expected:.6g}, se {se:.3g}"
                )
                mean, cov = law.marginal(name)
                mean_se = np.sqrt(np.diag(cov) / values.shape[0])
                assert np.all(np.abs(values.mean(axis=0) - mean) <= N_SIGMA * mean_se + 1e-6 * (1 + np.abs(mean))), (
                    f"mean of {name} at eta={step_size}, T={t}"
                )
                checked += 1
    return checked


def test_mse_matches_linear_gaussian_law_in_1d():
    center, x0 = np.array([1.0]), np.array([3.0])
    f = objectives.quadratic(1.0, center)
    result = simulate.run(
        f,
        step_sizes=[0.02, 0.3, 1.0, 1.9],  # eta * lambda = 1.9: close to the stability limit 2
        n_steps=2000,
        n_chains=12_000,
        x0=x0,
        noise=simulate.noise.gaussian(0.7),
        checkpoints=[1, 2, 5, 20, 100, 500, 2000],
        seed=1,
    )
    assert not result.diverged.any()
    checked = _assert_matches_law(result, 1.0, 0.49, x0, center)
    assert checked == 4 * 7 * 5


def test_mse_matches_linear_gaussian_law_for_anisotropic_hessian_and_full_noise_covariance():
    hessian = np.array([[3.0, 1.0], [1.0, 0.5]])  # eigenvalues 3.35 and 0.15
    covariance = np.array([[1.0, 0.6], [0.6, 0.5]])  # does not commute with the Hessian
    center, x0 = np.array([0.5, -1.0]), np.array([2.0, 2.0])
    f = objectives.quadratic(hessian, center)
    result = simulate.run(
        f,
        step_sizes=[0.05, 0.55],  # 0.55 * 3.35 = 1.84
        n_steps=3000,
        n_chains=10_000,
        x0=x0,
        noise=simulate.noise.gaussian(covariance=covariance),
        checkpoints=[1, 3, 30, 300, 3000],
        tail_fraction=0.3,
        seed=7,
    )
    assert not result.diverged.any()
    assert _assert_matches_law(result, hessian, covariance, x0, center) == 2 * 5 * 5


def test_averaging_beats_last_iterate_on_a_quadratic_at_large_step():
    # The claim the project is about, in its simplest form: at fixed eta the last iterate keeps
    # an O(eta) floor while the average keeps falling like 1/T.
    f = objectives.quadratic(1.0, [0.0])
    result = simulate.run(f, step_sizes=[0.5], n_steps=4000, n_chains=4000, x0=[0.0], seed=3)
    floor = theory.last_iterate_floor(1.0, 1.0, 0.5)
    mse_last = np.mean(result.x[0] ** 2)
    mse_avg = np.mean(result.x_avg[0] ** 2)
    assert abs(mse_last - floor) < 0.1 * floor
    assert mse_avg < 0.01 * mse_last
    assert mse_avg == pytest.approx(theory.averaged_mse_asymptotic(1.0, 1.0, 4000), rel=0.1)
