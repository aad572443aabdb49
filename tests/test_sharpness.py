"""Sharpness without the Hessian (objectives.sharpness): Hutchinson's trace estimator and the
top eigenvalue by power iteration, against jnp.trace / eigvalsh of the full Hessian."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import objectives
from objectives import noise


def _dense_quadratic(spectrum, seed=0):
    """1/2 x^T H x with H = Q diag(spectrum) Q^T, through autodiff only (no closed forms)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((len(spectrum), len(spectrum))))
    h = (q * np.asarray(spectrum, float)) @ q.T
    h32 = jnp.asarray((h + h.T) / 2, jnp.float32)
    return objectives.from_function(lambda x: 0.5 * x @ h32 @ x, len(spectrum)), np.asarray(h32, float)


def _small_network(seed=0):
    data = objectives.datasets.teacher_student(200, 10, n_features=5, n_classes=3, seed=seed)
    return objectives.mlp(*data.train, hidden=(6,), seed=seed)


@pytest.fixture(scope="module")
def trained_network():
    """A 57-parameter MLP after 300 full-gradient steps, and its exact Hessian there (float64)."""
    net = _small_network()
    step = lambda x, _: (x - 0.5 * net.point_grad(x), None)  # noqa: E731
    x = jax.jit(lambda x: jax.lax.scan(step, x, None, length=300)[0])(jnp.asarray(net.x_init))
    assert float(net.value(x)) < 0.7 * float(net.value(net.x_init))
    return net, x, np.asarray(jax.jit(net.point_hessian)(x), float)


# ---- Hutchinson -----------------------------------------------------------------------------


def test_hutchinson_is_exact_for_every_probe_on_a_diagonal_hessian():
    # z^T D z = sum_i D_ii z_i^2 = tr D for every Rademacher z: estimate exact, standard error 0.
    rng = np.random.default_rng(1)
    diagonal = rng.uniform(0.1, 5.0, 7)
    f = objectives.quadratic(diagonal, rng.standard_normal(7))
    x = jnp.asarray(rng.standard_normal(7), jnp.float32)
    for seed in range(3):
        estimate, se = objectives.hutchinson_trace(f, x, jax.random.key(seed), n_probes=5)
        assert float(estimate) == pytest.approx(diagonal.sum(), rel=1e-5) and float(se) == pytest.approx(0.0, abs=1e-5)
    # A finite sum with a diagonal Hessian: least squares on rows that are scaled basis vectors.
    features = np.repeat(np.diag([1.0, 2.0, 3.0]).astype(np.float32), 4, axis=0)
    ls = objectives.least_squares(features, np.ones(12, np.float32), l2=0.5)
    estimate, se = objectives.hutchinson_trace(ls, jnp.ones(3, jnp.float32), jax.random.key(0), n_probes=4)
    assert float(estimate) == pytest.approx((1 + 4 + 9) / 3 + 3 * 0.5, rel=1e-5) and float(se) == pytest.approx(0.0, abs=1e-5)


def test_hutchinson_is_within_four_standard_errors_of_the_exact_trace(trained_network):
    f, h = _dense_quadratic([4.0, 2.0, 1.0, 0.5, -0.3, 0.1])
    estimate, se = objectives.hutchinson_trace(f, jnp.zeros(6, jnp.float32), jax.random.key(2), n_probes=200)
    assert float(se) > 0 and abs(float(estimate) - np.trace(h)) < 4 * float(se)
    net = _small_network()
    for x in (jnp.asarray(net.x_init), trained_network[1]):
        exact = float(jnp.trace(jax.jit(net.point_hessian)(x)))
        estimate, se = objectives.hutchinson_trace(net, x, jax.random.key(1), n_probes=400)
        assert float(se) > 0 and abs(float(estimate) - exact) < 4 * float(se), (float(estimate), exact, float(se))


def test_hutchinson_standard_error_matches_the_rademacher_variance():
    # Var(z^T H z) = 2 sum_{i != j} H_ij^2 for Rademacher z: the reported SE estimates its root / sqrt(m).
    f, h = _dense_quadratic([3.0, 1.0, 0.5, 0.2, 0.1], seed=3)
    m = 4000
    _, se = objectives.hutchinson_trace(f, jnp.zeros(5, jnp.float32), jax.random.key(4), n_probes=m)
    off_diagonal = h - np.diag(np.diag(h))
    expected = np.sqrt(2 * np.sum(off_diagonal**2) / m)
    assert float(se) == pytest.approx(expected, rel=0.1)


def test_hutchinson_maps_over_points_with_shared_probes_and_composes_with_jit_and_vmap():
    net = _small_network()
    rng = np.random.default_rng(5)
    points = jnp.asarray(net.x_init + 0.3 * rng.standard_normal((2, 3, net.dim)), jnp.float32)
    key = jax.random.key(6)
    estimates, ses = objectives.hutchinson_trace(net, points, key, n_probes=8)
    assert estimates.shape == (2, 3) and ses.shape == (2, 3)
    single = objectives.hutchinson_trace(net, points[1, 2], key, n_probes=8)
    np.testing.assert_allclose([estimates[1, 2], ses[1, 2]], single, rtol=1e-5)
    jitted = jax.jit(objectives.hutchinson_trace, static_argnames="n_probes")(net, points[1, 2], key, n_probes=8)
    np.testing.assert_allclose(jitted, single, rtol=1e-5)
    per_key = jax.vmap(lambda k: objectives.hutchinson_trace(net, points[0, 0], k, n_probes=8)[0])(jax.random.split(key, 3))
    assert per_key.shape == (3,) and len(np.unique(np.asarray(per_key))) == 3  # vmapped keys: independent probes


