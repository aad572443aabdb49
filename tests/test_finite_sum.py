"""Finite sums, ready-made models and datasets (issue 8), against closed forms and explicit NumPy
computations over the examples. Sharpness estimators: tests/test_sharpness.py."""

import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import objectives


def _regression(n=40, d=3, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, d)).astype(np.float32)
    y = (a @ np.array([1.0, -2.0, 0.5]) + 0.3 * rng.standard_normal(n)).astype(np.float32)
    return a, y


def _classification(n_train=200, n_test=50, seed=0):
    return objectives.datasets.teacher_student(n_train, n_test, n_features=5, n_classes=3, teacher_hidden=8, seed=seed)


def _softmax(logits):
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


# ---- finite sums: value, gradients, minibatches ----------------------------------------------


def test_least_squares_value_gradient_and_hessian_are_the_closed_forms():
    a, y = _regression()
    f = objectives.least_squares(a, y, l2=0.1)
    w = np.array([0.3, -0.1, 0.7], np.float32)
    a64, y64, w64 = a.astype(float), y.astype(float), w.astype(float)
    residual = a64 @ w64 - y64
    assert float(f.value(w)) == pytest.approx(0.5 * np.mean(residual**2) + 0.05 * w64 @ w64, rel=1e-5)
    np.testing.assert_allclose(f.grad(w), a64.T @ residual / len(y) + 0.1 * w64, rtol=1e-4, atol=1e-5)
    hessian = jax.jit(f.point_hessian)(jnp.asarray(w))
    np.testing.assert_allclose(hessian, a64.T @ a64 / len(y) + 0.1 * np.eye(3), rtol=1e-4, atol=1e-5)


def test_logistic_regression_value_and_gradient_are_the_explicit_mean_over_examples():
    data = _classification()
    inputs, labels = (np.asarray(v) for v in data.train)
    f = objectives.logistic_regression(inputs, labels, l2=0.05)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(f.dim).astype(np.float32)
    params = f.unravel(jnp.asarray(x))
    w, b = np.asarray(params["W"], float), np.asarray(params["b"], float)
    logits = inputs.astype(float) @ w + b
    probabilities = _softmax(logits)
    one_hot = np.eye(3)[labels]
    losses = -np.log(probabilities[np.arange(len(labels)), labels])
    x64 = x.astype(float)
    assert float(f.value(x)) == pytest.approx(losses.mean() + 0.025 * x64 @ x64, rel=1e-5)
    grad = f.unravel(f.grad(x))
    residual = probabilities - one_hot
    np.testing.assert_allclose(grad["W"], inputs.T.astype(float) @ residual / len(labels) + 0.05 * w, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grad["b"], residual.mean(axis=0) + 0.05 * b, rtol=1e-4, atol=1e-5)


def test_minibatch_gradient_is_the_mean_of_the_chosen_examples_gradients():
    a, y = _regression()
    f = objectives.least_squares(a, y, l2=0.1)
    w = jnp.array([0.3, -0.1, 0.7])
    np.testing.assert_allclose(f.point_minibatch_grad(w, jnp.arange(40, dtype=jnp.int32)), f.grad(w), rtol=1e-5, atol=1e-6)
    batch = np.array([3, 17, 17, 39], np.int32)  # a repeated index counts twice
    a64, y64 = a[batch].astype(float), y[batch].astype(float)
    expected = a64.T @ (a64 @ np.asarray(w, float) - y64) / 4 + 0.1 * np.asarray(w, float)
    np.testing.assert_allclose(f.point_minibatch_grad(w, jnp.asarray(batch)), expected, rtol=1e-4, atol=1e-5)


