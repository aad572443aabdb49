"""`theory.stationary_law` against closed forms, identities, GTH in the metastable regime, and bad input.

Tolerances: the law's own error estimates (the change on the coarse grid, `law.coarse`, which
bounds the error when it falls at least linearly with the cell width) plus float64 rounding.
"""

import math

import jax
import numpy as np
import pytest
import scipy.stats

import analysis
import objectives
import simulate
import theory
from theory import grid as cells
from theory import kernel_1d, kernel_2d

GAUSSIAN = simulate.noise.gaussian(1.0)


def coarse_gap(law, name):
    return np.abs(getattr(law, name) - getattr(law.coarse, name))


# ---- quadratics: the law is Gaussian with the Lyapunov covariance ---------------------------------


def test_quadratic_1d_matches_closed_forms():
    curvature, centre = 2.0, 0.3
    f = objectives.quadratic(curvature, [centre])
    eta = np.array([0.05, 0.2, 0.5])
    law = theory.stationary_law(f, GAUSSIAN, eta, bounds=(-2.6, 3.1), n_grid=801)
    floor = np.array([theory.stationary_covariance(np.array([[curvature]]), np.eye(1), e)[0, 0] for e in eta])
    assert np.all(np.abs(law.mean[:, 0] - centre) <= law.discretization_error + 1e-12)
    assert np.all(np.abs(law.covariance[:, 0, 0] - floor) <= coarse_gap(law, "covariance")[:, 0, 0])
    assert np.all(np.abs(law.mse([centre]) - floor) <= coarse_gap(law, "covariance")[:, 0, 0] + law.discretization_error**2)
    # Polyak-Juditsky: lim T Var(x_avg) = sigma^2 / h^2, whatever eta.
    assert np.all(np.abs(law.asymptotic_variance[:, 0, 0] - 1 / curvature**2) <= coarse_gap(law, "asymptotic_variance")[:, 0, 0] + 1e-9)
    # v_avg - c = (1 - eta h)(x_avg - c) on a quadratic.
    v_closed_form = (1 - eta * curvature) ** 2 / curvature**2
    assert np.all(np.abs(law.asymptotic_variance_v[:, 0, 0] - v_closed_form) <= coarse_gap(law, "asymptotic_variance_v")[:, 0, 0] + 1e-9)
    # AR(1) with rho = 1 - eta h: lambda_2 = rho exactly on the grid's smooth eigenfunction.
    assert np.allclose(law.relaxation_time, 1 / (eta * curvature), rtol=1e-4)
    assert np.allclose(law.density.sum(axis=1), 1.0) and law.density.min() >= 0
    assert law.averaged_mse([centre], 1000) == pytest.approx(law.averaged_bias([centre]) + law.asymptotic_variance[:, 0, 0] / 1000)


def test_quadratic_2d_anisotropic_full_covariance_matches_closed_forms():
    hessian = np.array([[2.0, 0.6], [0.6, 1.0]])
    centre = np.array([0.2, -0.1])
    noise_covariance = np.array([[1.0, 0.4], [0.4, 0.5]])
    f = objectives.quadratic(hessian, centre)
    eta = np.array([0.15, 0.4])
    law = theory.stationary_law(f, simulate.noise.gaussian(covariance=noise_covariance), eta, bounds=([-2.0, -2.0], [2.4, 1.8]), n_grid=81)
    assert law.density.shape == (2, 81, 81)
    inverse = np.linalg.inv(hessian)
    assert np.all(np.linalg.norm(law.mean - centre, axis=1) <= law.discretization_error + 1e-10)
    for s, e in enumerate(eta):
        lyapunov = theory.stationary_covariance(hessian, noise_covariance, e)
        assert np.all(np.abs(law.covariance[s] - lyapunov) <= coarse_gap(law, "covariance")[s] + 1e-9)
        assert np.all(np.abs(law.asymptotic_variance[s] - inverse @ noise_covariance @ inverse) <= coarse_gap(law, "asymptotic_variance")[s] + 1e-6)
        assert law.mse(centre)[s] == pytest.approx(np.trace(law.covariance[s]) + np.sum((law.mean[s] - centre) ** 2))
    slowest = 1 / (1 - np.abs(1 - eta[:, None] * np.linalg.eigvalsh(hessian)[None]).max(axis=1))
    assert np.allclose(law.relaxation_time, slowest, rtol=1e-4)


