"""Linear (mean-square) stability of SGD at a minimum (Wu, Ma and E, NeurIPS 2018).

Near a minimizer x* the chain's error e = x - x* follows, to first order, the linear map
e' = (I - eta H_b) e (minibatch noise at a shared minimizer: H_b the minibatch's Hessian) or
e' = (I - eta H) e - eta C(x* + e)^(1/2) z (Gaussian noise with covariance C(x)). Its second
moment M = E[e e^T] follows the linear map

    T(M) = E[(I - eta H_b) M (I - eta H_b)]                              (minibatch)
         = (I - eta H) M (I - eta H) + (eta^2 / 2) D^2 C(x*)[M]           (Gaussian C(x); the part of
                                                                           C(x* + e) quadratic in e)

and x* is linearly stable at eta when the spectral radius of T is at most 1 (the second moment
stays bounded). The noise that does not vanish at x* (C(x*), or minibatch gradients that differ
at x*) adds a constant to M and does not change the condition. For minibatches the expectation
over b is exact without enumerating them: with H the mean Hessian and
Sigma_H = (1/n) sum_j (H_j - H) (x) (H_j - H) the covariance of the per-example Hessians,

    E[H_b (x) H_b] = H (x) H + c Sigma_H,    c = (n - B) / (B (n - 1)) without replacement, 1 / B with.

In 1-D with per-example curvatures of mean a and variance s^2 this gives
(1 - eta a)^2 + eta^2 s^2 c <= 1, i.e. eta <= 2 a / (a^2 + c s^2) (`minibatch_threshold_1d`).
Loss-scaled noise C = s (f - f_min) I in 1-D: (1 - eta a)^2 + eta^2 s a / 2 <= 1, eta <= 4 / (2 a + s).

Mean-square stability is not almost-sure convergence: a minimizer with T's radius above 1 can
still attract the chain with positive probability when E log|1 - eta a_b| < 0 (1-D), which is
the condition for absorption (`lyapunov_exponent_1d`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from objectives import FiniteSum, Objective, validation
from objectives.noise import Minibatch, NoiseModel
from theory.minibatch_kernel import enumerate_minibatches, in_float64
from theory.state_dependent import bind_noise

__all__ = ["Stability", "linear_stability", "lyapunov_exponent_1d", "minibatch_threshold_1d", "second_moment_map"]

#: Step sizes scanned in (0, 2 / lambda_max(H)] for the first unstable one, before bisection.
SCAN = 400


class Stability(NamedTuple):
    """`step_sizes` `(S,)`; `stable` `(S,)` bool (spectral radius <= 1); `spectral_radius` `(S,)`;
    `largest_stable_step_size`: the end of the interval of stable step sizes starting at 0 (to 1e-10
    relative), or 0 when the Hessian has a negative eigenvalue (x* is not a minimum)."""

    step_sizes: np.ndarray
    stable: np.ndarray
    spectral_radius: np.ndarray
    largest_stable_step_size: float


def _batch_factor(noise: Minibatch, n: int) -> float:
    b = noise.batch_size
    if noise.replace:
        return 1.0 / b
    return 0.0 if n == 1 else (n - b) / (b * (n - 1))


def minibatch_threshold_1d(curvatures, batch_size: int, replace: bool = False) -> float:
    """2 a / (a^2 + c s^2): the largest mean-square stable step size in 1-D, for per-example
    curvatures `(n,)` of mean a and (population) variance s^2, batch size B (c as in the module)."""
    a_j = np.asarray(curvatures, np.float64)
    c = _batch_factor(Minibatch(int(batch_size), bool(replace)), a_j.size)
    a = a_j.mean()
    return float(2.0 * a / (a * a + c * a_j.var()))


def lyapunov_exponent_1d(curvatures, batch_size: int, step_size: float, replace: bool = False) -> float:
    """E_b log|1 - eta a_b| over every minibatch b (a_b its mean curvature): the growth rate of
    log|e| near a shared minimizer; negative where the chain converges to it almost surely."""
    a_j = np.asarray(curvatures, np.float64)
    batches = enumerate_minibatches(a_j.size, batch_size, replace)
    a_b = batches.counts @ a_j / batch_size
    return float(batches.probability @ np.log(np.abs(1.0 - step_size * a_b)))


@jax.jit
def _hessian(f, x):
    return f.point_hessian(x)


@jax.jit
def _example_hessians(f, x):
    """The per-example Hessians `(n, d, d)` of a finite sum at x."""
    return jax.jacfwd(f.point_example_grads)(x)


def _hessians(f, noise, x):
    """(H `(d, d)`, the multiplicative part as a function eta -> `(d^2, d^2)` matrix of T - A (x) A).
    The derivatives are compiled once per call (eager, every primitive is compiled alone)."""
    d = f.dim
    with jax.enable_x64(True):
        point = jnp.asarray(x, jnp.float64)
        if isinstance(f, FiniteSum):
            f = in_float64(f)
        hessian = np.asarray(_hessian(f, point), np.float64)
        if isinstance(noise, Minibatch):
            if not isinstance(f, FiniteSum):
                raise ValueError(f"noise=minibatch(...) needs a finite-sum objective, got {f.name!r}")
            per_example = np.asarray(_example_hessians(f, point), np.float64)  # (n, d, d)
            centred = per_example - per_example.mean(axis=0)
            sigma = np.einsum("nab,ncd->acbd", centred, centred).reshape(d * d, d * d) / per_example.shape[0]
            factor = _batch_factor(noise, f.n_examples)
            return hessian, lambda eta: eta**2 * factor * sigma
        if isinstance(noise, NoiseModel):
            return hessian, lambda eta: np.zeros((d * d, d * d))
        one = (lambda y: noise.covariance_at(f, y)) if hasattr(noise, "covariance_at") else noise
        second = np.asarray(jax.jit(jax.hessian(lambda y: jnp.asarray(one(y)).reshape(d, d)))(point), np.float64)  # (d, d, d, d)
    # vec(D^2 C[M])_{ab} = sum_kl D^2 C_{ab,kl} M_kl: the (d^2, d^2) matrix of M -> D^2 C[M] / 2
    multiplicative = 0.5 * second.reshape(d * d, d * d)
    return hessian, lambda eta: eta**2 * multiplicative


def second_moment_map(hessian, multiplicative, step_size: float) -> np.ndarray:
    """T as a `(d^2, d^2)` matrix on vec(M) (row-major): (I - eta H) (x) (I - eta H) + the noise's part."""
    a = np.eye(hessian.shape[0]) - step_size * hessian
    return np.kron(a, a) + multiplicative(step_size)


