"""Noise that follows the landscape in the simulator (`simulate.noise.state_dependent`,
`hessian_aligned`, `loss_scaled`, `label_noise`): eps = C(x)^(1/2) z on the Gaussian family's
draws, so a constant C is the additive Gaussian bit for bit; the simulated laws against closed
forms; bad input refused by name."""

import math
import warnings

import jax.numpy as jnp
import numpy as np
import pytest

import objectives
import simulate

ESTIMATORS = ("x", "x_avg", "x_tail", "v", "v_avg", "x_ema")


def _same_bits(a, b):
    for name in ESTIMATORS:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


@pytest.mark.parametrize(
    ("algorithm", "schedule"),
    [
        (simulate.sgd(), None),
        (simulate.sam(0.05), None),
        (simulate.momentum(0.5), None),
        # The scheduled form is the plain form of the sgd case's custom(1) schedule: full size only.
        pytest.param(simulate.sgd(), simulate.schedules.cosine_decay(100, 0.1), marks=pytest.mark.slow),
    ],
    ids=["sgd", "sam", "momentum", "sgd-cosine"],
)
def test_constant_covariance_is_the_additive_gaussian_bit_for_bit(algorithm, schedule):
    f, covariance = objectives.valley_2d(), np.diag([0.25, 4.0])  # a square root exact in float32
    run = dict(step_sizes=[0.05, 0.1], n_steps=150, n_chains=4, x0=np.zeros(2), seed=4, ema_decay=0.9, algorithm=algorithm)
    state = simulate.run(f, noise=simulate.noise.state_dependent(lambda x: jnp.asarray(covariance, x.dtype)), schedule=schedule, **run)
    # Additive SGD at a constant step size runs in its v-carry form (another rounding): s(k) = 1
    # takes the plain form, the very arithmetic of state-dependent noise. SAM, momentum and any
    # scheduled run have one form.
    if algorithm.name == "sgd" and schedule is None:
        schedule = simulate.schedules.custom(lambda k: 1.0)
    additive = simulate.run(f, noise=simulate.noise.gaussian(covariance=covariance), schedule=schedule, **run)
    _same_bits(state, additive)


@pytest.mark.slow  # the 2-D cases above hold the same arithmetic; this one adds the 1x1 square root
def test_constant_isotropic_covariance_is_gaussian_scale_bit_for_bit_in_1d():
    f = objectives.sharp_flat()
    run = dict(step_sizes=[0.1, 0.4], n_steps=100, n_chains=3, x0=[0.3], seed=2, algorithm=simulate.momentum(0.3))
    state = simulate.run(f, noise=simulate.noise.state_dependent(lambda x: jnp.full((1, 1), 0.25, x.dtype)), **run)
    _same_bits(state, simulate.run(f, noise=simulate.noise.gaussian(0.5), **run))


def _stationary(f, noise, eta, x0, n_chains=4000, n_steps=600, seed=0):
    """x at the last step of chains run long past mixing, `(n_chains, d)` float64."""
    result = simulate.run(f, noise=noise, step_sizes=[eta], n_steps=n_steps, n_chains=n_chains, x0=x0, seed=seed, checkpoints=[n_steps])
    return result.x[0].astype(np.float64)


def _within(samples, expected, n_se=4.5):
    se = samples.std(ddof=1) / math.sqrt(samples.size)
    assert abs(samples.mean() - expected) < n_se * se, (samples.mean(), expected, se)


def test_multiplicative_noise_has_the_closed_form_stationary_variance():
    # f = a x^2 / 2, C(x) = c0 + c1 x^2: E x'^2 = ((1 - eta a)^2 + eta^2 c1) E x^2 + eta^2 c0.
    a, c0, c1, eta = 1.0, 0.5, 0.8, 0.3
    f = objectives.quadratic(np.eye(1) * a)
    x = _stationary(f, simulate.noise.state_dependent(lambda x: (c0 + c1 * x * x)[None]), eta, [0.0])
    _within(x[:, 0] ** 2, eta**2 * c0 / (1 - (1 - eta * a) ** 2 - eta**2 * c1))


