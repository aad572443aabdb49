"""Properties of `simulate.run` that hold exactly: the randomness contract, streaming, divergence."""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import objectives
import simulate
from simulate.randomness import NOISE_BLOCK_STEPS, noise_at_step

FLAT = objectives.from_function(lambda x: jnp.zeros((), x.dtype), 2, name="flat")


def _run(objective=None, **overrides):
    kwargs = dict(step_sizes=[0.1, 0.4], n_steps=150, n_chains=64, x0=[1.0, -1.0], seed=5)
    kwargs.update(overrides)
    objective = objective or objectives.quadratic([[2.0, 0.3], [0.3, 0.7]], [0.2, 0.1])
    return simulate.run(objective, **kwargs)


def _assert_identical(a, b):
    for name in simulate.ESTIMATORS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        np.testing.assert_array_equal(a.checkpoints[name], b.checkpoints[name], err_msg=name)
    np.testing.assert_array_equal(a.diverged_at, b.diverged_at)


def test_same_seed_gives_identical_results_and_another_seed_does_not():
    _assert_identical(_run(), _run())
    assert not np.allclose(_run().x, _run(seed=6).x)


def test_noise_follows_the_contract_seed_chain_step():
    # With f = 0 and eta = 1, x_k - x_{k-1} = -eps_k: the trajectory reveals the noise, which
    # must equal the reference definition for (seed, chain index, step).
    n_steps = NOISE_BLOCK_STEPS + 5  # crosses a noise-block boundary
    result = simulate.run(FLAT, step_sizes=[1.0], n_steps=n_steps, n_chains=4, x0=[0.0, 0.0], seed=11, trajectory=True)
    increments = -np.diff(result.trajectory[:, 0], axis=0)  # (T, C, dim)
    for chain in (0, 3):
        for step in (1, 2, NOISE_BLOCK_STEPS, NOISE_BLOCK_STEPS + 1, n_steps):
            expected = np.asarray(noise_at_step(simulate.noise.gaussian(1.0), 11, chain, step, 2))
            np.testing.assert_allclose(increments[step - 1, chain], expected, rtol=1e-5, atol=1e-5)


def test_noise_is_shared_across_step_sizes():
    # f = 0: x_T = x_0 - eta * sum_k eps_k, so (x_T - x_0) / eta is the same for every eta.
    result = simulate.run(FLAT, step_sizes=[0.01, 0.3, 2.0], n_steps=100, n_chains=16, x0=[0.0, 0.0])
    scaled = result.x / result.step_sizes[:, None, None]
    np.testing.assert_allclose(scaled[0], scaled[1], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(scaled[0], scaled[2], rtol=1e-4, atol=1e-5)


def test_chains_do_not_depend_on_their_step_size_neighbours():
    both = _run(step_sizes=[0.1, 0.4])
    alone = _run(step_sizes=[0.4])
    np.testing.assert_array_equal(both.x[1], alone.x[0])
    np.testing.assert_array_equal(both.x_avg[1], alone.x_avg[0])


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 1000])
def test_chunking_gives_bit_identical_results(chunk_size):
    _assert_identical(_run(n_chains=150), _run(n_chains=150, chunk_size=chunk_size))


def test_first_chain_runs_a_slice_of_a_larger_run():
    whole = _run(n_chains=100)
    part = _run(n_chains=30, first_chain=40)
    for name in simulate.ESTIMATORS:
        np.testing.assert_array_equal(getattr(whole, name)[:, 40:70], getattr(part, name), err_msg=name)


def test_a_longer_run_extends_a_shorter_one():
    short = _run(n_steps=100)
    long = _run(n_steps=NOISE_BLOCK_STEPS * 3 + 1, checkpoints=[50, 100])
    for name in ("x", "v", "x_avg", "v_avg"):
        np.testing.assert_array_equal(short.estimator(name), long.estimator(name, checkpoint=100), err_msg=name)


