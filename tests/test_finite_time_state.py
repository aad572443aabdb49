"""The finite-T law (`theory.finite_time_law`) with noise whose covariance depends on x: against
exact moment recursions, closed forms and simulated chains.

The cell chain is the state-dependent law's (`theory.state_dependent`, tent weights): every row
keeps its mean exactly, and adds between 0 and h^2 / 4 of variance per step (h the cell width).
"""

import math

import jax.numpy as jnp
import numpy as np
import pytest

import objectives
import simulate
import support
from asgd import result_folder, sweep
from asgd.config import parse_config
from theory import quadratic as closed_forms
from theory.finite_time import ESTIMATORS, finite_time_law


def loss_scaled_moments(a, scale, eta, x0, n_steps, tail_fraction=0.5, added=0.0):
    """(mean, variance) of each estimator at T = n_steps for SGD on f = a x^2 / 2 with loss-scaled
    noise C(x) = scale f(x), from the exact moment recursions (x' = r x - eta sqrt(scale a / 2) |x| z):

        E x_k = r^k x0,   q_k = E x_k^2 = rho q_{k-1} (+ added),   E x_j x_k = r^(j-k) q_k (j >= k),

    r = 1 - eta a, rho = r^2 + eta^2 scale a / 2. `added`: variance put in at every step (the
    cell chain's tent adds between 0 and h^2 / 4; with r > 0 the moments are monotone in it)."""
    r = 1.0 - eta * a
    rho = r * r + eta * eta * scale * a / 2.0
    mean = x0 * r ** np.arange(1, n_steps + 1)
    q = np.empty(n_steps)
    previous = x0 * x0
    for k in range(n_steps):
        previous = rho * previous + added
        q[k] = previous
    k = np.arange(n_steps)
    second = r ** np.abs(k[:, None] - k[None, :]) * q[np.minimum(k[:, None], k[None, :])]

    def average(first):
        m = mean[first:].mean()
        return m, second[first:, first:].mean() - m * m

    out = {"x": (mean[-1], q[-1] - mean[-1] ** 2), "x_avg": average(0)}
    out["x_tail"] = average(n_steps - math.ceil(tail_fraction * n_steps))
    out["v"] = (r * out["x"][0], r * r * out["x"][1])  # v = x - eta a x = r x
    out["v_avg"] = (r * out["x_avg"][0], r * r * out["x_avg"][1])
    return out


def test_loss_scaled_quadratic_matches_the_exact_moment_recursions():
    # The noise vanishes at 0: the cell chain is absorbed there (no pi, exact products only).
    a, scale, eta, n, box = 1.0, 2.0, 0.3, 801, 8.0
    f = objectives.quadratic(a, dim=1)
    h = 2 * box / n
    x0 = -box + (round((1.0 + box) / h - 0.5) + 0.5) * h  # a cell centre near 1: the start is exact
    horizons = [1, 10, 50, 200]
    law = finite_time_law(f, simulate.noise.loss_scaled(scale, f_min=0.0), [eta], x0=np.array([x0]), n_steps=horizons, bounds=(-box, box), n_grid=n)
    assert (law.method == "exact").all() and law.switch_step[0] == -1
    for k, t in enumerate(horizons):
        exact = loss_scaled_moments(a, scale, eta, x0, t)
        most = loss_scaled_moments(a, scale, eta, x0, t, added=h * h / 4)
        for name in ESTIMATORS:
            # means exact (to the mass the box's edge cuts off, ~1e-8 here); variances between the
            # recursion's and the recursion's with h^2 / 4 more per step
            assert abs(law.mean(name)[k, 0, 0] - exact[name][0]) <= 1e-7, (name, t)
            variance = law.covariance(name)[k, 0, 0, 0]
            assert exact[name][1] - 1e-9 <= variance <= most[name][1] + 1e-9, (name, t, variance, exact[name][1], most[name][1])