def test_hessian_aligned_noise_on_a_quadratic_has_the_lyapunov_variance_per_axis():
    # H = diag(a), C = s H: each axis is an AR(1) with noise eta^2 s a_i.
    a, s, eta = np.array([1.0, 4.0]), 0.5, 0.2
    f = objectives.quadratic(np.diag(a))
    x = _stationary(f, simulate.noise.hessian_aligned(s), eta, np.zeros(2))
    for i in range(2):
        _within(x[:, i] ** 2, eta**2 * s * a[i] / (1 - (1 - eta * a[i]) ** 2))


def test_loss_scaled_noise_finds_f_min_and_contracts_at_the_closed_form_rate():
    # f = a x^2 / 2 + 1 (min 1, found on the search box), C = s (f - 1) = s a x^2 / 2:
    # E x_T^2 = x0^2 ((1 - eta a)^2 + eta^2 s a / 2)^T, pure multiplicative noise.
    a, s, eta, x0, n_steps = 2.0, 3.0, 0.3, 1.5, 5  # few steps: x^2 stays far above float32's rounding of f - 1
    f = objectives.from_function(lambda x: 0.5 * a * jnp.sum(x * x) + 1.0, 1, name="lifted_quadratic").replace(
        search_box=lambda params: (np.array([-3.0]), np.array([3.0]))
    )
    noise = simulate.noise.loss_scaled(s).bind(f)
    assert noise.params["f_min"] == pytest.approx(1.0, abs=1e-6)
    result = simulate.run(f, noise=noise, step_sizes=[eta], n_steps=n_steps, n_chains=20000, x0=[x0], seed=3, checkpoints=[n_steps])
    _within(result.x[0, :, 0].astype(np.float64) ** 2, x0**2 * ((1 - eta * a) ** 2 + eta**2 * s * a / 2) ** n_steps)


def test_label_noise_covariance_is_the_per_example_form_and_its_law_is_the_lyapunov_one():
    rng = np.random.default_rng(0)
    features, targets = rng.normal(size=(12, 2)), rng.normal(size=12)
    f = objectives.least_squares(features, targets)
    s, eta = 0.7, 0.3
    noise = simulate.noise.label_noise(s)
    features32 = features.astype(np.float32).astype(np.float64)
    hessian = features32.T @ features32 / 12
    # d grad l_j / d y_j = -a_j: C = (s^2 / n^2) sum_j a_j a_j^T = (s^2 / n) H, at every x.
    for x in (np.zeros(2), np.array([0.3, -1.0])):
        np.testing.assert_allclose(np.asarray(noise.covariance_at(f, jnp.asarray(x, jnp.float32))), s * s / 12 * hessian, rtol=1e-5)
    # Stationary covariance Sigma = A Sigma A^T + eta^2 C around the least-squares solution.
    solution = np.linalg.lstsq(features32, targets.astype(np.float32).astype(np.float64), rcond=None)[0]
    transition = np.eye(2) - eta * hessian
    sigma = np.linalg.solve(np.eye(4) - np.kron(transition, transition), (eta**2 * s * s / 12 * hessian).reshape(-1)).reshape(2, 2)
    x = _stationary(f, noise, eta, np.zeros(2), n_chains=3000, n_steps=300)
    for i in range(2):
        _within((x[:, i] - solution[i]) ** 2, sigma[i, i])


def test_minibatch_covariance_at_is_the_scaled_example_gradient_covariance():
    rng = np.random.default_rng(1)
    f = objectives.least_squares(rng.normal(size=(9, 2)), rng.normal(size=9))
    x = np.array([0.2, -0.4], np.float32)
    population = objectives.example_gradient_covariance(f, x)
    for noise, factor in ((simulate.noise.minibatch(3), (9 - 3) / (3 * 8)), (simulate.noise.minibatch(3, replace=True), 1 / 3)):
        np.testing.assert_allclose(np.asarray(noise.covariance_at(f, jnp.asarray(x))), factor * population, rtol=1e-4, atol=1e-7)


