"""Chains sharded across devices give bit-identical results (4 simulated CPU devices), for every
kernel and gradient source."""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import jax, numpy as np
    import objectives, simulate
    from simulate.driver import simulate_chains
    from simulate.gradients import AdditiveNoise
    from simulate.trackers import built_in
    assert jax.local_device_count() == 4, jax.local_devices()
    f = objectives.quadratic([[2.0, 0.3], [0.3, 0.7]], [0.2, 0.1])
    kwargs = dict(step_sizes=[0.1, 0.5], n_steps=130, n_chains=1001, x0=[1.0, -1.0], seed=3)
    # Chains diverging at the larger step size (|1 - 0.95 * 2.2| = 1.09 per step): each device
    # redoes the blocks in which its chains do, alone.
    g = objectives.quadratic([1.0, 2.2], [0.0, 0.0])
    diverging = dict(step_sizes=[0.1, 0.95], n_steps=200, n_chains=997, x0=[1.0, 1.0], seed=5,
                     divergence_radius=50.0, warn_on_divergence=False, trajectory=True)
    # Exponentials in the gradient at chaotic step sizes, where a last-bit difference would grow.
    h = objectives.sharp_flat()
    chaotic = dict(step_sizes=[0.1, 0.4], n_steps=130, n_chains=603, x0=[-1.0], seed=7)
    import sys
    part = sys.argv[1]
    for objective, kw in ((f, kwargs), (g, diverging), (h, chaotic)) if part == "sgd" else ():
        single = simulate.run(objective, shard=False, **kw)
        sharded = simulate.run(objective, **kw)  # automatic: 4 devices
        others = (sharded, simulate.run(objective, shard=True, chunk_size=250, **kw)) if objective is f else (sharded,)
        for other in others:
            for name in simulate.ESTIMATORS:
                assert np.array_equal(single.checkpoints[name], other.checkpoints[name]), name
            assert np.array_equal(single.diverged_at, other.diverged_at)
        if objective is g:
            assert single.diverged[1].all() and np.unique(single.diverged_at[1]).size > 10, single.diverged_at
            assert np.array_equal(single.trajectory, sharded.trajectory)
    # Every kernel, minibatches and the EMA: the same, diverging chains included.
    a = np.random.default_rng(0).standard_normal((24, 2)).astype(np.float32)
    least_squares = objectives.least_squares(a, np.ones(24, np.float32))
    others = [
        (g, dict(diverging, algorithm=simulate.sam(0.05), ema_decay=0.9)),
        (g, dict(diverging, step_sizes=[0.1, 1.5], algorithm=simulate.momentum(0.5), track_v=True)),
        (least_squares, dict(step_sizes=[0.05, 2.5], n_steps=130, n_chains=203, x0=[1.0, -1.0], seed=2, trajectory=True,
                             noise=simulate.noise.minibatch(6), ema_decay=0.9, divergence_radius=1e3, warn_on_divergence=False)),
        (least_squares, dict(step_sizes=[0.05, 0.2], n_steps=70, n_chains=101, x0=[1.0, -1.0], seed=2,
                             noise=simulate.noise.minibatch(6), algorithm=simulate.momentum(0.9))),
    ]
    for objective, kw in others if part == "kernels" else ():
        single = simulate.run(objective, shard=False, **kw)
        sharded = simulate.run(objective, **kw)
        for name in single.estimators:
            assert np.array_equal(single.checkpoints[name], sharded.checkpoints[name]), (kw, name)
        assert np.array_equal(single.diverged_at, sharded.diverged_at)
        if kw.get("trajectory"):
            assert single.diverged.any(), kw
            assert np.array_equal(single.trajectory, sharded.trajectory)
    # The chains really are split: the compiled program's outputs are sharded along chains and
    # it needs no communication between devices.
    if part != "sgd":
        print("ok")
        raise SystemExit(0)
    from simulate.run import _chain_mesh
    from jax.sharding import NamedSharding, PartitionSpec
    import jax.numpy as jnp
    mesh = _chain_mesh(None)
    x0 = jax.device_put(jnp.ones((8, 2)), NamedSharding(mesh, PartitionSpec("chains", None)))
    chains = jax.device_put(jnp.arange(8, dtype=jnp.uint32), NamedSharding(mesh, PartitionSpec("chains")))
    args = (simulate.sgd(), AdditiveNoise(simulate.noise.gaussian(1.0)), built_in(), f, jnp.array([0.1, 0.2]), x0, chains,
            jnp.uint32(0), jnp.array([5, 10, 11], jnp.int32), jnp.float32(1e6))
    records, states, _ = simulate_chains(*args, n_steps=10, dtype=jnp.float32, mesh=mesh)
    assert states.state.x.sharding.spec == PartitionSpec(None, "chains"), states.state.x.sharding
    hlo = simulate_chains.lower(*args, n_steps=10, dtype=jnp.float32, mesh=mesh).compile().as_text()
    assert not any(op in hlo for op in ("all-gather", "all-reduce", "all-to-all", "collective-permute"))
    print("ok")
    """
)


# Two parts, so that the test suite's workers can run them side by side: SGD with additive noise
# (plus the compiled program's sharding and its lack of collectives), and the other kernels,
# minibatches and the EMA.
@pytest.mark.parametrize("part", ["sgd", "kernels"])
def test_sharded_run_is_bit_identical_to_a_single_device_run(part):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SCRIPT, part], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")
