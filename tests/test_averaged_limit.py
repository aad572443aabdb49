"""`theory.averaged_limit`: Delta in closed form, against the exact law's slope, Richardson-Romberg
and the free-energy reading (what the averaged iterate converges to)."""

import jax.numpy as jnp
import numpy as np
import pytest

import objectives
import simulate
import theory
from theory.averaged_limit import averaged_limit, averaged_limit_expansion, free_energy_solution

#: f(x) = e^x - x: theta* = 0, f'' = f''' = 1, so Delta = -sigma^2 / 4 (the issue's measured well).
EXP_WELL = objectives.from_function(lambda x: jnp.exp(x[0]) - x[0], 1, name="exp_well")
EXP_BOX = (-2.5, 1.5)


def _separable(x, y):
    return jnp.exp(x) - x + (jnp.exp(2 * y) - 2 * y) / 2  # f_xx = 1, f_xxx = 1; f_yy = 2, f_yyy = 4 at 0


def test_expansion_in_1d_is_minus_sigma_squared_f3_over_4_f2_squared():
    for noise, variance in ((simulate.noise.gaussian(1.3), 1.69), (simulate.noise.uniform(0.7), 0.49)):
        np.testing.assert_allclose(averaged_limit_expansion(EXP_WELL, noise, [0.0]), [-variance / 4], rtol=1e-12)
    quadratic = objectives.quadratic(2.0, dim=1)  # f''' = 0: no first-order bias
    np.testing.assert_allclose(averaged_limit_expansion(quadratic, simulate.noise.gaussian(1.0), [0.0]), [0.0], atol=1e-14)


def test_expansion_rotates_with_the_landscape_and_a_full_noise_covariance():
    """g separable with diagonal Sigma has Delta per coordinate in closed form; f = g o R^T with
    R Sigma R^T (full) must give R Delta: the Lyapunov equation couples the coordinates."""
    angle = 0.6
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    variances = np.array([1.0, 0.5])
    expected = np.array([-variances[0] * 1.0 / (4 * 1.0**2), -variances[1] * 4.0 / (4 * 2.0**2)])
    separable = objectives.from_function(lambda z: _separable(z[0], z[1]), 2)
    np.testing.assert_allclose(averaged_limit_expansion(separable, simulate.noise.gaussian(covariance=np.diag(variances)), [0.0, 0.0]), expected, rtol=1e-12)
    rotated = objectives.from_function(lambda z: _separable(*(jnp.asarray(rotation.T, z.dtype) @ z)), 2)
    covariance = rotation @ np.diag(variances) @ rotation.T
    got = averaged_limit_expansion(rotated, simulate.noise.gaussian(covariance=covariance), [0.0, 0.0])
    np.testing.assert_allclose(got, rotation @ expected, rtol=1e-10)


def test_expansion_is_the_slope_of_the_exact_stationary_mean_in_1d():
    """(E_pi x - theta*) / eta = Delta + O(eta); the combination 2 a(eta) - a(2 eta) removes the O(eta)."""
    noise = simulate.noise.gaussian(1.0)
    law = theory.stationary_law(EXP_WELL, noise, [0.025, 0.05], bounds=EXP_BOX, n_grid=1601)
    slope = law.mean[:, 0] / law.step_sizes
    delta = averaged_limit_expansion(EXP_WELL, noise, [0.0])[0]
    assert abs((2 * slope[0] - slope[1]) / delta - 1) < 0.03, (slope, delta)


def test_average_sits_order_eta_from_both_targets_and_richardson_removes_it():
    noise = simulate.noise.gaussian(1.0)
    etas = np.array([0.025, 0.05])
    limit = averaged_limit(EXP_WELL, noise, etas, minimizer=[0.0], bounds=EXP_BOX, n_grid=1601, smoothed_bounds=(-1.0, 1.0))
    # O(eta) from theta* and from v*(eta) = -eta^2 / 2 alike: |E_pi x - v*| / eta near |Delta| = 1/4
    np.testing.assert_allclose(limit.smoothed[:, 0], -(etas**2) / 2, rtol=0.02, atol=1e-5)
    assert np.all(limit.to_minimizer / etas > 0.24) and np.all(limit.to_smoothed / etas > 0.22)
    # the remainder and Richardson-Romberg's bias are O(eta^2): doubling eta multiplies them by ~4
    assert 3.0 < abs(limit.remainder[1, 0] / limit.remainder[0, 0]) < 5.0
    assert 3.0 < limit.richardson_bias[1] / limit.richardson_bias[0] < 6.0
    assert np.all(limit.richardson_bias < 0.1 * limit.to_minimizer)
    # the free-energy reading agrees to first order only: its gap to E_pi x is O(eta^2) too
    free = free_energy_solution(EXP_WELL, noise, etas, [0.0])
    gaps = np.abs(limit.mean[:, 0] - free)
    assert 3.0 < gaps[1] / gaps[0] < 5.0 and np.all(gaps < 0.2 * limit.to_minimizer)


def test_bad_minimizer_is_refused_by_name():
    with pytest.raises(ValueError, match="minimizer"):
        averaged_limit_expansion(EXP_WELL, simulate.noise.gaussian(1.0), [0.0, 1.0])
    saddle = objectives.from_function(lambda x: -x[0] ** 2 + x[0] ** 3, 1)
    with pytest.raises(ValueError, match="minimizer"):
        averaged_limit_expansion(saddle, simulate.noise.gaussian(1.0), [0.0])


