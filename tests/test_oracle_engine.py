"""The general step loop (minibatches, SAM, EMA) against the fast additive-noise loop, hand-derived
steps and optax (issue 8)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import objectives
import simulate

QUADRATIC = objectives.quadratic([[2.0, 0.3], [0.3, 0.7]], [0.5, -0.2])


def test_general_loop_with_additive_noise_equals_the_fast_loop_per_chain():
    # sam_radius=0 and ema_decay route the run through the general loop; on a quadratic (no
    # chaos) every chain must match the fast loop to float32 rounding, and so must the flags.
    kwargs = dict(step_sizes=[0.1, 0.5, 1.2], n_steps=300, n_chains=64, x0=[3.0, -2.0], seed=4, checkpoints=5, divergence_radius=50.0)
    with pytest.warns(simulate.DivergenceWarning):
        fast = simulate.run(QUADRATIC, **kwargs)
    with pytest.warns(simulate.DivergenceWarning):
        general = simulate.run(QUADRATIC, sam_radius=0.0, ema_decay=0.5, **kwargs)
    assert fast.diverged[2].all() and not fast.diverged[:2].any()  # eta = 1.2 is unstable
    np.testing.assert_array_equal(general.diverged, fast.diverged)
    assert np.max(np.abs(general.diverged_at - fast.diverged_at)) <= 1
    for name in simulate.ESTIMATORS:
        np.testing.assert_allclose(general.checkpoints[name][:, :2], fast.checkpoints[name][:, :2], rtol=1e-4, atol=1e-5, err_msg=name)
    # sharp_flat at a small step size (no chaos there): the same.
    f = objectives.sharp_flat()
    small = dict(step_sizes=[0.01, 0.02], n_steps=500, n_chains=32, x0=[-1.0], seed=1)
    np.testing.assert_allclose(simulate.run(f, sam_radius=0.0, **small).x_avg, simulate.run(f, **small).x_avg, atol=2e-5)


def test_sam_with_zero_radius_is_sgd_and_one_step_matches_the_hand_derived_update():
    a = np.random.default_rng(0).standard_normal((12, 2)).astype(np.float32)
    f = objectives.least_squares(a, np.ones(12, np.float32))
    common = dict(step_sizes=[0.05, 0.3], n_chains=4, x0=np.array([1.0, -1.0]), noise=simulate.noise.minibatch(12))
    sgd = simulate.run(f, n_steps=40, **common)
    sam0 = simulate.run(f, n_steps=40, sam_radius=0.0, **common)
    np.testing.assert_array_equal(sam0.x, sgd.x)
    # b = n: the minibatch gradient is the full gradient, so one SAM step is deterministic:
    # x1 = x0 - eta grad f(x0 + rho g / ||g||), g = grad f(x0).
    rho = 0.2
    step = simulate.run(f, n_steps=1, sam_radius=rho, **common)
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


def test_new_values_of_sam_radius_ema_decay_step_sizes_and_seed_do_not_recompile():
    a = np.random.default_rng(1).standard_normal((16, 2)).astype(np.float32)
    f = objectives.least_squares(a, np.ones(16, np.float32))
    common = dict(n_steps=70, n_chains=5, x0=np.zeros(2), noise=simulate.noise.minibatch(4))
    simulate.run(f, step_sizes=[0.1, 0.2], sam_radius=0.05, ema_decay=0.9, **common)
    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, duration, **kw: compiles.append(event) if event == "/jax/core/compile/backend_compile_duration" else None
    )
    try:
        simulate.run(f, step_sizes=[0.3, 0.01], sam_radius=0.2, ema_decay=0.99, seed=3, **common)
        simulate.run(f.with_data((a * 2, np.zeros(16, np.float32))), step_sizes=[0.3, 0.01], sam_radius=0.1, ema_decay=0.5, **common)
    finally:
        jax.monitoring.clear_event_listeners()
    assert compiles == [], f"{len(compiles)} recompilations"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(sam_radius=-0.1), "sam_radius must be a finite number >= 0"),
        (dict(sam_radius=float("nan")), "sam_radius must be a finite number >= 0"),
        (dict(ema_decay=1.0), r"ema_decay must be a number in \(0, 1\)"),
        (dict(ema_decay=0.0), r"ema_decay must be a number in \(0, 1\)"),
        (dict(track_v="yes"), "track_v must be None"),
    ],
)
def test_bad_oracle_options_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        simulate.run(QUADRATIC, step_sizes=[0.1], n_steps=5, n_chains=2, x0=[0.0, 0.0], **kwargs)
    result = simulate.run(QUADRATIC, step_sizes=[0.1], n_steps=5, n_chains=2, x0=[0.0, 0.0], track_v=False)
    with pytest.raises(ValueError, match="estimator must be one of this run's"):
        result.estimator("v")


def test_sam_matches_optax_contrib_sam_on_the_same_minibatches():
    # optax's SAM in opaque mode (one ascent step of normalized SGD with rate rho, then the outer
    # SGD step, every update call) driven by the minibatches our run drew for chain 0.
    optax = pytest.importorskip("optax")
    from simulate.randomness import minibatch_block

    a = np.random.default_rng(2).standard_normal((20, 3)).astype(np.float32)
    f = objectives.least_squares(a, np.ones(20, np.float32))
    eta, rho, n_steps, noise = 0.2, 0.1, 10, simulate.noise.minibatch(5)
    ours = simulate.run(f, step_sizes=[eta], n_steps=n_steps, n_chains=1, x0=np.ones(3), noise=noise, seed=9, sam_radius=rho, trajectory=True)
    batches = minibatch_block(noise, jnp.uint32(9), jnp.zeros(1, jnp.uint32), jnp.int32(0), 20)[0]
    with jax.numpy_dtype_promotion("standard"):  # optax mixes int32 counters with floats
        sam = optax.contrib.sam(optax.sgd(eta), optax.chain(optax.contrib.normalize(), optax.sgd(rho)), sync_period=2, opaque_mode=True)
        x = jnp.ones(3, jnp.float32)
        state = sam.init(x)
        for k in range(n_steps):
            grad = lambda p, _, batch=batches[k]: f.point_minibatch_grad(p, batch)  # noqa: E731
            updates, state = sam.update(grad(x, None), state, x, grad_fn=grad)
            x = optax.apply_updates(x, updates)
            np.testing.assert_allclose(ours.trajectory[k + 1, 0, 0], x, rtol=1e-5, atol=1e-6, err_msg=f"step {k + 1}")
