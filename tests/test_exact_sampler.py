"""`method="exact"` samples the stepped simulation's law (quadratic, Gaussian noise) at O(log T) cost."""

import jax.numpy as jnp
import numpy as np
import pytest

import objectives
import simulate
import theory

HESSIAN = np.array([[3.0, 1.0], [1.0, 0.5]])
COVARIANCE = np.array([[1.0, 0.6], [0.6, 0.5]])
CENTER, X0 = np.array([0.5, -1.0]), np.array([2.0, 2.0])
F = objectives.quadratic(HESSIAN, CENTER)
NOISE = simulate.noise.gaussian(covariance=COVARIANCE)


def _stacked(result, k):
    """(S, C, 5 * dim): all estimators of each chain at checkpoint k, side by side."""
    return np.concatenate([result.checkpoints[name][k].astype(np.float64) for name in simulate.ESTIMATORS], axis=-1)


def test_exact_samples_agree_in_law_with_the_stepped_simulation():
    kwargs = dict(step_sizes=[0.1, 0.5], n_steps=300, n_chains=20_000, x0=X0, noise=NOISE, checkpoints=[3, 40, 300])
    stepped = simulate.run(F, seed=1, **kwargs)
    sampled = simulate.run(F, seed=2, method="exact", **kwargs)
    assert sampled.method == "exact" and not sampled.diverged.any()
    for k in range(3):
        a, b = _stacked(stepped, k), _stacked(sampled, k)  # (S, C, 10)
        for s in range(2):
            n = a.shape[1]
            se = np.sqrt(a[s].var(0) / n + b[s].var(0) / n)
            assert np.all(np.abs(a[s].mean(0) - b[s].mean(0)) <= 4.5 * se + 1e-7)
            # Joint covariance, entry by entry, with the standard error of a sample covariance.
            pa = (a[s] - a[s].mean(0))[:, :, None] * (a[s] - a[s].mean(0))[:, None, :]
            pb = (b[s] - b[s].mean(0))[:, :, None] * (b[s] - b[s].mean(0))[:, None, :]
            se_cov = np.sqrt(pa.var(0) / n + pb.var(0) / n)
            assert np.all(np.abs(pa.mean(0) - pb.mean(0)) <= 4.5 * se_cov + 1e-9)


def test_exact_samples_match_the_eigenbasis_law_of_analysis_theory():
    # Two derivations: doubling of the (e, S) Markov chain here, sums in the eigenbasis there.
    n_steps, n_chains = 100_000, 20_000
    result = simulate.run(F, step_sizes=[0.02, 0.55], n_steps=n_steps, n_chains=n_chains, x0=X0, noise=NOISE, method="exact", dtype="float32", checkpoints=[7, n_steps])
    for s, eta in enumerate(result.step_sizes):
        for k, t in enumerate(result.checkpoint_steps):
            law = theory.quadratic_law(HESSIAN, COVARIANCE, eta, int(t), X0, CENTER)
            for name in simulate.ESTIMATORS:
                squared = np.sum((result.checkpoints[name][k, s].astype(np.float64) - CENTER) ** 2, -1)
                se = np.sqrt(law.mse_variance(name, CENTER) / n_chains)
                assert abs(squared.mean() - law.mse(name, CENTER)) <= 4.5 * se, (name, eta, t)
            stacked = _stacked(result, k)[s]
            mean, covariance = law.joint()
            # Cross-covariance of the last iterate and the average: the joint law, not only marginals.
            empirical = np.cov(stacked[:, 0:2], stacked[:, 2:4], rowvar=False)[0:2, 2:4]
            exact = covariance[0:2, 2:4]
            scale = np.sqrt(np.outer(np.diag(covariance)[0:2], np.diag(covariance)[2:4]))
            assert np.all(np.abs(empirical - exact) <= 4.5 * scale / np.sqrt(n_chains) * 1.5)


def test_exact_method_reaches_horizons_the_stepped_one_cannot():
    n_steps = 10**9
    result = simulate.run(objectives.quadratic(2.0, [1.0]), step_sizes=[0.5], n_steps=n_steps, n_chains=20_000, x0=[0.0], method="exact")
    mse = np.mean((result.x_avg[0, :, 0].astype(np.float64) - 1.0) ** 2)
    expected = theory.averaged_mse_asymptotic(2.0, 1.0, n_steps)  # Polyak-Juditsky, 1/(h^2 T)
    assert mse == pytest.approx(expected, rel=0.06)
    assert np.mean((result.x[0, :, 0] - 1.0) ** 2) == pytest.approx(theory.last_iterate_floor(2.0, 1.0, 0.5), rel=0.06)


@pytest.mark.parametrize(
    "objective, overrides, message",
    [
        (objectives.from_function(lambda x: jnp.sum(x**2), 2), {}, "method='exact' needs a quadratic objective"),
        (F, dict(noise=simulate.noise.uniform(1.0)), "and Gaussian noise, got .* uniform noise"),
        (F, dict(step_sizes=[0.7]), "method='exact' needs stable step sizes"),
        (F, dict(trajectory=True), "trajectory=True needs method='sgd'"),
        (F, dict(method="euler"), r"method must be one of \['sgd', 'exact'\]"),
    ],
)
def test_exact_method_rejects_what_it_cannot_sample(objective, overrides, message):
    kwargs = dict(step_sizes=[0.1], n_steps=10, n_chains=4, x0=[0.0, 0.0], method="exact")
    kwargs.update(overrides)
    with pytest.raises(ValueError, match=message):
        simulate.run(objective, **kwargs)
