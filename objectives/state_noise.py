"""Noise that follows the landscape: stochastic gradients grad f(x) + eps with eps ~ N(0, C(x)).

Under the randomness contract the draws are the Gaussian family's standard z (the very numbers
`gaussian(...)` scales), and

    eps = C(x)^(1/2) z,        C(x)^(1/2) the symmetric square root (V diag(sqrt(lambda)) V^T),

so common random numbers across step sizes survive, and a constant C gives the additive Gaussian
law's noise bit for bit where C's square root is exact (e.g. diag(0.25, 4)). The families:

- `state_dependent(cov)`: any `cov: x (d,) -> (d, d)` positive semi-definite, traced by JAX;
- `hessian_aligned(scale)`: C(x) = scale [Hess f(x)]_+, the PSD part of the Hessian (its
  negative eigenvalues set to 0), the noise of Zhu et al. (2019) and Xie et al. (2021);
- `loss_scaled(scale, f_min=None)`: C(x) = scale max(f(x) - f_min, 0) I (Mori et al. 2022); f_min
  given, or found on the objective's search box (`bind`);
- `label_noise(scale)`: a regression finite sum f = (1/n) sum_j l(x, (a_j, y_j)) whose labels are
  perturbed at every step, y_j + scale xi_j, xi_j ~ N(0, 1) i.i.d.: the gradient moves by
  (scale / n) sum_j xi_j J_j, J_j = d grad_x l / d y_j (= -grad m_j(x) for the squared error
  (m_j - y_j)^2 / 2). That is exactly N(0, C(x)) with the per-example form
  C(x) = (scale^2 / n^2) sum_j J_j J_j^T (a sum of Gaussians), for every loss quadratic in
  the label (the squared error); for others it is the linearisation in the label.

None of them is additive: the stochastic gradient is not grad f + (a draw), so SGD runs its
plain form x' = x - eta (grad f(x) + eps) (no v-carry), and the smoothed objective F_eta, the
penalty P_eta and v*(eta), defined for additive noise, do not exist for them (see
`objectives.noise_laws.check_noise`, which refuses them by name).

Every noise object here answers `covariance_at(objective, x)`: C at one point `(d,)` -> `(d, d)`,
traceable by JAX (what the exact law, `theory.state_dependent`, evaluates on its grid), and
`noise(objective, x, z)`: eps for one chain. A C(x) that is not positive semi-definite (smallest
eigenvalue below -1e-6 x the largest in magnitude, or not symmetric to that tolerance) or not
finite makes eps NaN: that chain is frozen and flagged as diverged by `simulate.run`, never
clipped silently; `check` refuses such a C at the starting points with a ValueError.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from objectives import validation
from objectives.finite_sum import FiniteSum
from objectives.noise_families.base import check_scale, family_named

__all__ = [
    "KINDS", "StateDependent", "check_regression", "hessian_aligned", "label_jacobians", "label_noise", "loss_scaled", "psd_part",
    "psd_square_root", "state_dependent",
]

#: Relative tolerance of the PSD and symmetry checks (float32 eigenvalues are good to ~1e-7 |C|).
PSD_TOLERANCE = 1e-6
#: The kinds of state-dependent noise (`StateDependent.family`), each with its constructor below.
KINDS = ("state_dependent", "hessian_aligned", "loss_scaled", "label_noise")


def psd_square_root(c: jax.Array) -> jax.Array:
    """The symmetric square root of a PSD `(d, d)` matrix (traced); NaN where C is not PSD or
    not symmetric beyond `PSD_TOLERANCE`, or not finite.

    d = 1: sqrt(c). d = 2: in closed form, sqrt(C) = (C + sqrt(det C) I) / sqrt(tr C + 2 sqrt(det C))
    (Cayley-Hamilton for the root S: S^2 - tr(S) S + det(S) I = 0, tr(S)^2 = tr C + 2 sqrt(det C)):
    a batched 2x2 `eigh` per chain and step made a 2-D run many times slower (benchmarks/README.md, "Lab notes"). d >= 3: `eigh`."""
    d = c.shape[-1]
    if d == 1:  # sqrt of a negative number is NaN by itself
        return jnp.sqrt(c)
    size = jnp.maximum(jnp.max(jnp.abs(c)), jnp.finfo(c.dtype).tiny)
    symmetric = jnp.max(jnp.abs(c - c.T)) <= PSD_TOLERANCE * size
    c = 0.5 * (c + c.T)
    if d == 2:
        det = c[0, 0] * c[1, 1] - c[0, 1] * c[1, 0]
        ok = symmetric & (jnp.minimum(c[0, 0], c[1, 1]) >= -PSD_TOLERANCE * size) & (det >= -PSD_TOLERANCE * size * size)
        root_det = jnp.sqrt(jnp.maximum(det, 0))
        trace_root = jnp.sqrt(jnp.maximum(c[0, 0] + c[1, 1] + 2 * root_det, 0))
        root = (c + root_det * jnp.eye(2, dtype=c.dtype)) / jnp.where(trace_root > 0, trace_root, 1)
        return jnp.where(ok, root, jnp.nan)
    values, vectors = jnp.linalg.eigh(c)
    ok = symmetric & (jnp.min(values) >= -PSD_TOLERANCE * size)
    root = (vectors * jnp.sqrt(jnp.maximum(values, 0))[None, :]) @ vectors.T
    return jnp.where(ok, root, jnp.nan)


def psd_part(h: jax.Array) -> jax.Array:
    """[H]_+ of a symmetric `(d, d)` matrix: its negative eigenvalues set to 0 (traced; 2x2 in
    closed form: lambda_+- = m +- r, [H]_+ = lambda_+ (H - lambda_- I) / (2 r) when they differ in sign)."""
    h = jnp.asarray(h)  # a NumPy float64 Hessian (a quadratic's) in JAX's default float, silently
    h = 0.5 * (h + h.T)
    d = h.shape[-1]
    if d == 1:
        return jnp.maximum(h, 0)
    if d == 2:
        mean = 0.5 * (h[0, 0] + h[1, 1])
        radius = jnp.sqrt((0.5 * (h[0, 0] - h[1, 1])) ** 2 + h[0, 1] * h[0, 1])
        upper, lower = mean + radius, mean - radius
        projected = upper * (h - lower * jnp.eye(2, dtype=h.dtype)) / jnp.where(radius > 0, 2 * radius, 1)
        return jnp.where(lower >= 0, h, jnp.where(upper <= 0, jnp.zeros_like(h), projected))
    values, vectors = jnp.linalg.eigh(h)
    return (vectors * jnp.maximum(values, 0)[None, :]) @ vectors.T


# ---- the covariance functions: (objective, params, x) -> (d, d); module-level or frozen -----


@dataclasses.dataclass(frozen=True)
class _UserCovariance:
    """C(x) = cov(x), the user's function (static: equal functions share compiled code)."""

    cov: Callable

    def __call__(self, objective, params, x):
        return jnp.asarray(self.cov(x))


