"""The randomness contract: chain i's noise at step k depends only on (seed, i, k).

Step k >= 1 uses eps_k in x_k = x_{k-1} - eta (grad f(x_{k-1}) + eps_k). The noise of chain i is
drawn in blocks of `NOISE_BLOCK_STEPS` consecutive steps from one key:

    chain_key(seed, i)       = fold_in(key(seed), i)
    block_key(seed, i, b)    = fold_in(chain_key(seed, i), b)
    eps_k (chain i)          = noise.sample(block_key(seed, i, (k - 1) // B), (B,), dim)[(k - 1) % B]

with B = NOISE_BLOCK_STEPS, a constant of the library. Consequences, each tested:

- the same seed gives the same numbers, on any number of chains, in any chunking, on any number
  of devices (nothing depends on how many chains run beside chain i);
- the noise does not depend on the step size: every step size in a sweep sees the same eps
  (common random numbers), which makes differences between step sizes far less noisy;
- the noise does not depend on n_steps: a longer run extends a shorter one.

Drawing a block per key (instead of one key per step) keeps the cost close to one bulk
`jax.random` call: deriving a key costs as much as drawing two numbers.

Minibatches follow the same contract: chain i's minibatch at step k is
`noise.sample_indices(block_key(seed, i, (k - 1) // B), (B,), n)[(k - 1) % B]`, drawn by
`minibatch_block`.

Everything in the library that needs simulation noise calls `noise_block` or `minibatch_block`;
nothing else derives keys.

`RANDOMNESS_CONTRACT_VERSION` numbers the contract's bits: it goes up whenever the same
(seed, i, k) gives different numbers, so results saved under another version are not mixed with
new ones. Version 1: the contract above. Version 2: minibatches without replacement by Floyd's
algorithm (`objectives.noise.floyd_sample`) instead of `jax.random.choice(..., replace=False)`;
every other draw unchanged.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from simulate import threefry

__all__ = ["NOISE_BLOCK_STEPS", "RANDOMNESS_CONTRACT_VERSION", "block_key", "chain_key", "minibatch_block", "noise_block", "noise_at_step"]

NOISE_BLOCK_STEPS = 64

#: The version of this contract: bump it whenever the bits a (seed, chain, step) gets change
#: (the key derivation, B, a noise law's or minibatch sampler's draws). Result folders record it
#: and refuse to resume points drawn under another version (`asgd.result_folder`).
RANDOMNESS_CONTRACT_VERSION = 2


def chain_key(seed: jax.Array, chain_index: jax.Array) -> jax.Array:
    """The key of chain `chain_index` under `seed` (both integer scalars)."""
    return jax.random.fold_in(jax.random.key(seed), chain_index)


def block_key(seed, chain_index, block_index) -> jax.Array:
    """The key of noise block `block_index` of chain `chain_index`: every draw of the steps
    b B + 1 .. (b + 1) B of that chain comes from it."""
    return jax.random.fold_in(chain_key(seed, chain_index), block_index)


def noise_block(noise, seed, chain_indices: jax.Array, block_index, dim: int, dtype) -> jax.Array:
    """eps for steps b B + 1 .. (b + 1) B of the given chains: shape `(n_chains, B, dim)`.

    By definition `vmap(noise.sample(block_key(seed, i, b), (B,), dim))` over the chains. For the
    Gaussian, uniform and Rademacher laws in float32/float64 the same bits come from
    `simulate.threefry`, which computes JAX's generator for all the chains' keys at once (3-6x
    faster on CPU); Student-t draws (rejection sampling) keep `jax.random`.
    """
    keys = jax.vmap(lambda chain_index: block_key(seed, chain_index, block_index))(chain_indices)
    shape = (NOISE_BLOCK_STEPS, dim)
    law = noise.standard_law
    if law.threefry_bulk and threefry.supported(dtype):
        # The family's own draw with `threefry` in place of `jax.random`: the same bits for
        # every key at once (its functions take a batch of keys).
        z = law.standard(threefry, jax.random.key_data(keys), shape, dtype, noise.df)
        return noise.from_standardized(z, dtype)
    return jax.vmap(lambda key: noise.sample(key, (NOISE_BLOCK_STEPS,), dim, dtype))(keys)


def minibatch_block(noise, seed, chain_indices: jax.Array, block_index, n_examples: int) -> jax.Array:
    """Minibatch indices for steps b B + 1 .. (b + 1) B of the given chains (a `Minibatch` noise
    model, `n_examples` examples): int32 of shape `(n_chains, B, batch_size)`.

    By definition `vmap(noise.sample_indices(block_key(seed, i, b), (B,), n_examples))` over the
    chains: without replacement, each minibatch is a uniform subset (Floyd's algorithm)."""

    def one_chain(chain_index):
        return noise.sample_indices(block_key(seed, chain_index, block_index), (NOISE_BLOCK_STEPS,), n_examples)

    return jax.vmap(one_chain)(chain_indices)


def noise_at_step(noise, seed: int, chain_index: int, step: int, dim: int, dtype=None) -> jax.Array:
    """eps_step of one chain, shape `(dim,)`: the reference definition of the contract (slow)."""
    if step < 1:
        raise ValueError(f"step must be >= 1 (eps_k drives the k-th update), got {step}")
    dtype = dtype or jnp.result_type(float)
    block = noise_block(noise, seed, jnp.asarray([chain_index]), (step - 1) // NOISE_BLOCK_STEPS, dim, dtype)
    return block[0, (step - 1) % NOISE_BLOCK_STEPS]
