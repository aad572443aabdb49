"""`theory.finite_time_law` against the quadratic closed forms, its own expansion, simulation, and bad input.

Quadratics: the cell chain rounds every step to a cell centre, which adds about h^2 / 12 of
variance per step in 1-D (h the cell width), at most h^2 / 3 in 2-D; the tolerances follow from that (the means of linear maps
are kept exactly by the linear split of the start and the symmetric cell integrals).
"""

import math

import jax
import numpy as np
import pytest

import objectives
import simulate
import theory
from theory import quadratic as closed_forms
from theory.finite_time import ESTIMATORS, finite_time_law

GAUSSIAN = simulate.noise.gaussian(1.0)
HORIZONS = [1, 10, 100, 10_000]


def _rounding_slack(law, rho):
    """The cell chain's extra variance, summed geometrically (rho = max |1 - eta h|), with a factor
    1.5: a step adds at most h^2 / 12 (the cell integral, 1-D), or in 2-D at most h^2 / 4 more per
    axis (the bilinear split of the drifted point between centres, t (1 - t) h^2)."""
    per_step = np.max(law.grid.widths) ** 2 * (1.0 / 12.0 if law.dim == 1 else 1.0 / 3.0)
    return 1.5 * per_step / (1.0 - rho**2)


def test_quadratic_1d_matches_closed_forms_at_every_horizon():
    hessian, x0 = 2.0, np.array([1.5])
    f = objectives.quadratic(hessian, dim=1)
    etas = [0.1, 0.4]
    law = finite_time_law(f, GAUSSIAN, etas, x0=x0, n_steps=HORIZONS, bounds=(-3.0, 4.0), n_grid=601)
    assert law.method[-1].tolist() == ["expansion", "expansion"] and law.method[0].tolist() == ["exact", "exact"]
    for s, eta in enumerate(etas):
        rho = abs(1 - eta * hessian)
        slack = _rounding_slack(law, rho)
        for h, t in enumerate(HORIZONS):
            exact = closed_forms.quadratic_law(hessian, 1.0, eta, t, x0)
            for name in ESTIMATORS:
                mean, cov = exact.marginal(name)
                np.testing.assert_allclose(law.mean(name)[h, s], mean, atol=1e-9)
                scale = 1.0 if name in ("x", "v") else 1.0 / (1.0 - rho) ** 2 / (t if name != "x_tail" else law.tail_fraction * t)
                assert abs(law.covariance(name)[h, s, 0, 0] - cov[0, 0]) <= slack * max(scale, 1e-300) + 1e-12, (eta, t, name)
                np.testing.assert_allclose(law.mse(name, [0.0])[h, s], exact.mse(name, [0.0]), rtol=0.02, atol=slack)


def test_anisotropic_2d_quadratic_with_full_noise_covariance_matches_closed_forms():
    hessian = np.array([[2.0, 0.6], [0.6, 1.0]])
    covariance = np.array([[1.0, 0.4], [0.4, 0.6]])
    centre, x0 = np.array([0.2, -0.1]), np.array([1.0, -0.8])
    f = objectives.quadratic(hessian, centre)
    eta = 0.3
    noise = simulate.noise.gaussian(covariance=covariance)
    law = finite_time_law(f, noise, [eta], x0=x0, n_steps=HORIZONS, bounds=((-2.4, -2.9), (2.8, 2.3)), n_grid=71)
    assert law.method[-1, 0] == "expansion"
    rho = np.max(np.abs(1 - eta * np.linalg.eigvalsh(hessian)))
    slack = _rounding_slack(law, rho)
    for h, t in enumerate(HORIZONS):
        exact = closed_forms.quadratic_law(hessian, covariance, eta, t, x0, centre)
        for name in ESTIMATORS:
            mean, cov = exact.marginal(name)
            np.testing.assert_allclose(law.mean(name)[h, 0], mean, atol=1e-9)
            scale = 1.0 if name in ("x", "v") else 1.0 / (1.0 - rho) ** 2 / (t if name != "x_tail" else law.tail_fraction * t)
            np.testing.assert_allclose(law.covariance(name)[h, 0], cov, atol=slack * scale + 1e-12, err_msg=f"{name} T={t}")