def test_a_covariance_that_stops_being_psd_on_the_way_flags_the_chain_never_clips():
    f = objectives.quadratic(np.eye(1))
    noise = simulate.noise.state_dependent(lambda x: (1.0 - x * x)[None])  # PSD only for |x| <= 1
    with pytest.warns(simulate.DivergenceWarning):
        result = simulate.run(f, noise=noise, step_sizes=[1.5], n_steps=200, n_chains=64, x0=[0.0], seed=0)
    # Each flagged chain stopped at the first point where C(x) < 0: finite, outside [-1, 1].
    frozen = result.x[result.diverged]
    assert result.diverged.any() and np.all(np.isfinite(frozen)) and np.all(np.abs(frozen) > 1.0)


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda: simulate.noise.state_dependent(lambda x: jnp.full((1, 1), -1.0)), "cov: C.x. must be positive semi-definite"),
        (lambda: simulate.noise.state_dependent(lambda x: jnp.ones((2, 2))), r"cov: C.x. must have shape \(1, 1\)"),
        (lambda: simulate.noise.state_dependent(lambda x: jnp.full((1, 1), 1.0 + 1.0j)), "cov: C.x. must be a real"),
        (lambda: simulate.noise.state_dependent(lambda x: jnp.full((1, 1), jnp.nan)), "cov: C.x. must be finite"),
        (lambda: simulate.noise.state_dependent(3.0), "cov must be a function"),
        (lambda: simulate.noise.hessian_aligned(-1.0), "scale must be a non-negative"),
        (lambda: simulate.noise.loss_scaled(-0.5), "scale must be a non-negative"),
        (lambda: simulate.noise.loss_scaled(1.0, f_min=float("inf")), "f_min"),
        (lambda: simulate.noise.label_noise(1j), "scale must be a non-negative"),
        (lambda: simulate.noise.label_noise(1.0), "label_noise needs a regression finite sum"),
    ],
)
def test_bad_state_dependent_noise_is_refused_by_name(make, says):
    with pytest.raises(ValueError, match=says):
        simulate.run(objectives.quadratic(np.eye(1)), noise=make(), step_sizes=[0.1], n_steps=2, n_chains=1, x0=[0.5])


def test_a_non_psd_2d_covariance_is_refused_and_loss_scaled_without_a_box_asks_for_f_min():
    f = objectives.quadratic(np.eye(2))
    with pytest.raises(ValueError, match="cov: C.x. must be positive semi-definite, got smallest eigenvalue -1"):
        simulate.run(f, noise=simulate.noise.state_dependent(lambda x: jnp.array([[1.0, 2.0], [2.0, 1.0]])), step_sizes=[0.1], n_steps=2, n_chains=1, x0=[0.0, 0.0])
    g = objectives.from_function(lambda x: jnp.sum(x * x), 1)
    with pytest.raises(ValueError, match="f_min: .* has no search_box"):
        simulate.run(g, noise=simulate.noise.loss_scaled(1.0), step_sizes=[0.1], n_steps=2, n_chains=1, x0=[0.5])


def _config(noise, target="minimizer", figures=("tradeoff",), config_dir=None):
    from asgd.config import parse_config

    return parse_config({
        "name": "state", "objective": {"kind": "sharp_flat"}, "noise": noise,
        "run": {"step_sizes": [0.1], "n_steps": 10, "n_chains": 2, "x0": [0.5]},
        "target": {"kind": target}, "output": {"figures": list(figures)},
    }, config_dir=config_dir)


def test_configs_take_state_dependent_noise_and_refuse_the_targets_it_has_not():
    from asgd.config import ConfigError

    config = _config({"family": "hessian_aligned", "scale": 0.5})
    assert config.noise.family == "hessian_aligned" and config.target_kind == "minimizer"
    assert _config({"family": "loss_scaled", "scale": 2.0, "f_min": 0.0}).noise.params["f_min"] == 0.0
    for target in ("smoothed", "local", "penalized"):
        with pytest.raises(ConfigError, match=f"target.kind = '{target}': does not exist for hessian_aligned noise"):
            _config({"family": "hessian_aligned", "scale": 0.5}, target=target)
    with pytest.raises(ConfigError, match="output.figures.*'landscape' draws F_eta and P_eta"):
        _config({"family": "loss_scaled", "scale": 1.0}, figures=("landscape",))
    with pytest.raises(ConfigError, match="noise.family.*label_noise needs a regression finite sum"):
        _config({"family": "label_noise", "scale": 1.0})
    with pytest.raises(ConfigError, match="scale"):
        _config({"family": "loss_scaled", "scale": -1.0})
    assert _config({"family": "gaussian", "scale": 1.0}, target="smoothed").target_kind == "smoothed"