def test_streamed_estimators_equal_those_of_the_stored_trajectory():
    result = _run(n_steps=200, trajectory=True, checkpoints=[1, 9, 64, 65, 130], tail_fraction=0.3)
    path = result.trajectory.astype(np.float64)  # (T + 1, S, C, dim), x_0 first
    eta = result.step_sizes[:, None, None]
    f = objectives.quadratic([[2.0, 0.3], [0.3, 0.7]], [0.2, 0.1])
    v_path = path - eta * np.asarray(f.grad(jnp.asarray(path, jnp.float32)), np.float64)
    np.testing.assert_array_equal(result.trajectory[0], np.broadcast_to([1.0, -1.0], result.x.shape))
    for k, t in enumerate(result.checkpoint_steps):
        m = math.ceil(0.3 * t)
        np.testing.assert_allclose(result.checkpoints["x"][k], path[t], rtol=0, atol=0)
        np.testing.assert_allclose(result.checkpoints["x_avg"][k], path[1 : t + 1].mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(result.checkpoints["x_tail"][k], path[t - m + 1 : t + 1].mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(result.checkpoints["v"][k], v_path[t], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(result.checkpoints["v_avg"][k], v_path[1 : t + 1].mean(0), rtol=1e-5, atol=1e-6)


def test_tail_fraction_one_gives_the_uniform_average():
    result = _run(tail_fraction=1.0)
    np.testing.assert_allclose(result.x_tail, result.x_avg, rtol=1e-6, atol=1e-7)


def test_per_chain_x0_equal_to_a_common_x0_changes_nothing():
    _assert_identical(_run(x0=[1.0, -1.0]), _run(x0=np.tile([1.0, -1.0], (64, 1))))


def test_divergent_step_size_is_flagged_frozen_and_isolated():
    f = objectives.quadratic(1.0, [0.0])
    with pytest.warns(simulate.DivergenceWarning, match="step_size=2.5: 32/32"):
        result = simulate.run(f, step_sizes=[0.1, 2.5], n_steps=500, n_chains=32, x0=[0.0])
    assert not result.diverged[0].any() and result.diverged[1].all()
    # |1 - 2.5| = 1.5 per step: the radius 1e6 is left after roughly log(1e6)/log(1.5) = 34 steps.
    assert np.all((result.diverged_at[1] > 20) & (result.diverged_at[1] < 50))
    assert np.all(result.diverged_at[0] == -1)
    for name in simulate.ESTIMATORS:
        assert np.all(np.isfinite(result.checkpoints[name]))
        assert np.all(np.abs(getattr(result, name)[1]) <= 1e6 * (1 + 2.5))
    alone = simulate.run(f, step_sizes=[0.1], n_steps=500, n_chains=32, x0=[0.0])
    np.testing.assert_array_equal(result.x_avg[0], alone.x_avg[0])
    np.testing.assert_array_equal(result.n_diverged, [0, 32])


def test_non_finite_gradient_is_flagged_at_the_step_it_happens():
    quartic = objectives.from_function(lambda x: jnp.sum(x**4) / 4, 1, name="quartic")
    noise = simulate.noise.gaussian(0.0)
    with pytest.warns(simulate.DivergenceWarning):
        result = simulate.run(
            quartic, step_sizes=[1.0], n_steps=10, n_chains=2, x0=[10.0], noise=noise,
            divergence_radius=math.inf, trajectory=True,
        )
    # x_1 = 10 - 1000 = -990, x_2 = -990 + 990^3 ~ 9.7e8, x_3 ~ -9e26: its gradient overflows float32.
    assert np.all(result.diverged_at == 3)
    np.testing.assert_allclose(result.x[0, :, 0], 10.0 - 1000.0 + 990.0**3, rtol=1e-6)
    assert np.all(np.isfinite(result.x_avg))


def test_float64_requires_x64_mode():
    if jax.config.jax_enable_x64:
        pytest.skip("x64 is on in this process")
    with pytest.raises(ValueError, match="dtype=float64 needs JAX's x64 mode"):
        _run(dtype="float64")
    assert _run().x.dtype == np.float32


def test_float64_mode_runs_in_float64(tmp_path):
    import subprocess
    import sys

    script = (
        "import jax; jax.config.update('jax_enable_x64', True); jax.config.update('jax_numpy_dtype_promotion', 'strict')\n"
        "import objectives, simulate\n"
        "r = simulate.run(objectives.quadratic(1.0, [0.0]), step_sizes=[0.1], n_steps=10, n_chains=3, x0=[1.0])\n"
        "assert r.x.dtype.name == 'float64' and r.dtype == 'float64', r.x.dtype\n"
        "r32 = simulate.run(objectives.quadratic(1.0, [0.0]), step_sizes=[0.1], n_steps=10, n_chains=3, x0=[1.0], dtype='float32')\n"
        "assert r32.x.dtype.name == 'float32'\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


def test_a_new_sweep_point_of_the_same_shapes_does_not_recompile():
    compiles = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    f = objectives.quadratic([1.0, 3.0], [0.0, 1.0])
    common = dict(n_steps=77, n_chains=33, checkpoints=4)
    simulate.run(f, step_sizes=[0.1, 0.2], x0=[0.0, 0.0], seed=1, **common)
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        simulate.run(f, step_sizes=[0.3, 0.05], x0=[1.0, 2.0], seed=2, **common)
        simulate.run(f, step_sizes=[0.3, 0.05], x0=np.ones((33, 2)), seed=3, tail_fraction=0.2, **common)
        simulate.run(f, step_sizes=[0.3, 0.05], x0=[0.0, 0.0], noise=simulate.noise.gaussian(2.0), **common)
        simulate.run(objectives.quadratic([2.0, 5.0], [1.0, 1.0]), step_sizes=[0.3, 0.05], x0=[0.0, 0.0], **common)
    finally:
        jax.monitoring.clear_event_listeners()
    assert compiles == [], f"{len(compiles)} recompilations for new values of the same shapes"


BAD_INPUTS = [
    (dict(step_sizes=[0.1, -0.2]), "step_sizes must be finite and > 0"),
    (dict(step_sizes=[0.0]), "step_sizes must be finite and > 0"),
    (dict(step_sizes=[float("nan")]), "step_sizes must be finite and > 0"),
    (dict(step_sizes=[float("inf")]), "step_sizes must be finite and > 0"),
    (dict(step_sizes=[]), "step_sizes must be a number or a non-empty"),
    (dict(step_sizes=[[0.1, 0.2]]), "step_sizes must be a number or a non-empty 1-D"),
    (dict(n_steps=0), "n_steps must be an integer >= 1"),
    (dict(n_steps=10.0), "n_steps must be an integer >= 1"),
    (dict(n_steps=True), "n_steps must be an integer >= 1"),
    (dict(n_chains=0), "n_chains must be an integer >= 1"),
    (dict(x0=[1.0, 2.0, 3.0]), r"x0 must have shape \(2,\)"),
    (dict(x0=np.ones((5, 2))), r"x0 must have shape \(2,\) .* \(64, 2\)"),
    (dict(x0=[float("nan"), 0.0]), "x0 must be finite"),
    (dict(tail_fraction=0.0), r"tail_fraction must be a number in \(0, 1\]"),
    (dict(tail_fraction=1.5), r"tail_fraction must be a number in \(0, 1\]"),
    (dict(seed=-1), r"seed must be an integer in \[0, 2\*\*32\)"),
    (dict(seed=1.5), r"seed must be an integer"),
    (dict(chunk_size=0), "chunk_size must be an integer >= 1"),
    (dict(checkpoints=0), "checkpoints must be >= 1"),
    (dict(checkpoints=[5, 3]), "checkpoints must be strictly increasing"),
    (dict(checkpoints=[0, 3]), r"checkpoints must be strictly increasing steps in \[1, n_steps=150\]"),
    (dict(first_chain=-1), r"first_chain must be an integer in \[0, "),
    (dict(first_chain=2**32 - 10), r"first_chain must be an integer in \[0, 4294967232\] \(first_chain \+ n_chains <= 2\*\*32\)"),
    (dict(shard="yes"), r"shard must be one of \[None, True, False\]"),
    (dict(divergence_radius=-1.0), "divergence_radius must be a number > 0"),
    (dict(dtype="int32"), "dtype must be float32 or float64"),
    (dict(noise=simulate.noise.gaussian(covariance=np.eye(3))), "noise covariance is 3-dimensional but objective"),
    (dict(noise="gaussian"), "noise must be a model from simulate.noise"),
    (dict(n_steps=10_000, n_chains=5000, trajectory=True), "trajectory=True would keep"),
]


@pytest.mark.parametrize("overrides, message", BAD_INPUTS, ids=[m for _, m in BAD_INPUTS])
def test_bad_input_is_rejected_with_a_message_naming_the_argument(overrides, message):
    with pytest.raises(ValueError, match=message):
        _run(**overrides)


def test_objective_must_be_an_objective():
    with pytest.raises(ValueError, match="objective must be an objectives.Objective"):
        simulate.run(lambda x: x, step_sizes=[0.1], n_steps=1, n_chains=1, x0=[0.0])


NOISE_ERRORS = [
    (lambda: simulate.noise.gaussian(-1.0), "scale must be a non-negative finite number"),
    (lambda: simulate.noise.gaussian(float("nan")), "scale must be a non-negative finite number"),
    (lambda: simulate.noise.rademacher(-0.1), "scale must be a non-negative finite number"),
    (lambda: simulate.noise.uniform("a"), "scale must be a non-negative finite number"),
    (lambda: simulate.noise.student_t(1.0, df=2.0), "df must be > 2"),
    (lambda: simulate.noise.student_t(1.0, df=1.0), "df must be > 2"),
    (lambda: simulate.noise.gaussian(covariance=[[1.0, 0.5], [0.4, 1.0]]), "covariance must be symmetric"),
    (lambda: simulate.noise.gaussian(covariance=[[1.0, 2.0], [2.0, 1.0]]), "covariance must be positive semi-definite"),
    (lambda: simulate.noise.gaussian(covariance=[1.0, 2.0]), "covariance must be a square matrix"),
    (lambda: simulate.noise.gaussian(1.0, covariance=np.eye(2)), "give either scale= or covariance="),
]


@pytest.mark.parametrize("make, message", NOISE_ERRORS, ids=[m for _, m in NOISE_ERRORS])
def test_bad_noise_parameters_are_rejected(make, message):
    with pytest.raises(ValueError, match=message):
        make()


OBJECTIVE_ERRORS = [
    (lambda: objectives.quadratic([[1.0, 2.0], [2.0, 1.0]]), "hessian must be positive semi-definite"),
    (lambda: objectives.quadratic([[1.0, 0.1], [0.0, 1.0]]), "hessian must be symmetric"),
    (lambda: objectives.quadratic([1.0, -1.0]), "hessian must be non-negative"),
    (lambda: objectives.quadratic([1.0, 1.0], [0.0, 0.0, 0.0]), "center has shape"),
    (lambda: objectives.quadratic(1.0), "a scalar hessian needs center= or dim="),
    (lambda: objectives.from_function(lambda x: x, 2), "fn must return a scalar"),
    (lambda: objectives.from_function(lambda x: x.sum(), 0), "dim must be a positive integer"),
]


@pytest.mark.parametrize("make, message", OBJECTIVE_ERRORS, ids=[m for _, m in OBJECTIVE_ERRORS])
def test_bad_objective_parameters_are_rejected(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_objective_methods_map_over_leading_axes():
    f = objectives.quadratic([[2.0, 0.3], [0.3, 0.7]], [0.2, 0.1])
    x = jnp.ones((4, 3, 2))
    assert f.value(x).shape == (4, 3)
    assert f.grad(x).shape == (4, 3, 2)
    assert f.hessian(x).shape == (4, 3, 2, 2)
    np.testing.assert_allclose(f.hessian_trace(x), np.full((4, 3), 2.7), rtol=1e-6)
    autodiff = objectives.from_function(lambda y: 0.5 * (y - jnp.array([0.2, 0.1])) @ jnp.array([[2.0, 0.3], [0.3, 0.7]]) @ (y - jnp.array([0.2, 0.1])), 2)
    np.testing.assert_allclose(autodiff.grad(x), f.grad(x), rtol=1e-5)
    np.testing.assert_allclose(autodiff.hessian(x), f.hessian(x), rtol=1e-5)
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 2\)"):
        f.value(jnp.ones((3,)))


@pytest.mark.parametrize(
    "model",
    [
        simulate.noise.gaussian(0.7),
        simulate.noise.rademacher(0.7),
        simulate.noise.uniform(0.7),
        simulate.noise.student_t(0.7, df=5.0),
        simulate.noise.gaussian(covariance=[[0.49, 0.2], [0.2, 0.3]]),
    ],
    ids=lambda m: m.family + ("-full" if m.factor is not None else ""),
)
def test_noise_models_have_zero_mean_and_the_covariance_they_report(model):
    n = 400_000
    eps = np.asarray(model.sample(jax.random.key(0), (n,), 2, jnp.float32), np.float64)
    expected = model.covariance(2)
    se_mean = np.sqrt(np.diag(expected) / n)
    assert np.all(np.abs(eps.mean(0)) < 5 * se_mean)
    centered = eps - eps.mean(0)
    products = centered[:, :, None] * centered[:, None, :]
    se_cov = products.std(0) / np.sqrt(n)
    assert np.all(np.abs(products.mean(0) - expected) < 5 * se_cov + 1e-12)


def test_noise_model_families_have_their_shapes():
    key = jax.random.key(1)
    rad = np.asarray(simulate.noise.rademacher(0.5).sample(key, (1000,), 1))
    assert set(np.unique(rad).tolist()) == {-0.5, 0.5}
    uni = np.asarray(simulate.noise.uniform(0.5).sample(key, (100_000,), 1))
    assert uni.max() <= 0.5 * math.sqrt(3) and uni.max() > 0.49 * math.sqrt(3)
    heavy = np.asarray(simulate.noise.student_t(1.0, df=3.0).sample(key, (100_000,), 1), np.float64)
    kurtosis = np.mean(heavy**4) / np.mean(heavy**2) ** 2
    assert kurtosis > 6  # Gaussian: 3; Student-t(3) has infinite kurtosis


def test_no_warning_when_nothing_diverges():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _run()


# sharp_flat with a small ball: at the larger step sizes chains leave it at scattered steps, so
# blocks mix chains that diverge with chains that do not (the engine redoes those blocks exactly
# for the diverged chains only).
_DIVERGING = dict(step_sizes=[0.1, 0.3, 0.5], n_steps=200, x0=[-1.0], seed=5, divergence_radius=2.5, warn_on_divergence=False)


def test_chains_do_not_depend_on_whether_their_neighbours_diverge():
    f = objectives.sharp_flat()
    whole = simulate.run(f, n_chains=150, **_DIVERGING)
    assert 0.2 < whole.diverged.mean() < 0.8 and len(np.unique(whole.diverged_at)) > 40
    _assert_identical(whole, simulate.run(f, n_chains=150, chunk_size=7, **_DIVERGING))
    part = simulate.run(f, n_chains=30, first_chain=40, **_DIVERGING)
    for name in simulate.ESTIMATORS:
        np.testing.assert_array_equal(getattr(whole, name)[:, 40:70], getattr(part, name), err_msg=name)
    np.testing.assert_array_equal(whole.diverged_at[:, 40:70], part.diverged_at)


def test_diverged_chains_stay_at_their_last_good_state_and_average_their_path():
    f = objectives.sharp_flat()
    checkpoints = [1, 9, 64, 65, 100, 130, 200]
    result = simulate.run(f, n_chains=64, trajectory=True, checkpoints=checkpoints, **_DIVERGING)
    path = result.trajectory.astype(np.float64)  # (T + 1, S, C, 1): frozen after a divergence
    eta = result.step_sizes[:, None, None]
    v_path = path - eta * np.asarray(f.grad(jnp.asarray(result.trajectory)), np.float64)
    assert np.all(np.abs(path) <= 2.5) and np.all(np.isfinite(v_path))
    diverged_at = np.where(result.diverged, result.diverged_at, 10**9)
    assert result.diverged[1:].any() and np.unique(diverged_at).size > 20
    # S_n = x_1 + ... + x_n (S_0 = 0) along the returned path, which stays at the last good state
    # after a divergence; the same for v. The estimators are those of that path.
    zero = np.zeros_like(path[:1])
    x_sums, v_sums = np.cumsum(np.concatenate([zero, path[1:]]), axis=0), np.cumsum(np.concatenate([zero, v_path[1:]]), axis=0)
    pairs = np.arange(3)[:, None], np.arange(64)
    for k, t in enumerate(checkpoints):
        last_good = np.minimum(t, diverged_at - 1)  # (S, C)
        np.testing.assert_array_equal(result.trajectory[t], result.trajectory[(last_good,) + pairs])  # the path stops
        np.testing.assert_array_equal(result.checkpoints["x"][k], result.trajectory[t])
        m = simulate.tail_length(t, result.tail_fraction)
        np.testing.assert_allclose(result.checkpoints["x_avg"][k], x_sums[t] / t, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(result.checkpoints["x_tail"][k], (x_sums[t] - x_sums[t - m]) / m, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(result.checkpoints["v_avg"][k], v_sums[t] / t, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(result.checkpoints["v"][k], v_path[t], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["sgd", "momentum"])
def test_a_chain_whose_gradient_at_x0_is_nan_is_flagged_at_step_1_and_reports_x0_everywhere(kind, precision):
    # grad f = x + 0.1 (x - c) / ||x - c||: NaN (0/0) exactly at c and finite elsewhere. Chain 0
    # starts at c: its first step is refused, so it stays at x0 and every estimator, at every
    # checkpoint, is x0 (v_0 is not finite, so v reports x0 too), for SGD's v-carry loop and the
    # others alike, in both precisions. Chain 1 starts elsewhere and is not affected.
    cone = lambda x: 0.5 * jnp.sum(x * x) + 0.1 * jnp.sqrt(jnp.sum((x - jnp.asarray([1.0, -1.0], x.dtype)) ** 2))  # noqa: E731
    f = objectives.from_function(cone, 2, name="cone")
    algorithm = {"sgd": simulate.sgd(), "momentum": simulate.momentum(0.5)}[kind]  # the v-carry loop and the general one
    with jax.enable_x64(precision == "float64"):
        with pytest.warns(simulate.DivergenceWarning, match="step_size=0.1: 1/2"):
            result = simulate.run(
                f, step_sizes=[0.1], n_steps=66, n_chains=2, x0=[[1.0, -1.0], [0.5, 0.5]], algorithm=algorithm,
                ema_decay=0.9, checkpoints=[1, 2, 64, 65], dtype=precision,
            )
    assert result.dtype == precision and result.x.dtype == np.dtype(precision)
    np.testing.assert_array_equal(result.diverged_at, [[1, -1]])
    assert set(result.estimators) == {"x", "x_avg", "x_tail", "v", "v_avg", "x_ema"}
    for name in result.estimators:
        np.testing.assert_array_equal(result.checkpoints[name][:, 0, 0], np.tile([1.0, -1.0], (5, 1)), err_msg=name)
        assert np.all(np.isfinite(result.checkpoints[name][:, 0, 1])), name
