"""`simulate.threefry` returns exactly the bits of `jax.random` for the same keys, over many keys,
block indices, shapes and both precisions; it is only used where that holds."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simulate
from simulate import randomness, threefry

SHAPES = [(64, 1), (64, 2), (64, 3), (64, 100), (7,), (5, 3, 2)]


SEEDS_AND_BLOCKS = [(0, 0), (1, 7), (12345, 2**20 + 3), (2**31 - 1, 99)]


def _block_keys(seed, n_chains, block_index):
    chains = jnp.arange(n_chains, dtype=jnp.int32)
    keys = jax.vmap(lambda i: randomness.block_key(seed, i, block_index))(chains)
    return keys, jax.random.key_data(keys)


def _keys_of_many_seeds_and_blocks(n_chains):
    """Block keys of `n_chains` chains under several (seed, block) pairs, concatenated."""
    keys = jnp.concatenate([_block_keys(seed, n_chains, block)[0] for seed, block in SEEDS_AND_BLOCKS])
    return keys, jax.random.key_data(keys)


def _same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape, a.dtype, b.dtype)
    width = {4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    mismatched = np.flatnonzero(a.view(width) != b.view(width))
    assert mismatched.size == 0, f"{mismatched.size} of {a.size} elements differ, first at {mismatched[:5]}"


def _draws(shape, dtype, wide):
    """Every law both ways, in one compiled call per (shape, dtype)."""

    def theirs(key):
        out = {
            "normal": jax.random.normal(key, shape, dtype),
            "uniform": jax.random.uniform(key, shape, dtype, minval=-1.0, maxval=1.0),
            "rademacher": jax.random.rademacher(key, shape, dtype),
            "bits32": jax.random.bits(key, shape, jnp.uint32),
        }
        if wide:
            out["bits64"] = jax.random.bits(key, shape, jnp.uint64)
        return out

    def ours(data):
        out = {
            "normal": threefry.normal(data, shape, dtype),
            "uniform": threefry.uniform(data, shape, dtype, -1.0, 1.0),
            "rademacher": threefry.rademacher(data, shape, dtype),
            "bits32": threefry.random_bits(data, shape, 32),
        }
        if wide:
            out["bits64"] = threefry.random_bits(data, shape, 64)
        return out

    return jax.jit(jax.vmap(theirs)), jax.jit(ours)


@pytest.mark.parametrize("x64", [False, True], ids=["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_every_law_equals_jax_random_bit_for_bit(shape, x64):
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        keys, data = _keys_of_many_seeds_and_blocks(33)
        theirs, ours = _draws(shape, dtype, wide=x64)
        expected, got = theirs(keys), ours(data)
        for law in expected:
            _same_bits(got[law], expected[law])


def test_equal_under_jit_and_for_a_batch_of_any_rank():
    keys, data = _block_keys(3, 12, 5)
    reference = jax.vmap(lambda k: jax.random.normal(k, (64, 2), jnp.float32))(keys)
    compiled = jax.jit(lambda d: threefry.normal(d, (64, 2), jnp.float32))(data.reshape(3, 4, 2))
    _same_bits(compiled.reshape(12, 64, 2), reference)


def test_the_tails_are_reached_exactly_as_jax_does():
    # The extreme uniforms (the clamp at nextafter(-1, 0)) map to the largest |normal|: many keys
    # make sure draws near u = -1 and u = 1 are covered by the comparison.
    keys, data = _block_keys(0, 4096, 1)
    ours = np.asarray(jax.jit(threefry.normal, static_argnums=(1, 2))(data, (64, 4), jnp.float32))
    _same_bits(ours, jax.jit(jax.vmap(lambda k: jax.random.normal(k, (64, 4), jnp.float32)))(keys))
    assert np.abs(ours).max() > 4.5


def test_supported_only_for_partitionable_threefry_and_float32_or_float64():
    assert threefry.supported(jnp.float32) and threefry.supported(jnp.float64)
    assert not threefry.supported(jnp.float16)
    with jax.threefry_partitionable(False):
        assert not threefry.supported(jnp.float32)


def test_bad_keys_and_widths_are_refused_with_the_argument_named():
    with pytest.raises(ValueError, match="keys"):
        threefry.random_bits(jnp.zeros((3, 2), jnp.int32), (4,), 32)
    with pytest.raises(ValueError, match="bit_width"):
        threefry.random_bits(jnp.zeros((3, 2), jnp.uint32), (4,), 16)


NOISE_MODELS = {
    "gaussian": lambda dim: simulate.noise.gaussian(0.7),
    "gaussian_full": lambda dim: simulate.noise.gaussian(covariance=np.eye(dim) + 0.3),
    "uniform": lambda dim: simulate.noise.uniform(1.3),
    "rademacher": lambda dim: simulate.noise.rademacher(0.5),
    "student_t": lambda dim: simulate.noise.student_t(1.0, df=5.0),
}


@pytest.mark.parametrize("x64", [False, True], ids=["float32", "float64"])
@pytest.mark.parametrize("family", NOISE_MODELS)
def test_noise_block_is_its_definition_bit_for_bit(family, x64):
    # The engine draws through randomness.noise_block; the contract defines it as noise.sample of
    # each chain's block key. The fast path must not move a bit for any law.
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        for dim in (1, 3):
            noise = NOISE_MODELS[family](dim)
            chains = jnp.arange(5, 45, dtype=jnp.int32)
            fast = jax.jit(randomness.noise_block, static_argnums=(4, 5))(noise, 11, chains, 37, dim, dtype)
            # The noise model is an argument in both programs, as in the engine: a constant df
            # would be folded at compile time and move the last bits of Student-t draws.
            definition = jax.jit(
                lambda noise, chains: jax.vmap(
                    lambda i: noise.sample(randomness.block_key(11, i, 37), (randomness.NOISE_BLOCK_STEPS,), dim, dtype)
                )(chains)
            )(noise, chains)
            _same_bits(fast, definition)
