"""`objectives.smoothed` and `objectives.penalized` against independent quadrature (SciPy), exact
averages and Taylor expansions, in float64.

Independent references: `scipy.integrate.quad_vec` for 1-D expectations, tensor Gauss-Legendre
from `scipy.special.roots_legendre` on a truncated box for 2-D ones (neither shares code with the
library's rules), and plain finite averages for Rademacher noise.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, special, stats

import objectives
import simulate
from objectives import smoothing


pytestmark = pytest.mark.usefixtures("x64")  # float64 throughout (conftest)


@jax.jit
def _jit_values(objective, points):
    return objective.value(points)


@jax.jit
def _jit_grads(objective, points):
    return objective.grad(points)


@jax.jit
def _jit_traces(objective, points):
    return objective.hessian_trace(points)


def _values(objective, points) -> np.ndarray:
    return np.asarray(_jit_values(objective, np.asarray(points, dtype=np.float64)))


def _expectation_1d(f, points, density, low, high, tolerance=1e-13):
    """E f(v - e) for e with the given 1-D density on [low, high], for every v in `points` `(n, 1)`."""

    def integrand(e):
        return _values(f, points - e) * density(e)

    result, error = integrate.quad_vec(integrand, low, high, epsabs=0.1 * tolerance, epsrel=tolerance, limit=2000)
    return result


def _gaussian_expectation_2d(f, points, covariance, n_nodes=400, half_width=9.0):
    """E f(v - e), e ~ N(0, covariance), by tensor Gauss-Legendre on [-9, 9]^2 in whitened coordinates."""
    nodes, weights = special.roots_legendre(n_nodes)
    z1, z2 = np.meshgrid(half_width * nodes, half_width * nodes, indexing="ij")
    w = np.outer(weights, weights).reshape(-1) * half_width**2
    z = np.stack([z1.reshape(-1), z2.reshape(-1)], axis=-1)
    density = np.exp(-0.5 * np.sum(z * z, axis=-1)) / (2 * math.pi)
    e = z @ np.linalg.cholesky(covariance).T
    return np.array([np.sum(w * density * _values(f, v[None, :] - e)) for v in points])


def _gaussian_density(sd):
    return lambda e: np.exp(-0.5 * (e / sd) ** 2) / (sd * math.sqrt(2 * math.pi))


ONE_D = {
    "sharp_flat": (objectives.sharp_flat, np.linspace(-2.0, 2.5, 13)),
    "rippled_quadratic": (objectives.rippled_quadratic, np.linspace(-1.5, 1.7, 13)),
    "wells_no_confinement": (
        lambda: objectives.gaussian_wells([0.5, 1.5, 0.7], [-1.0, 0.2, 2.0], [0.3, 0.1, 1.2]),
        np.linspace(-2.0, 3.0, 13),
    ),
}


@pytest.mark.parametrize("name", sorted(ONE_D))
@pytest.mark.parametrize("step_size", [0.05, 0.3, 1.0])
def test_one_dimensional_closed_forms_match_scipy_quadrature(name, step_size):
    make, grid = ONE_D[name]
    f = make()
    scale = 0.7
    F = objectives.smoothed(f, simulate.noise.gaussian(scale), step_size)
    assert dict(F.info)["method"] == "closed_form"
    points = grid[:, None]
    sd = step_size * scale
    expected = _expectation_1d(f, points, _gaussian_density(sd), -14 * sd, 14 * sd)
    np.testing.assert_allclose(_values(F, points), expected, rtol=1e-10, atol=1e-12)


def _two_d_cases():
    wells_iso = objectives.gaussian_wells([1.0, 0.6], [[-1.0, 0.5], [1.0, -0.5]], [0.4, 0.8], confinement=0.2)
    wells_cov = objectives.gaussian_wells(
        [1.0, 0.6], [[-1.0, 0.5], [1.0, -0.5]], [[[0.2, 0.05], [0.05, 0.1]], [[0.5, -0.2], [-0.2, 0.4]]]
    )
    rippled = objectives.rippled_quadratic([1.0, 2.0], [0.3, -0.2], [0.5, 0.2], [2 * math.pi, 3.0])
    return {"wells_isotropic": wells_iso, "wells_covariance": wells_cov, "rippled_2d": rippled, "valley": objectives.valley_2d()}


@pytest.mark.parametrize("name", ["wells_isotropic", "wells_covariance", "rippled_2d", "valley"])
def test_two_dimensional_closed_forms_match_quadrature_with_full_noise_covariance(name):
    f = _two_d_cases()[name]
    covariance = np.array([[0.3, 0.12], [0.12, 0.2]])
    noise = simulate.noise.gaussian(covariance=covariance)
    points = np.random.default_rng(0).uniform(-1.5, 1.5, size=(6, 2))
    for step_size in (0.2, 0.7):
        F = objectives.smoothed(f, noise, step_size)
        expected = _gaussian_expectation_2d(f, points, step_size**2 * covariance)
        np.testing.assert_allclose(_values(F, points), expected, rtol=1e-10, atol=1e-12)


def test_closed_forms_handle_singular_noise_covariance():
    """Noise in one coordinate only (C_xx = 0 for the valley: its formula divides by C_xx)."""
    points = np.random.default_rng(1).uniform(-1.0, 1.0, size=(5, 2))
    for covariance in (np.diag([0.0, 0.4]), np.diag([0.4, 0.0])):
        noise = simulate.noise.gaussian(covariance=covariance)
        f = objectives.valley_2d()
        closed = objectives.smoothed(f, noise, 1.0)
        quadrature = objectives.smoothed(f, noise, 1.0, method="quadrature", order=8)
        np.testing.assert_allclose(_values(closed, points), _values(quadrature, points), rtol=1e-12)
        assert np.all(np.isfinite(np.asarray(_jit_grads(closed, points))))


def test_gauss_hermite_quadrature_matches_closed_forms():
    noise = simulate.noise.gaussian(0.5)
    points = np.linspace(-2, 2, 21)[:, None]
    for f in (objectives.sharp_flat(), objectives.rippled_quadratic()):
        closed = objectives.smoothed(f, noise, 0.6)
        quadrature = objectives.smoothed(f, noise, 0.6, method="quadrature")
        assert dict(quadrature.info)["method"] == "quadrature"
        np.testing.assert_allclose(_values(quadrature, points), _values(closed, points), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(np.asarray(_jit_grads(quadrature, points)), np.asarray(_jit_grads(closed, points)), atol=1e-8)
    f3 = objectives.rippled_quadratic(dim=3)
    points3 = np.random.default_rng(2).uniform(-1, 1, size=(4, 3))
    np.testing.assert_allclose(
        _values(objectives.smoothed(f3, noise, 0.4, method="quadrature"), points3),
        _values(objectives.smoothed(f3, noise, 0.4), points3),
        rtol=1e-10,
    )


def test_from_function_is_smoothed_by_quadrature_and_matches_the_closed_form():
    reference = objectives.rippled_quadratic()

    def rippled(x):  # the same function, written by hand
        return 0.5 * (x[0] - 0.3) ** 2 + 0.5 * (1 - jnp.cos(2 * math.pi * x[0]))

    f = objectives.from_function(rippled, 1)
    F = objectives.smoothed(f, simulate.noise.gaussian(1.0), 0.3)
    assert dict(F.info)["method"] == "quadrature"
    points = np.linspace(-1, 1, 9)[:, None]
    closed = objectives.smoothed(reference, simulate.noise.gaussian(1.0), 0.3)
    np.testing.assert_allclose(_values(F, points), _values(closed, points), rtol=1e-10)
    np.testing.assert_allclose(
        np.asarray(_jit_traces(F, points)), np.asarray(_jit_traces(closed, points)), rtol=1e-8, atol=1e-10
    )


def test_rademacher_smoothing_is_the_exact_average_of_the_two_shifts():
    f = objectives.sharp_flat()
    points = np.linspace(-2, 2, 17)[:, None]
    for step_size in (0.01, 0.2, 0.9):
        F = objectives.smoothed(f, simulate.noise.rademacher(0.8), step_size)
        shift = step_size * 0.8
        expected = 0.5 * (_values(f, points + shift) + _values(f, points - shift))
        np.testing.assert_allclose(_values(F, points), expected, rtol=1e-14, atol=1e-15)


def test_rademacher_smoothing_in_2d_averages_the_four_sign_vectors():
    f = objectives.valley_2d()
    points = np.random.default_rng(3).normal(size=(5, 2))
    F = objectives.smoothed(f, simulate.noise.rademacher(0.5), 0.4)
    signs = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]], dtype=np.float64) * 0.2
    expected = np.mean([_values(f, points + s) for s in signs], axis=0)
    np.testing.assert_allclose(_values(F, points), expected, rtol=1e-14)


def test_uniform_smoothing_matches_scipy_quadrature():
    f = objectives.sharp_flat()
    points = np.linspace(-2, 2, 11)[:, None]
    scale, step_size = 0.5, 0.4
    half = math.sqrt(3) * scale * step_size
    F = objectives.smoothed(f, simulate.noise.uniform(scale), step_size)
    expected = _expectation_1d(f, points, lambda e: np.full_like(e, 1 / (2 * half)), -half, half)
    np.testing.assert_allclose(_values(F, points), expected, rtol=1e-10, atol=1e-12)


def test_student_t_smoothing_is_monte_carlo_within_its_standard_error():
    f = objectives.rippled_quadratic(amplitude=0.3)
    df, scale, step_size = 5.0, 0.5, 0.5
    F = objectives.smoothed(f, simulate.noise.student_t(scale, df), step_size, n_samples=8192, seed=3)
    assert dict(F.info)["method"] == "monte_carlo"
    points = np.linspace(-1, 1, 5)[:, None]
    factor = step_size * scale * math.sqrt((df - 2) / df)
    density = lambda e: stats.t.pdf(e / factor, df) / factor
    expected = _expectation_1d(f, points, density, -np.inf, np.inf, tolerance=1e-8)
    se = np.asarray(smoothing.standard_error(F, points))
    assert np.all(se > 0)
    assert np.all(np.abs(_values(F, points) - expected) <= 5 * se)


def test_monte_carlo_beyond_dim_3_is_reproducible_and_reports_its_standard_error():
    f = objectives.rippled_quadratic(dim=5, amplitude=0.2)
    noise = simulate.noise.uniform(0.6)
    F = objectives.smoothed(f, noise, 0.5, n_samples=8192, seed=11)
    again = objectives.smoothed(f, noise, 0.5, n_samples=8192, seed=11)
    points = np.random.default_rng(4).uniform(-1, 1, size=(6, 5))
    assert dict(F.info)["method"] == "monte_carlo"
    np.testing.assert_array_equal(_values(F, points), _values(again, points))
    # Uniform noise: E cos(w (x - e)) = cos(w x) sin(w h) / (w h), h = sqrt(3) * scale * eta.
    a, c, amplitude, w = (p[0] for p in f.params)
    h = math.sqrt(3) * 0.6 * 0.5
    exact = np.sum(
        0.5 * a * ((points - c) ** 2 + (0.6 * 0.5) ** 2) + amplitude * (1 - np.cos(w * points) * np.sin(w * h) / (w * h)),
        axis=-1,
    )
    se = np.asarray(smoothing.standard_error(F, points))
    assert np.all(se > 0) and np.all(np.abs(_values(F, points) - exact) <= 5 * se)
    closed = objectives.smoothed(f, simulate.noise.gaussian(0.6), 0.5)
    np.testing.assert_array_equal(np.asarray(smoothing.standard_error(closed, points)), np.zeros(6))


@pytest.mark.parametrize(
    "f, point, noise",
    [
        (objectives.sharp_flat(), [0.9614621], simulate.noise.gaussian(1.0)),
        (objectives.rippled_quadratic(), [0.0144844], simulate.noise.gaussian(1.0)),
        (objectives.valley_2d(), [0.5, 0.125], simulate.noise.gaussian(covariance=[[1.0, 0.3], [0.3, 0.5]])),
        (objectives.sharp_flat(), [-0.9973148], simulate.noise.uniform(1.0)),
    ],
)
def test_penalty_agrees_with_smoothing_to_fourth_order(f, point, noise):
    step_sizes = np.geomspace(0.004, 0.03, 8)
    point = np.asarray(point, dtype=np.float64)
    F = objectives.smoothed(f, noise, step_sizes)
    P = objectives.penalized(f, noise, step_sizes)
    gap = np.abs(np.asarray(jax.jit(jax.vmap(lambda a, b: a.value(point) - b.value(point)))(F, P)))
    slope = np.polyfit(np.log(step_sizes), np.log(gap), 1)[0]
    assert abs(slope - 4.0) < 0.05, f"log-log slope of |F - P| is {slope:.3f}, expected 4"
    # and the penalty is the second-order term: (F - f) / eta^2 -> tr(Sigma H) / 2
    second = (np.asarray(jax.jit(jax.vmap(lambda a: a.value(point)))(F)) - float(f.value(point))) / step_sizes**2
    expected = 0.5 * np.sum(noise.covariance(f.dim) * np.asarray(f.hessian(point)))
    np.testing.assert_allclose(second[0], expected, rtol=1e-3)


def test_a_vector_of_step_sizes_is_a_batch_that_vmaps_like_separate_objectives():
    f = objectives.sharp_flat()
    noise = simulate.noise.gaussian(0.8)
    step_sizes = [0.0, 0.1, 0.5]
    points = np.linspace(-1, 1, 7)[:, None]
    for build in (objectives.smoothed, objectives.penalized):
        batch = build(f, noise, step_sizes)
        assert ("batch", 3) in batch.info
        values = np.asarray(jax.jit(jax.vmap(lambda member: member.value(points)))(batch))
        separate = np.stack([_values(build(f, noise, eta), points) for eta in step_sizes])
        np.testing.assert_allclose(values, separate, rtol=1e-14)
        np.testing.assert_allclose(values[0], _values(f, points), rtol=1e-14)
        with pytest.raises(ValueError, match="batch of 3 objectives"):
            batch.value(points)


def test_smoothing_a_smoothed_objective_adds_the_covariances():
    f = objectives.gaussian_wells([1.0, 0.5], [[0.0, 0.0], [1.0, 1.0]], [0.3, 0.6])
    inner = objectives.smoothed(f, simulate.noise.gaussian(0.6), 0.5)
    outer = objectives.smoothed(inner, simulate.noise.gaussian(0.8), 0.5)
    direct = objectives.smoothed(f, simulate.noise.gaussian(1.0), 0.5)
    points = np.random.default_rng(5).normal(size=(4, 2))
    assert dict(outer.info)["method"] == "closed_form"
    np.testing.assert_allclose(_values(outer, points), _values(direct, points), rtol=1e-13)


def test_a_new_step_size_does_not_recompile():
    traces = []

    @jax.jit
    def value(objective, x):
        traces.append(1)
        return objective.value(x)

    x = np.array([0.3])
    for method in ("closed_form", "quadrature"):
        traces.clear()
        for eta in (0.1, 0.2, 0.3):
            value(objectives.smoothed(objectives.sharp_flat(), simulate.noise.gaussian(1.0), eta, method=method), x)
        value(objectives.smoothed(objectives.sharp_flat(), simulate.noise.gaussian(0.5), 0.3, method=method), x)
        assert len(traces) == 1, method
    traces.clear()
    for eta in (0.1, 0.2):
        value(objectives.penalized(objectives.sharp_flat(), simulate.noise.gaussian(1.0), eta), x)
    assert len(traces) == 1


def test_noise_quadrature_rules_integrate_the_moments_of_their_law():
    for noise, fourth in ((simulate.noise.gaussian(0.7), 3.0), (simulate.noise.uniform(0.7), 1.8)):
        nodes, weights = smoothing.noise_quadrature(noise, 2, order=10)
        np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-14)
        np.testing.assert_allclose(weights @ (nodes * nodes), [0.49, 0.49], rtol=1e-13)
        np.testing.assert_allclose(weights @ nodes**4, [fourth * 0.7**4] * 2, rtol=1e-13)
    nodes, weights = smoothing.noise_quadrature(simulate.noise.rademacher(2.0), 3)
    assert nodes.shape == (8, 3) and np.all(np.abs(nodes) == 2.0) and np.allclose(weights, 1 / 8)


def test_bad_input_is_rejected_with_clear_messages():
    f = objectives.sharp_flat()
    with pytest.raises(ValueError, match="2-dimensional but the objective has dim=1"):
        objectives.smoothed(f, simulate.noise.gaussian(covariance=np.eye(2)), 0.1)
    with pytest.raises(ValueError, match="2-dimensional but the objective has dim=1"):
        objectives.penalized(f, simulate.noise.gaussian(covariance=np.eye(2)), 0.1)
    with pytest.raises(ValueError, match=r"step_size must be finite and >= 0, got \[-0.1\]"):
        objectives.smoothed(f, simulate.noise.gaussian(1.0), [0.1, -0.1])
    with pytest.raises(ValueError, match="step_size must be a number or a non-empty 1-D sequence"):
        objectives.smoothed(f, simulate.noise.gaussian(1.0), [[0.1]])
    with pytest.raises(ValueError, match="method must be one of"):
        objectives.smoothed(f, simulate.noise.gaussian(1.0), 0.1, method="exact")
    with pytest.raises(ValueError, match="needs Gaussian noise"):
        objectives.smoothed(f, simulate.noise.rademacher(1.0), 0.1, method="closed_form")
    with pytest.raises(ValueError, match="Student-t noise has no quadrature rule"):
        objectives.smoothed(f, simulate.noise.student_t(1.0), 0.1, method="quadrature")
    with pytest.raises(ValueError, match="dim <= 3"):
        objectives.smoothed(objectives.rippled_quadratic(dim=4), simulate.noise.gaussian(1.0), 0.1, method="quadrature")
    with pytest.raises(ValueError, match="noise must be a noise model"):
        objectives.smoothed(f, 1.0, 0.1)
    with pytest.raises(ValueError, match="f must be an objectives.Objective"):
        objectives.penalized(lambda x: x, simulate.noise.gaussian(1.0), 0.1)
    with pytest.raises(ValueError, match="n_samples must be an integer >= 1"):
        objectives.smoothed(f, simulate.noise.student_t(1.0), 0.1, n_samples=0)
    with pytest.raises(ValueError, match="order must be an integer >= 1"):
        objectives.smoothed(f, simulate.noise.gaussian(1.0), 0.1, method="quadrature", order=0)
    with pytest.raises(ValueError, match="must come from objectives.smoothed"):
        smoothing.standard_error(f, np.zeros((1, 1)))
