"""Label noise on minibatches (`simulate.noise.minibatch(b, replace, label_noise=s)`): the
simulator's draws, the exact law's kernel (a Gaussian per minibatch) and their agreement.

The regression closed form (stationary variance with label noise) is in
`test_state_dependent_law.test_minibatch_kernel_matches_the_regression_closed_form`.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import objectives
import simulate
from simulate.gradients import gradient_source
from theory.finite_time import ESTIMATORS, finite_time_law
from theory.state_law import state_dependent_law

FEATURES = np.array([0.6, 1.4, 0.9, 1.1, 0.4, 1.6])
LABELS = np.array([0.5, -0.3, 1.0, 0.2, -0.8, 0.4])
SCALE = 0.7


def least_squares():
    return objectives.least_squares(FEATURES[:, None], LABELS)


def test_label_noise_draws_have_the_stated_covariance_and_keep_the_minibatches():
    f, x, model = least_squares(), jnp.array([0.3]), simulate.noise.minibatch(2, label_noise=SCALE)
    noisy, plain = gradient_source(model), gradient_source(simulate.noise.minibatch(2))

    @jax.jit
    def draws(chains):  # one program: compiling is most of this test's time
        indices, xi = noisy.draw_block(0, chains, 0, f, jnp.float64)
        grads = jax.vmap(jax.vmap(lambda d: noisy.grad(f, x, d)))((indices, xi))
        return indices, plain.draw_block(0, chains, 0, f, jnp.float64), grads - f.grad(x)[None, None], model.covariance_at(f, x)

    with jax.enable_x64(True):
        indices, plain_indices, noise, expected = draws(jnp.arange(1000))
    # the label stream leaves the minibatch indices as they were
    np.testing.assert_array_equal(indices, plain_indices)
    # (n - b) / (b (n - 1)) S(x) + s^2 mean(a^2) / b: the minibatch's variance and the labels'
    a, y = FEATURES.astype(np.float32).astype(np.float64), LABELS.astype(np.float32).astype(np.float64)
    assert math.isclose(float(expected[0, 0]), 0.4 * np.var(a * (a * 0.3 - y)) + SCALE**2 * np.mean(a * a) / 2, rel_tol=1e-6)
    noise = np.asarray(noise, np.float64).reshape(-1)
    assert abs(noise.mean()) <= 4.5 * noise.std() / math.sqrt(noise.size)
    centred = noise - noise.mean()
    se = math.sqrt((np.mean(centred**4) - centred.var() ** 2) / noise.size)
    assert abs(centred.var() - float(expected[0, 0])) <= 4.5 * se, (centred.var(), expected, se)


def test_the_full_batch_with_label_noise_is_label_noise():
    # b = n without replacement: one minibatch (every example once), the noise label_noise(s)'s.
    f = least_squares()
    kwargs = dict(x0=np.array([1.5]), n_steps=[5, 60], bounds=(-2.0, 3.0), n_grid=301)
    batch = finite_time_law(f, simulate.noise.minibatch(6, label_noise=SCALE), [0.2, 0.5], **kwargs)
    label = finite_time_law(f, simulate.noise.label_noise(SCALE), [0.2, 0.5], **kwargs)
    for name in ESTIMATORS:
        np.testing.assert_allclose(batch.mean(name), label.mean(name), rtol=0, atol=1e-9)
        np.testing.assert_allclose(batch.covariance(name), label.covariance(name), rtol=1e-6, atol=1e-12)


def test_bad_label_noise_is_refused_by_name():
    for bad in (-0.1, float("nan"), "0.5", True):
        with pytest.raises(ValueError, match="label_noise must be a finite number >= 0"):
            simulate.noise.minibatch(2, label_noise=bad)
    classes = (jnp.ones((4, 1), jnp.float32), jnp.arange(4))  # integer targets: not a regression
    classification = objectives.finite_sum(lambda x, example: jnp.sum(x * example[0]) ** 2, jnp.zeros(1), classes)
    with pytest.raises(ValueError, match="label_noise needs data"):
        simulate.run(classification, step_sizes=[0.1], n_steps=2, n_chains=2, x0=np.zeros(1), noise=simulate.noise.minibatch(2, label_noise=0.5))


@pytest.mark.slow
def test_simulated_label_noise_minibatches_match_the_law():
    f, noise, eta = least_squares(), simulate.noise.minibatch(2, label_noise=SCALE), 0.4
    law = state_dependent_law(f, noise, [eta], bounds=(-2.0, 3.0), n_grid=301)
    with jax.enable_x64(True):
        result = simulate.run(f, step_sizes=[eta], n_steps=200, n_chains=8000, x0=law.sample(8000, seed=1)[0], noise=noise, seed=2, dtype="float64", checkpoints=1)
    x = np.asarray(result.x[0, :, 0], np.float64)
    grid = 2 * abs(law.mean[0, 0] - law.coarse.mean[0, 0])
    assert abs(x.mean() - law.mean[0, 0]) <= 4.5 * x.std() / math.sqrt(x.size) + grid
    centred = x - x.mean()
    se = math.sqrt((np.mean(centred**4) - centred.var() ** 2) / x.size)
    grid = 2 * abs(law.covariance[0, 0, 0] - law.coarse.covariance[0, 0, 0])
    assert abs(centred.var() - law.covariance[0, 0, 0]) <= 4.5 * se + grid
