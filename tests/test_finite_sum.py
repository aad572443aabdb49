"""Finite sums, ready-made models, datasets and sharpness estimators (issue 8), against explicit
NumPy computations and jnp.linalg."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import objectives


def _regression(n=40, d=3, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, d)).astype(np.float32)
    y = (a @ np.array([1.0, -2.0, 0.5]) + 0.3 * rng.standard_normal(n)).astype(np.float32)
    return a, y


def test_least_squares_value_gradient_and_hessian_are_the_closed_forms():
    a, y = _regression()
    f = objectives.least_squares(a, y, l2=0.1)
    w = np.array([0.3, -0.1, 0.7], np.float32)
    a64, y64, w64 = a.astype(float), y.astype(float), w.astype(float)
    residual = a64 @ w64 - y64
    assert float(f.value(w)) == pytest.approx(0.5 * np.mean(residual**2) + 0.05 * w64 @ w64, rel=1e-5)
    np.testing.assert_allclose(f.grad(w), a64.T @ residual / len(y) + 0.1 * w64, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(f.hessian(w), a64.T @ a64 / len(y) + 0.1 * np.eye(3), rtol=1e-4, atol=1e-5)


def test_minibatch_gradient_is_the_mean_of_the_chosen_examples_gradients():
    a, y = _regression()
    f = objectives.least_squares(a, y, l2=0.1)
    w = jnp.array([0.3, -0.1, 0.7])
    np.testing.assert_allclose(f.point_minibatch_grad(w, jnp.arange(40)), f.grad(w), rtol=1e-5, atol=1e-6)
    batch = np.array([3, 17, 17, 39])  # a repeated index counts twice
    a64, y64 = a[batch].astype(float), y[batch].astype(float)
    expected = a64.T @ (a64 @ np.asarray(w, float) - y64) / 4 + 0.1 * np.asarray(w, float)
    np.testing.assert_allclose(f.point_minibatch_grad(w, jnp.asarray(batch)), expected, rtol=1e-4, atol=1e-5)


def test_example_gradient_covariance_is_the_population_covariance():
    a, y = _regression()
    f = objectives.least_squares(a, y)
    w = np.array([0.3, -0.1, 0.7])
    grads = a.astype(float) * (a.astype(float) @ w - y)[:, None]
    centred = grads - grads.mean(0)
    np.testing.assert_allclose(objectives.example_gradient_covariance(f, w), centred.T @ centred / 40, rtol=1e-4, atol=1e-6)


def test_with_data_reuses_compiled_code_and_rejects_other_shapes():
    a, y = _regression()
    f = objectives.least_squares(a[:30], y[:30])
    g = f.with_data((a[30:], y[30:]))
    assert g.n_examples == 10 and float(g.value(jnp.zeros(3))) == pytest.approx(0.5 * np.mean(y[30:] ** 2), rel=1e-5)
    value = jax.jit(lambda obj, x: obj.point_value(x))
    value(f, jnp.zeros(3))
    same_shapes = f.with_data((a[:30] * 2, y[:30]))
    value(same_shapes, jnp.zeros(3))
    assert value._cache_size() == 1  # new data of the same shapes: no recompilation
    with pytest.raises(ValueError, match="per-example shape"):
        f.with_data((a[:, :2], y))
    with pytest.raises(ValueError, match="same leading axis"):
        f.with_data((a, y[:5]))


def test_classifiers_learn_and_accuracy_is_the_argmax_agreement():
    data = objectives.datasets.teacher_student(400, 200, n_features=6, n_classes=3, label_noise=0.0, seed=1)
    for f in (objectives.logistic_regression(*data.train), objectives.mlp(*data.train, hidden=(8,), seed=2)):
        x = jnp.asarray(f.init(0))
        start = float(f.value(x))
        step = jax.jit(lambda x: x - 0.5 * f.point_grad(x))
        for _ in range(100):
            x = step(x)
        assert float(f.value(x)) < 0.8 * start, f.name
        test = f.with_data(data.test)
        logits = jax.vmap(lambda inp: f.predict_fn(f.unravel(x), inp))(jnp.asarray(data.test[0]))
        explicit = np.mean(np.argmax(np.asarray(logits), 1) == data.test[1])
        assert float(objectives.accuracy(test, x)) == pytest.approx(explicit)
        assert float(objectives.accuracy(test, x)) > 0.6  # well above chance (1/3)
    f = objectives.mlp(*data.train, hidden=(8,))
    assert not np.allclose(f.init(0), f.init(1)) and np.array_equal(f.init(3), f.init(3))
    assert f.dim == 6 * 8 + 8 + 8 * 3 + 3


def test_teacher_student_is_deterministic_and_flips_the_requested_fraction_of_labels():
    clean = objectives.datasets.teacher_student(4000, 10, n_classes=4, label_noise=0.0, seed=3)
    noisy = objectives.datasets.teacher_student(4000, 10, n_classes=4, label_noise=0.4, seed=3)
    again = objectives.datasets.teacher_student(4000, 10, n_classes=4, label_noise=0.4, seed=3)
    assert np.array_equal(noisy.train[1], again.train[1]) and np.array_equal(noisy.train[0], clean.train[0])
    changed = np.mean(noisy.train[1] != clean.train[1])
    expected = 0.4 * 3 / 4  # a replaced label keeps its class with probability 1/4
    assert abs(changed - expected) < 4 * math.sqrt(expected * (1 - expected) / 4000)
    assert np.array_equal(noisy.test[1], clean.test[1])  # test labels stay clean


def test_digits_ships_with_scikit_learn_and_splits_every_class():
    pytest.importorskip("sklearn")
    data = objectives.datasets.digits(test_fraction=0.25, seed=0)
    assert data.train[0].shape == (1347, 64) and data.test[0].shape == (450, 64) and data.n_classes == 10
    assert 0.0 <= data.train[0].min() and data.train[0].max() <= 1.0
    assert set(np.unique(data.test[1])) == set(range(10))


def test_hutchinson_trace_is_exact_on_a_diagonal_hessian_and_within_its_se_otherwise():
    f = objectives.quadratic(np.array([1.0, 2.0, 5.0]), np.zeros(3))
    x = jnp.zeros(3, jnp.float32)
    estimate, se = objectives.hutchinson_trace(f, x, jax.random.key(0), n_probes=8)
    assert float(estimate) == pytest.approx(8.0, rel=1e-6) and float(se) == pytest.approx(0.0, abs=1e-6)
    data = objectives.datasets.teacher_student(200, 10, n_features=5, n_classes=3, seed=0)
    net = objectives.mlp(*data.train, hidden=(6,), seed=0)
    x = jnp.asarray(net.init(0))
    exact = float(jnp.trace(net.hessian(x)))
    estimate, se = objectives.hutchinson_trace(net, x, jax.random.key(1), n_probes=400)
    assert abs(float(estimate) - exact) < 4 * float(se), (float(estimate), exact, float(se))


def test_top_eigenvalue_matches_eigvalsh_including_a_negative_dominant_eigenvalue():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    for spectrum in ([4.0, 2.0, 1.0, 0.5, 0.2, 0.1], [1.0, 0.5, 0.0, -0.5, -1.0, -6.0]):
        h = (q * np.array(spectrum)) @ q.T
        f = objectives.from_function(lambda x, h=jnp.asarray(h, jnp.float32): 0.5 * x @ h @ x, 6)
        top = objectives.top_eigenvalue(f, jnp.zeros(6, jnp.float32), jax.random.key(2), n_iterations=300)
        assert float(top) == pytest.approx(max(spectrum), rel=1e-3, abs=1e-3)
    data = objectives.datasets.teacher_student(200, 10, n_features=5, n_classes=3, seed=0)
    net = objectives.mlp(*data.train, hidden=(6,), seed=0)
    x = jnp.asarray(net.init(0))
    exact = float(jnp.linalg.eigvalsh(net.hessian(x))[-1])
    assert float(objectives.top_eigenvalue(net, x, jax.random.key(3), n_iterations=500)) == pytest.approx(exact, rel=1e-3)


def test_bad_input_names_the_argument():
    a, y = _regression()
    with pytest.raises(ValueError, match="targets must have shape"):
        objectives.least_squares(a, y[:3])
    with pytest.raises(ValueError, match="l2 must be a number >= 0"):
        objectives.least_squares(a, y, l2=-1.0)
    with pytest.raises(ValueError, match="loss must return a scalar"):
        objectives.finite_sum(lambda p, ex: p * ex, jnp.zeros(2), jnp.ones((4, 2)))
    with pytest.raises(ValueError, match="hidden must be"):
        objectives.mlp(a, np.zeros(40, np.int32) + np.arange(40) % 2, hidden=(0,))
    with pytest.raises(ValueError, match="labels must be integers"):
        objectives.logistic_regression(a, y)
    with pytest.raises(ValueError, match="label_noise must be in"):
        objectives.datasets.teacher_student(label_noise=1.5)