#: An anisotropic 2-D landscape: the separable wells above turned by 0.6 rad, f(x) = g(R^T x)
#: with g(u, v) = e^u - u + (e^{2v} - 2v) / 2 (curvatures 1 and 2, f''' = 1 and 4 on the axes u, v).
#: With isotropic noise Delta = R (-sigma^2/4, -sigma^2/4), along no coordinate or sharpness axis.
ANGLE = 0.6
ROTATION = np.array([[np.cos(ANGLE), -np.sin(ANGLE)], [np.sin(ANGLE), np.cos(ANGLE)]])
ROTATED = objectives.from_function(lambda z: _separable(*(jnp.asarray(ROTATION.T, z.dtype) @ z)), 2, name="rotated_wells")
SLOPE_STEP_SIZES = np.array([0.05, 0.1])


def _slope(means):
    """Delta from E_pi x - theta* at eta and 2 eta `(2, d)`: 2 a(eta) - a(2 eta), a = (E_pi x - theta*) / eta
    (the slope's O(eta) term removed; what remains is O(eta^2))."""
    slopes = means / SLOPE_STEP_SIZES[:, None]
    return 2 * slopes[0] - slopes[1]


def test_2d_expansion_is_the_slope_of_the_exact_law_of_an_anisotropic_landscape():
    """The 2-D Delta (Lyapunov solve with a full Hessian, third derivatives off every axis)
    against the exact law, within 3% per coordinate. Isotropic noise keeps its law under the
    rotation, so in the frame (u, v) = R^T x the chain is two independent 1-D chains, and
    E_pi x = R (E_pi u, E_pi v) exactly. Both are one chain: u is SGD on e^u - u, and w = 2v is
    SGD on e^w - w at step 2 eta (w' = w - 2 eta (e^w - 1 + eps)), so E_pi v(eta) = E_pi w(2 eta) / 2.
    One 1-D law at eta, 2 eta, 4 eta, on grids coarse enough that the cell error matters (the
    finest alone misses by more than 5%) and extrapolated to cells of width 0
    (`grid_extrapolated_mean`; grids of n and 2n cells share their compiled programs). The 2-D
    grid's own law: the slow test below."""
    noise = simulate.noise.gaussian(1.0)
    delta = averaged_limit_expansion(ROTATED, noise, [0.0, 0.0])
    etas = np.concatenate([SLOPE_STEP_SIZES, [4 * SLOPE_STEP_SIZES[0]]])
    laws = [theory.stationary_law(EXP_WELL, noise, etas, bounds=EXP_BOX, n_grid=n) for n in (64, 128)]

    def rotated(means):  # (S, 2): E_pi x = R (E u(eta), E w(2 eta) / 2)
        return np.stack([means[:2, 0], means[1:, 0] / 2], axis=1) @ ROTATION.T

    exact, finest = rotated(theory.grid_extrapolated_mean(laws)[0]), rotated(laws[1].mean)
    print("slope", _slope(exact), "finest grid", _slope(finest), "delta", delta)
    np.testing.assert_allclose(_slope(exact), delta, rtol=0.03)
    assert np.any(np.abs(_slope(finest) / delta - 1) > 0.05)  # the finest grid alone would not pass: the extrapolation is needed


@pytest.mark.slow
def test_2d_expansion_is_the_slope_of_the_2d_grid_law():
    """The same check on the 2-D cell chain itself (axis-aligned grid, rotated landscape): E_pi x
    on 61^2, 81^2 and 121^2 cells extrapolated to width 0 (c2 h^2 + c4 h^4 removed), within 3%
    per coordinate. Without the extrapolation 121^2 cells give 7% in x and 6% in y."""
    noise = simulate.noise.gaussian(1.0)
    delta = averaged_limit_expansion(ROTATED, noise, [0.0, 0.0])
    laws = [theory.stationary_law(ROTATED, noise, SLOPE_STEP_SIZES, bounds=((-1.3, -1.3), (1.0, 1.0)), n_grid=n) for n in (61, 81, 121)]
    extrapolated, change = theory.grid_extrapolated_mean(laws)
    print("slope", _slope(extrapolated), "delta", delta, "finest grid", _slope(laws[-1].mean), "change", change)
    np.testing.assert_allclose(_slope(extrapolated), delta, rtol=0.03)


def test_grid_extrapolation_refuses_laws_it_cannot_combine():
    noise = simulate.noise.gaussian(1.0)
    a, b = (theory.stationary_law(EXP_WELL, noise, [0.2], bounds=EXP_BOX, n_grid=n) for n in (101, 151))
    other_box = theory.stationary_law(EXP_WELL, noise, [0.2], bounds=(-3.0, 1.5), n_grid=151)
    with pytest.raises(ValueError, match="laws"):
        theory.grid_extrapolated_mean([a])
    with pytest.raises(ValueError, match="box"):
        theory.grid_extrapolated_mean([a, other_box])
    with pytest.raises(ValueError, match="different cell counts"):
        theory.grid_extrapolated_mean([a, a])
    # an exact h^2 error is removed exactly
    np.testing.assert_allclose(theory.grid_extrapolated_mean([a, b])[0], (b.grid.widths[0] ** 2 * a.mean - a.grid.widths[0] ** 2 * b.mean) / (b.grid.widths[0] ** 2 - a.grid.widths[0] ** 2))