# ---- top eigenvalue -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spectrum",
    [[4.0, 2.0, 1.0, 0.5, 0.2, 0.1], [1.0, 0.5, 0.0, -0.5, -1.0, -6.0], [-0.5, -1.0, -2.0, -3.0, -4.0, -8.0]],
    ids=["positive-definite", "negative-dominant", "negative-definite"],
)
def test_top_eigenvalue_matches_eigvalsh_on_quadratics_with_a_gap(spectrum):
    f, h = _dense_quadratic(spectrum)
    top = objectives.top_eigenvalue(f, jnp.zeros(6, jnp.float32), jax.random.key(2), n_iterations=300)
    assert float(top) == pytest.approx(np.linalg.eigvalsh(h)[-1], rel=1e-3, abs=1e-4)


def test_top_eigenvalue_matches_eigvalsh_on_a_trained_network(trained_network):
    net, x, hessian = trained_network
    exact = np.linalg.eigvalsh(hessian)[-1]
    top = objectives.top_eigenvalue(net, x, jax.random.key(3), n_iterations=200)
    assert float(top) == pytest.approx(exact, rel=1e-3)
    points = jnp.stack([x, jnp.asarray(net.x_init)])
    batched = objectives.top_eigenvalue(net, points, jax.random.key(3), n_iterations=200)
    assert batched.shape == (2,) and float(batched[0]) == pytest.approx(float(top), rel=1e-6)


def test_top_eigenvalue_of_a_zero_hessian_is_zero_not_nan():
    linear = objectives.from_function(lambda x: jnp.sum(x), 4)
    assert float(objectives.top_eigenvalue(linear, jnp.ones(4, jnp.float32), jax.random.key(0), n_iterations=5)) == 0.0


def test_bad_input_names_the_argument():
    f, _ = _dense_quadratic([1.0, 2.0, 3.0])
    x, key = jnp.zeros(3, jnp.float32), jax.random.key(0)
    with pytest.raises(ValueError, match="n_probes must be an integer >= 2"):
        objectives.hutchinson_trace(f, x, key, n_probes=1)
    with pytest.raises(ValueError, match="n_iterations must be an integer >= 1"):
        objectives.top_eigenvalue(f, x, key, n_iterations=0)
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 3\)"):
        objectives.hutchinson_trace(f, jnp.zeros(4, jnp.float32), key)
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 3\)"):
        objectives.top_eigenvalue(f, jnp.zeros((2, 4), jnp.float32), key)


def test_one_randomness_convention_a_seed_or_a_key_in_the_same_place():
    # An integer seed s is jax.random.key(s); a typed key, a raw PRNGKey and a traced seed work too.
    f, _ = _dense_quadratic([1.0, 2.0, 3.0, 4.0])
    x = jnp.ones(4, jnp.float32)
    by_seed = objectives.hutchinson_trace(f, x, 7, n_probes=4)
    by_key = objectives.hutchinson_trace(f, x, jax.random.key(7), n_probes=4)
    np.testing.assert_array_equal(by_seed, by_key)
    np.testing.assert_array_equal(objectives.hutchinson_trace(f, x, seed=np.int64(7), n_probes=4), by_key)
    raw = objectives.hutchinson_trace(f, x, jax.random.PRNGKey(7), n_probes=4)
    np.testing.assert_array_equal(raw, by_key)
    traced = jax.jit(lambda s: objectives.hutchinson_trace(f, x, s, n_probes=4))(7)
    np.testing.assert_array_equal(traced, by_key)
    assert objectives.hutchinson_trace(f, x, 8, n_probes=4)[0] != by_key[0]  # the seed is used
    top_seed = objectives.top_eigenvalue(f, x, seed=3, n_iterations=3)
    assert top_seed == objectives.top_eigenvalue(f, x, jax.random.key(3), n_iterations=3)
    assert top_seed != objectives.top_eigenvalue(f, x, seed=4, n_iterations=3)  # 3 iterations: not converged
    # objectives.smoothed's Monte Carlo draws follow the same convention.
    smooth = lambda seed: objectives.smoothed(f, noise.gaussian(1.0), 0.5, method="monte_carlo", n_samples=16, seed=seed)  # noqa: E731
    assert float(smooth(5).value(x)) == float(smooth(jax.random.key(5)).value(x))


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, True, "0", jnp.zeros(3, jnp.uint32)], ids=repr)
def test_a_bad_seed_is_named_with_what_is_allowed(bad):
    f, _ = _dense_quadratic([1.0, 2.0])
    message = r"seed must be an integer in \[0, 2\*\*32\)( or a JAX random key)?.*got"
    with pytest.raises(ValueError, match=message):
        objectives.hutchinson_trace(f, jnp.zeros(2, jnp.float32), bad)
    with pytest.raises(ValueError, match=message):
        objectives.top_eigenvalue(f, jnp.zeros(2, jnp.float32), seed=bad)