def loss_scaled_moments_2d(hessian, scale, eta, x0, n_steps, tail_fraction=0.5, added=0.0):
    """(mean, E[est est^T]) of each estimator at T = n_steps for SGD on x^T H x / 2 with C(x) =
    scale f(x) I: with A = I - eta H, m_k = A m_{k-1}, M_k = E x_k x_k^T = A M_{k-1} A^T +
    eta^2 (scale / 2) tr(H M_{k-1}) I (+ added I), E x_j x_k^T = A^(j-k) M_k (j >= k)."""
    a = np.eye(2) - eta * hessian
    m, second = np.asarray(x0, np.float64), np.outer(x0, x0)
    means, seconds = [], []
    for _ in range(n_steps):
        second = a @ second @ a.T + (eta * eta * scale / 2 * np.trace(hessian @ second) + added) * np.eye(2)
        m = a @ m
        means.append(m)
        seconds.append(second)

    def average(first):
        total, carried = np.zeros((2, 2)), np.zeros((2, 2))  # carried = sum_{k < j} A^(j-k) M_k
        for j in range(first, n_steps):
            if j > first:
                carried = a @ (carried + seconds[j - 1])
            total += seconds[j] + carried + carried.T
        return np.mean(means[first:], axis=0), total / (n_steps - first) ** 2

    out = {"x": (means[-1], seconds[-1]), "x_avg": average(0)}
    out["x_tail"] = average(n_steps - math.ceil(tail_fraction * n_steps))
    out["v"] = (a @ out["x"][0], a @ out["x"][1] @ a.T)
    out["v_avg"] = (a @ out["x_avg"][0], a @ out["x_avg"][1] @ a.T)
    return out


def test_loss_scaled_2d_quadratic_matches_the_exact_moment_recursions():
    # Non-constant C in 2-D (a diagonal Gaussian per cell, the product rows). A = I - eta H is
    # positive definite, so the trace of every estimator's second moment grows with the variance
    # the tent adds (between 0 and h^2 / 4 per axis and step): the law lies between the recursions.
    hessian, scale, eta, n, box = np.array([[2.0, 0.6], [0.6, 1.0]]), 2.0, 0.2, 40, 3.0
    h = 2 * box / n
    x0 = np.array([-box + (round((v + box) / h - 0.5) + 0.5) * h for v in (1.0, -0.8)])  # on a cell centre
    horizons = [1, 5, 15]
    noise = simulate.noise.loss_scaled(scale, f_min=0.0)
    law = finite_time_law(objectives.quadratic(hessian), noise, [eta], x0=x0, n_steps=horizons, bounds=((-box, -box), (box, box)), n_grid=n)
    for k, t in enumerate(horizons):
        exact = loss_scaled_moments_2d(hessian, scale, eta, x0, t)
        most = loss_scaled_moments_2d(hessian, scale, eta, x0, t, added=h * h / 4)
        for name in ESTIMATORS:
            mean = law.mean(name)[k, 0]
            assert np.abs(mean - exact[name][0]).max() <= 1e-4, (name, t)  # the box cuts ~1e-5 off
            second = np.trace(law.covariance(name)[k, 0]) + mean @ mean
            assert np.trace(exact[name][1]) - 1e-4 <= second <= np.trace(most[name][1]) + 1e-4, (name, t, second, exact[name][1], most[name][1])


def test_constant_covariance_in_2d_matches_the_additive_closed_forms():
    # state_dependent with a constant C is the additive law: the quadratic's closed forms at every
    # T, through the 2-D mixture matrix and (one closed class) the expansion.
    hessian = np.array([[2.0, 0.6], [0.6, 1.0]])
    covariance = np.array([[1.0, 0.4], [0.4, 0.6]])
    centre, x0, eta = np.array([0.2, -0.1]), np.array([1.0, -0.8]), 0.3
    f = objectives.quadratic(hessian, centre)
    noise = simulate.noise.state_dependent(lambda x: jnp.asarray(covariance, x.dtype))
    horizons = [1, 10, 100, 3000]
    law = finite_time_law(f, noise, [eta], x0=x0, n_steps=horizons, bounds=((-2.4, -2.9), (2.8, 2.3)), n_grid=31)
    assert law.method[-1, 0] == "expansion" and law.method[0, 0] == "exact"
    rho = np.max(np.abs(1 - eta * np.linalg.eigvalsh(hessian)))
    # the start split between 4 centres and the tent: at most h^2 / 4 per axis and step
    slack = 1.5 * np.max(law.grid.widths) ** 2 / 4 / (1 - rho**2)
    for k, t in enumerate(horizons):
        exact = closed_forms.quadratic_law(hessian, covariance, eta, t, x0, centre)
        for name in ESTIMATORS:
            mean, cov = exact.marginal(name)
            np.testing.assert_allclose(law.mean(name)[k, 0], mean, atol=1e-8, err_msg=f"{name} T={t}")
            scale = 1.0 if name in ("x", "v") else 1.0 / (1.0 - rho) ** 2 / (t if name != "x_tail" else law.tail_fraction * t)
            np.testing.assert_allclose(law.covariance(name)[k, 0], cov, atol=slack * scale + 1e-12, err_msg=f"{name} T={t}")


