"""Sums of Gaussian wells, and `sharp_flat`: the canonical 1-D sharp-versus-flat landscape.

    f(x) = - sum_k d_k exp(-(1/2) (x - m_k)^T W_k^{-1} (x - m_k)) + (kappa / 2) ||x||^2

Gaussian smoothing is closed form in any dimension: for e ~ N(0, C), the convolution of two
Gaussians is a Gaussian, so each well keeps its center, its covariance grows to W_k + C and its
depth shrinks by sqrt(det W_k / det(W_k + C)); the confinement gains (kappa / 2) tr C. A narrow
well (small W_k) loses depth much faster than a wide one: that is how smoothing prefers flat
minima.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from objectives import validation as check
from objectives.base import Objective

__all__ = [
    "gaussian_wells",
    "sharp_flat",
    "SHARP_FLAT_NOISE_SCALE",
    "SHARP_FLAT_STEP_SIZES",
    "SHARP_FLAT_CRITICAL_STEP_SIZE",
]


class WellsParams(NamedTuple):
    depths: np.ndarray  # (K,) d_k > 0
    centers: np.ndarray  # (K, dim) m_k
    widths: np.ndarray  # (K,) standard deviations w_k (isotropic), or (K, dim, dim) covariances W_k
    confinement: np.ndarray  # () kappa >= 0


def _well_covariances(params, dim: int):
    """W_k as `(K, dim, dim)` matrices."""
    if params.widths.ndim == 1:
        return (params.widths**2)[:, None, None] * jnp.eye(dim, dtype=params.widths.dtype)[None]
    return params.widths


def _wells_value(params, x):
    if params.widths.ndim == 1:
        # One well at a time (K is static): scalar ops that XLA fuses into the SGD step. The
        # vectorised form over a (K, dim) axis inside the chains' vmap ran slower on CPU (benchmarks/README.md, "Lab notes").
        wells = 0.0
        for k in range(params.depths.shape[0]):
            offset = x - params.centers[k]
            # A product with the rate, not a division by the width: XLA turns x / w into
            # x * (1 / w) in some compiles (under shard_map) and not in others, and the two
            # differ in the last bit, which chaotic chains amplify.
            rate = -0.5 / params.widths[k] ** 2
            wells = wells - params.depths[k] * jnp.exp(rate * jnp.sum(offset * offset))
    else:
        offsets = x[None, :] - params.centers
        solved = jnp.linalg.solve(params.widths, offsets[..., None])[..., 0]
        wells = -jnp.sum(params.depths * jnp.exp(-0.5 * jnp.sum(offsets * solved, axis=-1)))
    return wells + 0.5 * params.confinement * jnp.sum(x * x)


def _wells_gaussian_smoothing(params, x, covariance):
    # int N(y; m, W) N(x - y; 0, C) dy = N(x; m, W + C), and exp(-q_W/2) = sqrt(det 2 pi W) N(.; m, W),
    # so E exp(-(1/2)(x - e - m)^T W^-1 (x - e - m)) = sqrt(det W / det(W + C)) exp(-(1/2)(x - m)^T (W + C)^-1 (x - m)).
    dim = x.shape[-1]
    wells = _well_covariances(params, dim)
    grown = wells + covariance[None]
    offsets = x[None, :] - params.centers
    cholesky = jnp.linalg.cholesky(grown)
    whitened = jax.scipy.linalg.solve_triangular(cholesky, offsets[..., None], lower=True)[..., 0]
    log_det_grown = 2.0 * jnp.sum(jnp.log(jnp.diagonal(cholesky, axis1=-2, axis2=-1)), axis=-1)
    if params.widths.ndim == 1:
        log_det_wells = 2.0 * dim * jnp.log(params.widths)
    else:
        log_det_wells = jnp.linalg.slogdet(params.widths)[1]
    depths = params.depths * jnp.exp(0.5 * (log_det_wells - log_det_grown))
    smoothed_wells = -jnp.sum(depths * jnp.exp(-0.5 * jnp.sum(whitened * whitened, axis=-1)))
    return smoothed_wells + 0.5 * params.confinement * (jnp.sum(x * x) + jnp.trace(covariance))


def _wells_search_box(params):
    centers = np.asarray(params.centers, dtype=np.float64)
    widths = np.asarray(params.widths, dtype=np.float64)
    if widths.ndim == 1:
        spread = np.broadcast_to(widths[:, None], centers.shape)
    else:
        spread = np.sqrt(np.diagonal(widths, axis1=-2, axis2=-1))
    lower, upper = np.min(centers - 4.0 * spread, axis=0), np.max(centers + 4.0 * spread, axis=0)
    if float(params.confinement) > 0:  # the confinement pulls minima toward the origin
        lower, upper = np.minimum(lower, 0.0), np.maximum(upper, 0.0)
    return lower, upper


def gaussian_wells(depths, centers, widths, confinement=0.0, *, name: str = "gaussian_wells") -> Objective:
    """A sum of K Gaussian wells plus an optional quadratic confinement, in any dimension.

        f(x) = - sum_k d_k exp(-(1/2) (x - m_k)^T W_k^{-1} (x - m_k)) + (kappa / 2) ||x||^2

    Closed-form Gaussian smoothing, e ~ N(0, C):

        E f(x - e) = - sum_k d_k sqrt(det W_k / det(W_k + C)) exp(-(1/2) (x - m_k)^T (W_k + C)^{-1} (x - m_k))
                     + (kappa / 2)(||x||^2 + tr C).

    At the bottom of an isolated isotropic well the curvature is d_k / w_k^2 per axis.

    **Arguments:**

    - `depths`: d_k > 0, shape `(K,)`.
    - `centers`: m_k, shape `(K, dim)`; shape `(K,)` means K wells on the line (dim 1).
    - `widths`: shape `(K,)`: standard deviations w_k > 0 of isotropic wells (W_k = w_k^2 I);
      or shape `(K, dim, dim)`: symmetric positive-definite covariances W_k.
    - `confinement`: kappa >= 0, the curvature of a bowl centered at the origin (default 0).
    - `name`: the name used in results.

    **Returns:** an `Objective` (derivatives by autodiff).
    """
    d = check.float_array("depths", depths, ndim=(1,), allowed="a vector of shape (K,) of positive well depths")
    if d.size == 0 or np.any(d <= 0):
        raise ValueError(f"depths must be a non-empty vector of positive numbers, got {d.tolist()}")
    k = d.shape[0]
    m = check.float_array("centers", centers, ndim=(1, 2), allowed=f"an array of shape (K, dim) = ({k}, dim)")
    if m.ndim == 1:
        m = m[:, None]
    if m.shape[0] != k:
        raise ValueError(f"centers has shape {m.shape} but depths has K={k} wells: centers must be ({k}, dim)")
    dim = m.shape[1]
    if dim < 1:
        raise ValueError(f"centers must have shape (K, dim) with dim >= 1, got {m.shape}")
    w = check.float_array(
        "widths", widths, ndim=(1, 3), allowed=f"a vector ({k},) of standard deviations or covariances ({k}, {dim}, {dim})"
    )
    if w.ndim == 1:
        if w.shape[0] != k:
            raise ValueError(f"widths has shape {w.shape} but there are K={k} wells: widths must be ({k},)")
        if np.any(w <= 0):
            raise ValueError(f"widths must be positive standard deviations, got {w.tolist()}")
    else:
        if w.shape != (k, dim, dim):
            raise ValueError(f"widths has shape {w.shape}; per-well covariances must be ({k}, {dim}, {dim})")
        if not np.allclose(w, np.swapaxes(w, 1, 2), rtol=1e-10, atol=1e-12 * max(1.0, np.abs(w).max())):
            raise ValueError("widths (per-well covariances) must be symmetric")
        smallest = np.linalg.eigvalsh(w).min(axis=-1)
        if np.any(smallest <= 0):
            raise ValueError(
                f"widths (per-well covariances) must be positive definite, got smallest eigenvalues {smallest.tolist()}"
            )
    kappa = check.float_array("confinement", confinement, ndim=(0,), allowed="a non-negative number")
    if kappa < 0:
        raise ValueError(f"confinement must be non-negative, got {confinement!r}")
    return Objective(
        dim=dim,
        value_fn=_wells_value,
        params=WellsParams(d, m, w, kappa),
        name=name,
        info=(("family", "gaussian_wells"), ("wells", k), ("widths", "isotropic" if w.ndim == 1 else "covariance")),
        gaussian_smoothing=_wells_gaussian_smoothing,
        search_box=_wells_search_box,
    )


# ---- the canonical sharp-versus-flat landscape ------------------------------------------------

_SHARP = dict(depth=1.0, center=-1.0, width=0.15)
_FLAT = dict(depth=0.9, center=1.0, width=0.6)
_CONFINEMENT = 0.1

#: The noise scale s that goes with `sharp_flat`: Gaussian noise N(0, s^2).
SHARP_FLAT_NOISE_SCALE = 1.0
#: The default step-size grid for `sharp_flat`: three step sizes below the critical one (SGD
#: started in the sharp well stays there, as argmin F_eta does) and three above (SGD leaves it,
#: argmin F_eta is in the flat well, and the averages are far closer to it than the last iterate).
SHARP_FLAT_STEP_SIZES = (0.01, 0.02, 0.04, 0.1, 0.2, 0.4)
#: argmin F_eta jumps from the sharp to the flat well at this eta (Gaussian noise of scale
#: SHARP_FLAT_NOISE_SCALE): the two local minima of F_eta have equal values there. Recomputed
#: by tests/test_landscapes.py (bisection on the gap between the two minima).
SHARP_FLAT_CRITICAL_STEP_SIZE = 0.07654355


def sharp_flat() -> Objective:
    """The canonical 1-D landscape: a deep, narrow well and a shallower, wide one.

        f(x) = -1.0 exp(-(x + 1)^2 / (2 * 0.15^2)) - 0.9 exp(-(x - 1)^2 / (2 * 0.6^2)) + 0.05 x^2

    The sharp well at x ~ -1 (curvature ~ 44, f ~ -0.95) is the global minimum of f; the flat
    well at x ~ 0.96 (curvature ~ 2.6, f ~ -0.85) is shallower. Under Gaussian noise of scale
    s, F_eta is f smoothed with variance (eta s)^2: the sharp well's depth shrinks as
    0.15 / sqrt(0.15^2 + eta^2 s^2), the flat one's as 0.6 / sqrt(0.6^2 + eta^2 s^2), so
    argmin F_eta jumps from the sharp to the flat well at eta = SHARP_FLAT_CRITICAL_STEP_SIZE
    ~ 0.0765 (with s = SHARP_FLAT_NOISE_SCALE = 1), inside the grid SHARP_FLAT_STEP_SIZES =
    (0.01, 0.02, 0.04, 0.1, 0.2, 0.4). SGD started at x0 = -1 stays in the sharp well for the
    three small step sizes and leaves it for the three large ones (eta h_sharp > 2 makes the
    sharp well unstable near eta ~ 0.045; escapes become frequent near eta ~ 0.07). The
    confinement 0.05 x^2 keeps SGD from wandering off (the wells' gradients are bounded, so
    SGD never diverges). Measured with 4000 chains, 10^4 steps, x0 = -1, seed 0, float64: the
    mean squared distance to argmin F_eta of x_T / x_avg / v_avg is 0.025 / 0.0019 / 0.0019 at
    eta = 0.1, 0.066 / 0.00023 / 0.00021 at eta = 0.2 and 0.68 / 0.019 / 0.019 at eta = 0.4
    (standard errors below 5%; at eta = 0.4, 8% of the chains are back in the sharp well at the
    end). Below the critical eta all estimators stay in the sharp well (x_T within 0.05).

    **Returns:** a 1-D `gaussian_wells` objective named "sharp_flat".
    """
    return gaussian_wells(
        depths=[_SHARP["depth"], _FLAT["depth"]],
        centers=[[_SHARP["center"]], [_FLAT["center"]]],
        widths=[_SHARP["width"], _FLAT["width"]],
        confinement=_CONFINEMENT,
        name="sharp_flat",
    )