@pytest.mark.parametrize("noise", [simulate.noise.uniform(1.0), simulate.noise.rademacher(1.0), simulate.noise.student_t(1.0, df=6.0)], ids=lambda n: n.family)
def test_every_noise_family_gives_the_lyapunov_covariance_on_a_quadratic(noise):
    # On a quadratic the stationary covariance depends on the noise only through its covariance.
    f = objectives.quadratic(1.5, [0.1])
    eta = np.array([0.2, 0.6])
    box = (-6.0, 6.2) if noise.family == "student_t" else (-2.0, 2.2)
    law = theory.stationary_law(f, noise, eta, bounds=box, n_grid=1001, max_leak=1e-3)
    floor = np.array([theory.stationary_covariance(np.array([[1.5]]), np.eye(1), e)[0, 0] for e in eta])
    tolerance = coarse_gap(law, "covariance")[:, 0, 0] + law.out_of_box * np.diff(box)[0] ** 2 * 10 + 1e-9
    assert np.all(np.abs(law.covariance[:, 0, 0] - floor) <= tolerance)
    assert np.all(np.abs(law.mean[:, 0] - 0.1) <= law.discretization_error + 1e-12)


@pytest.mark.parametrize(
    "noise, rtol",
    [
        # The uniform law's support edges cut cells at different places on the two grids, so the
        # coarse-grid change is not a bound here: a 2% check of the kernel's scale (no eta: 10x off).
        (simulate.noise.uniform(1.0), 0.02),
        # The atoms' 2-D kernel splits each atom between neighbouring centres, which adds at most
        # h^2 / 4 per step to each axis's variance: a 3% check.
        (simulate.noise.rademacher(1.0), 0.03),
    ],
    ids=lambda value: getattr(value, "family", None),
)
def test_uniform_and_rademacher_noise_in_2d_give_the_lyapunov_covariance(noise, rtol):
    # On a quadratic the stationary covariance depends on the noise only through its covariance.
    hessian = np.diag([1.0, 2.5])
    f = objectives.quadratic(hessian, np.zeros(2))
    law = theory.stationary_law(f, noise, [0.3], bounds=([-1.5, -1.2], [1.5, 1.2]), n_grid=61)
    lyapunov = theory.stationary_covariance(hessian, np.eye(2), 0.3)
    assert np.allclose(law.covariance[0], lyapunov, rtol=rtol, atol=1e-3 * lyapunov.max())
    assert np.allclose(law.mean[0], 0.0, atol=1e-10)


@pytest.mark.parametrize("n_grid", [24, 41, 81])
def test_discretization_error_bounds_the_true_error_of_the_mean(n_grid):
    # Gaussian and Rademacher noise keep the mean of a quadratic exact on any grid (linear drift,
    # first moments kept by the kernel); uniform noise does not: its support edges fall inside
    # cells. Coarse grids over an asymmetric box, so the error is far above rounding.
    f = objectives.quadratic(1.0, [0.3])
    law = theory.stationary_law(f, simulate.noise.uniform(1.0), [0.35, 0.7], bounds=(-2.2, 3.9), n_grid=n_grid)
    true_error = np.abs(law.mean[:, 0] - 0.3)
    assert true_error.max() > 1e-8  # not a trivially exact case
    assert np.all(true_error <= law.discretization_error)


