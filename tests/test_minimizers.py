"""`analysis.minima`: local minima found and refined, ties flagged, v*(eta) in one compiled call."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import objectives
import simulate
import analysis as search  # the package; `minima` names results below


pytestmark = pytest.mark.usefixtures("x64")  # float64 throughout (conftest)


def test_minimizers_of_a_rippled_quadratic_are_its_stationary_points_sorted_by_value():
    f = objectives.rippled_quadratic()
    minima = search.minimizers(f)
    assert len(minima) == 7  # local minima need |x - c| < A w / a = pi
    assert np.all(np.diff(minima.values) > 0)
    np.testing.assert_allclose(np.asarray(f.grad(minima.points)), 0.0, atol=1e-12)
    assert np.all(np.asarray(f.hessian_trace(minima.points)) > 0)
    np.testing.assert_allclose(minima.hessian_traces, np.asarray(f.hessian_trace(minima.points)), rtol=1e-12)
    # labels rank the minima left to right
    np.testing.assert_array_equal(np.argsort(minima.points[:, 0]), np.argsort(minima.labels))
    assert not minima.tied


def test_a_quadratic_gives_its_center_and_a_user_function_needs_bounds():
    f = objectives.quadratic([[2.0, 0.5], [0.5, 1.0]], [1.0, -1.0])
    for bounds in (None, (-3.0, 3.0)):
        result = search.global_minimizer(f, bounds=bounds)
        np.testing.assert_allclose(np.asarray(result), [1.0, -1.0], atol=1e-12)
        assert result.hessian_trace == pytest.approx(3.0, rel=1e-12)
        assert not result.tied and np.all(np.isnan(result.runner_up))
    path = search.smoothed_solution(f, simulate.noise.gaussian(1.0), [0.1, 1.0])
    np.testing.assert_allclose(path.points, [[1.0, -1.0], [1.0, -1.0]], atol=1e-12)
    user = objectives.from_function(lambda x: jnp.sum((x - 0.5) ** 2), 1)
    with pytest.raises(ValueError, match="no default search box"):
        search.minimizers(user)
    np.testing.assert_allclose(np.asarray(search.global_minimizer(user, bounds=(-1.0, 1.0))), [0.5], atol=1e-12)


def test_multi_start_newton_in_three_dimensions():
    f = objectives.gaussian_wells([1.0, 0.7], [[1.0, 0.0, 0.0], [-1.0, 0.5, 0.0]], [0.5, 0.8], confinement=0.05)
    minima = search.minimizers(f, n_starts=64)
    assert len(minima) == 2
    np.testing.assert_allclose(np.asarray(f.grad(minima.points)), 0.0, atol=1e-10)
    assert minima.points[0, 0] > 0.5 and minima.points[1, 0] < -0.5


def test_a_symmetric_double_well_is_a_tie_flagged_with_a_warning():
    f = objectives.gaussian_wells([1.0, 1.0], [-1.0, 1.0], [0.3, 0.3], confinement=0.1)
    with pytest.warns(search.TieWarning, match="tie within tolerance"):
        result = search.global_minimizer(f)
    assert result.tied
    np.testing.assert_allclose(sorted([result.point[0], result.runner_up[0]]), [-0.9910764, 0.9910764], atol=1e-6)
    with pytest.warns(search.TieWarning, match="at step sizes"):
        path = search.smoothed_solution(f, simulate.noise.gaussian(1.0), [0.1, 0.3])
    assert path.tied.all()
    asymmetric = objectives.gaussian_wells([1.0, 1.001], [-1.0, 1.0], [0.3, 0.3], confinement=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not search.global_minimizer(asymmetric).tied


def test_smoothed_solution_has_one_point_per_step_size_and_matches_a_fine_grid():
    f = objectives.sharp_flat()
    noise = simulate.noise.gaussian(1.0)
    step_sizes = [0.02, 0.3]
    path = search.smoothed_solution(f, noise, step_sizes)
    assert np.asarray(path).shape == (2, 1) and path.points.shape == (2, 1)
    grid = np.linspace(-2, 2, 400_001)[:, None]
    for i, eta in enumerate(step_sizes):
        values = np.asarray(jax.jit(objectives.smoothed(f, noise, eta).value)(grid))
        assert abs(path.points[i, 0] - grid[np.argmin(values), 0]) < 2e-5
        assert path.values[i] <= values.min() + 1e-14
    single = search.smoothed_solution(f, noise, 0.3)
    assert np.asarray(single).shape == (1, 1)


def test_a_new_step_size_grid_of_the_same_length_does_not_recompile():
    compiles = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    f = objectives.sharp_flat()
    noise = simulate.noise.gaussian(1.0)
    search.smoothed_solution(f, noise, [0.1, 0.2, 0.3])
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        search.smoothed_solution(f, noise, [0.05, 0.15, 0.25])
        search.smoothed_solution(f, simulate.noise.gaussian(0.5), [0.05, 0.15, 0.25])
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiles == []


def test_penalized_solution_approaches_the_smoothed_one_for_small_step_sizes():
    f = objectives.rippled_quadratic()
    noise = simulate.noise.gaussian(1.0)
    step_sizes = [0.005, 0.01, 0.02]
    smoothed = np.asarray(search.smoothed_solution(f, noise, step_sizes))[:, 0]
    penalized = np.asarray(search.penalized_solution(f, noise, step_sizes))[:, 0]
    unsmoothed = search.global_minimizer(f).point[0]
    gaps = np.abs(smoothed - penalized)
    assert np.all(gaps < 1e-2 * np.abs(smoothed - unsmoothed))
    assert gaps[-1] > gaps[0]


def test_quadrature_and_closed_form_give_the_same_smoothed_solution():
    f = objectives.valley_2d()
    noise = simulate.noise.gaussian(covariance=[[0.5, 0.1], [0.1, 0.3]])
    closed = search.smoothed_solution(f, noise, [0.1, 0.4])
    quadrature = search.smoothed_solution(f, noise, [0.1, 0.4], method="quadrature", order=6)
    np.testing.assert_allclose(quadrature.points, closed.points, atol=1e-9)


def test_minimizers_run_in_float32_without_x64():
    with jax.enable_x64(False):
        minima = search.minimizers(objectives.sharp_flat())
        path = search.smoothed_solution(objectives.sharp_flat(), simulate.noise.gaussian(1.0), [0.02, 0.2])
    np.testing.assert_allclose(minima.points[:, 0], [-0.9973148, 0.9614621], atol=1e-5)
    assert path.points[0, 0] < 0 < path.points[1, 0]


def test_bad_input_is_rejected_with_clear_messages():
    f = objectives.sharp_flat()
    noise = simulate.noise.gaussian(1.0)
    with pytest.raises(ValueError, match="is a batch"):
        search.minimizers(objectives.smoothed(f, noise, [0.1, 0.2]))
    with pytest.raises(ValueError, match="lower < upper"):
        search.minimizers(f, bounds=(1.0, -1.0))
    with pytest.raises(ValueError, match="bounds must be a pair"):
        search.minimizers(f, bounds=1.0)
    with pytest.raises(ValueError, match="objective must be an objectives.Objective"):
        search.minimizers(lambda x: x)
    with pytest.raises(ValueError, match="step_sizes must be"):
        search.smoothed_solution(f, noise, [-0.1])
    with pytest.raises(ValueError, match="2-dimensional but the objective has dim=1"):
        search.smoothed_solution(f, simulate.noise.gaussian(covariance=np.eye(2)), [0.1])
    with pytest.raises(ValueError, match="n_grid must be"):
        search.minimizers(f, n_grid=2)
    with pytest.raises(ValueError, match="no local minimizer"):
        search.global_minimizer(objectives.from_function(lambda x: jnp.sum(x), 1), bounds=(-1.0, 1.0))


def test_search_options_are_shared_and_an_unknown_one_is_named():
    """smoothed_solution and penalized_solution take the search options by name (one definition,
    `analysis.SearchOptions`); a misspelt option is refused naming it and the allowed ones."""
    f = objectives.quadratic(1.0, [0.25])
    noise = simulate.noise.gaussian(1.0)
    coarse = search.smoothed_solution(f, noise, [0.1], n_grid=11, n_candidates=2)
    np.testing.assert_allclose(coarse.points, [[0.25]], atol=1e-10)
    with pytest.raises(ValueError, match=r"unknown search option\(s\) \['n_gird'\]: allowed are .*'n_grid'"):
        search.penalized_solution(f, noise, [0.1], n_gird=11)
    assert search.SearchOptions.of({}, n_starts=64).n_starts == 64
    np.testing.assert_array_equal(search.search_box(f), search.search_box(f, None))


def test_from_function_takes_a_search_box_that_serves_wherever_bounds_would():
    """`from_function(..., search_box=)`: the box the searches (and the laws) use by default, so a
    function of one's own needs no `bounds=` at every call; a bad box is refused by name."""

    def bowl(x):
        return jnp.sum((x - 1.0) ** 2)

    f = objectives.from_function(bowl, 2, search_box=(-4.0, [5.0, 6.0]))
    lower, upper = search.search_box(f)
    np.testing.assert_array_equal(lower, [-4.0, -4.0])
    np.testing.assert_array_equal(upper, [5.0, 6.0])
    # Equal boxes, equal pytree structure: a second objective reuses every compiled program.
    again = objectives.from_function(bowl, 2, search_box=(-4, [5, 6]))
    assert jax.tree_util.tree_structure(again) == jax.tree_util.tree_structure(f)
    with pytest.raises(ValueError, match="no default search box"):
        search.search_box(objectives.from_function(bowl, 2))
    for bad in [(1.0, 1.0), (0.0,), (0.0, np.inf), ([0.0, 1.0, 2.0], 3.0), "box"]:
        with pytest.raises(ValueError, match=r"search_box"):
            objectives.from_function(bowl, 2, search_box=bad)
