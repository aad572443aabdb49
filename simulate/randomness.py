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
`minibatch_block`. With label noise (`minibatch(..., label_noise=s)`) the labels' standard normal
draws are `normal(fold_in(block_key(seed, i, (k - 1) // B), LABEL_STREAM), (B, b) + label shape)
[(k - 1) % B]` (`label_block`): a key the indices never use, so adding it changed no existing draw.

Chains started from a law (`asgd`'s `run.x0 = "stationary"`, `theory.stationary_starts`) draw
their start from chain i's own key too, so the start of chain i depends only on (seed, i):

    start_key(seed, i)       = block_key(seed, i, START_BLOCK),    START_BLOCK = 2**32 - 1,

the last block index of the 32-bit counter, which a run would reach only after 64 (2**32 - 1)
= 2.7e11 steps (`simulate.run` stops at 2**31 - 2), so the start shares no bits with any
step's noise. `start_uniforms` turns it into float64 uniforms (53 bits from two 32-bit words,
in any precision mode). Adding it changed no existing draw.

Everything in the library that needs simulation noise calls `noise_block`, `minibatch_block`,
`label_block` or `start_uniforms`; nothing else derives keys.

`RANDOMNESS_CONTRACT_VERSION` numbers the contract's bits: it goes up whenever the same
(seed, i, k) gives different numbers, so results saved under another version are not mixed with
new ones. Version 1: the contract above. Version 2: minibatches without replacement by Floyd's
algorithm (`objectives.noise.floyd_sample`) instead of `jax.random.choice(..., replace=False)`;
every other draw unchanged.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from simulate import threefry

__all__ = [
    "LABEL_STREAM", "NOISE_BLOCK_STEPS", "RANDOMNESS_CONTRACT_VERSION", "START_BLOCK", "block_key", "chain_key", "label_block",
    "minibatch_block", "noise_block", "noise_at_step", "start_uniforms",
]

NOISE_BLOCK_STEPS = 64

#: The version of this contract: bump it whenever the bits a (seed, chain, step) gets change
#: (the key derivation, B, a noise law's or minibatch sampler's draws). Result folders record it
#: and refuse to resume points drawn under another version (`asgd.result_folder`).
RANDOMNESS_CONTRACT_VERSION = 2
#: The block index of a chain's start draws (module docstring): no run's noise reaches it.
START_BLOCK = 2**32 - 1


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
    `simulate.threefry`, which computes JAX's generator for all the chains' keys at once (faster
    on CPU: (benchmarks/README.md, "Lab notes")); Student-t draws (rejection sampling) keep `jax.random`.
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


def start_uniforms(seed: int, chain_indices, n: int) -> np.ndarray:
    """`(C, n)` float64 uniforms in [0, 1) for the starts of the given chains, chain i's from
    `block_key(seed, i, START_BLOCK)` alone: u = (a >> 5) 2^-27 + (b >> 6) 2^-53 from two
    32-bit words (a, b), the 53-bit construction of NumPy's generators, the same bits with or
    without JAX's x64 mode."""
    words = np.asarray(_start_bits(jnp.asarray(seed, jnp.uint32), jnp.asarray(chain_indices, dtype=jnp.uint32), n), dtype=np.uint64)
    return ((words[..., 0] >> 5) * float(2**26) + (words[..., 1] >> 6)) / float(2**53)


#: The label-noise draws of a minibatch (`Minibatch.label_noise`) come from the minibatch's block
#: key folded with this number: a stream of their own, under the same (seed, chain, step) contract.
LABEL_STREAM = 1


def label_block(noise, seed, chain_indices: jax.Array, block_index, label_shape: tuple[int, ...], dtype) -> jax.Array:
    """The standard normal label draws xi for steps b B + 1 .. (b + 1) B of the given chains: shape
    `(n_chains, B, batch_size) + label_shape` (one per example drawn into the minibatch)."""

    def one_chain(chain_index):
        key = jax.random.fold_in(block_key(seed, chain_index, block_index), LABEL_STREAM)
        return jax.random.normal(key, (NOISE_BLOCK_STEPS, noise.batch_size) + tuple(label_shape), dtype)

    return jax.vmap(one_chain)(chain_indices)


@partial(jax.jit, static_argnums=2)
def _start_bits(seed, chains, n: int) -> jax.Array:
    """`(C, n, 2)` uint32 words of `start_uniforms`, one compiled program per (C, n)."""
    return jax.vmap(lambda i: jax.random.bits(block_key(seed, i, START_BLOCK), (n, 2), jnp.uint32))(chains)


def noise_at_step(noise, seed: int, chain_index: int, step: int, dim: int, dtype=None) -> jax.Array:
    """eps_step of one chain, shape `(dim,)`: the reference definition of the contract (slow)."""
    if step < 1:
        raise ValueError(f"step must be >= 1 (eps_k drives the k-th update), got {step}")
    dtype = dtype or jnp.result_type(float)
    block = noise_block(noise, seed, jnp.asarray([chain_index]), (step - 1) // NOISE_BLOCK_STEPS, dim, dtype)
    return block[0, (step - 1) % NOISE_BLOCK_STEPS]