def test_kernel_rows_integrate_the_noise_law_over_cells():
    # Cells as wide as the noise: the density at the centre would be far off the cell integral.
    grid = cells.make_grid([-1.0], [1.0], 20)
    gradient = np.zeros((20, 1))
    with jax.enable_x64(True):
        matrix, leak, _ = kernel_1d.transition_matrix(grid, gradient[:, 0], cells.noise_law(GAUSSIAN, 1), 0.1)
    edges = grid.edges[0]
    row = 7
    centre = grid.axes[0][row]
    # Reference by SciPy, each cell from the tail away from the centre (no cancellation).
    lower = scipy.stats.norm.cdf(edges[1:], centre, 0.1) - scipy.stats.norm.cdf(edges[:-1], centre, 0.1)
    upper = scipy.stats.norm.sf(edges[:-1], centre, 0.1) - scipy.stats.norm.sf(edges[1:], centre, 0.1)
    exact = np.where(edges[:-1] >= centre, upper, lower)
    kept = exact > 1e-20 * exact.max()
    assert np.allclose(matrix[row][kept] * (1 - leak[row]), exact[kept], rtol=1e-9, atol=0)
    assert np.all(matrix[row][~kept] == 0)


# ---- identities ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sharp_flat", "rippled_quadratic"])
def test_stationary_identities_hold(name):
    f = getattr(objectives, name)()
    eta = np.array([0.15, 0.3])
    box = (-5.0, 7.0) if name == "sharp_flat" else (-4.0, 4.6)
    law = theory.stationary_law(f, GAUSSIAN, eta, bounds=box, n_grid=1201)

    def identities(of):
        with jax.enable_x64(True):
            gradient = np.asarray(f.grad(of.grid.points))
            smoothed = objectives.smoothed(f, GAUSSIAN, eta)
            v = of.v_points()
            grad_smoothed = np.stack([np.asarray(jax.tree.map(lambda a: a[s], smoothed).grad(v[s])) for s in range(eta.size)])
        return of.expect(gradient), of.expect(grad_smoothed)

    (grad_f, grad_F), (coarse_f, coarse_F) = identities(law), identities(law.coarse)
    # Errors: the grid's (the change on the coarse grid) and the box's: the mass that leaves per
    # step is put back inside, which moves E x' by at most that mass times the box's width.
    width = np.diff(box)[0]
    with jax.enable_x64(True):
        steepest = float(np.abs(np.asarray(f.grad(law.grid.points))).max())
    box_error = law.out_of_box[:, None] * 2 * width
    # E_pi grad f = 0, and E_pi grad F_eta(v) = 0 (Nitanda et al. 2024), within those errors.
    assert np.all(np.abs(grad_f) <= np.abs(grad_f - coarse_f) + box_error / eta[:, None] + 1e-12)
    assert np.all(np.abs(grad_F) <= np.abs(grad_F - coarse_F) + box_error * steepest + 1e-12)
    assert np.all(np.abs(grad_F) < 1e-4)
    # E_pi v = E_pi x: the two averages share one limit.
    assert np.all(np.abs(law.mean_v - law.mean) <= eta[:, None] * np.abs(grad_f - coarse_f) + box_error + 1e-12)


# ---- metastability ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def metastable():
    """sharp_flat at eta = 0.01 (escape times ~e^170 steps), its wells [sharp, flat] and basin laws."""
    f = objectives.sharp_flat()
    with jax.enable_x64(True):
        minima = analysis.minimizers(f)
    wells = minima.points[np.argsort(minima.points[:, 0])]
    law = theory.stationary_law(f, GAUSSIAN, [0.01], bounds=(-2.0, 3.5), n_grid=1501)
    return f, wells, law, law.quasi_stationary(wells)


def test_metastable_sharp_flat_law_is_valid_and_matches_quasi_stationary_weights(metastable):
    f, wells, law, quasi = metastable
    assert law.method == ("gth",)
    assert law.density.min() >= 0 and law.density.sum() == pytest.approx(1.0, abs=1e-12)
    assert law.relaxation_time[0] == math.inf and np.all(np.isinf(law.asymptotic_variance))
    occupancy = law.basin_occupancy(wells)[0]
    # Two-well renewal: the flat basin's weight is T(flat -> sharp) / (T(sharp -> flat) + T(flat -> sharp)),
    # the transition times between the minima, each of order e^170 steps.
    to_flat, to_sharp = law.escape_time(wells, 0, to=1)[0], law.escape_time(wells, 1, to=0)[0]
    assert 1e60 < to_flat < 1e100 and 1e60 < to_sharp < 1e100
    assert occupancy[1] == pytest.approx(to_sharp / (to_flat + to_sharp), rel=1e-3)
    assert 1e-9 < occupancy[1] < 1e-6  # tiny, and resolved: a plain solve returns noise here
    # Inside each basin the law is that basin's quasi-stationary law.
    labels = analysis.assign_basins(law.grid.points, wells, f, method="descent")
    for k in range(2):
        restricted = np.where(labels == k, law.density[0], 0.0)
        assert 0.5 * np.abs(restricted / restricted.sum() - quasi.density[0, k]).sum() < 1e-3
    assert quasi.escape_time[0, 0] > 1e60 and quasi.exit_rate[0, 0] < 1e-60