def _radius(hessian, multiplicative, eta) -> float:
    return float(np.max(np.abs(np.linalg.eigvals(second_moment_map(hessian, multiplicative, eta)))))


def linear_stability(f: Objective, noise, minimizer, step_sizes) -> Stability:
    """Mean-square linear stability of SGD at `minimizer` for each step size (module docstring).

    **Arguments:** `f` an `objectives.Objective`; `noise`: `simulate.noise.minibatch(B)` on a
    finite sum, a covariance function `x -> (d, d)` (or a state-dependent family with
    `covariance_at`), or an additive model (then the condition is gradient descent's,
    eta <= 2 / lambda_max(H)); `minimizer` `(d,)`; `step_sizes` eta > 0 (S values).

    **Returns:** a `Stability`.
    """
    if not isinstance(f, Objective):
        raise ValueError(f"f must be an objectives.Objective, got {type(f).__name__}")
    eta = validation.step_sizes("step_sizes", step_sizes)
    x = validation.finite_array("minimizer", minimizer, shape=(f.dim,))
    hessian, multiplicative = _hessians(f, bind_noise(f, noise), x)
    radius = np.array([_radius(hessian, multiplicative, e) for e in eta])
    stable = radius <= 1.0 + 1e-12
    curvatures = np.linalg.eigvalsh(0.5 * (hessian + hessian.T))
    largest = 0.0
    if curvatures.min() >= 0 and curvatures.max() > 0:
        scan = np.linspace(0.0, 2.0 / curvatures.max(), SCAN + 1)[1:]
        ok = np.array([_radius(hessian, multiplicative, e) <= 1.0 + 1e-12 for e in scan])
        if ok.all():
            largest = float(scan[-1])
        elif ok[0]:
            lo, hi = float(scan[np.argmin(ok) - 1]), float(scan[np.argmin(ok)])
            while hi - lo > 1e-10 * hi:
                mid = 0.5 * (lo + hi)
                lo, hi = (mid, hi) if _radius(hessian, multiplicative, mid) <= 1.0 + 1e-12 else (lo, mid)
            largest = lo
    return Stability(eta, stable, radius, largest)
