"""Minibatch noise (issue 8): unbiased, with the finite-population covariance, and drawn under
the per-chain randomness contract (chain i's minibatch at step k depends only on (seed, i, k))."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import objectives
import simulate
from objectives.noise import floyd_sample
from simulate.randomness import NOISE_BLOCK_STEPS, RANDOMNESS_CONTRACT_VERSION, block_key, minibatch_block

# Chain 0's first two minibatches of 6 out of 40 examples under seed 0 (version 2 of the
# contract; with replacement the bits are those of version 1).
PINNED_WITHOUT_REPLACEMENT = [[1, 11, 32, 16, 38, 25], [5, 29, 16, 14, 37, 8]]
PINNED_WITH_REPLACEMENT = [[1, 27, 16, 28, 14, 25], [5, 21, 33, 24, 17, 8]]

# `minibatch_block` compiled once per shape (run eagerly, each call retraces its loop).
draw_block = jax.jit(minibatch_block, static_argnums=(0, 4))


def _least_squares(n=20, d=3, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, d)).astype(np.float32)
    y = (a @ np.arange(1.0, d + 1) + rng.standard_normal(n)).astype(np.float32)
    return objectives.least_squares(a, y)


@pytest.mark.parametrize("replace", [False, True])
def test_minibatch_gradient_is_unbiased_with_the_finite_population_covariance(replace):
    f = _least_squares()
    n, b = f.n_examples, 5
    noise = simulate.noise.minibatch(b, replace=replace)
    w = jnp.array([0.5, 1.0, 2.0], jnp.float32)
    indices = minibatch_block(noise, jnp.uint32(7), jnp.arange(2048, dtype=jnp.uint32), jnp.int32(0), n)
    indices = indices.reshape(-1, b)  # 2048 chains x 64 steps = 131,072 minibatches
    grads = np.asarray(jax.vmap(lambda idx: f.point_minibatch_grad(w, idx))(indices), np.float64)
    full = np.asarray(f.grad(w), np.float64)
    deviation = grads - full
    se = deviation.std(axis=0, ddof=1) / math.sqrt(len(grads))
    assert np.all(np.abs(deviation.mean(axis=0)) < 4.5 * se), (deviation.mean(axis=0), se)
    population = objectives.example_gradient_covariance(f, w)
    factor = 1 / b if replace else (n - b) / (b * (n - 1))
    expected = factor * population
    # Each entry of the covariance against the formula, within 4.5 Monte Carlo SE of the entry.
    products = deviation[:, :, None] * deviation[:, None, :]
    measured, entry_se = products.mean(axis=0), products.std(axis=0, ddof=1) / math.sqrt(len(grads))
    assert np.all(np.abs(measured - expected) < 4.5 * entry_se + 1e-6), (measured, expected)
    # ...and the two formulas are far enough apart that the test tells them apart.
    other = (1 / b if not replace else (n - b) / (b * (n - 1))) * population
    assert np.abs(np.trace(measured) - np.trace(other)) > 10 * np.sqrt(np.sum(entry_se.diagonal() ** 2))


def test_without_replacement_a_minibatch_never_repeats_an_example():
    noise = simulate.noise.minibatch(8)
    indices = np.asarray(minibatch_block(noise, jnp.uint32(0), jnp.arange(64, dtype=jnp.uint32), jnp.int32(3), 10))
    assert indices.shape == (64, NOISE_BLOCK_STEPS, 8) and indices.min() >= 0 and indices.max() < 10
    assert all(len(set(batch)) == 8 for batch in indices.reshape(-1, 8).tolist())


@pytest.mark.parametrize(("n", "b"), [(5, 2), (6, 3), (5, 1), (4, 4)])
def test_without_replacement_every_subset_of_size_b_is_equally_likely(n, b):
    # 4,096 chains x 64 steps = 262,144 minibatches through the contract's own path. Each of the
    # C(n, b) subsets must come out 262,144 / C(n, b) times up to chance: a chi-square test at
    # level 1e-6 (a wrong law, e.g. a biased Floyd step, is off by tens of standard errors here).
    noise = simulate.noise.minibatch(b)
    indices = np.asarray(draw_block(noise, jnp.uint32(11), jnp.arange(4096, dtype=jnp.uint32), jnp.int32(2), n))
    batches = indices.reshape(-1, b)
    assert indices.dtype == np.int32 and batches.min() >= 0 and batches.max() < n
    ordered = np.sort(batches, axis=1)
    assert np.all(np.diff(ordered, axis=1) > 0), "a minibatch repeats an example"
    # Each subset as a number in base n (its sorted indices as digits), counted.
    codes = lambda rows: np.asarray(rows) @ n ** np.arange(b)  # noqa: E731
    subsets = codes(list(itertools.combinations(range(n), b)))
    counts = np.sum(codes(ordered)[:, None] == subsets[None, :], axis=0)
    assert len(subsets) == math.comb(n, b) and counts.sum() == len(batches)
    expected = len(batches) / len(subsets)
    if len(subsets) == 1:
        return
    statistic = np.sum((counts - expected) ** 2 / expected)
    assert statistic < scipy.stats.chi2.isf(1e-6, len(subsets) - 1), (counts, expected)


def test_floyd_sample_draws_distinct_indices_for_any_batch_shape():
    key, sample = jax.random.key(3), jax.jit(floyd_sample, static_argnums=(1, 2, 3))
    everything = np.asarray(sample(key, (200,), 7, 7))
    assert everything.shape == (200, 7) and all(sorted(row) == list(range(7)) for row in everything.tolist())
    single = np.asarray(sample(key, (), 1000, 30))
    assert single.shape == (30,) and len(set(single.tolist())) == 30 and 0 <= single.min() and single.max() < 1000
    # Large n: JAX's randint takes one 32-bit word above 2^16, and the indices still cover [0, n).
    large = np.sort(np.asarray(sample(key, (256,), 200_000, 4)), axis=1)
    assert np.all(np.diff(large, axis=1) > 0) and large.min() >= 0 and 190_000 < large.max() < 200_000
    with pytest.raises(ValueError, match="b must be between 1 and n .* got b=8, n=7"):
        floyd_sample(key, (2,), 7, 8)


def test_a_chains_minibatches_depend_only_on_seed_chain_and_block():
    noise = simulate.noise.minibatch(6)
    seed, block = jnp.uint32(5), jnp.int32(4)
    many = np.asarray(draw_block(noise, seed, jnp.arange(8, dtype=jnp.uint32), block, 40))
    alone = np.asarray(draw_block(noise, seed, jnp.asarray([3], jnp.uint32), block, 40))
    by_definition = np.asarray(jax.jit(noise.sample_indices, static_argnums=(1, 2))(block_key(seed, jnp.uint32(3), block), (NOISE_BLOCK_STEPS,), 40))
    np.testing.assert_array_equal(many[3], alone[0])
    np.testing.assert_array_equal(many[3], by_definition)
    other_block = np.asarray(draw_block(noise, seed, jnp.asarray([3], jnp.uint32), jnp.int32(5), 40))
    other_seed = np.asarray(draw_block(noise, jnp.uint32(6), jnp.asarray([3], jnp.uint32), block, 40))
    assert not np.array_equal(other_block[0], alone[0]) and not np.array_equal(other_seed[0], alone[0])


def test_minibatch_bits_are_those_of_the_randomness_contract_version():
    # The first minibatches of chain 0, block 0, seed 0, as version 2 of the contract draws them.
    # If this fails, the bits changed: bump RANDOMNESS_CONTRACT_VERSION (results saved under the
    # old version must not be mixed with new ones) and pin the new values here.
    assert RANDOMNESS_CONTRACT_VERSION == 2
    first = lambda noise: np.asarray(draw_block(noise, jnp.uint32(0), jnp.zeros(1, jnp.uint32), jnp.int32(0), 40))[0, :2]  # noqa: E731
    np.testing.assert_array_equal(first(simulate.noise.minibatch(6)), PINNED_WITHOUT_REPLACEMENT)
    np.testing.assert_array_equal(first(simulate.noise.minibatch(6, replace=True)), PINNED_WITH_REPLACEMENT)


def test_a_chain_of_a_vectorized_run_equals_its_run_alone_and_chunks_change_nothing():
    f = _least_squares(n=30)
    kwargs = dict(step_sizes=[0.05, 0.2], n_steps=150, x0=np.zeros(3), noise=simulate.noise.minibatch(4), seed=5, ema_decay=0.9)
    many = simulate.run(f, n_chains=8, **kwargs)
    alone = simulate.run(f, n_chains=1, first_chain=3, **kwargs)
    chunked = simulate.run(f, n_chains=8, chunk_size=3, **kwargs)
    assert many.estimators == ("x", "x_avg", "x_tail", "x_ema") and many.v is None
    for name in many.estimators:
        np.testing.assert_array_equal(getattr(many, name)[:, 3:4], getattr(alone, name))
        np.testing.assert_array_equal(getattr(many, name), getattr(chunked, name))
    other_seed = simulate.run(f, n_chains=1, first_chain=3, **{**kwargs, "seed": 6})
    assert not np.array_equal(other_seed.x, alone.x)


def test_minibatch_sgd_converges_to_the_least_squares_solution_on_average():
    f = _least_squares(n=30)
    a, y = (np.asarray(leaf, np.float64) for leaf in f.params)
    solution = np.linalg.lstsq(a, y, rcond=None)[0]
    result = simulate.run(f, step_sizes=[0.02], n_steps=4000, n_chains=256, x0=np.zeros(3), noise=simulate.noise.minibatch(10), track_v=True)
    # On a quadratic the noise is zero-mean at every x, so the tail average (past the transient
    # from x0) is unbiased for the solution.
    errors = result.x_tail[0].astype(np.float64) - solution
    se = errors.std(axis=0, ddof=1) / math.sqrt(256)
    assert np.all(np.abs(errors.mean(axis=0)) < 4.5 * se)
    assert np.mean(np.sum(errors**2, 1)) < 0.1 * np.mean(np.sum((result.x[0] - solution) ** 2, 1))
    assert result.v is not None  # asked for: a full gradient per step


def test_bad_minibatch_input_is_named():
    f = _least_squares(n=6)
    common = dict(step_sizes=[0.1], n_steps=5, n_chains=2, x0=np.zeros(3))
    with pytest.raises(ValueError, match="batch_size=8 exceeds the 6 examples"):
        simulate.run(f, noise=simulate.noise.minibatch(8), **common)
    simulate.run(f, noise=simulate.noise.minibatch(8, replace=True), **common)  # fine with replacement
    with pytest.raises(ValueError, match="needs a finite-sum objective"):
        simulate.run(objectives.quadratic(1.0, np.zeros(3)), noise=simulate.noise.minibatch(2), **common)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        simulate.noise.minibatch(0)
    with pytest.raises(ValueError, match="no fixed covariance"):
        simulate.noise.minibatch(2).covariance(3)
    with pytest.raises(ValueError, match="method='exact' covers SGD with additive Gaussian noise only"):
        simulate.run(f, noise=simulate.noise.minibatch(2), method="exact", **common)