def test_sharp_well_quasi_stationary_law_matches_chains_started_there(metastable):
    f, wells, law, quasi = metastable
    n_steps, n_chains = 400, 4096
    assert law.relevant(wells, 0, n_steps)[0] == "quasi_stationary"
    # Several horizons at once: one row per horizon, the same verdicts as one at a time.
    assert law.relevant(wells, 0, [n_steps, 10**90]).tolist() == [["quasi_stationary"], ["neither"]]
    with pytest.raises(ValueError, match="n_steps must be an integer >= 1 or a sequence"):
        law.relevant(wells, 0, [n_steps, 0])
    with jax.enable_x64(True):
        result = simulate.run(f, step_sizes=[0.01], n_steps=n_steps, n_chains=n_chains, x0=wells[0], noise=GAUSSIAN, seed=3, dtype="float64")
    x = result.x[0, :, 0]
    grid_error = law.discretization_error[0]
    assert abs(x.mean() - quasi.mean[0, 0, 0]) <= 4.5 * x.std() / math.sqrt(n_chains) + grid_error
    spread = np.mean((x - x.mean()) ** 4) - x.var() ** 2
    assert abs(x.var() - quasi.covariance[0, 0, 0, 0]) <= 4.5 * math.sqrt(spread / n_chains) + abs(law.covariance[0, 0, 0] - law.coarse.covariance[0, 0, 0])


def test_transient_cells_by_the_box_edge_do_not_stop_gth():
    """2 (x^2 - 1)^2 + x / 2 at eta = 0.05, noise 0.5, box [-2, 2]: by the edges the drift (eta
    f'(x) up to 2.4) outruns the noise's reach (10.5 x 0.025), so the outer cells are never
    re-entered. GTH used to stop there ("the chain is reducible"); with the pinned cell eliminated
    last it gives the law: no mass on the transient cells, and basin weights obeying the
    two-well renewal identity with the exit times (escape ~e^300 steps)."""
    with jax.enable_x64(True):
        f = objectives.from_function(lambda x: 2.0 * (x[0] ** 2 - 1.0) ** 2 + 0.5 * x[0], 1, name="tilted_wells")
        wells = np.sort(analysis.minimizers(f, (-2.0, 2.0)).points, axis=0)
    law = theory.stationary_law(f, simulate.noise.gaussian(0.5), [0.05], bounds=(-2.0, 2.0), n_grid=400)
    assert law.method == ("gth",) and law.density.min() >= 0 and law.density.sum() == pytest.approx(1.0, abs=1e-12)
    x = law.grid.points[:, 0]
    assert law.density[0, np.abs(x) > 1.6].max() == 0.0  # transient: the drift throws them inward
    occupancy = law.basin_occupancy(wells)[0]
    to_right, to_left = law.escape_time(wells, 0, to=1)[0], law.escape_time(wells, 1, to=0)[0]
    assert min(to_right, to_left) > 1e50
    assert occupancy[1] / occupancy[0] == pytest.approx(to_left / to_right, rel=1e-3)


# ---- 2-D: the matrix and its LU beside the operator and GMRES -------------------------------------

WELLS_2D = objectives.gaussian_wells([1.0, 0.5], [[-1.0, 0.0], [1.0, 0.5]], [0.3, 0.6], 0.1)
WELLS_BOX = ((-3.5, -3.0), (4.0, 3.5))


