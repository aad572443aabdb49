"""Landscapes with sharp and flat minima, each with its exact Gaussian smoothing.

Every constructor sets the closed form `gaussian_smoothing`: fn(params, x, covariance) = E f(x - e),
e ~ N(0, covariance), derived in its docstring, and `search_box`: fn(params) -> (lower, upper),
`(dim,)` NumPy arrays bounding the region where its interesting minima lie (used by
`analysis.minimizers`). `objectives.smoothed` calls the first with covariance eta^2 Sigma.

- `rippled_quadratic`: a bowl plus cosine ripples (many sharp local minima, Kleinberg, Li and
  Yuan 2018); smoothing damps the ripples by exp(-frequency^2 s^2 / 2).
- `valley_2d`: a curved valley y = bend x^2 of minima, all at value 0, whose cross-section
  sharpens away from one point; smoothing selects the flattest part.

`gaussian_wells` and `sharp_flat` live in `objectives.wells`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from objectives import validation as check
from objectives.base import Objective

__all__ = ["rippled_quadratic", "valley_2d"]


# ---- rippled quadratic -----------------------------------------------------------------------


class RippledParams(NamedTuple):
    curvature: np.ndarray  # (dim,) a
    center: np.ndarray  # (dim,) c
    amplitude: np.ndarray  # (dim,) A
    frequency: np.ndarray  # (dim,) w


def _rippled_value(params, x):
    a, c, amplitude, w = params
    return jnp.sum(0.5 * a * (x - c) ** 2 + amplitude * (1.0 - jnp.cos(w * x)))


def _rippled_grad(params, x):
    a, c, amplitude, w = params
    return a * (x - c) + amplitude * w * jnp.sin(w * x)


def _rippled_hessian(params, x):
    return jnp.diag(_rippled_curvatures(params, x))


def _rippled_curvatures(params, x):
    a, _, amplitude, w = params
    return a + amplitude * w * w * jnp.cos(w * x)


def _rippled_hessian_trace(params, x):
    return jnp.sum(_rippled_curvatures(params, x))


def _rippled_gaussian_smoothing(params, x, covariance):
    # E cos(w (x_j - e_j)) = cos(w x_j) exp(-w^2 C_jj / 2) (the characteristic function of
    # e_j ~ N(0, C_jj)); E (a/2)(x_j - e_j - c_j)^2 = (a/2)((x_j - c_j)^2 + C_jj).
    a, c, amplitude, w = params
    variances = jnp.diagonal(covariance)
    damping = jnp.exp(-0.5 * w * w * variances)
    return jnp.sum(0.5 * a * ((x - c) ** 2 + variances) + amplitude * (1.0 - damping * jnp.cos(w * x)))


def _rippled_search_box(params):
    a, c, amplitude, w = (np.asarray(p, dtype=np.float64) for p in params)
    # Stationary points need |a (x - c)| <= A w: every local minimum lies within A w / a of c.
    reach = amplitude * w / a + 2.0 * math.pi / w
    return c - reach, c + reach


def rippled_quadratic(
    curvature=1.0,
    center=0.3,
    amplitude=0.5,
    frequency=2.0 * math.pi,
    dim: int = 1,
    *,
    name: str = "rippled_quadratic",
) -> Objective:
    """A quadratic bowl with cosine ripples: many sharp local minima around one wide basin.

        f(x) = sum_j [ (a_j / 2)(x_j - c_j)^2 + A_j (1 - cos(w_j x_j)) ]

    The ripple minima sit at x_j = 2 pi k / w_j, the bowl's center c is not one of them, and
    every local minimum lies within A w / a of c. Under Gaussian smoothing, e ~ N(0, C),

        E f(x - e) = sum_j [ (a_j / 2)((x_j - c_j)^2 + C_jj) + A_j (1 - exp(-w_j^2 C_jj / 2) cos(w_j x_j)) ]

    (the Gaussian characteristic function damps each ripple), so with C = eta^2 s^2 I the
    ripples fade as exp(-w^2 eta^2 s^2 / 2) and argmin F_eta moves continuously from the ripple
    minimum next to c (x = 0 with the defaults) to c = 0.3 as eta grows: the path is monotone
    when w |c - x_ripple| < pi, the global minimum near 0 stays global because (c - 0)^2 <
    (c - 1)^2. With the defaults, local minima are 1 + A w^2 = 20.7 sharp; SGD on them is stable
    for eta < 2 / 20.7 ~ 0.097.

    **Arguments:**

    - `curvature`: a > 0, the bowl's curvature (number or `(dim,)`; default 1.0).
    - `center`: c, the bowl's center (number or `(dim,)`; default 0.3).
    - `amplitude`: A >= 0, the ripple amplitude (number or `(dim,)`; default 0.5).
    - `frequency`: w > 0, the ripple frequency (number or `(dim,)`; default 2 pi: period 1).
    - `dim`: the dimension (default 1; a vector argument fixes it).
    - `name`: the name used in results.

    **Returns:** an `Objective` with closed-form gradient, Hessian (diagonal) and trace.
    """
    sizes = {np.ndim(v) and np.shape(v)[0] for v in (curvature, center, amplitude, frequency)} - {0}
    if len(sizes) > 1:
        raise ValueError(f"curvature, center, amplitude and frequency disagree on dim: vector lengths {sorted(sizes)}")
    dim = check.dimension("dim", dim)
    if sizes:
        (implied,) = sizes
        if dim not in (1, implied):
            given = {"curvature": curvature, "center": center, "amplitude": amplitude, "frequency": frequency}
            vectors = " and ".join(name for name, value in given.items() if np.ndim(value))
            raise ValueError(f"dim={dim} disagrees with {vectors}, of length {implied}")
        dim = implied
    params = RippledParams(
        curvature=check.per_coordinate("curvature", curvature, dim, positive=True),
        center=check.per_coordinate("center", center, dim, positive=False),
        amplitude=check.per_coordinate("amplitude", amplitude, dim, positive=True, allow_zero=True),
        frequency=check.per_coordinate("frequency", frequency, dim, positive=True),
    )
    return Objective(
        dim=dim,
        value_fn=_rippled_value,
        params=params,
        name=name,
        grad_fn=_rippled_grad,
        hessian_fn=_rippled_hessian,
        hessian_trace_fn=_rippled_hessian_trace,
        info=(("family", "rippled_quadratic"),),
        gaussian_smoothing=_rippled_gaussian_smoothing,
        search_box=_rippled_search_box,
    )


# ---- curved valley ---------------------------------------------------------------------------


class ValleyParams(NamedTuple):
    floor_curvature: np.ndarray  # () a
    curvature_growth: np.ndarray  # () b
    flat_at: np.ndarray  # () x0
    bend: np.ndarray  # () c


def _valley_value(params, point):
    a, b, x0, c = params
    x, y = point[0], point[1]
    return 0.5 * (a + b * (x - x0) ** 2) * (y - c * x * x) ** 2


def _valley_grad(params, point):
    # Closed form: autodiff of point[0], point[1] builds two padded copies of the gradient that
    # every later use in the engine's step reads again (benchmarks/README.md, case 2).
    a, b, x0, c = params
    x, y = point[0], point[1]
    q = a + b * (x - x0) ** 2
    r = y - c * x * x
    return jnp.stack([b * (x - x0) * r * r - 2.0 * c * x * q * r, q * r])


def _valley_gaussian_smoothing(params, point, covariance):
    # (X, Y) = point - e is Gaussian. Write X = x + u, u ~ N(0, v), v = C_xx, and
    # Y = y + beta u + eta with beta = C_xy / v and eta ~ N(0, tau^2), tau^2 = C_yy - beta C_xy,
    # independent of u. Given u, E (Y - c X^2)^2 = m(u)^2 + tau^2 with
    # m(u) = r + g u - c u^2, r = y - c x^2, g = beta - 2 c x; q(X) = Q0 + Q1 u + Q2 u^2. Then
    # E q m^2 is a sum of Gaussian moments E u^2 = v, E u^4 = 3 v^2, E u^6 = 15 v^3.
    a, b, x0, c = params
    x, y = point[0], point[1]
    v, cxy, cyy = covariance[0, 0], covariance[0, 1], covariance[1, 1]
    has_x_noise = v > 0
    beta = jnp.where(has_x_noise, cxy / jnp.where(has_x_noise, v, 1.0), 0.0)
    tau2 = cyy - beta * cxy
    r = y - c * x * x
    g = beta - 2.0 * c * x
    m0, m1, m2, m3, m4 = r * r + tau2, 2.0 * r * g, g * g - 2.0 * r * c, -2.0 * g * c, c * c
    p = x - x0
    q0, q1, q2 = a + b * p * p, 2.0 * b * p, b
    expectation = (
        q0 * (m0 + m2 * v + 3.0 * m4 * v * v)
        + q1 * (m1 * v + 3.0 * m3 * v * v)
        + q2 * (m0 * v + 3.0 * m2 * v * v + 15.0 * m4 * v * v * v)
    )
    return 0.5 * expectation


def _valley_search_box(params):
    a, b, x0, c = (float(p) for p in params)
    x_low, x_high = min(0.0, x0) - 2.0, max(0.0, x0) + 2.0
    parabola = c * np.array([x_low**2, x_high**2, 0.0])
    return np.array([x_low, parabola.min() - 1.0]), np.array([x_high, parabola.max() + 1.0])


def valley_2d(
    floor_curvature=1.0,
    curvature_growth=1.0,
    flat_at=1.0,
    bend=0.5,
    *,
    name: str = "valley_2d",
) -> Objective:
    """A curved valley of minima whose width changes along it (for trajectory pictures).

        f(x, y) = (1/2) (a + b (x - x0)^2) (y - c x^2)^2

    Every point of the parabola y = c x^2 is a minimum with f = 0 (a connected set); across the
    valley the curvature is a + b (x - x0)^2, and the Hessian trace on the floor is
    (a + b (x - x0)^2)(1 + 4 c^2 x^2), so the penalty (eta^2 s^2 / 2) tr H selects the point
    minimising it (x = 0.5 with the defaults; argmin F_eta moves with eta from there, see the
    tests). f is a polynomial of degree 6, so its Gaussian smoothing is exact: with
    e ~ N(0, C), u = -e_x, beta = C_xy / C_xx, tau^2 = C_yy - beta C_xy, r = y - c x^2,
    g = beta - 2 c x, m(u) = r + g u - c u^2 and q = (a + b p^2) + 2 b p u + b u^2 (p = x - x0),

        E f(x - e) = (1/2) E_u[ q(u) (m(u)^2 + tau^2) ],

    which expands into Gaussian moments E u^2 = C_xx, E u^4 = 3 C_xx^2, E u^6 = 15 C_xx^3 (the
    y-noise is split into its regression on u plus an independent part).

    SGD across the valley is stable for eta (a + b (x - x0)^2)(1 + 4 c^2 x^2) < 2, so start
    chains near the valley and within a few units of x0.

    **Arguments:**

    - `floor_curvature`: a > 0, the smallest cross-valley curvature, at x = x0 (default 1.0).
    - `curvature_growth`: b >= 0, how fast the valley sharpens away from x0 (default 1.0).
    - `flat_at`: x0, where the valley is widest (default 1.0).
    - `bend`: c, the valley's floor is y = c x^2 (default 0.5).
    - `name`: the name used in results.

    **Returns:** a 2-D `Objective` (closed-form gradient; Hessian by autodiff).
    """
    values = {"floor_curvature": floor_curvature, "curvature_growth": curvature_growth, "flat_at": flat_at, "bend": bend}
    checked = {k: check.float_array(k, v, ndim=(0,), allowed="a number") for k, v in values.items()}
    if checked["floor_curvature"] <= 0:
        raise ValueError(f"floor_curvature must be positive, got {floor_curvature!r}")
    if checked["curvature_growth"] < 0:
        raise ValueError(f"curvature_growth must be non-negative, got {curvature_growth!r}")
    return Objective(
        dim=2,
        value_fn=_valley_value,
        grad_fn=_valley_grad,
        params=ValleyParams(**checked),
        name=name,
        info=(("family", "valley_2d"),),
        gaussian_smoothing=_valley_gaussian_smoothing,
        search_box=_valley_search_box,
    )