def test_exact_products_and_the_expansion_agree_where_both_apply():
    f = objectives.rippled_quadratic()
    horizons = [100, 1500, 2500, 4000]
    kwargs = dict(x0=np.array([1.2]), n_steps=horizons, bounds=(-3.0, 3.6), n_grid=331)
    expanded = finite_time_law(f, GAUSSIAN, [0.3], **kwargs)
    exact = finite_time_law(f, GAUSSIAN, [0.3], expansion=False, **kwargs)
    assert expanded.switch_step[0] > 0 and (expanded.method[1:, 0] == "expansion").all()
    assert (exact.method == "exact").all()
    for name in ESTIMATORS:
        np.testing.assert_allclose(expanded.mean(name), exact.mean(name), rtol=0, atol=1e-9)
        np.testing.assert_allclose(expanded.covariance(name), exact.covariance(name), rtol=1e-7, atol=1e-14)


def _within_se(result, law, coarse, n_chains, label):
    """Every estimator at every checkpoint: its mean per coordinate and E|est - law mean|^2 within
    4.5 Monte Carlo standard errors of the law's, plus the law's grid error (twice the change on a
    grid of half as many cells per axis, the rule of `StationaryLaw.discretization_error`)."""
    for name in ESTIMATORS:
        for h in range(len(result.checkpoint_steps)):
            for s in range(len(law.step_sizes)):
                draws = np.asarray(result.checkpoints[name][h, s], np.float64)
                mean = law.mean(name)[h, s]
                se = draws.std(axis=0, ddof=1) / math.sqrt(n_chains)
                grid = 2 * np.abs(mean - coarse.mean(name)[h, s])
                assert np.all(np.abs(draws.mean(axis=0) - mean) <= 4.5 * se + grid), (label, name, result.checkpoint_steps[h], law.step_sizes[s])
                squares = np.sum((draws - mean) ** 2, axis=1)
                spread = np.trace(law.covariance(name)[h, s])
                grid = 2 * abs(spread - np.trace(coarse.covariance(name)[h, s])) + np.sum((mean - coarse.mean(name)[h, s]) ** 2)
                se = squares.std(ddof=1) / math.sqrt(n_chains)
                assert abs(squares.mean() - spread) <= 4.5 * se + grid, (label, name, result.checkpoint_steps[h], law.step_sizes[s], squares.mean(), spread, se, grid)


