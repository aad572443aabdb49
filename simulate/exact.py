"""The exact sampler: SGD on a quadratic with Gaussian noise, sampled from its law, not stepped.

For f(x) = 1/2 (x - c)^T H (x - c) and eps ~ N(0, Sigma), the error e_k = x_k - c and its prefix
sum S_k = e_1 + ... + e_k form a linear Gaussian Markov chain z_k = (e_k, S_k):

    z_{k+1} = M z_k + N eps_{k+1},    M = [[A, 0], [A, I]],  N = [[-eta I], [-eta I]],  A = I - eta H.

So z_{k+n} given z_k is N(M^n z_k, P_n) with P_n = sum_{i<n} M^i N Sigma N^T M^{iT}, and (M^n, P_n)
come from O(log n) matrix products by doubling: P_{a+b} = M^b P_a M^{bT} + P_b. Sampling z at
the record steps r_1 < r_2 < ... (the checkpoints and the starts of their tail windows) one
interval at a time gives exactly the joint law of everything `simulate.run` reports, at a cost
independent of n_steps. The reported quantities are linear in z:

    x_t = c + e_t,   sum_{k<=t} x_k = t c + S_t,   v_t = c + A e_t,   sum_{k<=t} v_k = t c + A S_t.

Randomness: the standard normal draws of chain i for record interval j come from
fold_in(chain_key(seed, i), j) (see `simulate.randomness`) and are shared by every step size.
They are not the same numbers as the stepped simulation's: the two methods agree in law.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from simulate.trackers import Records
from simulate.randomness import chain_key

__all__ = ["applicable_form", "quadratic_form_of", "transition", "sample_records"]


def quadratic_form_of(objective) -> tuple[np.ndarray, np.ndarray] | None:
    """(H, c) when `objective` is a quadratic built by `objectives.quadratic`, else None."""
    form = objective.quadratic_form
    return None if form is None else form(objective.params)


def applicable_form(objective, noise, step_sizes) -> tuple[np.ndarray, np.ndarray]:
    """(H, c) of `objective` when the exact sampler applies: a quadratic, Gaussian noise, and
    every step size stable (|1 - eta lambda| <= 1 for every curvature lambda of H). Else a
    `ValueError` saying which condition fails. Callers check this before any work."""
    form = quadratic_form_of(objective)
    if form is None or not (noise.additive and noise.standard_law.gaussian):
        raise ValueError(
            f"method='exact' needs a quadratic objective (objectives.quadratic) and Gaussian noise, "
            f"got objective {objective.name!r} and {getattr(noise, 'family', type(noise).__name__)} noise"
        )
    hessian, center = form
    curvatures = np.linalg.eigvalsh(hessian)
    unstable = [float(e) for e in np.atleast_1d(step_sizes) if np.any(np.abs(1 - e * curvatures) > 1)]
    if unstable:
        raise ValueError(
            f"method='exact' needs stable step sizes (step_size * curvature in [0, 2] for every "
            f"curvature {curvatures.tolist()}), got step_sizes {unstable}; use method='sgd' to see divergence"
        )
    return hessian, center


def _compose(first, second):
    """(M^a, P_a) then (M^b, P_b) -> (M^{a+b}, P_{a+b})."""
    power_a, gram_a = first
    power_b, gram_b = second
    return power_b @ power_a, power_b @ gram_a @ power_b.T + gram_b


def transition(hessian: np.ndarray, noise_covariance: np.ndarray, step_size: float, n: int):
    """(M^n, P_n) for the chain z = (e, S): the mean map and covariance of n steps (float64)."""
    dim = hessian.shape[0]
    eye = np.eye(dim)
    a = eye - step_size * hessian
    m = np.block([[a, np.zeros((dim, dim))], [a, eye]])
    n_map = np.concatenate([-step_size * eye, -step_size * eye])
    one_step = (m, n_map @ noise_covariance @ n_map.T)
    result = (np.eye(2 * dim), np.zeros((2 * dim, 2 * dim)))
    while n:
        if n & 1:
            result = _compose(result, one_step)
        one_step = _compose(one_step, one_step)
        n >>= 1
    return result


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """A symmetric square root of a PSD matrix; P_n is singular (e.g. n = 1), so not Cholesky."""
    values, vectors = np.linalg.eigh(0.5 * (matrix + matrix.T))
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def sample_records(
    hessian: np.ndarray,
    center: np.ndarray,
    noise_covariance: np.ndarray,
    step_sizes: np.ndarray,
    x0: np.ndarray,
    chain_indices: np.ndarray,
    seed: int,
    record_steps: np.ndarray,
    dtype,
) -> Records:
    """Exact samples of (x_t, v_t, sum x, sum v) at `record_steps` for every step size and chain.

    **Arguments:** `hessian` `(d, d)`, `center` `(d,)`, `noise_covariance` `(d, d)`, `step_sizes`
    `(S,)`, `x0` `(C, d)`, `chain_indices` `(C,)`, `seed`, `record_steps` `(R,)` increasing, >= 1.

    **Returns:** `Records` with `(R, S, C, d)` arrays of `dtype`.
    """
    dim = hessian.shape[0]
    n_chains = x0.shape[0]
    gaps = np.diff(np.concatenate([[0], record_steps])).astype(int)
    # Standard normal draws, shape (R, C, 2d): chain i, interval j from fold_in(chain_key, j).
    keys = jax.vmap(lambda i: chain_key(jnp.asarray(seed, jnp.uint32), i))(jnp.asarray(chain_indices, jnp.uint32))
    draws = jax.vmap(
        lambda key: jax.vmap(lambda j: jax.random.normal(jax.random.fold_in(key, j), (2 * dim,), jnp.float32))(
            jnp.arange(len(gaps))
        )
    )(keys)
    draws = np.asarray(draws, np.float64).transpose(1, 0, 2)  # (R, C, 2d)

    outputs = {name: np.empty((len(gaps), len(step_sizes), n_chains, dim)) for name in ("x", "v", "x_sum", "v_sum")}
    e0 = x0 - center
    for s, eta in enumerate(step_sizes):
        a = np.eye(dim) - eta * hessian
        z = np.concatenate([e0, np.zeros_like(e0)], axis=1)  # (C, 2d)
        for r, (gap, t) in enumerate(zip(gaps, record_steps)):
            power, gram = transition(hessian, noise_covariance, eta, int(gap))
            z = z @ power.T + draws[r] @ _psd_sqrt(gram).T
            e, prefix = z[:, :dim], z[:, dim:]
            outputs["x"][r, s] = center + e
            outputs["v"][r, s] = center + e @ a.T
            outputs["x_sum"][r, s] = t * center + prefix
            outputs["v_sum"][r, s] = t * center + prefix @ a.T
    outputs = {name: value.astype(dtype) for name, value in outputs.items()}
    # The states of the built-in trackers of plain SGD (`simulate.trackers.built_in`).
    return Records(x=outputs["x"], v=outputs["v"], tracked={"x_sum": outputs["x_sum"], "v_sum": outputs["v_sum"]})