def _hessian_aligned(objective, params, x):
    return jnp.asarray(params["scale"], x.dtype) * psd_part(objective.point_hessian(x))


def _loss_scaled(objective, params, x):
    excess = jnp.maximum(objective.point_value(x) - jnp.asarray(params["f_min"], x.dtype), 0)
    return (jnp.asarray(params["scale"], x.dtype) * excess) * jnp.eye(x.shape[0], dtype=x.dtype)


def label_jacobians(objective, x):
    """J_j = d grad_x l(x, (a_j, y_j)) / d y_j for every example: `(n, d, k)` (k label entries)."""
    inputs, targets = objective.params

    def one(example_input, target):
        def grad_at(label):
            batch = (example_input[None], label[None])
            return jax.grad(objective.value_fn, argnums=1)(batch, x)

        label = jnp.asarray(target, x.dtype)
        return jax.jacfwd(grad_at)(label).reshape(x.shape[0], -1)

    return jax.vmap(one)(inputs, targets)


def _label_noise(objective, params, x):
    jacobians = label_jacobians(objective, x)  # (n, d, k)
    n = jacobians.shape[0]
    scale = jnp.asarray(params["scale"], x.dtype)
    return (scale * scale / (n * n)) * jnp.einsum("nak,nbk->ab", jacobians, jacobians)


