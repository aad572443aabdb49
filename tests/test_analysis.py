"""analysis: the Lyapunov floor, basins on sharp_flat, the drift identity on a cosine landscape.

Error tables, rate fits, plots and theory curves have their own files (test_errors.py, ...)."""

import math

import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import analysis  # noqa: E402
import objectives  # noqa: E402
import simulate  # noqa: E402
import theory  # noqa: E402


def test_stationary_floor_solves_the_lyapunov_equation_and_matches_the_commuting_formula():
    hessian, sigma, eta = np.diag([2.0, 0.5]), np.diag([1.0, 3.0]), 0.3
    s = theory.stationary_covariance(hessian, sigma, eta)
    a = np.eye(2) - eta * hessian
    np.testing.assert_allclose(s, a @ s @ a + eta**2 * sigma, atol=1e-12)
    np.testing.assert_allclose(s, eta * sigma @ np.linalg.inv(2 * hessian - eta * hessian @ hessian), atol=1e-12)
    law = theory.quadratic_law(hessian, sigma, eta, 5000, [0.0, 0.0])
    assert law.mse("x", [0.0, 0.0]) == pytest.approx(np.trace(s), rel=1e-9)
    with pytest.raises(ValueError, match="no stationary law"):
        theory.stationary_covariance(hessian, sigma, 1.1)


def test_basin_occupancy_and_sharpness_on_sharp_flat():
    f = objectives.sharp_flat()
    minima = analysis.minimizers(f)
    wells = minima.points[np.argsort(minima.points[:, 0])]  # sharp (left), flat (right)
    points = np.array([[[-1.0], [-0.9], [0.9], [1.2]], [[0.8], [1.0], [1.1], [-1.0]]])
    mask = np.array([[True, True, True, False], [True, True, True, True]])
    occupancy = analysis.basin_occupancy(points, wells, mask=mask)
    np.testing.assert_allclose(occupancy, [[2 / 3, 1 / 3], [0.25, 0.75]])
    descent = analysis.basin_occupancy(np.array([[[-0.45], [0.2]]]), wells, f, method="descent")
    assert descent.shape == (1, 2) and np.isclose(descent.sum(), 1.0)
    sharpness = analysis.sharpness_summary(f, points[:, :3])
    assert sharpness.mean[0] > sharpness.mean[1]  # more chains in the sharp well at the first eta


def test_drift_of_v_is_a_gradient_step_on_the_smoothed_objective():
    # A cosine landscape: F_eta(v) = 1/2 v^2 + a cos(w v) exp(-w^2 eta^2 s^2 / 2) exactly.
    a, w, eta, s = 0.5, 3.0, 0.3, 1.0
    f = objectives.from_function(lambda x: 0.5 * jnp.sum(x**2) + a * jnp.sum(jnp.cos(w * x)), 1)
    damping = math.exp(-(w**2) * eta**2 * s**2 / 2)
    smoothed_grad = lambda v: v - a * w * damping * jnp.sin(w * v)  # noqa: E731
    plain_grad = lambda v: v - a * w * jnp.sin(w * v)  # noqa: E731
    result = simulate.run(f, step_sizes=[eta], n_steps=400, n_chains=2000, x0=[0.0], trajectory=True, seed=3)
    check = analysis.drift_check(result.trajectory[:, 0], f, smoothed_grad, eta, n_bins=20)
    assert np.all(np.abs(check.z_scores()) < 4.5), check.z_scores()
    # ...and not a step on f itself: the identity is falsifiable.
    wrong = analysis.drift_check(result.trajectory[:, 0], f, plain_grad, eta, n_bins=20)
    assert np.max(np.abs(wrong.z_scores())) > 10
