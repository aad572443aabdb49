"""The exact law of SGD with noise that follows the landscape (`theory.state_law`,
`theory.absorption`, `theory.stability`) against closed forms and simulated chains.

Monte Carlo comparisons allow 4.5 standard errors plus the law's grid error (twice the change on
the coarse grid). The chains are `simulate.run`'s, with the very noise objects the law takes
(`simulate.noise.hessian_aligned`, `loss_scaled`, `minibatch`), in float64.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import objectives
import simulate
import theory
from support import mean_check, variance_check
from theory.absorption import absorption
from theory.cell_mixtures import tent_rows
from theory.minibatch_kernel import MAX_MINIBATCHES, enumerate_minibatches
from theory.stability import linear_stability, lyapunov_exponent_1d, minibatch_threshold_1d, second_moment_map
from theory.state_law import state_dependent_law

QUADRATIC = 1.5  # curvature of the 1-D quadratic


def quadratic():
    return objectives.from_function(lambda x: 0.5 * QUADRATIC * jnp.sum(x * x), 1, name="quadratic")


def double_well():
    """(x^2 - 1)^2 e^(0.7 x): minima at -1 and +1, both at f = 0, curvatures 8 e^(-0.7) and 8 e^(0.7)."""
    return objectives.from_function(lambda x: jnp.sum((x * x - 1.0) ** 2 * jnp.exp(0.7 * x)), 1, name="double_well")


def run_chains(f, noise, eta, x0, n_steps, seed, trajectory=False):
    """`simulate.run` in float64 at one step size: the final iterates `(C, d)`, or with
    `trajectory` every iterate from x0 on, `(T + 1, C, d)`."""
    with jax.enable_x64(True):
        result = simulate.run(
            f, step_sizes=[eta], n_steps=n_steps, n_chains=len(x0), x0=x0, noise=noise, seed=seed, dtype="float64",
            checkpoints=1, trajectory=trajectory,
        )
    return result.trajectory[:, 0] if trajectory else result.x[0]


# ---- the rows --------------------------------------------------------------------------------


def test_a_row_that_keeps_a_subnormal_mass_in_the_box_is_empty_not_infinite():
    # Row 0 keeps 1e-310 of its mass in the box (a component of that weight inside, the rest far
    # outside): renormalising it would divide by a subnormal number (inf entries, an overflow
    # warning). It sent all its mass out: empty with leak 1, or refused without allow_empty.
    import warnings

    from theory.cell_mixtures import mixture_matrix
    from theory.grid import make_grid
    from theory.linalg import NoStationaryLaw

    grid = make_grid(np.array([0.0]), np.array([1.0]), 10)
    weights = np.tile([0.5, 0.5], (10, 1))
    weights[0] = [1.0 - 1e-310, 1e-310]
    means = np.stack([np.full(10, 50.0), grid.points[:, 0]], axis=1)[..., None]  # (N, K, d): out of the box, at the centre
    means[1:, 0, 0] = grid.points[1:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        matrix, leak = mixture_matrix(grid, weights, means, None, allow_empty=True)
    assert np.all(np.isfinite(matrix.data)) and matrix[0].nnz == 0 and leak[0] == 1.0
    np.testing.assert_allclose(np.asarray(matrix.sum(axis=1)).ravel()[1:], 1.0)
    with pytest.raises(NoStationaryLaw, match="all its mass out of the box"):
        mixture_matrix(grid, weights, means, None)


def test_tent_rows_keep_mass_and_mean_for_every_width():
    n, h = 60, 0.1
    mean = np.array([3.0, 3.02, 2.96, 3.0, 3.0, 3.0])
    spread = np.array([0.0, 0.0, 1e-4, 0.03, 0.3, 0.4])
    first, values, leak = tent_rows(0.05, h, n, mean, spread)
    centres = 0.05 + h * (first[:, None] + np.arange(values.shape[1]))
    np.testing.assert_allclose(values.sum(axis=1) + leak, 1.0, atol=1e-13)
    np.testing.assert_allclose((values * centres).sum(axis=1), mean, atol=1e-12)  # the first moment exactly
    variance = (values * (centres - mean[:, None]) ** 2).sum(axis=1)
    assert np.all(variance >= spread**2) and np.all(variance <= spread**2 + h * h / 4 + 1e-12)
    np.testing.assert_allclose(variance[-2:], spread[-2:] ** 2 + h * h / 6, rtol=1e-9)  # wide: + h^2 / 6


# ---- state-dependent Gaussian noise ---------------------------------------------------------


def test_constant_covariance_gives_the_additive_law():
    f, eta = quadratic(), [0.2, 0.6]
    noise = simulate.noise.gaussian(0.8)
    law = state_dependent_law(f, noise, eta, bounds=(-5.0, 5.0), n_grid=401)
    as_function = state_dependent_law(f, lambda x: jnp.full((1, 1), 0.64), eta, bounds=(-5.0, 5.0), n_grid=401)
    np.testing.assert_allclose(law.density, as_function.density, rtol=1e-9)
    additive = theory.stationary_law(f, noise, eta, bounds=(-5.0, 5.0), n_grid=401)
    h2 = law.grid.widths[0] ** 2
    np.testing.assert_allclose(law.mean, additive.mean, atol=1e-10)
    # The tent adds h^2 / 6 per step to the noise, cell integrals h^2 / 12: Var = Var_eta (1 + O(h^2)).
    np.testing.assert_allclose(law.covariance, additive.covariance, atol=2 * h2)
    # On cells the chain is the AR(1) with h^2 / 6 more noise per step (the tent of a wide Gaussian).
    exact = np.array([(e * e * 0.64 + h2 / 6) / (1 - (1 - e * QUADRATIC) ** 2) for e in eta])
    np.testing.assert_allclose(law.covariance[:, 0, 0], exact, rtol=1e-6)
    np.testing.assert_allclose(law.asymptotic_variance[:, 0, 0], (0.64 + h2 / (6 * np.square(eta))) / QUADRATIC**2, rtol=1e-6)


def test_multiplicative_noise_variance_matches_closed_form():
    # C(x) = c0 + c1 x^2 on a quadratic: v = eta^2 c0 / (1 - (1 - eta a)^2 - eta^2 c1).
    c0, c1 = 0.5, 0.8
    f, eta = quadratic(), np.array([0.1, 0.3, 0.5])
    law = state_dependent_law(f, lambda x: (c0 + c1 * x * x)[None], eta, bounds=(-6.0, 6.0), n_grid=601)
    # (+ h^2 / 6 per step on cells: the tent of a wide Gaussian)
    exact = (eta**2 * c0 + law.grid.widths[0] ** 2 / 6) / (1 - (1 - eta * QUADRATIC) ** 2 - eta**2 * c1)
    np.testing.assert_allclose(law.covariance[:, 0, 0], exact, rtol=1e-5)
    np.testing.assert_allclose(law.mean[:, 0], 0.0, atol=1e-9)


HESSIAN_ALIGNED = simulate.noise.hessian_aligned(1.0)  # C(x) = [f''(x)]_+


def symmetric_double_well():
    return objectives.from_function(lambda x: jnp.sum(0.25 * (x * x - 1.0) ** 2 + 0.1 * x), 1, name="tilted_well")


# Full sizes (SE about half) behind --run-slow; the fast sizes keep 4.5 SE below the law's grid error.
FAST_OR_FULL = pytest.mark.parametrize("size", [1, pytest.param(2, marks=pytest.mark.slow)])


def side_statistics(law, axis):
    """Per side of x_axis = 0 (below, above): (mass, mean `(d,)`, variance `(d,)` given the side)."""
    cells, density = law.grid.points, law.density[0].reshape(-1)
    out = []
    for side in (cells[:, axis] < 0, cells[:, axis] > 0):
        mass = density[side].sum()
        mean = density[side] @ cells[side] / mass
        out.append((mass, mean, density[side] @ (cells[side] - mean) ** 2 / mass))
    return out


def check_sides(points, law, axis=0):
    """Each side's mass, and its mean and variance given the side (the within-well law), simulated
    against the law: 4.5 SE plus twice the change on the coarse grid. The within-well statistics
    are the sharp check: the mass between wells moves with the grid far more (rare crossings)."""
    for inside, fine, coarse in zip((points[:, axis] < 0, points[:, axis] > 0), side_statistics(law, axis), side_statistics(law.coarse, axis)):
        mean_check(inside.astype(np.float64), fine[0], 2 * abs(fine[0] - coarse[0]))
        for a in range(points.shape[1]):
            mean_check(points[inside, a], fine[1][a], 2 * abs(fine[1][a] - coarse[1][a]))
            variance_check(points[inside, a], fine[2][a], 2 * abs(fine[2][a] - coarse[2][a]))


# Full sizes (SE about half) behind --run-slow.
FAST_OR_FULL = pytest.mark.parametrize("size", [1, pytest.param(2, marks=pytest.mark.slow)])


@FAST_OR_FULL
def test_hessian_aligned_law_matches_simulation_1d(size):
    f, eta = symmetric_double_well(), 0.1
    law = state_dependent_law(f, HESSIAN_ALIGNED, [eta], bounds=(-3.5, 3.5), n_grid=700)
    final = run_chains(f, HESSIAN_ALIGNED, eta, law.sample(8000 * size, seed=1)[0], 150 * size, seed=2)
    mean_check(final[:, 0], law.mean[0, 0], law.discretization_error[0])
    check_sides(final, law)


@FAST_OR_FULL
def test_hessian_aligned_law_matches_simulation_2d(size):
    f = objectives.gaussian_wells([0.5, 0.3], [[-0.6, 0.0], [0.6, 0.3]], [0.4, 0.5], 0.3)
    eta = 0.3
    law = state_dependent_law(f, HESSIAN_ALIGNED, [eta], bounds=((-3.0, -3.0), (3.0, 3.2)), n_grid=48)
    final = run_chains(f, HESSIAN_ALIGNED, eta, law.sample(1000 * size, seed=1)[0], 100 * size, seed=3)
    check_sides(final, law)


def test_bad_covariance_is_refused_by_name():
    f = quadratic()
    for bad, says in (
        (lambda x: jnp.full((1, 1), -1.0), "positive semi-definite"),
        (lambda x: jnp.ones((2, 2)), "shape"),
        (lambda x: jnp.full((1, 1), 1.0 + 1.0j), "real"),
    ):
        with pytest.raises(ValueError, match=f"noise.*{says}"):
            state_dependent_law(f, bad, [0.1], bounds=(-3.0, 3.0), n_grid=64)


# ---- the exact minibatch kernel --------------------------------------------------------------


def regression(n=8, seed=0, interpolate=False):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 1.5, n)
    y = a * 0.4 + (0.0 if interpolate else rng.normal(0.0, 0.5, n))
    return objectives.least_squares(a[:, None], y), a.astype(np.float32).astype(np.float64), y.astype(np.float32).astype(np.float64)


@pytest.mark.parametrize("batch_size, replace, label", [(2, False, 0.0), (3, True, 0.0), (2, False, 0.7)])
def test_minibatch_kernel_matches_the_regression_closed_form(batch_size, replace, label):
    # x' - x* = (1 - eta h_b) e + eta u_b, u_j = a_j (y_j - a_j x*) (sum 0), b independent of e:
    # Var_pi = eta^2 E u_b^2 / (1 - E (1 - eta h_b)^2), E u_b^2 = c mean(u^2), c the minibatch factor.
    # Label noise s adds eta (s / b) sum_{j in b} a_j xi_j, independent of the rest: eta^2 s^2 mean(a^2) / b.
    f, a, y = regression()
    x_star = (a @ y) / (a @ a)
    u = a * (y - a * x_star)
    n, eta = a.size, np.array([0.2, 0.6])
    c = 1 / batch_size if replace else (n - batch_size) / (batch_size * (n - 1))
    numerator = eta**2 * (c * np.mean(u * u) + label**2 * np.mean(a * a) / batch_size)
    noise = simulate.noise.minibatch(batch_size, replace, label_noise=label)
    # With label noise every component is a Gaussian over 3 cells wide (dense rows: fewer cells),
    # to which the tent adds h^2 / 6 per step; point maps get t (1 - t) h^2, negligible at 1001.
    law = state_dependent_law(f, noise, eta, bounds=(-2.0, 3.0), n_grid=1001 if label == 0 else 201)
    if label > 0:
        numerator = numerator + law.grid.widths[0] ** 2 / 6
    exact = numerator / (1 - ((1 - eta * np.mean(a * a)) ** 2 + eta**2 * c * np.var(a * a)))
    np.testing.assert_allclose(law.mean[:, 0], x_star, atol=1e-6)
    np.testing.assert_allclose(law.covariance[:, 0, 0], exact, rtol=5e-3)


@FAST_OR_FULL
def test_minibatch_kernel_matches_simulated_minibatches(size):
    # A double well whose examples disagree: loss_j = w_j (x^2 - 1)^2 / 4 + b_j x.
    rng = np.random.default_rng(3)
    w, b = rng.uniform(0.5, 1.5, 10), rng.normal(0.0, 0.6, 10)

    def loss(x, example):
        weight, tilt = example
        return weight * (x[0] ** 2 - 1.0) ** 2 / 4 + tilt * x[0]

    f = objectives.finite_sum(loss, jnp.zeros(1, jnp.float32), (w.astype(np.float32), b.astype(np.float32)))
    noise, eta = simulate.noise.minibatch(2), 0.25
    law = state_dependent_law(f, noise, [eta], bounds=(-3.0, 3.0), n_grid=601)
    start = law.sample(2000 * size, seed=1)[0]
    with jax.enable_x64(True):
        result = simulate.run(f, step_sizes=[eta], n_steps=150 * size, n_chains=2000 * size, x0=start, noise=noise, seed=4, dtype="float64", checkpoints=1)
    final = result.x[0, :, 0]
    mean_check(final, law.mean[0, 0], law.discretization_error[0])
    variance_check(final, law.covariance[0, 0, 0], 2 * abs(law.covariance[0, 0, 0] - law.coarse.covariance[0, 0, 0]) + law.grid.widths[0] ** 2)


def test_minibatch_law_matches_simulation_2d():
    # Least squares on 6 examples in 2-D, minibatches of 2 without replacement (15 point maps per cell).
    rng = np.random.default_rng(5)
    features = rng.normal(size=(6, 2))
    f = objectives.least_squares(features, features @ np.array([0.3, -0.2]) + rng.normal(0.0, 0.4, 6))
    noise, eta = simulate.noise.minibatch(2), 0.3
    law = state_dependent_law(f, noise, [eta], bounds=((-0.5, -0.6), (0.9, 0.8)), n_grid=96)
    final = run_chains(f, noise, eta, law.sample(8000, seed=1)[0], 100, seed=8)
    for a in range(2):
        mean_check(final[:, a], law.mean[0, a], 2 * abs(law.mean[0, a] - law.coarse.mean[0, a]))
        variance_check(final[:, a], law.covariance[0, a, a], 2 * abs(law.covariance[0, a, a] - law.coarse.covariance[0, a, a]))


def test_minibatches_are_enumerated_with_their_probabilities():
    without = enumerate_minibatches(6, 3, False)
    assert without.counts.shape == (20, 6) and np.all(without.counts.sum(axis=1) == 3)
    np.testing.assert_allclose(without.probability, 1 / 20)
    with_ = enumerate_minibatches(4, 3, True)
    assert with_.counts.shape == (math.comb(6, 3), 4)
    # Each example appears B / n times per minibatch on average; a given ordered draw has n^-B.
    np.testing.assert_allclose(with_.probability @ with_.counts, 3 / 4)
    np.testing.assert_allclose(with_.probability[np.all(with_.counts == [3, 0, 0, 0], axis=1)], 4.0**-3)


def test_too_large_a_finite_sum_is_refused_by_name():
    f, _, _ = regression(n=24)
    with pytest.raises(ValueError, match=r"noise.*batch_size=12.*n_examples=24.*MAX_MINIBATCHES"):
        state_dependent_law(f, simulate.noise.minibatch(12), [0.1], bounds=(-2.0, 3.0), n_grid=64)
    assert math.comb(24, 3) <= MAX_MINIBATCHES


# ---- absorption ------------------------------------------------------------------------------

LOSS_SCALED = simulate.noise.loss_scaled(4.0, f_min=0.0)  # C(x) = 4 max(f(x), 0)


@FAST_OR_FULL
def test_loss_scaled_absorption_matches_simulation(size):
    # Two starts: from -0.3 the chance of the far minimum (1%) moves most with the noise's size.
    f, eta, starts = double_well(), 0.1, (0.3, -0.3)
    minima = np.array([[-1.0], [1.0]])
    n = 3000 * size
    path = run_chains(f, LOSS_SCALED, eta, np.repeat(np.array(starts)[:, None], n, axis=0), 300 * size, seed=5, trajectory=True)[:, :, 0]
    assert np.all(np.abs(np.abs(path[-1]) - 1.0) < 1e-6)  # every chain converged to a minimizer
    near = np.abs(np.abs(path) - 1.0) <= 0.1
    assert np.all(np.any(near, axis=0))
    first = np.argmax(near, axis=0)  # steps to come within 0.1 of a minimizer
    for k, start in enumerate(starts):
        chains = slice(k * n, (k + 1) * n)
        converged = absorption(f, LOSS_SCALED, [eta], minima, [start], bounds=(-2.5, 2.5), n_grid=801)
        np.testing.assert_allclose(converged.probability.sum(axis=1), 1.0, atol=1e-9)
        mean_check((path[-1, chains] > 0).astype(np.float64), converged.probability[0, 1], converged.discretization_error[0])
        if k == 0:
            hitting = absorption(f, LOSS_SCALED, [eta], minima, [start], radius=0.1, bounds=(-2.5, 2.5), n_grid=801)
            where = path[first[chains], np.arange(k * n, (k + 1) * n)]
            mean_check((where > 0).astype(np.float64), hitting.probability[0, 1], hitting.discretization_error[0])
            mean_check(first[chains].astype(np.float64), hitting.time[0], 2 * abs(hitting.time[0] - hitting.coarse.time[0]))


def test_loss_scaled_absorption_matches_simulation_2d():
    # A 2-D double well with both minima at f = 0, (-1, 0) and (1, 0): loss-scaled noise vanishes at both.
    f = objectives.from_function(lambda x: (x[0] ** 2 - 1.0) ** 2 * jnp.exp(0.7 * x[0]) + 2.0 * x[1] ** 2, 2, name="double_well_2d")
    minima, starts, eta, n = np.array([[-1.0, 0.0], [1.0, 0.0]]), np.array([[0.3, 0.4], [-0.3, 0.4]]), 0.1, 3000
    final = run_chains(f, LOSS_SCALED, eta, np.repeat(starts, n, axis=0), 300, seed=9)
    assert np.all(np.abs(np.abs(final[:, 0]) - 1.0) < 1e-6) and np.all(np.abs(final[:, 1]) < 1e-6)
    for k, start in enumerate(starts):
        law = absorption(f, LOSS_SCALED, [eta], minima, start, bounds=((-2.5, -2.0), (2.5, 2.0)), n_grid=40)
        mean_check((final[k * n : (k + 1) * n, 0] > 0).astype(np.float64), law.probability[0, 1], law.discretization_error[0])


def shared_minima_sum(n=6, seed=1):
    """loss_j = e_j(x) (x^2 - 1)^2 with e_j = w_j exp(k_j x): every example is minimal at -1 and +1."""
    rng = np.random.default_rng(seed)
    w, k = rng.uniform(0.5, 1.5, n), rng.normal(0.5, 0.6, n)

    def loss(x, example):
        weight, tilt = example
        return weight * jnp.exp(tilt * x[0]) * (x[0] ** 2 - 1.0) ** 2

    f = objectives.finite_sum(loss, jnp.zeros(1, jnp.float32), (w.astype(np.float32), k.astype(np.float32)))
    w64, k64 = w.astype(np.float32).astype(np.float64), k.astype(np.float32).astype(np.float64)
    return f, {x: 8 * w64 * np.exp(k64 * x) for x in (-1.0, 1.0)}


@FAST_OR_FULL
def test_minibatch_absorption_matches_simulation(size):
    f, _ = shared_minima_sum()
    noise, eta, start, minima = simulate.noise.minibatch(2), 0.08, 0.2, [[-1.0], [1.0]]
    law = absorption(f, noise, [eta], minima, [start], bounds=(-2.0, 2.0), n_grid=801)
    hitting = absorption(f, noise, [eta], minima, [start], radius=0.1, bounds=(-2.0, 2.0), n_grid=801)
    with jax.enable_x64(True):
        result = simulate.run(f, step_sizes=[eta], n_steps=300 * size, n_chains=4000 * size, x0=[start], noise=noise, seed=6, dtype="float64", trajectory=True)
    path = result.trajectory[:, 0, :, 0]  # (T + 1, C)
    assert np.all(np.abs(np.abs(path[-1]) - 1.0) < 1e-3)
    mean_check((path[-1] > 0).astype(np.float64), law.probability[0, 1], law.discretization_error[0])
    # The time to come within 0.1 of a minimizer moves with the step size (a fifth smaller: 10% longer).
    near = np.abs(np.abs(path) - 1.0) <= 0.1
    assert np.all(np.any(near, axis=0))
    first = np.argmax(near, axis=0)
    mean_check(first.astype(np.float64), hitting.time[0], 2 * abs(hitting.time[0] - hitting.coarse.time[0]))


def test_absorption_refuses_noise_that_does_not_vanish():
    with pytest.raises(ValueError, match="minimizers: the noise does not vanish"):
        absorption(double_well(), lambda x: jnp.full((1, 1), 0.3), [0.1], [[-1.0], [1.0]], [0.3], bounds=(-2.5, 2.5), n_grid=64)


# ---- linear stability ------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size, replace", [(1, False), (3, False), (2, True)])
def test_linear_stability_matches_the_1d_formula(batch_size, replace):
    f, a, _ = regression(interpolate=True)
    threshold = minibatch_threshold_1d(a * a, batch_size, replace)
    result = linear_stability(f, simulate.noise.minibatch(batch_size, replace), [0.4], [0.97 * threshold, 1.03 * threshold])
    assert result.stable.tolist() == [True, False]
    np.testing.assert_allclose(result.largest_stable_step_size, threshold, rtol=1e-6)
    # The second moment map in 1-D is the number E(1 - eta a_b)^2.
    batches = enumerate_minibatches(a.size, batch_size, replace)
    a_b = batches.counts @ (a * a) / batch_size
    np.testing.assert_allclose(result.spectral_radius, [batches.probability @ (1 - e * a_b) ** 2 for e in result.step_sizes], rtol=1e-6)


def test_linear_stability_matches_simulated_second_moments():
    # Interpolating regression: e_T = prod (1 - eta h_b) e_0 exactly, so E e_T^2 = rho^T e_0^2.
    f, a, _ = regression(interpolate=True)
    noise = simulate.noise.minibatch(1)
    threshold = minibatch_threshold_1d(a * a, 1)
    eta = np.array([0.9, 1.1]) * threshold
    result = linear_stability(f, noise, [0.4], eta)
    n_steps = 12
    with jax.enable_x64(True):
        run = simulate.run(f, step_sizes=eta, n_steps=n_steps, n_chains=20000, x0=[1.4], noise=noise, seed=7, dtype="float64", checkpoints=1)
    ratio = ((run.x[:, :, 0] - 0.4) / 1.0) ** 2
    for s in range(2):
        mean_check(ratio[s], result.spectral_radius[s] ** n_steps)
    assert ratio[0].mean() < 1.0 < ratio[1].mean()


def test_linear_stability_of_a_2d_minibatch_solves_the_second_moment_recursion():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(6, 2))
    w = np.array([0.3, -0.2])
    f = objectives.least_squares(features, features @ w)
    result = linear_stability(f, simulate.noise.minibatch(2), w, [0.3])
    batches = enumerate_minibatches(6, 2, False)
    a64 = features.astype(np.float32).astype(np.float64)
    per_example = np.einsum("na,nb->nab", a64, a64)
    expected = sum(p * np.kron(np.eye(2) - 0.3 * (c @ per_example.reshape(6, 4) / 2).reshape(2, 2), np.eye(2) - 0.3 * (c @ per_example.reshape(6, 4) / 2).reshape(2, 2)) for p, c in zip(batches.probability, batches.counts))
    np.testing.assert_allclose(result.spectral_radius[0], np.max(np.abs(np.linalg.eigvals(expected))), rtol=1e-6)


def test_a_minimum_past_its_threshold_is_not_absorbing():
    # Shared minima at -1 and +1. Past the sharp one's mean-square threshold its Lyapunov exponent
    # E log|1 - eta a_b| is still negative for a while: the chain still converges there with
    # positive probability; once the exponent is positive the law sends (almost) no mass there.
    f, curvatures = shared_minima_sum()
    sharp = 1.0 if curvatures[1.0].mean() > curvatures[-1.0].mean() else -1.0
    noise = simulate.noise.minibatch(1)
    threshold = minibatch_threshold_1d(curvatures[sharp], 1)
    below, between, above = 0.6 * threshold, 1.15 * threshold, 1.6 * threshold
    stability = linear_stability(f, noise, [sharp], [below, between, above])
    assert stability.stable.tolist() == [True, False, False]
    assert lyapunov_exponent_1d(curvatures[sharp], 1, between) < 0 < lyapunov_exponent_1d(curvatures[sharp], 1, above)
    law = absorption(f, noise, [below, between, above], [[-1.0], [1.0]], [sharp * 0.9], bounds=(-2.5, 2.5), n_grid=801)
    index = 1 if sharp > 0 else 0
    assert law.probability[0, index] > 0.9 and law.probability[1, index] > 0.9
    # Past the Lyapunov threshold only the grid keeps some mass there (a chain rounded into the
    # minimizer's cell from next to it): below the grid error, and shrinking with the cell width.
    assert law.probability[2, index] < law.discretization_error[2]
    assert law.probability[2, index] < 0.6 * law.coarse.probability[2, index]


# ---- escape times ----------------------------------------------------------------------------


def test_escape_formulas_and_the_exact_escape_time():
    from theory.escape import diffusion_escape_steps_1d, escape_steps, eyring_kramers_steps, xie_escape_steps


    f = objectives.from_function(lambda x: jnp.sum(0.25 * (x * x - 1.0) ** 2), 1, name="quartic_well")
    minima, noise = np.array([[-1.0], [1.0]]), simulate.noise.gaussian(1.0)
    exact = escape_steps(f, noise, [0.05, 0.2], minima, 0, bounds=(-3.0, 3.0), n_grid=801)
    additive = theory.stationary_law(f, noise, [0.05, 0.2], bounds=(-3.0, 3.0), n_grid=801).escape_time(minima, 0)
    # Tent weights add h^2 / 6 of noise per step, cell integrals h^2 / 12: 2% at e^10 steps.
    np.testing.assert_allclose(exact, additive, rtol=0.03)
    diffusion = [diffusion_escape_steps_1d(f, lambda x: jnp.ones((1, 1)), e, -1.0, 0.0, -3.0) for e in (0.05, 0.2)]
    kramers = eyring_kramers_steps(0.25, 2.0, 1.0, np.array([0.05, 0.2]), 1.0) / 2  # to the saddle: half
    ratio = np.array(diffusion) / kramers
    assert abs(ratio[0] - 1) < 0.06 and abs(ratio[0] - 1) < abs(ratio[1] - 1)  # Kramers is the small-eta limit
    assert abs(exact[0] / diffusion[0] - 1) < 0.1 < abs(exact[1] / diffusion[1] - 1)  # and so is the diffusion
    # Xie et al. with equal curvatures at the minimum and the saddle is Kramers at sigma^2 = scale h.
    np.testing.assert_allclose(xie_escape_steps(0.3, 2.0, -2.0, 0.1, 0.5, 0.3), eyring_kramers_steps(0.3, 2.0, 2.0, 0.1, 1.0), rtol=1e-12)
    # Noise that vanishes on the way (the PSD part of f'' is 0 for |x| < 1/sqrt(3)): the diffusion never crosses.
    assert diffusion_escape_steps_1d(f, lambda x: jnp.maximum(3 * x * x - 1, 0.0).reshape(1, 1), 0.1, -1.0, 0.0, -3.0) == math.inf


# ---- basins of the state-dependent law -------------------------------------------------------


@pytest.mark.parametrize("dim", [1, 2])
def test_basin_methods_solve_with_the_laws_own_kernel(dim):
    # Noise that changes with x, C(x) = (0.3 + 0.4 sum_a sin^2 x_a) I: the basin methods must solve
    # with this kernel, not the additive one of `noise_law` (which cannot read a function).
    from theory.escape import escape_steps
    from theory.state_dependent import cell_kernel, components

    if dim == 1:
        f = objectives.from_function(lambda x: jnp.sum(0.25 * (x * x - 1.0) ** 2), 1, name="quartic_well")
        minima, bounds, n, eta = np.array([[-1.0], [1.0]]), (-3.0, 3.0), 401, [0.1, 0.2]
    else:
        f = objectives.gaussian_wells([0.5, 0.3], [[-0.6, 0.0], [0.6, 0.3]], [0.4, 0.5], 0.3)
        minima, bounds, n, eta = np.array([[-0.6, 0.0], [0.6, 0.3]]), ((-3.0, -3.0), (3.0, 3.0)), 32, [0.3]
    covariance = lambda x: (0.3 + 0.4 * jnp.sum(jnp.sin(x) ** 2)) * jnp.eye(dim)  # noqa: E731
    law = state_dependent_law(f, covariance, eta, bounds=bounds, n_grid=n)
    escape = law.escape_time(minima, 0)
    # An independent solve: one sparse LU of I - P_BB on the same cells.
    np.testing.assert_allclose(escape, escape_steps(f, covariance, eta, minima, 0, bounds=bounds, n_grid=n), rtol=1e-8)
    quasi = law.quasi_stationary(minima)
    np.testing.assert_allclose(quasi.escape_time[:, 0], escape, rtol=1e-12)
    # Each basin's quasi-stationary law q is the left Perron vector of P_BB: q P_BB = (1 - exit rate) q.
    parts = components(f, covariance, law.grid.points)
    for s, e in enumerate(law.step_sizes):
        matrix, _ = cell_kernel(law.grid, parts, e)
        for k in range(2):
            q = quasi.density[s, k].reshape(-1)
            inside = q > 0
            block = matrix[inside][:, inside]
            np.testing.assert_allclose(block.T @ q[inside], (1.0 - quasi.exit_rate[s, k]) * q[inside], atol=1e-9 * q.max())
    assert law.relevant(minima, 0, 10).tolist() == ["quasi_stationary"] * len(eta)


def test_escape_steps_where_hessian_aligned_noise_vanishes_on_the_way_out():
    # f = (x^2 - 1)^2 / 4 (+ y^2 / 2): C = [f'']_+ vanishes for |x| < 1/sqrt(3), so the chain leaves
    # a well only by one jump across that strip (a Gaussian's far tail).
    import scipy.sparse
    import scipy.sparse.linalg

    from analysis.basins import assign_basins
    from theory.escape import escape_steps
    from theory.grid import make_grid
    from theory.state_dependent import cell_kernel, components

    f1 = objectives.from_function(lambda x: jnp.sum(0.25 * (x * x - 1.0) ** 2), 1, name="quartic_well")
    f2 = objectives.from_function(lambda x: 0.25 * (x[0] ** 2 - 1.0) ** 2 + 0.5 * x[1] ** 2, 2, name="quartic_valley")
    minima = np.array([[-1.0, 0.0], [1.0, 0.0]])
    one = escape_steps(f1, HESSIAN_ALIGNED, [0.02, 0.05, 0.08], minima[:, :1], 0, bounds=(-2.5, 2.5), n_grid=48)
    # eta = 0.02: every jump across is beyond the kernel's reach (10.5 sd): the cell chain cannot leave.
    assert one[0] == math.inf
    # eta = 0.05: one jump across in about 1e28 steps, exact on cells (GTH); an LU of I - P_BB gives
    # its rounding instead (about 1e16).
    assert one[1] > 1e25
    # eta = 0.08: 3.7e11 steps, where the LU is still accurate (relative error ~1e-16 x the time).
    grid = make_grid(np.array([-2.5]), np.array([2.5]), 48)
    matrix, _ = cell_kernel(grid, components(f1, HESSIAN_ALIGNED, grid.points), 0.08, allow_empty=True)
    inside = np.flatnonzero(assign_basins(grid.points, minima[:, :1], f1, method="descent") == 0)
    block = matrix[inside][:, inside]
    lu = scipy.sparse.linalg.splu((scipy.sparse.identity(inside.size, format="csc") - block).tocsc()).solve(np.ones(inside.size))
    np.testing.assert_allclose(one[2], lu[np.searchsorted(inside, grid.cell_of(minima[:1, :1]))[0]], rtol=1e-3)
    # In 2-D the noise is diag([3x^2 - 1]_+, 1): x moves on its own, so the 2-D escape time is the 1-D one.
    two = escape_steps(f2, HESSIAN_ALIGNED, [0.08, 0.3], minima, 0, bounds=((-2.5, -2.5), (2.5, 2.5)), n_grid=32)
    np.testing.assert_allclose(two, escape_steps(f1, HESSIAN_ALIGNED, [0.08, 0.3], minima[:, :1], 0, bounds=(-2.5, 2.5), n_grid=32), rtol=1e-9)
