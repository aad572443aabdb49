"""Step-size schedules (issue 17): the multipliers against optax and their formulas, the step size
each step of the driver really uses (every kernel), the randomness contract under a schedule,
constant() as the unscheduled code, no recompilation for new schedule numbers, and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import objectives
import simulate
from simulate.randomness import NOISE_BLOCK_STEPS, noise_at_step, noise_block

FLAT = objectives.from_function(lambda x: jnp.zeros((), x.dtype), 2, name="flat")
QUADRATIC = objectives.quadratic([[2.0, 0.3], [0.3, 0.7]], [0.5, -0.2])
N_STEPS = NOISE_BLOCK_STEPS + 30  # two noise blocks, the second one short
COSINE = simulate.cosine_decay(N_STEPS - 10, final=0.1)


def test_cosine_and_step_decay_are_optax_schedules_at_count_k_minus_1_and_swa_is_its_formula():
    k = np.arange(1, 201)
    cosine = simulate.schedules.multipliers(simulate.cosine_decay(150, final=0.05), 200)
    np.testing.assert_allclose(cosine, optax.cosine_decay_schedule(1.0, 150, alpha=0.05)(jnp.asarray(k - 1, jnp.float32)), rtol=1e-6, atol=1e-7)
    steps = simulate.schedules.multipliers(simulate.step_decay([50, 120], factor=0.2), 200)
    np.testing.assert_allclose(steps, optax.piecewise_constant_schedule(1.0, {50: 0.2, 120: 0.2})(jnp.asarray(k - 1, jnp.float32)), rtol=1e-6)
    assert steps[49] == 1.0 and steps[50] == pytest.approx(0.2) and steps[120] == pytest.approx(0.04)  # step 51 is the first at 0.2
    swa = simulate.schedules.multipliers(simulate.swa(40, 140, final=0.1), 200)
    expected = np.interp(k, [40, 140], [1.0, 0.1])
    np.testing.assert_allclose(swa, expected, rtol=1e-6)
    assert swa[39] == 1.0 and swa[139:].tolist() == [pytest.approx(0.1)] * 61
    assert simulate.schedules.multipliers(simulate.constant(), 5).tolist() == [1.0] * 5
    custom = simulate.schedules.custom(lambda step: 1.0 / jnp.sqrt(step))
    np.testing.assert_allclose(simulate.schedules.multipliers(custom, 9), 1 / np.sqrt(np.arange(1, 10)), rtol=1e-6)


@pytest.mark.parametrize("kind", ["sgd", "sam", "momentum"])
def test_step_k_moves_by_eta_times_s_k_times_the_contract_noise_for_every_kernel(kind):
    # f = 0: g(x, eps) = eps, so SGD and SAM (the ascent point changes nothing) move by
    # x_k - x_{k-1} = -eta s(k) eps_k, and momentum by -eta s(k) m_k with m_k = eps_k + beta m_{k-1};
    # eps_k from the contract's reference definition (seed, chain, step), unchanged by a schedule.
    algorithm = {"sgd": simulate.sgd(), "sam": simulate.sam(0.1), "momentum": simulate.momentum(0.6)}[kind]
    eta = np.array([0.2, 2.0], np.float32)
    # A ball of radius 8: chains that leave it are redone by the driver's checked replay, which
    # must use the same step sizes up to the step they leave it.
    result = simulate.run(FLAT, step_sizes=eta, n_steps=N_STEPS, n_chains=3, x0=[1.0, -1.0], seed=11,
                          trajectory=True, algorithm=algorithm, schedule=COSINE, divergence_radius=8.0, warn_on_divergence=False)
    assert result.diverged[1, 0] and result.diverged[1, 2] and not result.diverged[0].any()
    s = simulate.schedules.multipliers(COSINE, N_STEPS).astype(np.float32)
    noise = simulate.noise.gaussian(1.0)
    blocks = [np.asarray(noise_block(noise, 11, jnp.arange(3), b, 2, jnp.float32)) for b in range(2)]  # (C, B, dim)
    contract = np.concatenate(blocks, axis=1)[:, :N_STEPS]
    np.testing.assert_array_equal(contract[2, NOISE_BLOCK_STEPS + 3], noise_at_step(noise, 11, 2, NOISE_BLOCK_STEPS + 4, 2))
    for chain in (0, 2):
        eps = contract[chain]
        direction = eps.copy()
        if kind == "momentum":
            for k in range(1, N_STEPS):
                direction[k] = eps[k] + np.float32(0.6) * direction[k - 1]
        for i in range(2):
            x = np.array([1.0, -1.0], np.float32)
            last = N_STEPS if result.diverged_at[i, chain] < 0 else result.diverged_at[i, chain] - 1
            for k in range(last):  # the driver's float32 arithmetic: x - (eta s(k)) g
                x = x - (eta[i] * s[k]) * direction[k]
                np.testing.assert_allclose(result.trajectory[k + 1, i, chain], x, rtol=2e-6, atol=2e-6, err_msg=f"step {k + 1}")
    assert result.schedule == repr(COSINE) == "cosine_decay(decay_steps=84, final=0.1)"


def test_v_uses_the_next_steps_size_and_the_minibatch_source_runs_under_a_schedule():
    # v_k = x_k - eta_{k+1} grad f(x_k), so that x_{k+1} = v_k - eta_{k+1} eps_{k+1} under any schedule.
    still_decaying = simulate.cosine_decay(N_STEPS + 10, 0.1)  # s(T + 1) differs from s(T)
    result = simulate.run(QUADRATIC, step_sizes=[0.3], n_steps=N_STEPS, n_chains=2, x0=[1.0, 1.0], seed=2,
                          schedule=still_decaying, trajectory=True)
    s_next = float(simulate.schedules.multipliers(still_decaying, N_STEPS + 1)[-1])
    x_last = result.x[0].astype(np.float64)
    grad = x_last @ np.array([[2.0, 0.3], [0.3, 0.7]]) - np.array([0.5, -0.2]) @ np.array([[2.0, 0.3], [0.3, 0.7]])
    np.testing.assert_allclose(result.v[0], x_last - 0.3 * s_next * grad, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.x_avg[0], result.trajectory[1:, 0].mean(axis=0), rtol=1e-5, atol=1e-6)
    # Minibatches (b = n: the full gradient, deterministic): one step at step size eta s(1), two at s(2).
    a = np.random.default_rng(0).standard_normal((8, 2)).astype(np.float32)
    f = objectives.least_squares(a, np.ones(8, np.float32))
    schedule = simulate.step_decay([1], factor=0.25)
    two = simulate.run(f, step_sizes=[0.4], n_steps=2, n_chains=1, x0=[1.0, -1.0], noise=simulate.noise.minibatch(8), schedule=schedule)
    h, b = a.T.astype(float) @ a.astype(float) / 8, a.T.astype(float) @ np.ones(8) / 8
    x1 = np.array([1.0, -1.0]) - 0.4 * (h @ np.array([1.0, -1.0]) - b)
    np.testing.assert_allclose(two.x[0, 0], x1 - 0.1 * (h @ x1 - b), rtol=1e-5)


def test_under_a_schedule_chunks_first_chain_and_grid_neighbours_change_nothing():
    kwargs = dict(n_steps=N_STEPS, x0=[-1.0], seed=5, schedule=simulate.swa(20, 60, 0.2), ema_decay=0.9,
                  divergence_radius=2.5, warn_on_divergence=False)
    f = objectives.sharp_flat()
    whole = simulate.run(f, step_sizes=[0.1, 0.5], n_chains=24, **kwargs)
    assert whole.diverged[1].any() and not whole.diverged[1].all()  # neighbours diverge at scattered steps
    parts = [simulate.run(f, step_sizes=[0.1, 0.5], n_chains=24, chunk_size=7, **kwargs),
             simulate.run(f, step_sizes=[0.1, 0.5], n_chains=8, first_chain=16, **kwargs)]
    for part, chains in zip(parts, (slice(None), slice(16, 24))):
        for name in whole.estimators:
            np.testing.assert_array_equal(whole.checkpoints[name][:, :, chains], part.checkpoints[name], err_msg=name)
        np.testing.assert_array_equal(whole.diverged_at[:, chains], part.diverged_at)
    alone = simulate.run(f, step_sizes=[0.5], n_chains=24, **kwargs)
    np.testing.assert_array_equal(whole.x_avg[1], alone.x_avg[0])


def test_constant_schedule_is_the_unscheduled_run_bit_for_bit():
    kwargs = dict(step_sizes=[0.1, 0.4], n_steps=N_STEPS, n_chains=16, x0=[1.0, 0.5], seed=3, checkpoints=4)
    plain = simulate.run(QUADRATIC, **kwargs)
    constant = simulate.run(QUADRATIC, schedule=simulate.constant(), **kwargs)
    for name in plain.estimators:
        np.testing.assert_array_equal(constant.checkpoints[name], plain.checkpoints[name], err_msg=name)
    assert constant.schedule == plain.schedule == "constant()"
    # and the exact sampler (constant step sizes only) still accepts it
    simulate.run(QUADRATIC, schedule=simulate.constant(), method="exact", **kwargs)


def test_new_schedule_numbers_do_not_recompile():
    common = dict(step_sizes=[0.1, 0.2], n_steps=70, n_chains=4, x0=[0.0, 0.0])
    simulate.run(QUADRATIC, schedule=simulate.cosine_decay(60, 0.1), **common)
    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, duration, **kw: compiles.append(event) if event == "/jax/core/compile/backend_compile_duration" else None
    )
    try:
        simulate.run(QUADRATIC, schedule=simulate.cosine_decay(30, 0.5), seed=4, **common)
    finally:
        jax.monitoring.clear_event_listeners()
    assert compiles == [], f"{len(compiles)} recompilations"


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: simulate.cosine_decay(0), r"decay_steps must be an integer in \[1, 2147483646\] \(a step count.*got 0"),
        (lambda: simulate.cosine_decay(10, final=1.5), r"final must be a number in \[0, 1\], got 1.5"),
        (lambda: simulate.step_decay([30, 10]), r"boundaries must be a non-empty list of strictly increasing integer steps in \[1, 2147483646\], got \[30, 10\]"),
        (lambda: simulate.step_decay([10], factor=0.0), r"factor must be a number in \(0, 1\], got 0"),
        (lambda: simulate.swa(50, 50, 0.1), r"decay_end must be an integer in \[51, 2147483646\]"),
        (lambda: simulate.schedules.custom(3.0), "fn must be a function k -> multiplier, got 3.0"),
        (lambda: simulate.run(QUADRATIC, step_sizes=0.1, n_steps=20, n_chains=2, x0=[0.0, 0.0], schedule=0.5),
         r"schedule must be a step-size schedule from simulate.schedules .* got 0.5"),
        (lambda: simulate.run(QUADRATIC, step_sizes=0.1, n_steps=20, n_chains=2, x0=[0.0, 0.0],
                              schedule=simulate.schedules.custom(lambda k: 3 - k.astype(jnp.float32))),
         r"schedule custom\(<lambda>\) gives step-size multiplier s\(3\) = 0; every s\(k\), k = 1..n_steps=20, must be finite and > 0"),
        (lambda: simulate.run(QUADRATIC, step_sizes=0.1, n_steps=20, n_chains=2, x0=[0.0, 0.0], method="exact",
                              schedule=simulate.cosine_decay(20, 0.1)),
         "method='exact' covers SGD with additive Gaussian noise only, at constant step sizes"),
    ],
)
def test_bad_schedules_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()
