"""MNIST-1D and the 1-D CNN (issue 17): the generator's determinism, shapes, class balance and
standardization; the CNN's forward pass against a hand-written NumPy one and JAX's convolution,
its gradient against finite differences of that NumPy loss, and the library's tools on it."""

import random

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import objectives
import simulate

pytest.importorskip("mnist1d")


def test_mnist1d_is_deterministic_balanced_standardized_and_leaves_global_randomness_alone():
    np.random.seed(123)
    random.seed(123)
    before = (np.random.get_state()[1].copy(), random.getstate())
    data = objectives.datasets.mnist1d(300, seed=3)
    assert np.array_equal(np.random.get_state()[1], before[0]) and random.getstate() == before[1]
    again = objectives.datasets.mnist1d(300, seed=3)
    other = objectives.datasets.mnist1d(300, seed=4)
    (x, y), (x_test, y_test) = data.train, data.test
    assert x.shape == (240, 40) and x_test.shape == (60, 40) and y.shape == (240,) and y_test.shape == (60,)
    assert x.dtype == np.float32 and y.dtype == np.int32 and data.n_classes == 10 and data.name == "mnist1d"
    for got, want in zip(again.train + again.test, data.train + data.test):
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(other.train[0], x)
    assert np.bincount(np.concatenate([y, y_test]), minlength=10).tolist() == [30] * 10  # n / 10 per class
    assert 6 <= np.bincount(y, minlength=10).min()  # shuffled before the split: every class in train
    everything = np.concatenate([x, x_test])
    assert everything.mean() == pytest.approx(0.0, abs=1e-5) and everything.std() == pytest.approx(1.0, rel=1e-4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_samples=305), "n_samples must be a positive multiple of 10 .* got 305"),
        (dict(n_samples=0), "n_samples must be an integer >= 1, got 0"),
        (dict(n_samples=10, train_fraction=0.05), "train_fraction=0.05 leaves 0 of n_samples=10 signals for training"),
        (dict(train_fraction=1.0), r"train_fraction must be a number in \(0, 1\), got 1.0"),
    ],
)
def test_bad_mnist1d_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        objectives.datasets.mnist1d(**kwargs)


# ---- the CNN -------------------------------------------------------------------------------------

RNG = np.random.default_rng(0)
TINY_INPUTS = RNG.standard_normal((6, 9)).astype(np.float32)  # 6 signals of length 9
TINY_LABELS = np.array([0, 1, 2, 0, 1, 2], np.int32)
TINY = objectives.cnn1d(TINY_INPUTS, TINY_LABELS, channels=(2, 3), kernel_size=3, stride=2, seed=1)