@dataclasses.dataclass(frozen=True)
class StateDependent:
    """Gaussian noise of covariance C(x): eps = C(x)^(1/2) z (see the module docstring).

    Fields: `family` (static: one of `KINDS`), `covariance_fn` (static: (objective, params, x) ->
    (d, d)), `params` (a dict of traced leaves: `scale`, `f_min`; a new value does not recompile).
    Build with `state_dependent`, `hessian_aligned`, `loss_scaled` or `label_noise`.
    """

    family: str
    covariance_fn: Callable
    params: Any = dataclasses.field(default_factory=dict)

    additive = False  # eps depends on x: not grad f + (a draw)
    fixed_dim = None
    is_isotropic = False

    @property
    def standard_law(self):
        """The law of the draws z: the Gaussian family's (eps = C(x)^(1/2) z)."""
        return family_named("gaussian")

    def covariance_at(self, objective, x: jax.Array) -> jax.Array:
        """C(x) at one point `x` `(d,)` -> `(d, d)` (traceable by JAX)."""
        # A NumPy float64 x becomes JAX's default float first (float32 without x64): asking
        # for its float64 dtype by name would warn that it is not available.
        return self.covariance_fn(objective, self.params, jnp.asarray(x))

    def noise(self, objective, x: jax.Array, z: jax.Array) -> jax.Array:
        """eps = C(x)^(1/2) z for one chain, `(d,)` (NaN where C(x) is not PSD: `psd_square_root`)."""
        c = self.covariance_at(objective, x).astype(x.dtype)
        return z @ psd_square_root(c).T

    def covariance(self, dim: int | None = None):
        raise ValueError(
            f"{self.family} noise has no fixed covariance: it depends on the position x; "
            "use noise.covariance_at(objective, x)"
        )

    def bind(self, objective) -> "StateDependent":
        """This noise for `objective`: loss-scaled noise without f_min gets the least value of f
        found on the objective's search box (`find_minimum_value`); others are returned as is."""
        if "f_min" in self.params and self.params["f_min"] is None:
            return dataclasses.replace(self, params={**self.params, "f_min": find_minimum_value(objective)})
        return self

    def check(self, objective, points) -> None:
        """Refuse, with a ValueError naming the argument, a covariance that is not a real `(d, d)`
        array, or that is not finite, symmetric and PSD at `points` `(N, d)` (at most 64 checked)."""
        name = "cov" if isinstance(self.covariance_fn, _UserCovariance) else "noise"
        if self.covariance_fn is _label_noise:
            check_regression(objective)
        if "f_min" in self.params and self.params["f_min"] is None:
            raise ValueError("f_min: loss_scaled noise needs f_min, given or found (noise.bind(objective))")
        d = objective.dim
        probe = jax.ShapeDtypeStruct((d,), jnp.result_type(float))
        try:
            shape = jax.eval_shape(lambda x: self.covariance_at(objective, x), probe)
        except Exception as error:
            raise ValueError(f"{name}: the covariance function failed on a point of shape ({d},): {error}") from None
        if not hasattr(shape, "shape") or tuple(shape.shape) != (d, d):
            raise ValueError(f"{name}: C(x) must have shape ({d}, {d}) (the objective's dim), got {getattr(shape, 'shape', shape)}")
        if not jnp.issubdtype(shape.dtype, jnp.floating):
            raise ValueError(f"{name}: C(x) must be a real floating matrix, got dtype {shape.dtype}")
        points = np.asarray(points)[:64]
        values = np.asarray(jax.vmap(lambda x: self.covariance_at(objective, x))(jnp.asarray(points, jnp.result_type(float))), np.float64)
        for point, c in zip(points, values):
            where = f"at x={np.asarray(point).tolist()}"
            if not np.all(np.isfinite(c)):
                raise ValueError(f"{name}: C(x) must be finite, got {c.tolist()} {where}")
            size = max(np.abs(c).max(), np.finfo(np.float64).tiny)
            if np.abs(c - c.T).max() > PSD_TOLERANCE * size:
                raise ValueError(f"{name}: C(x) must be symmetric, got {c.tolist()} {where}")
            smallest = np.linalg.eigvalsh(0.5 * (c + c.T))[0]
            if smallest < -PSD_TOLERANCE * size:
                raise ValueError(f"{name}: C(x) must be positive semi-definite, got smallest eigenvalue {smallest:.3g} {where}")

    def describe(self) -> dict:
        out = {"family": self.family}
        for key, value in self.params.items():
            out[key] = None if value is None else float(value)
        if isinstance(self.covariance_fn, _UserCovariance):
            out["cov"] = getattr(self.covariance_fn.cov, "__qualname__", repr(self.covariance_fn.cov))
        return out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.describe().items() if k != "family")
        return f"{self.family}({args})"