def test_mlp_minibatch_gradient_is_the_mean_of_independently_computed_example_gradients():
    data = _classification()
    inputs, labels = data.train
    net = objectives.mlp(inputs, labels, hidden=(6,), l2=0.01, seed=4)
    x = jnp.asarray(net.x_init)

    def example_loss(layers, one_input, label):  # the network written out again, for one example
        hidden = jnp.tanh(one_input @ layers[0]["W"] + layers[0]["b"])
        logits = hidden @ layers[1]["W"] + layers[1]["b"]
        return jax.nn.logsumexp(logits) - logits[label]

    batch = np.array([0, 7, 7, 123, 199], np.int32)
    example_grad = jax.jit(lambda x, one_input, label: ravel_pytree(jax.grad(example_loss)(net.unravel(x), one_input, label))[0])
    grads = [example_grad(x, inputs[j], labels[j]) for j in batch]
    expected = np.mean(np.asarray(grads, float), axis=0) + 0.01 * np.asarray(x, float)
    np.testing.assert_allclose(net.point_minibatch_grad(x, jnp.asarray(batch)), expected, rtol=1e-4, atol=1e-6)
    everything = jnp.arange(net.n_examples, dtype=jnp.int32)
    np.testing.assert_allclose(net.point_minibatch_grad(x, everything), net.grad(x), rtol=1e-5, atol=1e-6)


def test_example_gradient_covariance_is_the_population_covariance():
    a, y = _regression()
    f = objectives.least_squares(a, y, l2=0.3)  # l2 shifts every example's gradient alike
    w = np.array([0.3, -0.1, 0.7])
    grads = a.astype(float) * (a.astype(float) @ w - y)[:, None]
    centred = grads - grads.mean(0)
    covariance = objectives.example_gradient_covariance(f, w)
    assert covariance.shape == (3, 3) and covariance.dtype == np.float64
    np.testing.assert_allclose(covariance, centred.T @ centred / 40, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match=r"x must be one point of shape \(3,\)"):
        objectives.example_gradient_covariance(f, np.zeros((2, 3)))


def test_with_data_reuses_compiled_code_and_rejects_other_shapes():
    a, y = _regression()
    f = objectives.least_squares(a[:30], y[:30])
    g = f.with_data((a[30:], y[30:]))
    assert g.n_examples == 10 and dict(g.info)["n_examples"] == 10
    assert float(g.value(jnp.zeros(3))) == pytest.approx(0.5 * np.mean(y[30:] ** 2), rel=1e-5)
    value = jax.jit(lambda obj, x: obj.point_value(x))
    minibatch = jax.jit(lambda obj, x, idx: obj.point_minibatch_grad(x, idx))
    indices = jnp.array([0, 5], jnp.int32)
    value(f, jnp.zeros(3))
    minibatch(f, jnp.zeros(3), indices)
    same_shapes = f.with_data((a[:30] * 2, y[:30]))
    assert float(value(same_shapes, jnp.ones(3))) == pytest.approx(float(same_shapes.value(jnp.ones(3))), rel=1e-6)
    minibatch(same_shapes, jnp.zeros(3), indices)
    assert value._cache_size() == 1 and minibatch._cache_size() == 1  # new data, same shapes: no recompilation
    np.testing.assert_array_equal(same_shapes.x_init, f.x_init)
    with pytest.raises(ValueError, match="per-example shape"):
        f.with_data((a[:, :2], y))
    with pytest.raises(ValueError, match="same leading axis"):
        f.with_data((a, y[:5]))
    with pytest.raises(ValueError, match="dtype float32"):
        f.with_data((a, y.astype(np.int32)))
    with pytest.raises(ValueError, match="structure"):
        f.with_data({"inputs": a, "targets": y})


def test_finite_sum_accepts_any_data_pytree_and_holds_its_starting_point():
    rng = np.random.default_rng(2)
    data = {"inputs": rng.standard_normal((25, 2)).astype(np.float32), "weights": rng.random(25).astype(np.float32)}
    params_init = {"scale": jnp.array([0.5, -1.0], jnp.float32), "offset": jnp.array(0.25, jnp.float32)}

    def loss(p, example):
        return example["weights"] * jnp.log1p(jnp.exp(jnp.dot(p["scale"], example["inputs"]) + p["offset"]))

    f = objectives.finite_sum(loss, params_init, data, l2=0.2)
    assert f.name == "finite_sum" and f.n_examples == 25 and f.dim == 3
    x = f.x_init
    np.testing.assert_array_equal(x, np.asarray(ravel_pytree(params_init)[0]))
    np.testing.assert_array_equal(f.init(7), x)  # no init function: every seed starts at x_init
    x[:] = 99.0  # a copy: the objective's starting point cannot be changed from outside
    assert not np.any(f.x_init == 99.0)
    p = f.unravel(jnp.asarray(f.x_init))
    explicit = np.mean(data["weights"] * np.log1p(np.exp(data["inputs"] @ np.asarray(p["scale"]) + float(p["offset"]))))
    explicit += 0.1 * float(np.sum(f.x_init.astype(float) ** 2))
    assert float(f.value(f.x_init)) == pytest.approx(explicit, rel=1e-5)