CASES = {
    "sharp_flat_from_the_sharp_well": (objectives.sharp_flat, [0.1, 0.3], [-1.0], ((-4.0,), (5.0,)), 451, 300),
    "rippled_quadratic": (objectives.rippled_quadratic, [0.15, 0.3], [1.4], ((-2.5,), (3.0,)), 451, 300),
    "gaussian_wells_2d": (
        lambda: objectives.gaussian_wells([0.5, 0.3], [[-0.6, 0.0], [0.6, 0.3]], [0.4, 0.5], 0.3),
        [0.3], [-0.6, 0.0], ((-3.5, -3.5), (3.5, 3.7)), 51, 200,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_simulation_matches_the_finite_time_law_at_every_checkpoint(name):
    make, etas, x0, bounds, n_grid, n_steps = CASES[name]
    f = make()
    n_chains = 2000
    with jax.enable_x64(True):
        result = simulate.run(
            f, step_sizes=etas, n_steps=n_steps, n_chains=n_chains, x0=np.array(x0), noise=GAUSSIAN, seed=3,
            dtype="float64", checkpoints=[3, 20, 77],
        )
    horizons = result.checkpoint_steps.tolist()
    law = finite_time_law(f, GAUSSIAN, etas, x0=np.array(x0), n_steps=horizons, bounds=bounds, n_grid=n_grid)
    coarse = finite_time_law(f, GAUSSIAN, etas, x0=np.array(x0), n_steps=horizons, bounds=bounds, n_grid=n_grid // 2)
    _within_se(result, law, coarse, n_chains, name)


def test_start_from_a_stationary_law_stays_there():
    f = objectives.rippled_quadratic()
    stationary = theory.stationary_law(f, GAUSSIAN, [0.2], bounds=(-3.0, 3.6), n_grid=331)
    law = finite_time_law(f, GAUSSIAN, [0.2], x0=stationary, n_steps=[1, 7, 50])
    for name in ("x", "x_avg", "x_tail", "v", "v_avg"):
        np.testing.assert_allclose(law.mean(name)[:, 0], np.broadcast_to(stationary.mean[0], (3, 1)), atol=1e-10)
    np.testing.assert_allclose(law.covariance("x")[:, 0], np.broadcast_to(stationary.covariance[0], (3, 1, 1)), rtol=1e-9)
    # T Cov(x_avg) approaches the asymptotic variance as T grows (from below or above, O(1/T))
    assert abs(50 * law.covariance("x_avg")[-1, 0, 0, 0] / stationary.asymptotic_variance[0, 0, 0] - 1) < 0.1


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        (dict(x0=np.array([9.0]), n_steps=10), "x0"),
        (dict(x0=np.array([0.0]), n_steps=0), "n_steps"),
        (dict(x0=np.array([0.0]), n_steps=2.5), "n_steps"),
        (dict(x0=np.array([0.0]), n_steps=[10, -1]), "n_steps"),
        (dict(x0=np.array([0.0]), n_steps=[]), "n_steps"),
        (dict(x0=np.array([0.0]), n_steps=[10, True]), "n_steps"),  # a bool is not a horizon
        (dict(x0=np.zeros(7), n_steps=10), "x0"),
        (dict(x0=np.array([0.0]), n_steps=10, step_sizes=[0.001]), "n_grid"),  # cells 6.6 / 101 wide, 65 eta sigma
    ],
)
def test_bad_input_names_the_argument(kwargs, argument):
    f = objectives.rippled_quadratic()
    step_sizes = kwargs.pop("step_sizes", [0.2])
    with pytest.raises(ValueError, match=argument):
        finite_time_law(f, GAUSSIAN, step_sizes, bounds=(-3.0, 3.6), n_grid=101, **kwargs)


def test_a_start_law_on_another_grid_and_an_unknown_estimator_are_refused():
    f = objectives.rippled_quadratic()
    stationary = theory.stationary_law(f, GAUSSIAN, [0.2], bounds=(-3.0, 3.6), n_grid=101)
    with pytest.raises(ValueError, match="x0"):
        finite_time_law(f, GAUSSIAN, [0.2], x0=stationary, n_steps=5, n_grid=201)
    law = finite_time_law(f, GAUSSIAN, [0.2], x0=stationary, n_steps=5)
    with pytest.raises(ValueError, match="estimator"):
        law.mean("x_ema")


def test_coarsened_grids_at_wide_kernels_agree_with_the_fine_grid():
    f = objectives.rippled_quadratic()
    kwargs = dict(x0=np.array([1.2]), n_steps=[5, 60], bounds=(-3.0, 3.6))
    fine = finite_time_law(f, GAUSSIAN, [0.05, 0.3], n_grid=801, **kwargs)
    coarse = finite_time_law(f, GAUSSIAN, [0.05, 0.3], n_grid=801, coarsen=True, **kwargs)
    assert coarse.n_cells.tolist() == [528, 200] and fine.n_cells.tolist() == [801, 801]
    for name in ESTIMATORS:
        np.testing.assert_allclose(coarse.mse(name, [0.3]), fine.mse(name, [0.3]), rtol=0.01)
    again = finite_time_law(f, GAUSSIAN, [0.05, 0.3], n_grid=coarse.n_cells, **kwargs)  # one number per step size
    np.testing.assert_array_equal(again.mse("x_avg", [0.3]), coarse.mse("x_avg", [0.3]))
    with pytest.raises(ValueError, match="n_grid"):
        finite_time_law(f, GAUSSIAN, [0.05, 0.3], n_grid=[401], **kwargs)