def test_smoothing_refuses_state_dependent_noise_by_name():
    f = objectives.sharp_flat()
    for noise in (simulate.noise.hessian_aligned(0.5), simulate.noise.loss_scaled(1.0, f_min=0.0), simulate.noise.minibatch(2)):
        for build in (objectives.smoothed, objectives.penalized):
            with pytest.raises(ValueError, match="noise: the smoothed objective F_eta, the penalty P_eta and v.*exist for additive noise only"):
                build(f, noise, 0.1)


def test_a_config_names_its_state_dependent_covariance_as_module_function(tmp_path):
    from asgd.config import ConfigError

    (tmp_path / "my_noise.py").write_text("def cov(x):\n    return (0.1 + x * x)[None]\n\ndef bad(x):\n    return -(1.0 + x * x)[None]\n")
    config = _config({"family": "state_dependent", "cov": "my_noise:cov"}, config_dir=str(tmp_path))
    noise = config.noise
    assert noise.family == "state_dependent"
    assert float(noise.covariance_at(config.objective, jnp.array([0.5], jnp.float32))[0, 0]) == pytest.approx(0.35)
    with pytest.raises(ConfigError, match="noise.cov = 'my_noise:missing'.*has no attribute"):
        _config({"family": "state_dependent", "cov": "my_noise:missing"}, config_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="noise.family.*cov: C.x. must be positive semi-definite"):
        _config({"family": "state_dependent", "cov": "my_noise:bad"}, config_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="noise.cov"):
        _config({"family": "state_dependent", "cov": 3.0})


def test_what_survives_the_stationary_mean_gradient_is_zero_under_unbiased_state_dependent_noise():
    # x_{k+1} = x_k - eta (grad f(x_k) + eps_k), E[eps_k | x_k] = 0: in stationarity E grad f = 0
    # (the target that survives), though E x is not argmin f: C = 0.3 + 0.5 x^2 on an asymmetric
    # convex well (mixes in ~30 steps). Measured: 0.0008 +- 0.0016; noise biased by 0.05: -0.049.
    f = objectives.from_function(lambda x: jnp.sum(0.25 * x**4 + 0.5 * x * x + 0.3 * x), 1, name="asymmetric_well")
    noise = simulate.noise.state_dependent(lambda x: (0.3 + 0.5 * x * x)[None])
    x = _stationary(f, noise, 0.2, [0.0], n_chains=20000, n_steps=300, seed=7)
    gradient = np.asarray(f.grad(x), np.float64)[:, 0]
    _within(gradient, 0.0)
    assert np.std(gradient) / math.sqrt(gradient.size) < 0.002  # power: a bias of 0.01 would show


def test_the_closed_form_2x2_square_root_and_psd_part_match_eigh():
    from objectives.state_noise import psd_part, psd_square_root

    rng = np.random.default_rng(3)
    for _ in range(50):
        m = rng.normal(size=(2, 2))
        h = (m + m.T).astype(np.float64)
        values, vectors = np.linalg.eigh(h)
        expected_part = (vectors * np.maximum(values, 0)) @ vectors.T
        np.testing.assert_allclose(np.asarray(psd_part(jnp.asarray(h, jnp.float32))), expected_part, atol=2e-5)
        c = m @ m.T
        root = np.asarray(psd_square_root(jnp.asarray(c, jnp.float32)), np.float64)
        np.testing.assert_allclose(root @ root, c, atol=2e-5 * max(1.0, np.abs(c).max()))
        np.testing.assert_allclose(root, root.T, atol=1e-6)
        assert np.all(np.linalg.eigvalsh(root) >= -1e-5)
    assert np.isnan(np.asarray(psd_square_root(jnp.array([[1.0, 2.0], [2.0, 1.0]])))).all()
    assert np.array_equal(np.asarray(psd_square_root(jnp.zeros((2, 2)))), np.zeros((2, 2)))


def test_covariance_at_takes_numpy_float64_without_a_warning_about_x64():
    # A quadratic keeps its NumPy float64 Hessian; without x64 asking for that dtype by name warned
    # ("float64 ... is not available") from psd_part and from the loss-scaled identity.
    f = objectives.quadratic(np.diag([1.0, 4.0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for noise, expected in ((simulate.noise.hessian_aligned(0.5), np.diag([0.5, 2.0])), (simulate.noise.loss_scaled(2.0, f_min=0.0), 2.0 * 2.5 * np.eye(2))):
            np.testing.assert_allclose(noise.covariance_at(f, np.ones(2)), expected, rtol=1e-6)
