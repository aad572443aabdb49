"""The kernels (SGD, SAM, heavy-ball momentum) and the EMA tracker against each other, hand-derived
steps, NumPy loops and optax; and the driver's contract for every kernel: the randomness contract,
chunk invariance, divergence flagging (issues 8 and 13). Sharding: tests/test_sharding.py."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import objectives
import simulate
from simulate.randomness import NOISE_BLOCK_STEPS, noise_at_step

QUADRATIC = objectives.quadratic([[2.0, 0.3], [0.3, 0.7]], [0.5, -0.2])


def test_sam_with_zero_radius_and_momentum_zero_equal_sgd_to_float_rounding():
    # With additive noise SGD runs in its v-carry form (x' = v - eta eps), SAM and momentum as
    # x' = x - eta g: on a quadratic (no chaos) every chain must match to float32 rounding, and so
    # must the divergence flags.
    kwargs = dict(step_sizes=[0.1, 0.5, 1.2], n_steps=300, n_chains=64, x0=[3.0, -2.0], seed=4, checkpoints=5, divergence_radius=50.0)
    with pytest.warns(simulate.DivergenceWarning):
        plain = simulate.run(QUADRATIC, **kwargs)
    assert plain.diverged[2].all() and not plain.diverged[:2].any()  # eta = 1.2 is unstable
    for algorithm in (simulate.sam(0.0), simulate.momentum(0.0)):
        with pytest.warns(simulate.DivergenceWarning):
            other = simulate.run(QUADRATIC, algorithm=algorithm, ema_decay=0.5, **kwargs)
        np.testing.assert_array_equal(other.diverged, plain.diverged)
        assert np.max(np.abs(other.diverged_at - plain.diverged_at)) <= 1
        for name in simulate.ESTIMATORS:
            np.testing.assert_allclose(other.checkpoints[name][:, :2], plain.checkpoints[name][:, :2], rtol=1e-4, atol=1e-5, err_msg=name)
    # sharp_flat at a small step size (no chaos there): the same.
    f = objectives.sharp_flat()
    small = dict(step_sizes=[0.01, 0.02], n_steps=500, n_chains=32, x0=[-1.0], seed=1)
    np.testing.assert_allclose(simulate.run(f, algorithm=simulate.sam(0.0), **small).x_avg, simulate.run(f, **small).x_avg, atol=2e-5)


def test_sam_with_zero_radius_is_sgd_and_one_step_matches_the_hand_derived_update():
    a = np.random.default_rng(0).standard_normal((12, 2)).astype(np.float32)
    f = objectives.least_squares(a, np.ones(12, np.float32))
    common = dict(step_sizes=[0.05, 0.3], n_chains=4, x0=np.array([1.0, -1.0]), noise=simulate.noise.minibatch(12))
    sgd = simulate.run(f, n_steps=40, **common)
    sam0 = simulate.run(f, n_steps=40, algorithm=simulate.sam(0.0), **common)
    np.testing.assert_array_equal(sam0.x, sgd.x)
    # b = n: the minibatch gradient is the full gradient, so one SAM step is deterministic:
    # x1 = x0 - eta grad f(x0 + rho g / ||g||), g = grad f(x0).
    rho = 0.2
    step = simulate.run(f, n_steps=1, algorithm=simulate.sam(rho), **common)
    x0 = np.array([1.0, -1.0])
    h, b = a.T.astype(float) @ a.astype(float) / 12, a.T.astype(float) @ np.ones(12) / 12
    grad = lambda x: h @ x - b  # noqa: E731
    g = grad(x0)
    for s, eta in enumerate([0.05, 0.3]):
        expected = x0 - eta * grad(x0 + rho * g / np.linalg.norm(g))
        np.testing.assert_allclose(step.x[s], np.broadcast_to(expected, (4, 2)), rtol=1e-5)
        assert not np.allclose(expected, x0 - eta * g)  # SAM really differs from SGD here


def test_ema_is_the_debiased_moving_average_of_the_iterates_and_matches_optax():
    beta = 0.9
    result = simulate.run(QUADRATIC, step_sizes=[0.2], n_steps=70, n_chains=3, x0=[1.0, 1.0], ema_decay=beta, trajectory=True, checkpoints=[10, 70])
    path = result.trajectory[1:, 0].astype(np.float64)  # x_1..x_T, (T, C, d)
    for t in (10, 70):
        weights = (1 - beta) * beta ** np.arange(t - 1, -1, -1)
        explicit = np.tensordot(weights, path[:t], axes=1) / (1 - beta**t)
        np.testing.assert_allclose(result.estimator("x_ema", t)[0], explicit, rtol=1e-5, atol=1e-6)
    optax = pytest.importorskip("optax")
    ema = optax.ema(beta, debias=True)
    with jax.numpy_dtype_promotion("standard"):  # optax mixes its int32 step count with floats
        state = ema.init(jnp.zeros_like(path[0]))
        for x in path:
            averaged, state = ema.update(jnp.asarray(x), state)
    np.testing.assert_allclose(result.x_ema[0], averaged, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["sgd", "sam", "momentum"])
def test_new_values_of_kernel_parameters_ema_decay_step_sizes_and_seed_do_not_recompile(kind):
    a = np.random.default_rng(1).standard_normal((16, 2)).astype(np.float32)
    f = objectives.least_squares(a, np.ones(16, np.float32))
    make = {"sgd": lambda value: simulate.sgd(), "sam": simulate.sam, "momentum": simulate.momentum}[kind]
    minibatches = dict(n_steps=70, n_chains=5, x0=np.zeros(2), noise=simulate.noise.minibatch(4))
    additive = dict(n_steps=70, n_chains=5, x0=np.zeros(2), noise=simulate.noise.gaussian(1.0), track_v=False)
    for common in (minibatches, additive):
        simulate.run(f, step_sizes=[0.1, 0.2], algorithm=make(0.05), ema_decay=0.9, **common)
    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, duration, **kw: compiles.append(event) if event == "/jax/core/compile/backend_compile_duration" else None
    )
    try:
        for common in (minibatches, additive):
            simulate.run(f, step_sizes=[0.3, 0.01], algorithm=make(0.2), ema_decay=0.99, seed=3, **common)
            other_data = f.with_data((a * 2, np.zeros(16, np.float32)))
            simulate.run(other_data, step_sizes=[0.3, 0.01], algorithm=make(0.1), ema_decay=0.5, **common)
        simulate.run(f, step_sizes=[0.3, 0.01], algorithm=make(0.3), ema_decay=0.5, **{**additive, "noise": simulate.noise.gaussian(2.0)})
    finally:
        jax.monitoring.clear_event_listeners()
    assert compiles == [], f"{len(compiles)} recompilations"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(algorithm=lambda: simulate.sam(-0.1)), "radius must be a finite number >= 0"),
        (dict(algorithm=lambda: simulate.sam(float("nan"))), "radius must be a finite number >= 0"),
        (dict(algorithm=lambda: simulate.momentum(1.0)), r"beta must be a number in \[0, 1\)"),
        (dict(algorithm=lambda: simulate.momentum(-0.5)), r"beta must be a number in \[0, 1\)"),
        (dict(algorithm=lambda: "sam"), r"algorithm must be a kernel \(simulate.sgd\(\), sam\(radius\), momentum\(beta\)\)"),
        (dict(ema_decay=1.0), r"ema_decay must be a number in \(0, 1\)"),
        (dict(ema_decay=0.0), r"ema_decay must be a number in \(0, 1\)"),
        (dict(track_v="yes"), r"track_v must be one of \[None, True, False\]"),
        (dict(algorithm=lambda: simulate.sam(0.1), method="exact"), "method='exact' covers SGD with additive Gaussian noise only"),
    ],
)
def test_bad_kernel_and_tracker_options_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kwargs = {key: value() if key == "algorithm" else value for key, value in kwargs.items()}
        simulate.run(QUADRATIC, step_sizes=[0.1], n_steps=5, n_chains=2, x0=[0.0, 0.0], **kwargs)
    result = simulate.run(QUADRATIC, step_sizes=[0.1], n_steps=5, n_chains=2, x0=[0.0, 0.0], track_v=False)
    with pytest.raises(ValueError, match="estimator must be one of this run's"):
        result.estimator("v")


def _matches_optax_on_our_minibatches(algorithm, make_optimizer, *, eta, seed, n_steps, pass_grad_fn=False):
    """Step our run's chain 0 and an optax optimizer on the minibatches our run drew for it."""
    optax = pytest.importorskip("optax")
    from simulate.randomness import minibatch_block

    a = np.random.default_rng(seed).standard_normal((20, 3)).astype(np.float32)
    f = objectives.least_squares(a, np.ones(20, np.float32))
    noise = simulate.noise.minibatch(5)
    ours = simulate.run(f, step_sizes=[eta], n_steps=n_steps, n_chains=1, x0=np.ones(3), noise=noise, seed=seed, algorithm=algorithm, trajectory=True)
    batches = minibatch_block(noise, jnp.uint32(seed), jnp.zeros(1, jnp.uint32), jnp.int32(0), 20)[0]
    with jax.numpy_dtype_promotion("standard"):  # optax mixes int32 counters with floats
        optimizer = make_optimizer(optax)
        x = jnp.ones(3, jnp.float32)
        state = optimizer.init(x)
        for k in range(n_steps):
            grad = lambda p, _, batch=batches[k]: f.point_minibatch_grad(p, batch)  # noqa: E731
            updates, state = optimizer.update(grad(x, None), state, x, **({"grad_fn": grad} if pass_grad_fn else {}))
            x = optax.apply_updates(x, updates)
            np.testing.assert_allclose(ours.trajectory[k + 1, 0, 0], x, rtol=1e-5, atol=1e-6, err_msg=f"step {k + 1}")


