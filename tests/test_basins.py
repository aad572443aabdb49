"""`analysis.basin_occupancy` (nearest minimizer or gradient-descent basin) and `sharpness_summary`."""

import jax.numpy as jnp
import numpy as np
import pytest

import analysis
import objectives
from analysis.basins import assign_basins

# f'(x) = (x + 1) x (x - 2): minima at -1 and 2, the barrier at 0, not at the midpoint 0.5.
ASYMMETRIC = objectives.from_function(lambda x: jnp.sum(x**4 / 4 - x**3 / 3 - x**2), 1, name="asymmetric")
WELLS = np.array([[-1.0], [2.0]])


def test_nearest_occupancy_counts_only_masked_chains_and_marks_empty_rows():
    points = np.array([[[-1.0], [-0.9], [0.9], [1.2]], [[0.8], [1.0], [1.1], [-1.0]], [[0.0], [0.0], [0.0], [0.0]]])
    mask = np.array([[True, True, True, False], [True, True, True, True], [False] * 4])
    occupancy = analysis.basin_occupancy(points, np.array([[-1.0], [1.0]]), mask=mask)
    np.testing.assert_allclose(occupancy[:2], [[2 / 3, 1 / 3], [0.25, 0.75]])
    assert np.all(np.isnan(occupancy[2]))  # no chain counted: no fraction to report
    # Any leading axes: (K, S, C, d) -> (K, S, n_basins).
    stacked = analysis.basin_occupancy(np.stack([points, -points]), np.array([[-1.0], [1.0]]))
    assert stacked.shape == (2, 3, 2)
    np.testing.assert_allclose(stacked[1, :2], [[0.5, 0.5], [0.75, 0.25]])
    with pytest.raises(ValueError, match="mask must have the shape"):
        analysis.basin_occupancy(points, WELLS, mask=mask[:, :2])
    with pytest.raises(ValueError, match=r"minimizers must have shape \(n_basins, 1\)"):
        analysis.basin_occupancy(points, np.zeros((2, 2)))


def test_descent_follows_the_basin_of_attraction_where_nearest_does_not():
    points = np.array([[[-1.5], [-0.2], [0.25], [0.45], [3.0]]])  # 0.25, 0.45: right of the barrier
    nearest = assign_basins(points, WELLS, method="nearest")
    descent = assign_basins(points, WELLS, ASYMMETRIC, method="descent")
    np.testing.assert_array_equal(nearest, [[0, 0, 0, 0, 1]])
    np.testing.assert_array_equal(descent, [[0, 0, 1, 1, 1]])
    occupancy = analysis.basin_occupancy(points, WELLS, ASYMMETRIC, method="descent")
    np.testing.assert_allclose(occupancy, [[0.4, 0.6]])
    with pytest.raises(ValueError, match="needs the objective"):
        assign_basins(points, WELLS, method="descent")
    with pytest.raises(ValueError, match="method must be 'nearest' or 'descent'"):
        assign_basins(points, WELLS, method="flow")


def test_descent_stays_stable_on_a_sharp_objective():
    # Curvature 4000 at the minima: unclipped steps of 0.01 would overshoot to inf and mislabel.
    sharp = objectives.from_function(lambda x: 500.0 * jnp.sum((x**2 - 1.0) ** 2), 1, name="sharp")
    points = np.array([[-1.7], [-0.3], [-0.01], [0.02], [0.6], [1.9]])
    labels = assign_basins(points, np.array([[-1.0], [1.0]]), sharp, method="descent")
    np.testing.assert_array_equal(labels, [0, 0, 0, 1, 1, 1])


def test_sharpness_summary_averages_the_hessian_trace_per_step_size():
    quartic = objectives.from_function(lambda x: jnp.sum(x**4), 2, name="quartic")  # tr H = 12 |x|^2
    rng = np.random.default_rng(0)
    points = rng.normal(size=(3, 50, 2))
    mask = np.ones((3, 50), bool)
    mask[1, 10:] = False
    mask[2] = False
    summary = analysis.sharpness_summary(quartic, points, mask)
    traces = 12 * np.sum(points**2, axis=-1)
    np.testing.assert_allclose(summary.mean[:2], [traces[0].mean(), traces[1, :10].mean()], rtol=1e-5)
    np.testing.assert_allclose(summary.se[:2], [traces[0].std(ddof=1) / np.sqrt(50), traces[1, :10].std(ddof=1) / np.sqrt(10)], rtol=1e-4)
    np.testing.assert_array_equal(summary.n_chains, [50, 10, 0])
    assert np.isnan(summary.mean[2]) and np.isnan(summary.se[2])
    flat = analysis.sharpness_summary(objectives.quadratic(np.diag([2.0, 5.0]), [0.0, 0.0]), points[:1])
    assert flat.mean[0] == pytest.approx(7.0) and flat.se[0] == pytest.approx(0.0, abs=1e-5)
