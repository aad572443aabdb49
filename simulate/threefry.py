"""JAX's own Threefry draws, computed faster: the same bits as `jax.random`, many keys at once.

`jax.random.normal(key, shape, dtype)` with the default generator (Threefry-2x32, partitionable
counters) is a fixed, public algorithm (Salmon et al., "Parallel random numbers: as easy as
1, 2, 3", SC 2011; JAX's `jax/_src/random/threefry2x32.py` and `core.py`):

    (b1, b2)  = threefry2x32(key, (hi(n), lo(n)))      n = row-major index of the element
    bits      = b1 ^ b2                                 (32-bit draws)
              = b1 << 32 | b2                           (64-bit draws)
    u         = bitcast(bits >> (width - mantissa) | bits(1.0)) - 1          in [0, 1)
    uniform   = max(lo, u (hi - lo) + lo)
    normal    = sqrt(2) erfinv(uniform on [nextafter(-1, 0), 1))
    rademacher= 2 [uniform(default float dtype) < 1/2] - 1

On CPU, JAX lowers the 20 Threefry rounds as a rolled loop (`fori_loop` of 5 iterations over
whole arrays), so each draw makes several passes over memory. Here the rounds are unrolled into
one elementwise expression that XLA fuses with the transform, several times faster than
`vmap(jax.random.normal)` (benchmarks/README.md, "Lab notes"). The outputs are bit-identical:
the tests compare them with `jax.random` over many keys, shapes and both precisions.

This is only valid for JAX's default generator with partitionable counters (the default since
JAX 0.5); `supported()` says whether that holds, and callers fall back to `jax.random` if not.

Shapes: `keys` is a batch of raw key data, uint32 of shape `(*batch, 2)` (from
`jax.random.key_data`); draws have shape `(*batch, *shape)`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["normal", "rademacher", "random_bits", "supported", "uniform"]

# Rotation constants of Threefry-2x32 (Salmon et al. 2011, Table 4), alternating every 4 rounds.
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_KEY_SCHEDULE_PARITY = 0x1BD11BDA


def supported(dtype) -> bool:
    """Whether draws of `dtype` here equal `jax.random`'s under the current JAX configuration."""
    impl = str(jax.config.jax_default_prng_impl)
    return (
        impl == "threefry2x32"
        and bool(jax.config.jax_threefry_partitionable)
        and jnp.dtype(dtype) in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64))
    )


def _rotate_left(x: jax.Array, distance: int) -> jax.Array:
    return (x << np.uint32(distance)) | (x >> np.uint32(32 - distance))


def _threefry2x32(k1, k2, x1, x2):
    """The Threefry-2x32 block cipher, 20 rounds, unrolled: uint32 arrays in, uint32 pair out."""
    ks = (k1, k2, k1 ^ k2 ^ np.uint32(_KEY_SCHEDULE_PARITY))
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for i in range(5):
        for rotation in _ROTATIONS[i % 2]:
            x1 = x1 + x2
            x2 = _rotate_left(x2, rotation) ^ x1
        x1 = x1 + ks[(i + 1) % 3]
        x2 = x2 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x1, x2


def random_bits(keys: jax.Array, shape: tuple[int, ...], bit_width: int) -> jax.Array:
    """Raw bits equal to `jax.random.bits(key, shape, uint{bit_width})` for each key.

    **Arguments:**

    - `keys`: uint32 key data of shape `(*batch, 2)`.
    - `shape`: the shape drawn per key.
    - `bit_width`: 32 or 64.

    **Returns:** uint32 or uint64 of shape `(*batch, *shape)`.
    """
    keys = jnp.asarray(keys)
    if keys.dtype != jnp.uint32 or keys.shape[-1:] != (2,):
        raise ValueError(f"keys must be uint32 key data of shape (..., 2), got {keys.dtype} {keys.shape}")
    if bit_width not in (32, 64):
        raise ValueError(f"bit_width must be 32 or 64, got {bit_width!r}")
    shape = tuple(shape)
    size = int(np.prod(shape, dtype=np.int64))
    if size >= 2**32:
        raise ValueError(f"shape {shape} has {size} elements; at most 2**32 - 1 per key are supported")
    # The element counter is the 64-bit row-major index split into (hi, lo) words; hi is 0 here.
    full = keys.shape[:-1] + shape
    counter_lo = jnp.broadcast_to(lax.iota(jnp.uint32, size).reshape(shape), full)
    counter_hi = jnp.zeros(full, jnp.uint32)
    expand = (Ellipsis,) + (None,) * len(shape)
    k1 = jnp.broadcast_to(keys[..., 0][expand], full)
    k2 = jnp.broadcast_to(keys[..., 1][expand], full)
    b1, b2 = _threefry2x32(k1, k2, counter_hi, counter_lo)
    if bit_width == 32:
        return b1 ^ b2
    return (b1.astype(jnp.uint64) << np.uint64(32)) | b2.astype(jnp.uint64)


def _unit_interval(keys, shape, dtype) -> jax.Array:
    """u in [0, 1) from the top mantissa bits, exactly as `jax.random.uniform` makes it."""
    finfo = jnp.finfo(dtype)
    bits = random_bits(keys, shape, finfo.bits)
    uint = bits.dtype
    one_bits = np.array(1.0, dtype).view(uint)
    mantissa = (bits >> np.array(finfo.bits - finfo.nmant, uint)) | one_bits
    return lax.bitcast_convert_type(mantissa, dtype) - np.array(1.0, dtype)


def uniform(keys, shape, dtype, minval=0.0, maxval=1.0) -> jax.Array:
    """Equal to `jax.random.uniform(key, shape, dtype, minval, maxval)` for each key (scalar
    bounds); shape `(*batch, *shape)`."""
    minval, maxval = np.array(minval, dtype), np.array(maxval, dtype)
    floats = _unit_interval(keys, shape, dtype)
    return lax.max(jnp.asarray(minval), floats * jnp.asarray(maxval - minval) + jnp.asarray(minval))


def normal(keys, shape, dtype) -> jax.Array:
    """Equal to `jax.random.normal(key, shape, dtype)` for each key; shape `(*batch, *shape)`."""
    lower = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype), dtype=dtype)
    u = uniform(keys, shape, dtype, lower, 1.0)
    return np.array(np.sqrt(2), dtype) * lax.erf_inv(u)


def rademacher(keys, shape, dtype) -> jax.Array:
    """Equal to `jax.random.rademacher(key, shape, dtype)` for each key: +-1 with probability 1/2.

    JAX draws the underlying Bernoulli(1/2) in the default float dtype (float64 under x64), so
    that is the precision of the comparison here too, whatever `dtype` is."""
    default_float = jnp.result_type(float)
    heads = _unit_interval(keys, shape, default_float) < np.array(0.5, default_float)
    return (2 * heads.astype(dtype) - 1).astype(dtype)