def test_sam_matches_optax_contrib_sam_on_the_same_minibatches():
    # optax's SAM in opaque mode: one ascent step of normalized SGD with rate rho, then the outer
    # SGD step, every update call.
    eta, rho = 0.2, 0.1
    _matches_optax_on_our_minibatches(
        simulate.sam(rho),
        lambda optax: optax.contrib.sam(optax.sgd(eta), optax.chain(optax.contrib.normalize(), optax.sgd(rho)), sync_period=2, opaque_mode=True),
        eta=eta, seed=9, n_steps=10, pass_grad_fn=True,
    )


def test_momentum_matches_optax_on_the_same_minibatches():
    eta, beta = 0.1, 0.9
    _matches_optax_on_our_minibatches(simulate.momentum(beta), lambda optax: optax.sgd(eta, momentum=beta), eta=eta, seed=4, n_steps=12)


def test_momentum_matches_a_numpy_loop_and_optax_sgd_with_momentum_step_by_step():
    # Heavy ball on the noise our run drew for two chains: m_k = g_k + beta m_{k-1}, x_k = x_{k-1} - eta m_k.
    optax = pytest.importorskip("optax")
    eta, beta, n_steps, seed = 0.15, 0.8, NOISE_BLOCK_STEPS + 6, 3  # crosses a noise block
    noise = simulate.noise.gaussian(0.5)
    ours = simulate.run(QUADRATIC, step_sizes=[eta], n_steps=n_steps, n_chains=2, x0=[1.0, -1.0], noise=noise, seed=seed,
                        algorithm=simulate.momentum(beta), trajectory=True, ema_decay=0.9)
    hessian, center = np.array([[2.0, 0.3], [0.3, 0.7]]), np.array([0.5, -0.2])
    heavy_ball = optax.sgd(eta, momentum=beta)
    for chain in range(2):
        eps = np.stack([np.asarray(noise_at_step(noise, seed, chain, k, 2)) for k in range(1, n_steps + 1)])
        x, m = np.array([1.0, -1.0]), np.zeros(2)  # the NumPy loop, float64
        params = jnp.array([1.0, -1.0], jnp.float32)
        with jax.numpy_dtype_promotion("standard"):  # optax mixes int32 counters with floats
            state = heavy_ball.init(params)
            for k in range(n_steps):
                m = hessian @ (x - center) + eps[k] + beta * m
                x = x - eta * m
                np.testing.assert_allclose(ours.trajectory[k + 1, 0, chain], x, rtol=2e-5, atol=2e-6, err_msg=f"NumPy, step {k + 1}")
                grad = QUADRATIC.point_grad(params) + jnp.asarray(eps[k])
                updates, state = heavy_ball.update(grad, state, params)
                params = optax.apply_updates(params, updates)
                # optax's m + (-eta) m_k is our x - eta m_k in float32: the same numbers, step by step.
                np.testing.assert_allclose(ours.trajectory[k + 1, 0, chain], params, rtol=1e-6, atol=1e-7, err_msg=f"optax, step {k + 1}")