# ---- classifiers: learning, accuracy, initialisation -----------------------------------------


def test_classifiers_learn_and_accuracy_is_the_argmax_agreement():
    data = objectives.datasets.teacher_student(400, 200, n_features=6, n_classes=3, label_noise=0.0, seed=1)
    for f in (objectives.logistic_regression(*data.train), objectives.mlp(*data.train, hidden=(8,), seed=2)):
        x = jnp.asarray(f.init(0))
        start = float(f.value(x))
        step = jax.jit(lambda x, f=f: x - 0.5 * f.point_grad(x))
        for _ in range(100):
            x = step(x)
        assert float(f.value(x)) < 0.8 * start, f.name
        test = f.with_data(data.test)
        logits = jax.vmap(lambda inp, f=f, x=x: f.predict_fn(f.unravel(x), inp))(jnp.asarray(data.test[0]))
        explicit = np.mean(np.argmax(np.asarray(logits), 1) == data.test[1])
        assert float(objectives.accuracy(test, x)) == pytest.approx(explicit)
        assert float(objectives.accuracy(f, x, data.test)) == pytest.approx(explicit)  # data= is the same
        assert float(objectives.accuracy(test, x)) > 0.6  # well above chance (1/3)
        points = jnp.stack([x, jnp.asarray(f.init(1)), 2.0 * x])
        batched = objectives.accuracy(test, points)
        assert batched.shape == (3,) and np.all((0.0 <= batched) & (batched <= 1.0))
        np.testing.assert_allclose(batched, [float(objectives.accuracy(test, p)) for p in points])


def test_mlp_initialisation_is_seeded_lecun_normal():
    data = _classification()
    f = objectives.mlp(*data.train, hidden=(8,))
    assert f.dim == 5 * 8 + 8 + 8 * 3 + 3
    assert not np.allclose(f.init(0), f.init(1)) and np.array_equal(f.init(3), f.init(3))
    np.testing.assert_array_equal(f.x_init, f.init(0))
    np.testing.assert_array_equal(objectives.mlp(*data.train, hidden=(8,), seed=5).x_init, f.init(5))
    wide = objectives.mlp(np.ones((4, 64), np.float32), np.arange(4, dtype=np.int32) % 2, hidden=(512,), seed=3)
    layers = wide.unravel(jnp.asarray(wide.x_init))
    assert not np.any(np.asarray(layers[0]["b"])) and not np.any(np.asarray(layers[1]["b"]))
    for layer, fan_in in zip(layers, (64, 512)):
        weights = np.asarray(layer["W"], float).ravel()
        variance, n = 1.0 / fan_in, weights.size
        assert abs(weights.mean()) < 4 * math.sqrt(variance / n)
        assert abs(weights.var() - variance) < 4 * variance * math.sqrt(2.0 / n)  # Var of a normal's s^2


# ---- datasets -------------------------------------------------------------------------------


def test_teacher_student_is_deterministic_and_flips_the_requested_fraction_of_labels():
    clean = objectives.datasets.teacher_student(4000, 10, n_classes=4, label_noise=0.0, seed=3)
    noisy = objectives.datasets.teacher_student(4000, 10, n_classes=4, label_noise=0.4, seed=3)
    again = objectives.datasets.teacher_student(4000, 10, n_classes=4, label_noise=0.4, seed=3)
    assert np.array_equal(noisy.train[1], again.train[1]) and np.array_equal(noisy.train[0], clean.train[0])
    changed = np.mean(noisy.train[1] != clean.train[1])
    expected = 0.4 * 3 / 4  # a replaced label keeps its class with probability 1/4
    assert abs(changed - expected) < 4 * math.sqrt(expected * (1 - expected) / 4000)
    assert np.array_equal(noisy.test[1], clean.test[1])  # test labels stay clean
    other = objectives.datasets.teacher_student(4000, 10, n_classes=4, label_noise=0.4, seed=4)
    assert not np.array_equal(other.train[0], noisy.train[0])


