"""`analysis.drift_check`: the drift of v_k = x_k - eta grad f(x_k) is -eta grad F_eta(v_k)."""

import dataclasses
import math

import jax.numpy as jnp
import numpy as np
import pytest

import analysis
import objectives
import simulate

# 20 bins, max |z| over them: under the identity P(max |z| > 4.5) ~ 20 * 7e-6.
Z_BOUND = 4.5


def test_drift_on_a_quadratic_is_a_gradient_step_on_f_itself():
    # F_eta = f + const for a quadratic, so grad F_eta = grad f; 2-D, checked along two directions.
    f = objectives.quadratic(np.array([[2.0, 0.5], [0.5, 1.0]]), [1.0, -1.0])
    result = simulate.run(f, step_sizes=[0.1, 0.4], n_steps=200, n_chains=1000, x0=[0.0, 0.0], trajectory=True, seed=1)
    for direction in (None, [1.0, 1.0]):
        check = analysis.drift_check(result, f, f.grad, 0.4, n_bins=20, direction=direction)
        assert check.centers.shape == (20,) and check.count.sum() == 200 * 1000
        assert np.all(np.abs(check.z_scores()) < Z_BOUND), check.z_scores()
        assert np.all(np.diff(check.centers) > 0)
    # A wrong step size in the prediction is caught: the identity is falsifiable.
    wrong = analysis.drift_check(result, f, lambda v: 0.5 * f.grad(v), 0.4, n_bins=20)
    assert np.max(np.abs(wrong.z_scores())) > 10


def test_drift_on_a_cosine_landscape_follows_the_closed_form_smoothing_not_f():
    # f = v^2/2 + a cos(w v): E cos(w (v - eta eps)) = cos(w v) exp(-w^2 eta^2 / 2) for eps ~ N(0, 1).
    a, w, eta = 0.5, 3.0, 0.3
    f = objectives.from_function(lambda x: 0.5 * jnp.sum(x**2) + a * jnp.sum(jnp.cos(w * x)), 1, name="cosine")
    damping = math.exp(-(w**2) * eta**2 / 2)
    result = simulate.run(f, step_sizes=[eta], n_steps=300, n_chains=1000, x0=[0.0], trajectory=True, seed=3)
    check = analysis.drift_check(result.trajectory[:, 0], f, lambda v: v - a * w * damping * jnp.sin(w * v), eta, n_bins=20)
    assert np.all(np.abs(check.z_scores()) < Z_BOUND), check.z_scores()
    naive = analysis.drift_check(result.trajectory[:, 0], f, f.grad, eta, n_bins=20)
    assert np.max(np.abs(naive.z_scores())) > 10


def test_drift_se_is_the_spread_of_the_noise_not_of_the_drift():
    # f = 0: v = x, the drift is exactly -eta eps with eps ~ N(0, 1), in every bin.
    f = objectives.from_function(lambda x: 0.0 * jnp.sum(x), 1, name="zero")
    rng = np.random.default_rng(0)
    eta, n_steps, n_chains = 0.5, 50, 400
    steps = -eta * rng.normal(size=(n_steps, n_chains, 1))
    x = np.concatenate([np.zeros((1, n_chains, 1)), np.cumsum(steps, axis=0)])
    check = analysis.drift_check(x, f, lambda v: jnp.zeros_like(v), eta, n_bins=5, min_count=10)
    np.testing.assert_allclose(check.drift_se * np.sqrt(check.count), eta, rtol=0.05)
    np.testing.assert_array_equal(check.predicted, 0.0)


def _synthetic_result_with_trajectory(trajectory, diverged, step_sizes):
    n_steps = trajectory.shape[0] - 1
    final = trajectory[-1]
    return simulate.SimulationResult(
        **{name: final for name in simulate.ESTIMATORS}, diverged=diverged,
        diverged_at=np.where(diverged, n_steps // 2, -1), checkpoint_steps=np.array([n_steps]),
        checkpoints={name: final[None] for name in simulate.ESTIMATORS}, step_sizes=np.asarray(step_sizes),
        n_steps=n_steps, n_chains=trajectory.shape[2], seed=0, tail_fraction=0.5, noise=simulate.noise.gaussian(1.0),
        objective_name="synthetic", dim=1, dtype="float64", divergence_radius=1e6, trajectory=trajectory,
    )


def test_a_result_picks_its_step_size_and_leaves_diverged_chains_out():
    f = objectives.quadratic(1.0, [0.0])
    rng = np.random.default_rng(1)
    trajectory = rng.normal(size=(11, 2, 6, 1))
    diverged = np.array([[False] * 6, [True, True, False, False, False, False]])
    result = _synthetic_result_with_trajectory(trajectory, diverged, [0.1, 0.2])
    check = analysis.drift_check(result, f, f.grad, 0.2, n_bins=2, min_count=2)
    assert check.count.sum() == 10 * 4
    direct = analysis.drift_check(trajectory[:, 1, 2:], f, f.grad, 0.2, n_bins=2, min_count=2)
    np.testing.assert_allclose(check.drift, direct.drift)
    with pytest.raises(ValueError, match=r"step_size must be one of the result's step sizes \[0.1, 0.2\]"):
        analysis.drift_check(result, f, f.grad, 0.3)
    with pytest.raises(ValueError, match="trajectory=True"):
        analysis.drift_check(dataclasses.replace(result, trajectory=None), f, f.grad, 0.1)
    with pytest.raises(ValueError, match="no bin has min_count=200"):
        analysis.drift_check(trajectory[:, 0], f, f.grad, 0.1, n_bins=2)
    with pytest.raises(ValueError, match=r"\(T\+1, n_chains, dim\)"):
        analysis.drift_check(trajectory, f, f.grad, 0.1)