# ---- the driver's contract, for every kernel -----------------------------------------------

KERNELS = {"sgd": simulate.sgd(), "sam": simulate.sam(0.1), "momentum": simulate.momentum(0.6)}
FLAT = objectives.from_function(lambda x: jnp.zeros((), x.dtype), 2, name="flat")


def _identical(a, b, chains=slice(None)):
    for name in a.estimators:
        np.testing.assert_array_equal(a.checkpoints[name][:, :, chains], b.checkpoints[name], err_msg=name)
    np.testing.assert_array_equal(a.diverged_at[:, chains], b.diverged_at)


@pytest.mark.parametrize("kind", KERNELS)
def test_every_kernel_draws_its_noise_under_the_randomness_contract(kind):
    # f = 0, eta = 1: g = eps_k, so x_{k-1} - x_k = eps_k (SGD, SAM: the ascent point changes
    # nothing) or m_k = eps_k + beta m_{k-1} (momentum). Recover eps and compare with the contract.
    n_steps = NOISE_BLOCK_STEPS + 5
    result = simulate.run(FLAT, step_sizes=[1.0], n_steps=n_steps, n_chains=4, x0=[0.0, 0.0], seed=11, trajectory=True,
                          algorithm=KERNELS[kind], ema_decay=0.5)
    increments = -np.diff(result.trajectory[:, 0].astype(np.float64), axis=0)  # (T, C, dim)
    eps = increments.copy()
    if kind == "momentum":
        eps[1:] -= 0.6 * increments[:-1]
    for chain in (0, 3):
        for step in (1, 2, NOISE_BLOCK_STEPS, NOISE_BLOCK_STEPS + 1, n_steps):
            expected = np.asarray(noise_at_step(simulate.noise.gaussian(1.0), 11, chain, step, 2))
            np.testing.assert_allclose(eps[step - 1, chain], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", KERNELS)
def test_every_kernel_is_invariant_to_chunks_first_chain_and_diverging_neighbours(kind):
    # sharp_flat with a small ball: chains leave it at scattered steps, so blocks mix chains that
    # diverge with chains that do not; the minibatch run covers the other gradient source.
    f = objectives.sharp_flat()
    kwargs = dict(step_sizes=[0.1, 0.3, 0.5], n_steps=150, x0=[-1.0], seed=5, divergence_radius=2.5,
                  warn_on_divergence=False, algorithm=KERNELS[kind], ema_decay=0.9)
    whole = simulate.run(f, n_chains=60, **kwargs)
    assert 0.1 < whole.diverged.mean() < 0.9 and len(np.unique(whole.diverged_at)) > 20
    assert all(np.all(np.isfinite(whole.checkpoints[name])) for name in whole.estimators)  # frozen, not NaN
    _identical(whole, simulate.run(f, n_chains=60, chunk_size=7, **kwargs))
    _identical(whole, simulate.run(f, n_chains=20, first_chain=30, **kwargs), slice(30, 50))
    alone = simulate.run(f, n_chains=60, **{**kwargs, "step_sizes": [0.5]})
    np.testing.assert_array_equal(whole.x_avg[2], alone.x_avg[0])
    a = np.random.default_rng(0).standard_normal((16, 2)).astype(np.float32)
    g = objectives.least_squares(a, np.ones(16, np.float32))
    kwargs = dict(kwargs, step_sizes=[0.1, 2.5], x0=[0.0, 0.0], noise=simulate.noise.minibatch(4), divergence_radius=1e3)
    whole = simulate.run(g, n_chains=12, **kwargs)
    assert whole.diverged[1].any() and not whole.diverged[0].any()
    _identical(whole, simulate.run(g, n_chains=12, chunk_size=5, **kwargs))
    _identical(whole, simulate.run(g, n_chains=4, first_chain=8, **kwargs), slice(8, 12))


@pytest.mark.parametrize("kind", KERNELS)
def test_every_kernel_flags_the_first_step_out_of_the_ball_and_freezes_there(kind):
    # Against the same run with no ball (nothing overflows in 150 steps): each chain's path is
    # the same bits up to the first iterate outside the ball, whose step is `diverged_at`; from
    # there on it stays at its last good state, and its estimators are those of that path.
    f = objectives.quadratic([1.0, 2.2], [0.0, 0.0])
    unstable = 1.6 if kind == "momentum" else 1.0  # growth 1.53 (heavy ball, beta 0.6) or 1.2 a step
    kwargs = dict(step_sizes=[0.1, unstable], n_steps=150, n_chains=40, x0=[1.0, 1.0], seed=2, trajectory=True,
                  algorithm=KERNELS[kind], ema_decay=0.9, checkpoints=[10, 100, 150], warn_on_divergence=False)
    free = simulate.run(f, divergence_radius=math.inf, **kwargs)
    boxed = simulate.run(f, divergence_radius=50.0, **kwargs)
    assert not free.diverged.any() and np.all(np.isfinite(free.trajectory))
    assert boxed.diverged[1].all() and not boxed.diverged[0].any()
    outside = np.linalg.norm(free.trajectory.astype(np.float64), axis=-1) > 50.0  # (T + 1, S, C)
    first_outside = np.where(outside.any(0), outside.argmax(0), -1)
    np.testing.assert_array_equal(boxed.diverged_at, first_outside)
    for c in range(40):
        k = boxed.diverged_at[1, c]
        np.testing.assert_array_equal(boxed.trajectory[:k, 1, c], free.trajectory[:k, 1, c])
        np.testing.assert_array_equal(boxed.trajectory[k:, 1, c], np.broadcast_to(free.trajectory[k - 1, 1, c], (151 - k, 2)))
        # The averages are those of the returned path, which stays at x_{k-1} from step k on.
        np.testing.assert_allclose(boxed.x_avg[1, c], boxed.trajectory[1:, 1, c].astype(np.float64).mean(0), rtol=1e-5)
        held = free.trajectory[k - 1, 1, c].astype(np.float64)
        e = 0.9 ** np.arange(149, -1, -1) * 0.1 / (1 - 0.9**150)  # the debiased EMA's weights on x_1..x_150
        np.testing.assert_allclose(boxed.x_ema[1, c], e @ boxed.trajectory[1:, 1, c].astype(np.float64), rtol=1e-4)
        assert np.all(boxed.trajectory[k:, 1, c] == held)
    np.testing.assert_array_equal(boxed.x[0], free.x[0])
    for name in boxed.estimators:
        assert np.all(np.isfinite(boxed.checkpoints[name]))
