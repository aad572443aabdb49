"""Simulated SGD against `theory.stationary_law`: chains started from `law.sample` are stationary.

Every comparison allows 4.5 Monte Carlo standard errors plus the law's own grid error (twice
the change on the coarse grid, `law.coarse`).
"""


import jax
import numpy as np
import pytest

import analysis
import objectives
import simulate
import theory
from support import mean_check, variance_check

GAUSSIAN = simulate.noise.gaussian(1.0)

CASES = {
    "sharp_flat": (objectives.sharp_flat, 0.2, ((-5.0,), (7.0,)), 1201, 4000),
    "rippled_quadratic": (objectives.rippled_quadratic, 0.15, ((-4.0,), (4.6,)), 1201, 4000),
    "gaussian_wells_2d": (
        lambda: objectives.gaussian_wells([0.5, 0.3], [[-0.6, 0.0], [0.6, 0.3]], [0.4, 0.5], 0.3),
        0.3, ((-4.0, -4.0), (4.0, 4.2)), 81, 1500,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_chains_started_from_the_law_match_its_moments(name):
    make, eta, (lower, upper), n_grid, n_steps = CASES[name]
    f = make()
    law = theory.stationary_law(f, GAUSSIAN, [eta], bounds=(lower, upper), n_grid=n_grid)
    n_chains, n_batches = (1024 if f.dim == 2 else 2048), 5
    batch = n_steps // n_batches
    start = law.sample(n_chains, seed=1)[0]
    with jax.enable_x64(True):
        result = simulate.run(
            f, step_sizes=[eta], n_steps=n_steps, n_chains=n_chains, x0=start, noise=GAUSSIAN, seed=2,
            dtype="float64", checkpoints=list(range(batch, n_steps + 1, batch)),
        )
    tail = simulate.tail_length(n_steps, result.tail_fraction)
    grid_mean = law.discretization_error[0]
    grid_cov = 2 * np.abs(law.covariance[0] - law.coarse.covariance[0]) + law.grid.widths.max() ** 2
    grid_asym = 2 * np.abs(law.asymptotic_variance[0] - law.coarse.asymptotic_variance[0])
    grid_asym_v = 2 * np.abs(law.asymptotic_variance_v[0] - law.coarse.asymptotic_variance_v[0])
    for a in range(f.dim):
        # law.sample draws from the law (uniform within a cell: + h^2 / 12 to the variance).
        mean_check(start[:, a], law.mean[0, a], grid_mean)
        variance_check(start[:, a], law.covariance[0, a, a], grid_cov[a, a])
        mean_check(result.x[0, :, a], law.mean[0, a], grid_mean)
        variance_check(result.x[0, :, a], law.covariance[0, a, a], grid_cov[a, a])
        for estimator, length in (("x_avg", n_steps), ("x_tail", tail)):
            values = getattr(result, estimator)[0, :, a]
            mean_check(values, law.mean[0, a], grid_mean)
            variance_check(values, law.asymptotic_variance[0, a, a] / length, grid_asym[a, a] / length)
        mean_check(result.v_avg[0, :, a], law.mean_v[0, a], grid_mean)
        variance_check(result.v_avg[0, :, a], law.asymptotic_variance_v[0, a, a] / n_steps, grid_asym_v[a, a] / n_steps)
        # Batch means along each chain: batch x the squared deviation of the batch averages
        # estimates lim T Var(x_avg), one estimate per chain.
        averages = result.checkpoints["x_avg"][:, 0, :, a]  # (batches, chains)
        steps = result.checkpoint_steps[:, None].astype(np.float64)
        sums = np.concatenate([np.zeros((1, n_chains)), averages * steps])
        means = np.diff(sums, axis=0) / batch
        per_chain = batch * np.mean((means - law.mean[0, a]) ** 2, axis=0)
        # Batches of finite length L bias the estimate by about (relaxation time / L): allow 10%.
        mean_check(per_chain, law.asymptotic_variance[0, a, a], grid_asym[a, a] + law.asymptotic_variance[0, a, a] * 0.1)


ESCAPES = {
    # (objective, step size, bounds, cells, which minimum (index after sorting by x), steps)
    "sharp_flat": (objectives.sharp_flat, 0.08, (-2.5, 4.0), 801, 0, 9000),
    "rippled_quadratic": (objectives.rippled_quadratic, 0.12, (-4.0, 4.6), 801, None, 4000),
}


@pytest.mark.parametrize("name", list(ESCAPES))
def test_simulated_escape_times_match_the_law(name):
    make, eta, bounds, n_grid, which, n_steps = ESCAPES[name]
    f = make()
    with jax.enable_x64(True):
        minima = analysis.minimizers(f)
    points = minima.points[np.argsort(minima.points[:, 0])]
    basin = int(np.argmin(np.abs(points[:, 0]))) if which is None else which  # rippled: the minimum near 0
    law = theory.stationary_law(f, GAUSSIAN, [eta], bounds=bounds, n_grid=n_grid)
    expected = law.escape_time(points, basin)[0]
    grid_error = 2 * abs(expected - law.coarse.escape_time(points, basin)[0])
    assert 100 < expected < n_steps / 8
    n_chains = 1024
    with jax.enable_x64(True):
        result = simulate.run(
            f, step_sizes=[eta], n_steps=n_steps, n_chains=n_chains, x0=points[basin], noise=GAUSSIAN, seed=5,
            dtype="float64", trajectory=True, checkpoints=1,
        )
    labels = analysis.assign_basins(law.grid.points, points, f, method="descent")
    path = result.trajectory[1:, 0, :, :]  # (steps, chains, dim): x_1 .. x_T
    away = labels[law.grid.cell_of(path)] != basin
    escaped = away.any(axis=0)
    assert escaped.mean() > 0.999
    times = np.where(escaped, np.argmax(away, axis=0) + 1, n_steps).astype(np.float64)
    mean_check(times, expected, grid_error)