jax.tree_util.register_dataclass(StateDependent, data_fields=["params"], meta_fields=["family", "covariance_fn"])


def check_regression(objective) -> None:
    """Refuse (ValueError) an objective label noise cannot perturb: not a finite sum of (inputs,
    real targets)."""
    if not isinstance(objective, FiniteSum):
        raise ValueError(f"label_noise needs a regression finite sum (objectives.least_squares or finite_sum), got objective {objective.name!r}")
    data = objective.params
    if not (isinstance(data, (tuple, list)) and len(data) == 2 and jnp.issubdtype(jnp.asarray(data[1]).dtype, jnp.floating)):
        raise ValueError(
            f"label_noise needs data (inputs, targets) with real-valued targets (a regression), got objective {objective.name!r} "
            f"with data {jax.tree.map(lambda a: getattr(a, 'dtype', type(a)), data)}"
        )


def find_minimum_value(objective, *, n_grid: int | None = None, n_starts: int = 8) -> float:
    """The least value of f found on its search box: f on a grid of the box (dim <= 2: 2001 or 201^2
    points; else 4096 uniform points), then L-BFGS-B in the box from the `n_starts` best points.
    **Raises:** ValueError naming f_min when the objective has no `search_box`."""
    if objective.search_box is None:
        raise ValueError(f"f_min: objective {objective.name!r} has no search_box to find min f on; give loss_scaled(scale, f_min=...)")
    lower, upper = (np.asarray(b, np.float64).reshape(objective.dim) for b in objective.search_box(objective.params))
    d = objective.dim
    if d <= 2:
        n = n_grid or (2001 if d == 1 else 201)
        axes = [np.linspace(lower[a], upper[a], n) for a in range(d)]
        points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, d)
    else:
        points = np.random.default_rng(0).uniform(lower, upper, size=(4096, d))
    values = np.asarray(objective.value(points), np.float64)
    best = float(np.nanmin(values))
    value_and_grad = jax.jit(jax.value_and_grad(objective.point_value))
    dtype = jnp.result_type(float)

    def fun(x):
        v, g = value_and_grad(jnp.asarray(x, dtype))
        return float(v), np.asarray(g, np.float64)

    for start in points[np.argsort(values)[:n_starts]]:
        found = scipy.optimize.minimize(fun, start, jac=True, method="L-BFGS-B", bounds=list(zip(lower, upper)))
        if np.isfinite(found.fun):
            best = min(best, float(found.fun))
    return best


# ---- constructors ----------------------------------------------------------------------------


def state_dependent(cov: Callable) -> StateDependent:
    """Gaussian noise of covariance `cov(x)` at x: eps = cov(x)^(1/2) z, z the Gaussian family's draws.

    **Arguments:** `cov`: a function x `(d,)` -> `(d, d)` positive semi-definite, traceable by JAX
    (checked at the starting points by `simulate.run`: shape, real, finite, symmetric, PSD).
    """
    if not callable(cov):
        raise ValueError(f"cov must be a function x -> (d, d) covariance matrix, got {cov!r}")
    return StateDependent("state_dependent", _UserCovariance(cov), {})


def hessian_aligned(scale: float = 1.0) -> StateDependent:
    """Hessian-aligned Gaussian noise: C(x) = scale [Hess f(x)]_+, the PSD part of the Hessian.

    `scale` >= 0."""
    return StateDependent("hessian_aligned", _hessian_aligned, {"scale": check_scale(scale)})


def loss_scaled(scale: float = 1.0, f_min: float | None = None) -> StateDependent:
    """Loss-scaled Gaussian noise: C(x) = scale max(f(x) - f_min, 0) I (f_min given or found).

    `scale` >= 0; `f_min` a finite number, or None: found on the objective's search box when the
    noise meets its objective (`bind`, called by `simulate.run`)."""
    scale = check_scale(scale)
    f_min = None if f_min is None else validation.finite_float("f_min", f_min)
    return StateDependent("loss_scaled", _loss_scaled, {"scale": scale, "f_min": f_min})


def label_noise(scale: float = 1.0) -> StateDependent:
    """Label noise on a regression finite sum: C(x) = (scale^2 / n^2) sum_j J_j J_j^T, exact per example.

    Every label is perturbed afresh at every step by scale x N(0, 1), `scale` >= 0; J_j the
    derivative of example j's gradient in its label (the module docstring)."""
    return StateDependent("label_noise", _label_noise, {"scale": check_scale(scale)})