def _numpy_logits(layers, signal, stride):
    """The CNN by hand in float64: 'SAME' padding (ceil(W/s) outputs, extra pad on the right),
    h[w, o] = relu(sum_{k,c} pad(h)[w s + k, c] W[k, c, o] + b[o]) per layer, then a linear layer."""
    h = np.asarray(signal, np.float64)[:, None]
    for layer in layers[:-1]:
        kernel, bias = np.asarray(layer["W"], np.float64), np.asarray(layer["b"], np.float64)
        size, width = kernel.shape[0], h.shape[0]
        n_out = -(-width // stride)
        pad = max((n_out - 1) * stride + size - width, 0)
        padded = np.concatenate([np.zeros((pad // 2, h.shape[1])), h, np.zeros((pad - pad // 2, h.shape[1]))])
        out = np.zeros((n_out, kernel.shape[2]))
        for w in range(n_out):
            for o in range(kernel.shape[2]):
                out[w, o] = sum(padded[w * stride + k, c] * kernel[k, c, o] for k in range(size) for c in range(h.shape[1])) + bias[o]
        h = np.maximum(out, 0.0)
    return h.reshape(-1) @ np.asarray(layers[-1]["W"], np.float64) + np.asarray(layers[-1]["b"], np.float64)


def _numpy_loss(objective, x):
    layers = jax.tree.map(np.asarray, objective.unravel(jnp.asarray(x, jnp.float32)))
    layers = jax.tree.map(lambda a: a.astype(np.float64), layers)
    # unravel casts to float32: rebuild float64 leaves from x directly for finite differences
    flat, offset = np.asarray(x, np.float64), 0
    for layer in layers:
        for name in ("W", "b"):
            size = layer[name].size
            layer[name] = flat[offset: offset + size].reshape(layer[name].shape)
            offset += size
    losses = []
    for signal, label in zip(TINY_INPUTS, TINY_LABELS):
        logits = _numpy_logits(layers, signal, 2)
        losses.append(np.log(np.sum(np.exp(logits - logits.max()))) + logits.max() - logits[label])
    return np.mean(losses)


def test_cnn_forward_pass_matches_a_hand_written_numpy_one_and_jax_convolution():
    x = TINY.init(1)
    layers = TINY.unravel(jnp.asarray(x))
    assert [leaf.shape for leaf in jax.tree.leaves(layers)] == [(3, 1, 2), (2,), (3, 2, 3), (3,), (9, 3), (3,)]
    assert TINY.dim == 6 + 2 + 18 + 3 + 27 + 3
    layers = jax.tree.map(lambda a: a + 0.1, layers)  # non-zero biases too
    for signal in TINY_INPUTS[:3]:
        np.testing.assert_allclose(TINY.predict_fn(layers, jnp.asarray(signal)), _numpy_logits(layers, signal, 2), rtol=1e-5, atol=1e-5)
    h = jnp.asarray(RNG.standard_normal((10, 3)), jnp.float32)
    kernel = jnp.asarray(RNG.standard_normal((4, 3, 5)), jnp.float32)
    for stride in (1, 2, 3):
        reference = jax.lax.conv_general_dilated(h[None], kernel, (stride,), "SAME", dimension_numbers=("NWC", "WIO", "NWC"))[0]
        np.testing.assert_allclose(objectives.models._conv1d(h, kernel, jnp.zeros(5), stride), reference, rtol=1e-5, atol=1e-5)
    assert float(TINY.value(x)) == pytest.approx(_numpy_loss(TINY, x), rel=1e-5)


def test_cnn_gradient_matches_central_differences_of_the_numpy_loss():
    x = TINY.init(2).astype(np.float64) + 0.05 * RNG.standard_normal(TINY.dim)
    grad = np.asarray(TINY.grad(jnp.asarray(x, jnp.float32)), np.float64)
    for _ in range(4):
        u = RNG.standard_normal(TINY.dim)
        h = 1e-5
        numeric = (_numpy_loss(TINY, x + h * u) - _numpy_loss(TINY, x - h * u)) / (2 * h)
        assert grad @ u == pytest.approx(numeric, rel=2e-3, abs=1e-5)


def test_cnn_runs_every_kernel_on_minibatches_with_an_ema_and_its_sharpness_is_the_exact_hessians():
    x0 = np.stack([TINY.init(seed) for seed in range(3)])
    assert not np.array_equal(x0[0], x0[1])  # one initialisation per seed
    # SGD on minibatches is the network experiments' own path (tests/test_network.py); here SAM
    # and momentum, each with an EMA and a schedule, one compile each.
    for algorithm in (simulate.sam(0.05), simulate.momentum(0.5)):
        result = simulate.run(TINY, step_sizes=[0.05], n_steps=40, n_chains=3, x0=x0, noise=simulate.noise.minibatch(2),
                              algorithm=algorithm, ema_decay=0.9, schedule=simulate.cosine_decay(40, 0.1))
        assert not result.diverged.any() and np.all(np.isfinite(result.x_ema))
        assert np.all(TINY.value(result.x[0]) < TINY.value(x0))  # it trains
    x = result.x_tail[0, 0]
    hessian = np.asarray(TINY.hessian(x), np.float64)
    trace, se = objectives.hutchinson_trace(TINY, x, jax.random.key(0), n_probes=64)
    assert abs(float(trace) - np.trace(hessian)) < 4 * float(se) + 1e-4
    top = objectives.top_eigenvalue(TINY, x, jax.random.key(1), n_iterations=200)
    assert float(top) == pytest.approx(np.max(np.abs(np.linalg.eigvalsh(hessian))), rel=1e-2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(channels=()), r"channels must be a non-empty sequence of positive integers, got \(\)"),
        (dict(channels=(4, 0)), r"channels\[1\] must be an integer >= 1"),
        (dict(kernel_size=0), "kernel_size must be an integer >= 1, got 0"),
        (dict(stride=-1), "stride must be an integer >= 1, got -1"),
    ],
)
def test_bad_cnn_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        objectives.cnn1d(TINY_INPUTS, TINY_LABELS, **kwargs)
