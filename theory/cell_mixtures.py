"""Cell matrices of kernels that are mixtures of Gaussians whose mean and covariance change from
cell to cell: the kernels of SGD with state-dependent noise.

A row of the cell chain is the law of the next iterate from the centre c_i,

    P(c_i, .) = sum_k w_ik N(m_ik, S_ik),

K components per row: one Gaussian N(c_i - eta grad f(c_i), eta^2 C(c_i)) for state-dependent
Gaussian noise, or every minibatch's point map m_ib = c_i - eta grad f_b(c_i) with its
probability (S = 0) for the exact minibatch kernel.

Each component is spread over the cell centres by the tent (linear interpolation) weights,

    P_ij = sum_k w_ik E[tent_j(Y_ik)],   tent_j(y) = max(0, 1 - |y - c_j| / h),   Y_ik ~ N(m_ik, S_ik),

not by cell integrals. The tent keeps every row's first moment exactly (sum_j c_j P_ij = the
row's mean, inside the box) whatever the width of the Gaussian, down to a point mass (S = 0).
That matters where the noise vanishes: cell integrals of a narrow Gaussian round the drift
c - eta grad f(c) to the cell it lands in, so the cells next to a minimizer where the noise
vanishes become spurious fixed points once eta |grad f| < h / 2; the tent moves a fraction of
the mass at the right mean speed. The price is variance: the tent adds up to h^2 / 4 per step
(cell integrals h^2 / 12), an error of order h^2 like the cell integrals'.

1-D, in closed form: with psi(u) = E[(Z - u)^+] = phi(u) - u Q(u) (Z standard normal),
E[tent_j(Y)] = (s / h) (second difference of psi over the standardised centres), taken as
psi(|u|) plus the kink of (-u)^+ (only in the columns that straddle the mean), so that columns
on one side of the mean keep their relative accuracy in the tails (psi through `erfcx`).
Mass beyond the outermost centre stays in the box's end cell; mass beyond the box's edge leaks
(`leak`, put back by renormalising the rows, as for the additive kernels).

2-D: a Gaussian with a diagonal covariance is the product of the two axes' 1-D rows; a full
covariance is integrated as E_X[tent_a(X) E[tent_b(Y) | X]], exactly in y given x (a 1-D row)
and by `GAUSS_HERMITE_NODES`-point Gauss-Hermite quadrature in x. Point masses are split
bilinearly between the four neighbouring centres.

Every function here is NumPy float64.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse
import scipy.special

from theory.linalg import NoStationaryLaw

__all__ = ["mixture_matrix", "tent_rows", "DROP_BELOW", "GAUSS_HERMITE_NODES"]

#: Entries of a row below this fraction of its largest entry are dropped, as for additive noise.
DROP_BELOW = 1e-20
#: Reach of a Gaussian in standard deviations: its tent weights beyond are below 1e-22 of the row's largest.
REACH = 10.5
#: Standard deviations below this fraction of the cell width are treated as point masses.
POINT_BELOW = 1e-9
#: Gauss-Hermite nodes in x for a 2-D Gaussian with correlated axes (moments to degree 39 exact).
GAUSS_HERMITE_NODES = 20
#: Largest number of (source x window) entries built at once (memory: about 10 such arrays).
CHUNK = 4_000_000


def _psi(u):
    """psi(|u|) = E[(Z - |u|)^+] = phi(u) (1 - |u| Q(|u|) / phi(u)), relative accuracy in the tail."""
    a = np.abs(u)
    mills = math.sqrt(math.pi / 2.0) * scipy.special.erfcx(a / math.sqrt(2.0))  # Q(a) / phi(a)
    return np.exp(-0.5 * a * a) / math.sqrt(2.0 * math.pi) * np.maximum(1.0 - a * mills, 0.0)


def _upper_tail(z):
    return 0.5 * scipy.special.erfc(z / math.sqrt(2.0))


def tent_rows(first_centre: float, width: float, n: int, mean, spread):
    """Tent weights of M 1-D Gaussians N(mean, spread^2) on n centres first_centre + j width.

    **Arguments:** `mean`, `spread` `(M,)` (spread >= 0; below `POINT_BELOW` x width a point).

    **Returns:** `(first, values, leak)`: `first` `(M,)` the first column of each window,
    `values` `(M, W)` the weights of columns first .. first + W - 1, `leak` `(M,)` the mass
    beyond the box [first_centre - width / 2, last centre + width / 2] (values sum to 1 - leak).
    """
    mean = np.asarray(mean, np.float64)
    spread = np.asarray(spread, np.float64)
    h = float(width)
    point = spread < POINT_BELOW * h
    s = np.where(point, 1.0, spread)
    reach = REACH * float(np.max(np.where(point, 0.0, spread), initial=0.0))
    w = int(min(n, math.ceil(2.0 * reach / h) + 4))
    first = np.clip(np.floor((mean - first_centre) / h).astype(np.int64) - w // 2 + 1, 0, n - w)
    k = first[:, None] + np.arange(-1, w + 1)[None, :]  # the window with one centre more each side
    u = (first_centre + k * h - mean[:, None]) / s[:, None]
    a = _psi(u)
    kink = np.maximum(-u, 0.0)
    second = a[:, :-2] - 2.0 * a[:, 1:-1] + a[:, 2:]
    straddle = (u[:, :-2] < 0) & (u[:, 2:] > 0)
    second = second + np.where(straddle, kink[:, :-2] - 2.0 * kink[:, 1:-1] + kink[:, 2:], 0.0)
    values = (s / h)[:, None] * second
    lower_edge, upper_edge = first_centre - 0.5 * h, first_centre + (n - 0.5) * h
    below = _upper_tail((mean - lower_edge) / s)
    above = _upper_tail((upper_edge - mean) / s)
    # End columns: all mass beyond the outermost centre, less what leaves the box.
    g = a + np.maximum(u, 0.0)  # E[(c - Y)^+] / s
    hh = a + kink  # E[(Y - c)^+] / s
    at_start = first == 0
    values[:, 0] = np.where(at_start, (s / h) * (g[:, 2] - g[:, 1]) - below, values[:, 0])
    at_end = first + w == n
    values[:, -1] = np.where(at_end, (s / h) * (hh[:, -3] - hh[:, -2]) - above, values[:, -1])
    values = np.maximum(values, 0.0)
    leak = below + above
    # Point masses: split linearly between the two neighbouring centres.
    if np.any(point):
        y = mean[point]
        inside = (y >= lower_edge) & (y <= upper_edge)
        t_all = np.clip((y - first_centre) / h, 0.0, n - 1.0)
        j = np.clip(np.floor(t_all), 0, n - 2).astype(np.int64)
        t = t_all - j
        rows = np.zeros((y.size, w))
        local = j - first[point]
        np.put_along_axis(rows, local[:, None], (1.0 - t)[:, None], axis=1)
        if w > 1:
            np.put_along_axis(rows, np.minimum(local + 1, w - 1)[:, None], np.where(local + 1 < w, t, 0.0)[:, None], axis=1)
        values[point] = np.where(inside[:, None], rows, 0.0)
        leak = np.where(point, 0.0, leak)
        leak[point] = np.where(inside, 0.0, 1.0)
    return first, values, leak


def _coo_1d(grid, rows, weights, mean, spread):
    """COO triplets and per-source leak for 1-D sources (row index, weight, mean, spread)."""
    first_centre, h, n = float(grid.axes[0][0]), float(grid.widths[0]), grid.n_cells
    out_rows, out_cols, out_vals, leak = [], [], [], np.zeros(grid.size)
    wide = spread >= POINT_BELOW * h
    for group in (np.flatnonzero(~wide), np.flatnonzero(wide)):
        w_group = int(min(n, math.ceil(2.0 * REACH * float(np.max(spread[group], initial=0.0)) / h) + 4))
        step = max(1, CHUNK // w_group)
        for start in range(0, group.size, step):
            index = group[start : start + step]
            first, values, lost = tent_rows(first_centre, h, n, mean[index], spread[index])
            cols = first[:, None] + np.arange(values.shape[1])[None, :]
            out_rows.append(np.broadcast_to(rows[index][:, None], values.shape).ravel())
            out_cols.append(cols.ravel())
            out_vals.append((weights[index][:, None] * values).ravel())
            np.add.at(leak, rows[index], weights[index] * lost)
    return out_rows, out_cols, out_vals, leak


def _coo_2d(grid, rows, weights, mean, covariance):
    """As `_coo_1d` for 2-D sources: mean `(M, 2)`, covariance `(M, 2, 2)`."""
    n = grid.n_cells
    (x0, y0), (hx, hy) = (float(a[0]) for a in grid.axes), grid.widths
    out_rows, out_cols, out_vals, leak = [], [], [], np.zeros(grid.size)
    var_x, var_y, cov_xy = covariance[:, 0, 0], covariance[:, 1, 1], covariance[:, 0, 1]
    diagonal = np.abs(cov_xy) <= 1e-12 * np.sqrt(np.maximum(var_x * var_y, 0.0)) + 1e-300
    diagonal |= (var_x < (POINT_BELOW * hx) ** 2) | (var_y < (POINT_BELOW * hy) ** 2)

    def emit(index, first_x, vx, first_y, vy, scale):
        values = (scale[:, None, None] * vx[:, :, None]) * vy[:, None, :]
        cols = (first_x[:, None, None] + np.arange(vx.shape[1])[None, :, None]) * n + first_y[:, None, None] + np.arange(vy.shape[1])[None, None, :]
        out_rows.append(np.broadcast_to(rows[index][:, None, None], values.shape).ravel())
        out_cols.append(cols.ravel())
        out_vals.append(values.ravel())
        np.add.at(leak, rows[index], scale * (1.0 - vx.sum(axis=1) * vy.sum(axis=1)))

    sd_x, sd_y = np.sqrt(np.maximum(var_x, 0.0)), np.sqrt(np.maximum(var_y, 0.0))
    group = np.flatnonzero(diagonal)
    if group.size:
        wx = int(min(n, math.ceil(2 * REACH * float(sd_x[group].max()) / hx) + 4))
        wy = int(min(n, math.ceil(2 * REACH * float(sd_y[group].max()) / hy) + 4))
        step = max(1, CHUNK // (wx * wy))
        for start in range(0, group.size, step):
            index = group[start : start + step]
            fx, vx, _ = tent_rows(x0, hx, n, mean[index, 0], sd_x[index])
            fy, vy, _ = tent_rows(y0, hy, n, mean[index, 1], sd_y[index])
            emit(index, fx, vx, fy, vy, weights[index])
    group = np.flatnonzero(~diagonal)
    if group.size:
        nodes, node_weights = np.polynomial.hermite_e.hermegauss(GAUSS_HERMITE_NODES)
        node_weights = node_weights / node_weights.sum()
        slope = cov_xy[group] / var_x[group]
        sd_c = np.sqrt(np.maximum(var_y[group] - slope * cov_xy[group], 0.0))
        wy = int(min(n, math.ceil(2 * REACH * float(sd_c.max()) / hy) + 4))
        step = max(1, CHUNK // (2 * wy))
        for q, (z, omega) in enumerate(zip(nodes, node_weights)):
            x = mean[group, 0] + sd_x[group] * z
            y = mean[group, 1] + slope * sd_x[group] * z
            for start in range(0, group.size, step):
                part = slice(start, start + step)
                index = group[part]
                fx, vx, _ = tent_rows(x0, hx, n, x[part], np.zeros(index.size))
                fy, vy, _ = tent_rows(y0, hy, n, y[part], sd_c[part])
                emit(index, fx, vx, fy, vy, omega * weights[index])
    return out_rows, out_cols, out_vals, leak


def mixture_matrix(grid, weights, mean, covariance, *, allow_empty: bool = False):
    """The cell chain of the kernel P(c_i, .) = sum_k w_ik N(m_ik, S_ik) (see the module docstring).

    **Arguments:**

    - `grid`: a 1-D or 2-D `Grid` (N cells).
    - `weights`: `(N, K)` or `(K,)` non-negative, summing to 1 over k.
    - `mean`: `(N, K, d)` the components' means; `covariance`: `(N, K, d, d)` their
      covariances (PSD), or `None` for point masses.

    **Returns:** `(P, leak)`: `P` `(N, N)` SciPy CSR with rows renormalised to sum to 1 and
    entries below `DROP_BELOW` x the row's largest dropped; `leak` `(N,)` the mass each row sent
    out of the box. Raises `NoStationaryLaw` when a row sends all its mass out of the box, unless
    `allow_empty`: such rows are then left empty (leak 1; the chain ends there).
    """
    size, d = grid.size, grid.dim
    mean = np.asarray(mean, np.float64).reshape(size, -1, d)
    k = mean.shape[1]
    weights = np.broadcast_to(np.asarray(weights, np.float64), (size, k)).reshape(-1)
    rows = np.repeat(np.arange(size), k)
    flat_mean = mean.reshape(-1, d)
    if covariance is None:
        covariance = np.zeros((size * k, d, d))
    covariance = np.asarray(covariance, np.float64).reshape(-1, d, d)
    keep = weights > 0
    rows, weights, flat_mean, covariance = rows[keep], weights[keep], flat_mean[keep], covariance[keep]
    if d == 1:
        parts = _coo_1d(grid, rows, weights, flat_mean[:, 0], np.sqrt(np.maximum(covariance[:, 0, 0], 0.0)))
    else:
        parts = _coo_2d(grid, rows, weights, flat_mean, covariance)
    out_rows, out_cols, out_vals, leak = parts
    matrix = scipy.sparse.csr_matrix(
        (np.concatenate(out_vals), (np.concatenate(out_rows), np.concatenate(out_cols))), shape=(size, size)
    )
    matrix.sum_duplicates()
    largest = matrix.max(axis=1).toarray().ravel()
    row_of = np.repeat(np.arange(size), np.diff(matrix.indptr))
    matrix.data[matrix.data < DROP_BELOW * largest[row_of]] = 0.0
    matrix.eliminate_zeros()
    totals = np.asarray(matrix.sum(axis=1)).ravel()
    # A row that keeps less than the smallest normal float (its 1 / total would overflow to inf)
    # sent all its mass out of the box, as an empty row did.
    kept = totals >= np.finfo(np.float64).tiny
    if not kept.all() and not allow_empty:
        raise NoStationaryLaw("a cell sends all its mass out of the box")
    inverse = np.zeros(size)
    np.divide(1.0, totals, out=inverse, where=kept)
    matrix = scipy.sparse.diags(inverse) @ matrix
    matrix.eliminate_zeros()
    leak = np.where(kept, leak, 1.0)
    return matrix.tocsr(), np.clip(leak, 0.0, 1.0)