@pytest.mark.parametrize(
    "noise",
    [GAUSSIAN, simulate.noise.gaussian(covariance=[[1.0, 0.6], [0.6, 2.0]]), simulate.noise.uniform(1.0), simulate.noise.rademacher(1.0)],
    ids=["gaussian", "full_covariance", "uniform", "rademacher"],
)
def test_2d_matrix_is_the_operator(noise):
    """`Operator2D.sparse()` is the chain the operator applies: P^T p = push(p), P h = pull(h),
    rows summing to 1 (a reach set by a larger step size included)."""
    with jax.enable_x64(True):
        grid = cells.make_grid(np.array(WELLS_BOX[0]), np.array(WELLS_BOX[1]), 23)
        gradient = np.asarray(WELLS_2D.grad(grid.points))
        law = cells.noise_law(noise, 2)
        for eta, reach in [(0.1, None), (0.1, (12, 12)), (0.4, None)]:
            op = kernel_2d.Operator2D(grid, gradient, law, eta, reach)
            matrix = op.sparse()
            x = np.random.default_rng(0).random(grid.size)
            np.testing.assert_allclose(matrix.T @ x, np.asarray(op.push(x)), rtol=0, atol=1e-13)
            np.testing.assert_allclose(matrix @ x, np.asarray(op.pull(x)), rtol=0, atol=1e-13)
            np.testing.assert_allclose(np.asarray(matrix.sum(axis=1)).ravel(), 1.0, rtol=0, atol=1e-14)
            assert matrix.nnz <= op.sparse_size


def test_2d_direct_and_gmres_solves_agree(monkeypatch):
    """A 2-D chain that mixes, solved by its matrix's LU (the choice at this size) and by GMRES on
    the operator (forced): the same law, asymptotic variances, relaxation times, exit times and
    quasi-stationary laws, to the iterative solver's tolerance; the law has no negative entry."""
    from theory import solve as chain_operators

    with jax.enable_x64(True):
        wells = analysis.minimizers(WELLS_2D).points

    def compute():
        law = theory.stationary_law(WELLS_2D, GAUSSIAN, [0.1, 0.2], bounds=((-6.5, -6.5), (7.0, 7.0)), n_grid=35)
        return law, law.quasi_stationary(wells)

    direct, direct_quasi = compute()
    monkeypatch.setattr(chain_operators, "DIRECT_2D_SIZE", 0)
    iterative, iterative_quasi = compute()
    assert iterative.density.min() >= 0 and iterative.coarse.density.min() >= 0
    assert direct.method == ("lu", "lu") and iterative.method == ("gmres", "gmres")
    assert np.all(direct.residual < 1e-14)
    np.testing.assert_allclose(direct.mean, iterative.mean, rtol=0, atol=1e-9)
    np.testing.assert_allclose(direct.covariance, iterative.covariance, rtol=0, atol=1e-9)
    np.testing.assert_allclose(direct.coarse.mean, iterative.coarse.mean, rtol=0, atol=1e-9)
    np.testing.assert_allclose(direct.asymptotic_variance, iterative.asymptotic_variance, rtol=1e-6)
    np.testing.assert_allclose(direct.relaxation_time, iterative.relaxation_time, rtol=1e-6)
    np.testing.assert_allclose(direct_quasi.escape_time, iterative_quasi.escape_time, rtol=1e-6)
    np.testing.assert_allclose(direct_quasi.exit_rate, iterative_quasi.exit_rate, rtol=1e-6)
    np.testing.assert_allclose(direct_quasi.density, iterative_quasi.density, rtol=0, atol=1e-9)


