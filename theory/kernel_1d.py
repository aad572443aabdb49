"""The 1-D cell chain as a matrix (Ulam / finite-volume discretization of the SGD kernel).

Rows come from differences of the noise CDF over the cell edges (`theory.grid`), evaluated in the
tails as differences of upper-tail probabilities so that entries of 1e-200 keep their relative
accuracy. Rademacher noise has atoms at m -/+ eta s: each goes to the two neighbouring centres,
split linearly (the first moment is kept exactly).

All functions here run in float64 (callers hold `jax.enable_x64`).
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse

from objectives.noise_families import family_named
from theory.grid import DROP_BELOW, Grid, NoiseLaw, interval_probability, interval_probability_np, upper_tail, upper_tail_np
from theory.linalg import NoStationaryLaw

__all__ = ["transition_matrix", "transition_sparse"]


def _splat_1d(y, first_centre, width, n):
    """Weights `(len(y), n)`: each point split linearly between its two neighbouring centres;
    points between the box edge and the outermost centre go to that centre, points outside the
    box nowhere (they leak)."""
    u = (y - first_centre) / width
    inside = (u >= -0.5) & (u <= n - 0.5)
    u = jnp.clip(u, 0.0, n - 1.0)
    j = jnp.clip(jnp.floor(u), 0, n - 2).astype(jnp.int32)
    t = u - j.astype(u.dtype)
    columns = jnp.arange(n, dtype=jnp.int32)[None, :]
    weights = jnp.where(columns == j[:, None], 1.0 - t[:, None], 0.0) + jnp.where(columns == j[:, None] + 1, t[:, None], 0.0)
    return jnp.where(inside[:, None], weights, 0.0), jnp.where(inside, 0.0, 1.0)


@partial(jax.jit, static_argnames=("family",))
def _matrix_1d(drift_target, edges, spread, df, *, family):
    """(P `(n, n)` raw, leak `(n,)`) for targets m_i and noise eta s Z (spread = eta s)."""
    n = drift_target.shape[0]
    atoms = family_named(family).atoms
    if atoms is not None:  # equally likely atoms, each split between its two neighbouring centres
        width = edges[1] - edges[0]
        first = edges[0] + 0.5 * width
        splats = [_splat_1d(drift_target + atom * spread, first, width, n) for atom in reversed(atoms)]
        weights, leaks = splats[0]
        for more_weights, more_leaks in splats[1:]:
            weights, leaks = weights + more_weights, leaks + more_leaks
        return weights / len(atoms), leaks / len(atoms)
    # x' in [e_j, e_{j+1}]  <=>  Z in ((m - e_{j+1}) / w, (m - e_j) / w)
    low = (drift_target[:, None] - edges[None, 1:]) / spread
    high = (drift_target[:, None] - edges[None, :-1]) / spread
    matrix = interval_probability(family, df, low, high)
    leak = upper_tail(family, df, (drift_target - edges[0]) / spread) + upper_tail(family, df, (edges[-1] - drift_target) / spread)
    return matrix, leak




@jax.jit
def _tidy(matrix):
    """Drop entries below DROP_BELOW x the row maximum, renormalise rows, measure the band."""
    matrix = jnp.where(matrix < DROP_BELOW * jnp.max(matrix, axis=1, keepdims=True), 0.0, matrix)
    totals = jnp.sum(matrix, axis=1, keepdims=True)
    n = matrix.shape[0]
    offsets = jnp.arange(n)[None, :] - jnp.arange(n)[:, None]
    nonzero = matrix > 0
    lower = jnp.max(jnp.where(nonzero, -offsets, 0))
    upper = jnp.max(jnp.where(nonzero, offsets, 0))
    return matrix / jnp.where(totals > 0, totals, 1.0), jnp.min(totals), lower, upper


def transition_matrix(grid: Grid, gradient: np.ndarray, law: NoiseLaw, step_size: float):
    """The 1-D cell chain at one step size.

    **Arguments:**

    - `grid`: a 1-D `Grid` of n cells; `gradient`: `(n,)` grad f at the centres.
    - `law`: the noise law; `step_size`: eta.

    **Returns:** `(P, leak, (lower_band, upper_band))`: `P` `(n, n)` NumPy (read-only), rows
    renormalised to sum to 1, entries below `DROP_BELOW` x the row maximum set to 0; `leak`
    `(n,)` the mass each row sent out of the box before renormalisation; the bandwidths of the
    non-zero pattern (P_ij = 0 unless -lower <= j - i <= upper).
    """
    if law.standard.band_reach is not None:  # each row's window around its target (NumPy)
        matrix, leak, bands = transition_sparse(grid, gradient, law, step_size)
        matrix = matrix.toarray()
        matrix.flags.writeable = False
        return matrix, leak, bands
    centres = grid.axes[0]
    target = centres - step_size * gradient
    edges, spread = grid.edges[0], step_size * law.scale
    if law.standard.atoms is None:  # a density without a band (Student-t): every row whole
        # SciPy's betainc: XLA's is far slower on CPU (benchmarks/README.md, "Lab notes").
        low = (target[:, None] - edges[None, 1:]) / spread
        high = (target[:, None] - edges[None, :-1]) / spread
        matrix = jnp.asarray(interval_probability_np(law.family, law.df, low, high))
        leak = upper_tail_np(law.family, law.df, (target - edges[0]) / spread) + upper_tail_np(law.family, law.df, (edges[-1] - target) / spread)
    else:  # atoms (Rademacher): split between neighbouring centres
        matrix, leak = _matrix_1d(jnp.asarray(target), jnp.asarray(edges), jnp.asarray(spread), jnp.asarray(law.df), family=law.family)
    matrix, smallest, lower, upper = _tidy(matrix)
    if not float(smallest) > 0:
        raise NoStationaryLaw("a cell sends all its mass out of the box")
    return np.asarray(matrix), np.asarray(leak), (int(lower), int(upper))


# ---- 1-D: the matrix in sparse form (NumPy; nothing to compile) -------------------------------


def _band_rows(target, edges, spread, family, reach, n):
    """(first column `(n,)`, values `(n, width)`, leak `(n,)`): each row's cell probabilities over
    the `width` columns around its target (beyond `reach` noise units they are under DROP_BELOW
    of the row). One upper tail per edge, Q(|z|), and each interval taken on the side away from
    0 as in `interval_probability` (tail entries keep their relative accuracy)."""
    cell = edges[1] - edges[0]
    width = int(min(n, math.ceil(2.0 * reach * spread / cell) + 4))
    first = np.clip(np.floor((target - edges[0]) / cell).astype(np.int64) - width // 2, 0, n - width)
    z = (target[:, None] - edges[first[:, None] + np.arange(width + 1)[None, :]]) / spread  # decreasing along a row
    tail = upper_tail_np(family, np.nan, np.abs(z))  # Q(|z|)
    # column first + k: Z in (z[k + 1], z[k]). On one side of 0 that is |Q(|z[k+1]|) - Q(|z[k]|)|
    # (the difference of the two tails away from 0); the interval holding 0 is 1 - Q(|z[k]|) - Q(|z[k+1]|).
    values = np.abs(np.diff(tail, axis=1))
    rows = np.flatnonzero((z[:, 0] >= 0) & (z[:, -1] < 0))
    k = np.sum(z[rows] >= 0, axis=1) - 1
    values[rows, k] = 1.0 - tail[rows, k] - tail[rows, k + 1]
    leak = upper_tail_np(family, np.nan, (target - edges[0]) / spread) + upper_tail_np(family, np.nan, (edges[-1] - target) / spread)
    return first, np.maximum(values, 0.0), leak


def transition_sparse(grid: Grid, gradient: np.ndarray, law: NoiseLaw, step_size: float):
    """As `transition_matrix`, with P as a SciPy CSR matrix (the same entries): `(P, leak,
    (lower_band, upper_band))`. Gaussian and uniform noise build only each row's window around
    its target, O(n x window) tail evaluations in NumPy (the image map c - eta f'(c) is not
    monotone, so the window of row i need not be near column i: the matrix is sparse but its band
    can cover it); other families (no `band_reach`) go through `transition_matrix`."""
    if law.standard.band_reach is None:
        matrix, leak, bands = transition_matrix(grid, gradient, law, step_size)
        return scipy.sparse.csr_matrix(matrix), leak, bands
    n = grid.n_cells
    edges, spread = grid.edges[0], step_size * law.scale
    target = grid.axes[0] - step_size * gradient
    first, values, leak = _band_rows(target, edges, spread, law.family, law.standard.band_reach, n)
    values[values < DROP_BELOW * values.max(axis=1, keepdims=True)] = 0.0
    totals = values.sum(axis=1)
    if not totals.min() > 0:
        raise NoStationaryLaw("a cell sends all its mass out of the box")
    values /= totals[:, None]
    width = values.shape[1]
    columns = first[:, None] + np.arange(width)[None, :]
    offsets = np.where(values > 0, columns - np.arange(n)[:, None], 0)
    bands = (int(max(0, -offsets.min())), int(max(0, offsets.max())))
    matrix = scipy.sparse.csr_matrix((values.ravel(), columns.ravel(), np.arange(n + 1) * width), shape=(n, n))
    matrix.eliminate_zeros()
    return matrix, leak, bands