def test_teacher_student_shapes_dtypes_and_classes():
    data = objectives.datasets.teacher_student(300, 120, n_features=7, n_classes=5, teacher_hidden=9, seed=0)
    (train_x, train_y), (test_x, test_y) = data.train, data.test
    assert train_x.shape == (300, 7) and test_x.shape == (120, 7) and train_y.shape == (300,) and test_y.shape == (120,)
    assert train_x.dtype == np.float32 and test_x.dtype == np.float32
    assert train_y.dtype == np.int32 and test_y.dtype == np.int32
    assert data.n_classes == 5 and data.name == "teacher_student"
    assert train_y.min() >= 0 and train_y.max() < 5 and len(np.unique(test_y)) >= 2


def test_digits_ships_with_scikit_learn_and_splits_every_class_in_proportion():
    pytest.importorskip("sklearn")
    data = objectives.datasets.digits(test_fraction=0.25, seed=0)
    assert data.train[0].shape == (1347, 64) and data.test[0].shape == (450, 64) and data.n_classes == 10
    assert data.train[0].dtype == np.float32 and data.train[1].dtype == np.int32
    assert 0.0 <= data.train[0].min() and data.train[0].max() <= 1.0
    for k in range(10):
        in_test, total = np.sum(data.test[1] == k), np.sum(data.test[1] == k) + np.sum(data.train[1] == k)
        assert abs(in_test - 0.25 * total) <= 0.5  # stratified: each class rounded to its share
    again, other = objectives.datasets.digits(seed=0), objectives.datasets.digits(seed=1)
    assert np.array_equal(again.test[0], data.test[0]) and not np.array_equal(other.test[0], data.test[0])


def test_digits_without_scikit_learn_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"asgd-smoothing\[nn\]"):
        objectives.datasets.digits()


# ---- validation -----------------------------------------------------------------------------


def test_bad_input_names_the_argument():
    a, y = _regression()
    with pytest.raises(ValueError, match="targets must have shape"):
        objectives.least_squares(a, y[:3])
    with pytest.raises(ValueError, match="l2 must be a finite number >= 0"):
        objectives.least_squares(a, y, l2=-1.0)
    with pytest.raises(ValueError, match="loss must return a scalar"):
        objectives.finite_sum(lambda p, ex: p * ex, jnp.zeros(2), jnp.ones((4, 2)))
    with pytest.raises(ValueError, match="same leading axis"):
        objectives.finite_sum(lambda p, ex: jnp.sum(p), jnp.zeros(2), (jnp.ones((4, 2)), jnp.ones(3)))
    with pytest.raises(ValueError, match="params_init must be a non-empty pytree of float arrays"):
        objectives.finite_sum(lambda p, ex: jnp.sum(ex), jnp.zeros(2, jnp.int32), jnp.ones((4, 2)))
    labels = (np.arange(40) % 2).astype(np.int32)
    with pytest.raises(ValueError, match=r"hidden\[0\] must be an integer >= 1"):
        objectives.mlp(a, labels, hidden=(0,))
    with pytest.raises(ValueError, match="activation must be one of"):
        objectives.mlp(a, labels, activation="sigmoid")
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*32\)"):
        objectives.mlp(a, labels, seed=1.5)
    with pytest.raises(ValueError, match="labels must be integers"):
        objectives.logistic_regression(a, y)
    with pytest.raises(ValueError, match="n_classes must be an integer >= 2 covering the labels"):
        objectives.logistic_regression(a, labels + 2, n_classes=3)
    f = objectives.logistic_regression(a, labels)
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*32\)"):
        f.init(-1)
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 8\)"):
        objectives.accuracy(f, np.zeros(3))
    with pytest.raises(ValueError, match="labels must be integers of shape"):
        objectives.accuracy(f, np.zeros(8), (a, y))
    with pytest.raises(ValueError, match="objective must be a classifier"):
        objectives.accuracy(objectives.least_squares(a, y), np.zeros(3))
    with pytest.raises(ValueError, match="label_noise must be a number in"):
        objectives.datasets.teacher_student(label_noise=1.5)
    with pytest.raises(ValueError, match="n_classes must be an integer >= 2"):
        objectives.datasets.teacher_student(n_classes=1)
    with pytest.raises(ValueError, match="test_fraction must be a number in"):
        objectives.datasets.digits(test_fraction=1.0)