def test_the_expansion_agrees_with_exact_products_under_hessian_aligned_noise():
    # e^x - x with C = e^x: one closed class, so pi and the Poisson solution of the mixture matrix
    # complete the horizons past the switch; the exact products to T must give the same moments.
    f = objectives.from_function(lambda x: jnp.sum(jnp.exp(x) - x), 1, name="exp_minus_x")
    kwargs = dict(x0=np.array([1.0]), n_steps=[100, 2500, 4000], bounds=(-3.0, 2.5), n_grid=301)
    expanded = finite_time_law(f, simulate.noise.hessian_aligned(1.0), [0.2], **kwargs)
    exact = finite_time_law(f, simulate.noise.hessian_aligned(1.0), [0.2], expansion=False, **kwargs)
    assert expanded.switch_step[0] > 0 and (expanded.method[1:, 0] == "expansion").all() and (exact.method == "exact").all()
    for name in ESTIMATORS:
        np.testing.assert_allclose(expanded.mean(name), exact.mean(name), rtol=0, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(expanded.covariance(name), exact.covariance(name), rtol=0, atol=1e-9, err_msg=name)


def double_well():
    """(x^2 - 1)^2 / 4 + 0.1 x: Hessian-aligned noise, C(x) = [3 x^2 - 1]_+, vanishes across the
    concave band |x| < 0.58."""
    f = objectives.from_function(lambda x: jnp.sum(0.25 * (x * x - 1.0) ** 2 + 0.1 * x), 1, name="tilted_well")

    def gradient(x, rng):
        return x**3 - x + 0.1 + np.sqrt(np.maximum(3 * x * x - 1, 0.0)) * rng.standard_normal(x.shape)

    return f, simulate.noise.hessian_aligned(1.0), gradient, lambda x: x**3 - x + 0.1


FEATURES = np.array([0.6, 1.4, 0.9, 1.1, 0.4, 1.6])
LABELS = np.array([0.5, -0.3, 1.0, 0.2, -0.8, 0.4])


def least_squares():
    """(1/6) sum_j (a_j w - y_j)^2 / 2 with minibatches of 2 drawn without replacement."""
    f = objectives.least_squares(FEATURES[:, None], LABELS)

    def gradient(x, rng):
        batch = np.argsort(rng.random((x.size, FEATURES.size)), axis=1)[:, :2]  # 2 of 6, uniformly
        a, y = FEATURES[batch], LABELS[batch]
        return np.mean(a * (a * x[:, None] - y), axis=1)

    return f, simulate.noise.minibatch(2, replace=False), gradient, lambda x: np.mean(FEATURES * (FEATURES * x[:, None] - LABELS), axis=1)


def chains(gradient, full_gradient, eta, x0, horizons, n_chains, seed, tail_fraction=0.5):
    """Every estimator at each horizon, `{name: (H, C)}`, from C chains x' = x - eta g(x) run with
    NumPy from the noise's definition (independent of `simulate` and of the cell chain)."""
    rng = np.random.default_rng(seed)
    x = np.full(n_chains, float(x0))
    path = np.empty((max(horizons), n_chains))
    for k in range(max(horizons)):
        x = x - eta * gradient(x, rng)
        path[k] = x
    out = {name: [] for name in ESTIMATORS}
    for t in horizons:
        v = path[:t] - eta * full_gradient(path[:t].reshape(-1)).reshape(t, n_chains)
        out["x"].append(path[t - 1])
        out["v"].append(v[-1])
        out["x_avg"].append(path[:t].mean(axis=0))
        out["v_avg"].append(v.mean(axis=0))
        out["x_tail"].append(path[t - math.ceil(tail_fraction * t) : t].mean(axis=0))
    return {name: np.array(values) for name, values in out.items()}


CASES = {
    # objective, step size, x0, box, cells
    "hessian_aligned_double_well": (double_well, 0.1, -1.6, (-3.5, 3.5), 700),
    "minibatch_least_squares": (least_squares, 0.4, 2.0, (-3.0, 3.0), 600),
}


@pytest.mark.parametrize("name", list(CASES))
def test_simulated_chains_match_the_state_dependent_finite_time_law(name):
    """Mean and E(estimator - law mean)^2 of every estimator at every horizon within 4.5 SE plus
    the grid error (twice the change on half as many cells)."""
    make, eta, x0, bounds, n_grid = CASES[name]
    f, noise, gradient, full_gradient = make()
    horizons, n_chains = [4, 30, 120], 4000
    draws_of = chains(gradient, full_gradient, eta, x0, horizons, n_chains, seed=5)
    law = finite_time_law(f, noise, [eta], x0=np.array([x0]), n_steps=horizons, bounds=bounds, n_grid=n_grid)
    coarse = finite_time_law(f, noise, [eta], x0=np.array([x0]), n_steps=horizons, bounds=bounds, n_grid=n_grid // 2)
    for estimator in ESTIMATORS:
        for k, t in enumerate(horizons):
            draws = draws_of[estimator][k]
            mean, grid = law.mean(estimator)[k, 0, 0], 2 * abs(law.mean(estimator)[k, 0, 0] - coarse.mean(estimator)[k, 0, 0])
            se = draws.std(ddof=1) / math.sqrt(n_chains)
            assert abs(draws.mean() - mean) <= 4.5 * se + grid, (estimator, t, draws.mean(), mean, se, grid)
            squares = (draws - mean) ** 2
            variance = law.covariance(estimator)[k, 0, 0, 0]
            grid = 2 * abs(variance - coarse.covariance(estimator)[k, 0, 0, 0]) + grid**2
            se = squares.std(ddof=1) / math.sqrt(n_chains)
            assert abs(squares.mean() - variance) <= 4.5 * se + grid, (estimator, t, squares.mean(), variance, se, grid)


LOSS_SCALED_SWEEP = dict(
    objective={"kind": "quadratic", "hessian": [1.0], "center": [0.5]},
    noise={"family": "loss_scaled", "scale": 2.0, "f_min": 0.0},
    run={"step_sizes": [0.1, 0.3], "n_steps": [40], "n_chains": 2048, "seeds": [0], "x0": [1.5], "checkpoints": 2},
    output={"estimators": ["x", "x_avg", "x_tail"], "figures": []},
    theory={"stationary": True, "n_grid": 601, "bounds": [-4.0, 5.0]},
)


def check_against_the_recursions(law_row):
    """E|est - centre|^2 of a `source = law` row inside the exact recursions' bracket (from
    x0 - centre = 1; the start split between two centres adds at most h^2 / 4 at step 0)."""
    h = 9.0 / 601
    args = (1.0, 2.0, law_row["step_size"], 1.0, law_row["n_steps"])
    low = loss_scaled_moments(*args)[law_row["estimator"]]
    high = loss_scaled_moments(*args, added=h * h / 4)[law_row["estimator"]]
    assert low[0] ** 2 + low[1] - 1e-6 <= law_row["mse"] <= high[0] ** 2 + high[1] + h * h / 4 + 1e-6, (law_row, low, high)


def test_a_state_dependent_sweep_plans_its_finite_time_law():
    """`[theory] stationary = true` with loss-scaled noise: the sweep's plan has the finite-T law
    from this noise's kernel and no long-run law (the chain is absorbed at the minimizer); its
    `source = law` rows lie inside the exact recursions' bracket."""
    config = parse_config(support.config(**LOSS_SCALED_SWEEP))
    plan = sweep.plan_sweep(config)
    assert plan.law is None and plan.finite_law is not None
    rows, arrays, extra = sweep.tabulate(config, plan, {})
    assert {r["source"] for r in rows} == {"law"} and "law" not in extra
    assert len(rows) == 3 * 2 * 2  # estimators x step sizes x checkpoints (20, 40)
    for row in rows:
        check_against_the_recursions(row)


@pytest.mark.slow
def test_a_state_dependent_sweep_tabulates_its_finite_time_law(small_config, tmp_path, capsys):
    """The same sweep run: each simulated point within 4.5 SE (+ grid error) of its law row."""
    path = small_config(**LOSS_SCALED_SWEEP)
    code, err = support.run_main(capsys, "run", path, "--out", tmp_path / "out", "--quiet")
    assert code == 0, err
    rows = result_folder.read_csv(tmp_path / "out" / "small" / "results.csv")
    assert {r["source"] for r in rows} == {"simulation", "law"}
    exact = {(r["estimator"], r["step_size"], r["n_steps"]): r for r in rows if r["source"] == "law"}
    simulated = [r for r in rows if r["source"] == "simulation"]
    assert {(r["estimator"], r["step_size"], r["n_steps"]) for r in simulated} == set(exact)
    for row in simulated:
        law = exact[(row["estimator"], row["step_size"], row["n_steps"])]
        assert abs(row["mse"] - law["mse"]) <= 4.5 * row["mse_se"] + law["mse_grid_error"], (row, law)
        check_against_the_recursions(law)
