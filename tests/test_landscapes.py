"""The catalog: formulas, closed-form derivatives, the documented behaviour of `sharp_flat`,
`rippled_quadratic` and `valley_2d` under smoothing, and bad input."""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize

import objectives
import simulate
import analysis as search  # minimizers and v*(eta)


pytestmark = pytest.mark.usefixtures("x64")  # float64 throughout (conftest)


@jax.jit
def _derivatives(objective, x):
    return objective.value(x), objective.grad(x), objective.hessian(x), objective.hessian_trace(x)


def test_rippled_quadratic_formula_and_closed_form_derivatives_match_autodiff():
    f = objectives.rippled_quadratic([1.0, 2.0, 0.5], 0.3, [0.5, 0.1, 0.0], [2 * math.pi, 3.0, 1.0])
    assert f.dim == 3
    x = np.random.default_rng(0).uniform(-2, 2, size=(7, 3))
    value, grad, hessian, trace = (np.asarray(a) for a in _derivatives(f, x))
    a, c, amplitude, w = (np.asarray(p) for p in f.params)
    np.testing.assert_allclose(value, np.sum(0.5 * a * (x - c) ** 2 + amplitude * (1 - np.cos(w * x)), axis=-1), rtol=1e-14)
    # (cast the params: from_function probes its function with a float32 point)
    autodiff = objectives.from_function(lambda y: f.value_fn(jax.tree.map(lambda p: p.astype(y.dtype), f.params), y), 3)
    _, grad_ad, hessian_ad, trace_ad = (np.asarray(a) for a in _derivatives(autodiff, x))
    np.testing.assert_allclose(grad, grad_ad, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(hessian, hessian_ad, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(trace, trace_ad, rtol=1e-12)


def test_gaussian_wells_formula_and_isotropic_widths_equal_scalar_covariances():
    centers = [[0.0, 1.0], [2.0, -1.0]]
    iso = objectives.gaussian_wells([1.0, 0.5], centers, [0.5, 2.0], confinement=0.3)
    cov = objectives.gaussian_wells([1.0, 0.5], centers, [0.25 * np.eye(2), 4.0 * np.eye(2)], confinement=0.3)
    x = np.random.default_rng(1).normal(size=(6, 2))
    expected = (
        -1.0 * np.exp(-np.sum((x - centers[0]) ** 2, -1) / (2 * 0.25))
        - 0.5 * np.exp(-np.sum((x - centers[1]) ** 2, -1) / (2 * 4.0))
        + 0.15 * np.sum(x * x, -1)
    )
    for f in (iso, cov):
        np.testing.assert_allclose(np.asarray(_derivatives(f, x)[0]), expected, rtol=1e-13)
    smoothing = simulate.noise.gaussian(covariance=[[0.2, 0.1], [0.1, 0.3]])
    np.testing.assert_allclose(
        np.asarray(_derivatives(objectives.smoothed(iso, smoothing, 1.0), x)[0]),
        np.asarray(_derivatives(objectives.smoothed(cov, smoothing, 1.0), x)[0]),
        rtol=1e-13,
    )
    one_d = objectives.gaussian_wells([1.0, 2.0], [-1.0, 1.0], [0.5, 0.5])
    assert one_d.dim == 1


def test_sharp_flat_has_a_deep_sharp_well_and_a_shallow_flat_one():
    f = objectives.sharp_flat()
    minima = search.minimizers(f)
    assert len(minima) == 2
    sharp, flat = minima.points[0, 0], minima.points[1, 0]
    assert abs(sharp + 1.0) < 0.01 and abs(flat - 0.96) < 0.01
    assert minima.values[0] < minima.values[1]
    assert minima.hessian_traces[0] > 10 * minima.hessian_traces[1]
    assert list(minima.labels) == [0, 1]


def _gap_between_wells(step_size):
    """min of F_eta over the sharp well minus min over the flat well (negative: sharp wins)."""
    F = objectives.smoothed(objectives.sharp_flat(), simulate.noise.gaussian(objectives.SHARP_FLAT_NOISE_SCALE), step_size)
    value = jax.jit(lambda x: F.point_value(x))
    well = lambda bracket: optimize.minimize_scalar(lambda x: float(value(np.array([x]))), bracket=bracket, tol=1e-12).fun
    return well((-1.2, -1.0, -0.8)) - well((0.7, 1.0, 1.2))


def test_sharp_flat_critical_step_size_is_where_the_two_smoothed_minima_tie():
    critical = optimize.brentq(_gap_between_wells, 0.05, 0.1, xtol=1e-12)
    assert abs(critical - objectives.SHARP_FLAT_CRITICAL_STEP_SIZE) < 1e-6
    grid = np.asarray(objectives.SHARP_FLAT_STEP_SIZES)
    assert grid.min() < critical < grid.max()


def test_sharp_flat_smoothed_solution_switches_wells_at_the_critical_step_size():
    critical = objectives.SHARP_FLAT_CRITICAL_STEP_SIZE
    noise = simulate.noise.gaussian(objectives.SHARP_FLAT_NOISE_SCALE)
    grid = np.asarray(objectives.SHARP_FLAT_STEP_SIZES)
    step_sizes = np.concatenate([grid, [critical * 0.999, critical * 1.001]])
    path = search.smoothed_solution(objectives.sharp_flat(), noise, step_sizes)
    in_flat_well = path.points[:, 0] > 0
    np.testing.assert_array_equal(in_flat_well, step_sizes > critical)
    assert not path.tied.any()
    assert np.all(path.n_minima == 2)


def test_rippled_quadratic_smoothed_solution_moves_monotonically_to_the_bowl_center():
    f = objectives.rippled_quadratic()
    step_sizes = np.linspace(0.0, 0.6, 13)
    points = np.asarray(search.smoothed_solution(f, simulate.noise.gaussian(1.0), step_sizes))[:, 0]
    assert np.all(np.diff(points) > 0)
    assert abs(points[0] - 0.0145) < 1e-3  # the ripple minimum next to the center, pulled toward it
    assert abs(points[-1] - 0.3) < 5e-3  # the ripples are damped by exp(-(2 pi)^2 0.6^2 / 2) ~ 8e-4
    # in 2-D with different centers per coordinate: coordinatewise monotone toward the center
    f2 = objectives.rippled_quadratic(1.0, [0.3, -0.35], 0.5, 2 * math.pi)
    points2 = np.asarray(search.smoothed_solution(f2, simulate.noise.gaussian(1.0), step_sizes[::3]))
    assert np.all(np.diff(points2[:, 0]) > 0) and np.all(np.diff(points2[:, 1]) < 0)
    np.testing.assert_allclose(points2[-1], [0.3, -0.35], atol=0.02)


def test_rippled_quadratic_damps_ripples_as_documented():
    f = objectives.rippled_quadratic(amplitude=0.5, frequency=3.0, curvature=0.0 + 1.0, center=0.0)
    x = np.array([[0.7]])
    s = 0.4
    F = objectives.smoothed(f, simulate.noise.gaussian(s), 1.0)
    expected = 0.5 * (0.49 + s**2) + 0.5 * (1 - math.exp(-9 * s**2 / 2) * math.cos(2.1))
    np.testing.assert_allclose(np.asarray(F.value(x)), [expected], rtol=1e-14)


def test_valley_2d_has_a_connected_valley_whose_flattest_point_smoothing_selects():
    f = objectives.valley_2d()
    xs = np.linspace(-1.5, 2.5, 9)
    floor = np.stack([xs, 0.5 * xs**2], axis=-1)
    value, grad, _, trace = (np.asarray(a) for a in _derivatives(f, floor))
    np.testing.assert_allclose(value, 0.0, atol=1e-15)
    np.testing.assert_allclose(grad, 0.0, atol=1e-14)
    np.testing.assert_allclose(trace, (1 + (xs - 1) ** 2) * (1 + xs**2), rtol=1e-12)
    # the penalty (eta^2 s^2 / 2) tr H is smallest at x = 0.5 on the floor; small eta gets there
    path = search.smoothed_solution(f, simulate.noise.gaussian(1.0), [0.02, 0.1, 0.3])
    np.testing.assert_allclose(path.points[0], [0.5, 0.125], atol=2e-3)
    assert np.all(path.n_minima == 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        search.global_minimizer(f)  # the unsmoothed valley: a connected set, so a tie
    assert any(issubclass(w.category, search.TieWarning) for w in caught)


def _simulate(f, **kwargs):
    # simulate.run in float32 outside x64 mode (under x64, the engine's step counter mixes
    # int32 and int64, which the tests' strict dtype promotion rejects)
    with jax.enable_x64(False):
        return simulate.run(f, **kwargs)


def test_landscapes_run_in_simulate():
    for f, x0 in (
        (objectives.sharp_flat(), [-1.0]),
        (objectives.rippled_quadratic(dim=2), [0.0, 0.0]),
        (objectives.gaussian_wells([1.0], [[0.0, 0.0, 0.0]], [[[1.0, 0.2, 0.0], [0.2, 1.0, 0.0], [0.0, 0.0, 2.0]]]), [0.1, 0.1, 0.1]),
        (objectives.valley_2d(), [-0.5, 0.125]),
    ):
        result = _simulate(f, step_sizes=[0.01, 0.05], n_steps=50, n_chains=4, x0=x0, noise=simulate.noise.gaussian(0.5))
        assert np.all(np.isfinite(result.x_avg)) and not result.diverged.any()


def _mse(estimates, target):
    squared = np.sum((estimates - target) ** 2, axis=-1)
    return squared.mean(), squared.std(ddof=1) / math.sqrt(squared.size)


def _sharp_flat_run(n_steps, n_chains, step_sizes):
    noise = simulate.noise.gaussian(objectives.SHARP_FLAT_NOISE_SCALE)
    f = objectives.sharp_flat()
    result = _simulate(f, step_sizes=step_sizes, n_steps=n_steps, n_chains=n_chains, x0=[-1.0], noise=noise)
    targets = np.asarray(search.smoothed_solution(f, noise, step_sizes))
    return result, targets


def test_sharp_flat_averages_are_markedly_closer_to_the_smoothed_solution_at_large_step_sizes():
    step_sizes = [s for s in objectives.SHARP_FLAT_STEP_SIZES if s > objectives.SHARP_FLAT_CRITICAL_STEP_SIZE]
    result, targets = _sharp_flat_run(10_000, 256, step_sizes)
    for i in range(len(step_sizes)):
        last, _ = _mse(result.x[i], targets[i])
        for name in ("x_avg", "v_avg"):
            average, se = _mse(getattr(result, name)[i], targets[i])
            assert average + 3 * se < last / 5, (step_sizes[i], name, average, last)


@pytest.mark.slow
def test_sharp_flat_full_size_averages_track_the_smoothed_solution_on_the_whole_grid():
    step_sizes = list(objectives.SHARP_FLAT_STEP_SIZES)
    result, targets = _sharp_flat_run(10_000, 4000, step_sizes)
    for i, eta in enumerate(step_sizes):
        last, last_se = _mse(result.x[i], targets[i])
        average, se = _mse(result.x_avg[i], targets[i])
        assert average + 4 * se < last - 4 * last_se, eta
        if eta > objectives.SHARP_FLAT_CRITICAL_STEP_SIZE:
            assert average < last / 10, eta
        # every chain ends in the well of argmin F_eta, except a few hopping back at the largest eta
        same_well = np.mean((result.x[i, :, 0] > 0) == (targets[i, 0] > 0))
        assert same_well > (0.85 if eta == max(step_sizes) else 0.99), (eta, same_well)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: objectives.gaussian_wells([1.0, -0.5], [0.0, 1.0], [0.5, 0.5]), "depths must be a non-empty vector of positive"),
        (lambda: objectives.gaussian_wells([1.0, 0.5], [0.0, 1.0], [0.5, -0.5]), "widths must be positive"),
        (lambda: objectives.gaussian_wells([1.0, 0.5], [0.0, 1.0, 2.0], [0.5, 0.5]), r"centers has shape \(3, 1\) but depths has K=2"),
        (lambda: objectives.gaussian_wells([1.0, 0.5], [0.0, 1.0], [0.5, 0.5, 0.5]), r"widths has shape \(3,\) but there are K=2"),
        (lambda: objectives.gaussian_wells([1.0], [[0.0, 0.0]], [[[1.0, 2.0], [2.0, 1.0]]]), "must be positive definite"),
        (lambda: objectives.gaussian_wells([1.0], [[0.0, 0.0]], [np.eye(3)]), r"must be \(1, 2, 2\)"),
        (lambda: objectives.gaussian_wells([1.0], [[0.0]], [1.0], confinement=-1.0), "confinement must be non-negative"),
        (lambda: objectives.gaussian_wells([1.0], [[np.nan]], [1.0]), "centers must be finite"),
        (lambda: objectives.rippled_quadratic(curvature=-1.0), "curvature must be positive"),
        (lambda: objectives.rippled_quadratic(amplitude=-0.1), "amplitude must be non-negative"),
        (lambda: objectives.rippled_quadratic(frequency=0.0), "frequency must be positive"),
        (lambda: objectives.rippled_quadratic(center=[0.0, 1.0], amplitude=[1.0, 1.0, 1.0]), "disagree on dim"),
        (lambda: objectives.rippled_quadratic(center=[0.0, 1.0], dim=3), "dim=3 disagrees"),
        (lambda: objectives.rippled_quadratic(dim=0), "dim must be a positive integer"),
        (lambda: objectives.valley_2d(floor_curvature=0.0), "floor_curvature must be positive"),
        (lambda: objectives.valley_2d(curvature_growth=-1.0), "curvature_growth must be non-negative"),
        (lambda: objectives.valley_2d(bend=[1.0, 2.0]), "bend must be a number"),
    ],
)
def test_bad_catalog_input_is_rejected_with_clear_messages(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_closed_form_derivatives_equal_autodiff_of_the_value():
    # Every closed-form gradient (and Hessian, where given) against JAX autodiff of value_fn:
    # a sign or factor slip in a hand-derived formula would move every simulation.
    points = np.random.default_rng(3).normal(size=(5, 2))
    for f in (
        objectives.valley_2d(curvature_growth=0.7, flat_at=0.3, bend=0.8),
        objectives.quadratic(np.array([[2.0, 0.5], [0.5, 1.0]]), np.array([0.3, -0.2])),
        objectives.quadratic(np.array([2.0, 0.5]), np.array([0.3, -0.2])),
        objectives.sharp_flat(),
        objectives.rippled_quadratic(dim=2),
    ):
        pts = jnp.asarray(points[:, : f.dim], jax.tree.leaves(f.params)[0].dtype)
        autodiff_grad = jax.vmap(jax.grad(f.value_fn, argnums=1), in_axes=(None, 0))(f.params, pts)
        np.testing.assert_allclose(f.grad(pts), autodiff_grad, rtol=1e-5, atol=1e-5, err_msg=f.name)
        autodiff_hessian = jax.vmap(jax.hessian(f.value_fn, argnums=1), in_axes=(None, 0))(f.params, pts)
        np.testing.assert_allclose(f.hessian(pts), autodiff_hessian, rtol=1e-4, atol=1e-4, err_msg=f.name)
