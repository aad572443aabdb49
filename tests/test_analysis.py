"""analysis: error tables, rate fits, basins, the drift identity, theory vs Monte Carlo, plots."""

import math

import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import analysis  # noqa: E402
import objectives  # noqa: E402
import simulate  # noqa: E402
from analysis import theory  # noqa: E402
from analysis.rates import student_t_quantile  # noqa: E402


def _synthetic_result(values, diverged_at, step_sizes=(0.1, 0.2)):
    """A SimulationResult whose every estimator holds `values` `(S, C, d)`, one checkpoint."""
    values = np.asarray(values, float)
    diverged_at = np.asarray(diverged_at)
    checkpoints = {name: values[None] for name in simulate.ESTIMATORS}
    return simulate.SimulationResult(
        **{name: values for name in simulate.ESTIMATORS},
        diverged=diverged_at >= 0, diverged_at=diverged_at, checkpoint_steps=np.array([10]),
        checkpoints=checkpoints, step_sizes=np.array(step_sizes), n_steps=10, n_chains=values.shape[1],
        seed=0, tail_fraction=0.5, noise=simulate.noise.gaussian(1.0), objective_name="synthetic", dim=values.shape[2],
        dtype="float64", divergence_radius=1e6,
    )


def test_errors_on_known_arrays_exclude_and_count_diverged_chains():
    values = np.array([[[1.0], [3.0], [1e30]], [[2.0], [2.0], [2.0]]])  # step size 0: chain 2 diverged
    result = _synthetic_result(values, diverged_at=[[-1, -1, 4], [-1, -1, -1]])
    table = analysis.errors(result, target=[1.0])
    row = table.select(estimator="x", step_size=0.1).to_records()[0]
    assert row["mse"] == pytest.approx((0.0 + 4.0) / 2) and row["n_chains"] == 2 and row["n_diverged"] == 1
    assert row["mse_se"] == pytest.approx(np.std([0.0, 4.0], ddof=1) / math.sqrt(2))
    row = table.select(estimator="x_avg", step_size=0.2).to_records()[0]
    assert row["mse"] == pytest.approx(1.0) and row["mse_se"] == 0.0 and row["n_diverged"] == 0
    per_step = analysis.errors(result, target=[[1.0], [2.0]])  # one target per step size
    assert per_step.select(estimator="x", step_size=0.2).column("mse")[0] == 0.0
    assert np.all(np.isfinite(table.column("mse")))


def test_errors_bootstrap_interval_covers_the_mean_and_bad_targets_are_rejected(tmp_path):
    rng = np.random.default_rng(0)
    result = _synthetic_result(rng.normal(size=(2, 500, 2)), diverged_at=-np.ones((2, 500), int))
    table = analysis.errors(result, [0.0, 0.0], bootstrap=400)
    for row in table:
        assert row["mse_lo"] < row["mse"] < row["mse_hi"]
        assert row["mse_hi"] - row["mse_lo"] == pytest.approx(2 * 1.96 * row["mse_se"], rel=0.25)
    table.to_csv(tmp_path / "errors.csv")
    assert (tmp_path / "errors.csv").read_text().splitlines()[0].startswith("estimator,step_size,n_steps,mse,mse_se")
    with pytest.raises(ValueError, match=r"target must have shape \(2,\)"):
        analysis.errors(result, [0.0, 0.0, 0.0])


def test_fit_rate_recovers_known_slopes_and_its_interval_covers_them():
    x = np.geomspace(10, 1e5, 12)
    exact = analysis.fit_rate(x, 7.0 * x**-1.0)
    assert exact.slope == pytest.approx(-1.0, abs=1e-10) and exact.intercept == pytest.approx(math.log(7.0))
    rng = np.random.default_rng(1)
    covered = 0
    for _ in range(200):
        fit = analysis.fit_rate(x, 3.0 * x**0.5 * np.exp(rng.normal(0, 0.1, x.size)))
        covered += fit.slope_lo <= 0.5 <= fit.slope_hi
    assert 0.9 <= covered / 200 <= 0.99  # a 95% interval
    with pytest.raises(ValueError, match="positive"):
        analysis.fit_rate([1, 2, 3], [1, -1, 2])


@pytest.mark.parametrize("df", [1, 2, 3, 7, 30, 200])
def test_student_t_quantile_matches_scipy(df):
    from scipy import stats

    for p in (0.6, 0.9, 0.975, 0.995):
        assert student_t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=2e-5)


def test_theory_matches_direct_monte_carlo_of_the_recursion():
    # numpy sampling of e_k = A e_{k-1} - eta eps_k: independent of both simulate and theory.
    rng = np.random.default_rng(2)
    hessian, covariance = np.array([[1.5, 0.4], [0.4, 0.3]]), np.array([[0.5, 0.1], [0.1, 0.2]])
    eta, n_steps, n = 0.4, 60, 40_000
    e = np.tile([1.0, -1.0], (n, 1))
    total = np.zeros_like(e)
    factor = np.linalg.cholesky(covariance)
    for _ in range(n_steps):
        e = e - eta * e @ hessian - eta * rng.normal(size=(n, 2)) @ factor.T
        total += e
    law = theory.quadratic_law(hessian, covariance, eta, n_steps, [1.0, -1.0])
    for name, sample in (("x", e), ("x_avg", total / n_steps)):
        mean, cov = law.marginal(name)
        assert np.all(np.abs(sample.mean(0) - mean) < 5 * np.sqrt(np.diag(cov) / n))
        np.testing.assert_allclose(np.cov(sample, rowvar=False), cov, rtol=0.05, atol=0.05 * np.abs(cov).max())


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


def test_every_plot_renders_and_saves_png_and_pdf(tmp_path):
    f = objectives.sharp_flat()
    noise = simulate.noise.gaussian(1.0)
    result = simulate.run(f, step_sizes=[0.02, 0.2], n_steps=200, n_chains=256, x0=[-1.0], checkpoints=6)
    table = analysis.errors(result, [[-1.0], [1.0]])
    figures = {
        "tradeoff": analysis.plots.plot_tradeoff(table.select(n_steps=200), theory={"x": ([0.02, 0.2], [1e-3, 1e-1])}),
        "rates": analysis.plots.plot_rates(table, 0.2),
        "landscape": analysis.plots.plot_landscape(
            f, smoothed=[(0.2, objectives.smoothed(f, noise, 0.2))], penalized=[(0.02, objectives.penalized(f, noise, 0.02))],
            minimizers=analysis.minimizers(f).points,
        ),
        "chains": analysis.plots.plot_chains(f, result, 1),
        "basins": analysis.plots.plot_basins([0.02, 0.2], {"x": np.array([[1.0, 0.0], [0.2, 0.8]])}, ["sharp", "flat"]),
    }
    valley = objectives.valley_2d()
    path = simulate.run(valley, step_sizes=[0.05], n_steps=50, n_chains=3, x0=[1.5, 1.0], trajectory=True).trajectory[:, 0]
    paths = np.swapaxes(path, 0, 1)
    figures["valley"] = analysis.plots.plot_valley(valley, paths, np.cumsum(paths, 1) / np.arange(1, 52)[:, None])
    for name, fig in figures.items():
        analysis.plots.save(fig, tmp_path / name)
        assert (tmp_path / f"{name}.png").stat().st_size > 1000 and (tmp_path / f"{name}.pdf").stat().st_size > 1000