def test_2d_nearly_decomposable_chains_are_solved_by_lu_then_gth(monkeypatch):
    """`gaussian_wells` in 2-D. At eta = 0.05 (relaxation time ~1e5 steps) GMRES on the operator
    took 290 s (101 x 101 cells) and stopped at a residual of 3e-5; the matrix's LU is accurate
    there. At eta = 0.02 (exit times beyond 1e15 steps) the LU returned a sharp-well weight of
    1e-18 and negative exit times, and GTH takes over for both. Either way the basin weights
    obey the two-well renewal identity with the exit times, w_1 / w_0 = T(1 -> 0) / T(0 -> 1).
    Beyond `GTH_2D_CELLS` cells a warning says the LU cannot vouch for the law."""
    from theory import solve as chain_operators

    with jax.enable_x64(True):
        wells = analysis.minimizers(WELLS_2D).points
    law = theory.stationary_law(WELLS_2D, GAUSSIAN, [0.05, 0.02], bounds=WELLS_BOX, n_grid=41)
    assert law.method == ("lu", "gth") and np.all(law.residual < 1e-14) and law.density.min() >= 0
    assert 1e4 < law.relaxation_time[0] < 1e7 and law.relaxation_time[1] == math.inf
    occupancy = law.basin_occupancy(wells)
    to_1, to_0 = law.escape_time(wells, 0, to=1), law.escape_time(wells, 1, to=0)
    assert 1e4 < min(to_0[0], to_1[0]) and max(to_0[1], to_1[1]) > 1e15 and min(to_0[1], to_1[1]) > 1e4
    np.testing.assert_allclose(occupancy[:, 1] / occupancy[:, 0], to_0 / to_1, rtol=1e-2)
    monkeypatch.setattr(chain_operators, "GTH_2D_CELLS", 0)
    with pytest.warns(theory.InaccurateLawWarning, match="step size 0.02: the 2-D chain is nearly decomposable"):
        theory.stationary_law(WELLS_2D, GAUSSIAN, [0.02], bounds=WELLS_BOX, n_grid=41)


# ---- step sizes side by side --------------------------------------------------------------------


@pytest.mark.parametrize(
    "noise, step_sizes", [(GAUSSIAN, [0.02, 0.1, 0.3, 0.05]), (simulate.noise.student_t(1.0, df=6.0), [0.1, 0.3, 0.2, 0.06])], ids=["gaussian", "student_t"]
)
def test_threads_change_no_bit(noise, step_sizes, monkeypatch):
    """The step sizes run on a thread pool: the law, its escape times and quasi-stationary laws
    are the same bits as one step size after another in the caller's thread. Student-t noise
    tidies its rows with compiled JAX code, which runs in float64 only if each worker sets the
    (thread-local) x64 flag."""
    from theory import stationary

    f = objectives.sharp_flat()
    with jax.enable_x64(True):
        wells = analysis.minimizers(f).points

    def compute():
        law = theory.stationary_law(f, noise, step_sizes, bounds=(-7.0, 9.0), n_grid=401)
        quasi = law.quasi_stationary(wells)
        return [law.density, law.mean, law.covariance, law.asymptotic_variance, law.relaxation_time, law.discretization_error,
                law.coarse.density, quasi.density, quasi.exit_rate, quasi.escape_time, law.escape_time(wells, 0, to=1)]

    monkeypatch.setattr(stationary, "_workers", lambda: 4)
    threaded = compute()
    monkeypatch.setattr(stationary, "_workers", lambda: 1)
    with jax.enable_x64(True):  # the reference: one thread, x64 held by the caller
        reference = compute()
    for a, b in zip(threaded, reference):
        assert a.dtype == b.dtype == np.float64
        np.testing.assert_array_equal(a, b)


# ---- bad input ----------------------------------------------------------------------------------


def test_bad_inputs_are_refused_naming_the_argument():
    with pytest.raises(ValueError, match="f must have dimension 1 or 2"):
        theory.stationary_law(objectives.quadratic(1.0, np.zeros(3)), GAUSSIAN, [0.1])
    with pytest.raises(ValueError, match="bounds"):
        theory.stationary_law(objectives.quadratic(1.0, [0.0]), GAUSSIAN, [0.5], bounds=(-0.5, 0.5), n_grid=64)
    with pytest.raises(ValueError, match=r"step_sizes \[2.5\] make the chain transient"):
        theory.stationary_law(objectives.quadratic(1.0, [0.0]), GAUSSIAN, [0.5, 2.5], bounds=(-3.0, 3.0), n_grid=64)
    with pytest.raises(ValueError, match="noise must be an additive noise model"):
        theory.stationary_law(objectives.quadratic(1.0, [0.0]), simulate.noise.minibatch(4), [0.1])
    with pytest.raises(ValueError, match="n_grid"):
        theory.stationary_law(objectives.quadratic(1.0, [0.0]), GAUSSIAN, [0.1], n_grid=4)
