"""The SGD transition kernel discretized on a grid of cells (Ulam / finite-volume discretization).

SGD with additive noise is the Markov chain x' = x - eta grad f(x) - eta eps, so its kernel is

    P(x, A) = Prob(m(x) - eta eps in A),        m(x) = x - eta grad f(x).

On a grid of cells C_j (centres c_j) the chain is replaced by the cell chain

    P_ij = Prob(m(c_i) - eta eps in C_j),

the probability of a whole cell, integrated from the noise law (never its density at a point).
The mass that leaves the box, 1 - sum_j P_ij, is reported per cell (`leak`) and put back by
renormalising the rows (the chain conditioned to stay in the box); callers refuse the law when
that mass is not negligible.

- 1-D: the matrix, rows from differences of the noise CDF over the cell edges, evaluated in the
  tails as differences of upper-tail probabilities so that entries of 1e-200 keep their relative
  accuracy (the metastable solvers need it). Rademacher noise has atoms at m -/+ eta s: each goes
  to the two neighbouring centres, split linearly (the first moment is kept exactly).
- 2-D: an operator, never the N x N matrix (N = n^2 cells): move each cell's mass to m(c_i),
  split it bilinearly between the four neighbouring centres (first moments exact), then convolve
  with the cell-integrated noise law K[a, b] = Prob(eta eps in the cell at offset (a, b)) by FFT.
  Isotropic families are products of 1-D cell integrals. A full-covariance Gaussian is
  integrated as int_{x-cell} phi(x) [Phi_y|x(upper) - Phi_y|x(lower)] dx: exact in y (the
  conditional CDF), 8-point Gauss-Legendre in x per cell.

Both add an error of order h^2 (h the cell width) to the moments: the cell chain rounds every step
to a centre. `analysis.stationary` estimates it from a coarser grid.

All functions here run in float64 (callers hold `jax.enable_x64`).
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
import scipy.special

from analysis.chain_solvers import NoStationaryLaw

__all__ = ["Grid", "NoiseLaw", "noise_law", "make_grid", "transition_matrix", "transition_sparse", "kernel_2d", "Operator2D"]

#: Entries of a 1-D row below this fraction of the row's largest entry are dropped (set to 0), so
#: the matrix is banded at small eta. 1e-20 is far below float64 rounding of the row sums.
DROP_BELOW = 1e-20
#: Reach of the Gaussian kernel in standard deviations (tail mass beyond: ~1e-19).
GAUSSIAN_REACH = 9.0
_GAUSS_LEGENDRE = np.polynomial.legendre.leggauss(8)


@dataclasses.dataclass(frozen=True)
class Grid:
    """A regular grid of `shape` cells over the box [lower, upper] (`dim` = 1 or 2).

    - `lower`, `upper`, `widths`: `(d,)`; `edges`: per axis, `(n + 1,)` cell edges.
    - `centres`: `shape + (d,)` the cell centres; `points`: `(N, d)` the same, flattened (C order).
    """

    lower: np.ndarray
    upper: np.ndarray
    n_cells: int

    @property
    def dim(self) -> int:
        return int(self.lower.shape[0])

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n_cells,) * self.dim

    @property
    def size(self) -> int:
        return self.n_cells**self.dim

    @property
    def widths(self) -> np.ndarray:
        return (self.upper - self.lower) / self.n_cells

    @property
    def edges(self) -> tuple[np.ndarray, ...]:
        return tuple(np.linspace(self.lower[a], self.upper[a], self.n_cells + 1) for a in range(self.dim))

    @property
    def axes(self) -> tuple[np.ndarray, ...]:
        """The centres along each axis, `(n,)` each."""
        return tuple(0.5 * (e[1:] + e[:-1]) for e in self.edges)

    @property
    def centres(self) -> np.ndarray:
        return np.stack(np.meshgrid(*self.axes, indexing="ij"), axis=-1)

    @property
    def points(self) -> np.ndarray:
        return self.centres.reshape(-1, self.dim)

    def cell_of(self, x) -> np.ndarray:
        """Flat index of the cell holding each point `x` `(..., d)` (clipped to the box)."""
        x = np.asarray(x, dtype=np.float64)
        index = np.floor((x - self.lower) / self.widths).astype(np.int64)
        index = np.clip(index, 0, self.n_cells - 1)
        return np.ravel_multi_index(tuple(np.moveaxis(index, -1, 0)), self.shape)


def make_grid(lower, upper, n_cells: int) -> Grid:
    return Grid(np.asarray(lower, np.float64), np.asarray(upper, np.float64), int(n_cells))


@dataclasses.dataclass(frozen=True)
class NoiseLaw:
    """The standardised law of each coordinate of eps (zero mean, unit variance), its scale and
    (2-D Gaussian) the covariance. `family` as in `simulate.noise`; `scale` s so that
    eps = s z for isotropic models; `covariance` `(d, d)` for every model."""

    family: str
    scale: float
    df: float
    covariance: np.ndarray
    isotropic: bool


def noise_law(noise, dim: int) -> NoiseLaw:
    """Read a `simulate.noise` model (validated by the caller)."""
    covariance = np.asarray(noise.covariance(dim), dtype=np.float64)
    isotropic = bool(np.array_equal(covariance, covariance[0, 0] * np.eye(dim)))
    return NoiseLaw(noise.family, float(math.sqrt(covariance[0, 0])), float(noise.df), covariance, isotropic)


# ---- standardised laws: upper tails Q(z) = Prob(Z > z), and interval probabilities ------------


def _upper_tail(family: str, df, z, xp=jnp, special=jax.scipy.special):
    """Q(z) = Prob(Z > z); `xp`, `special`: jax.numpy / jax.scipy.special (compiled, 1-D matrix) or
    numpy / scipy.special (the small 2-D kernels, which would otherwise compile op by op)."""
    if family == "gaussian":
        return 0.5 * special.erfc(z / math.sqrt(2.0))
    if family == "uniform":
        root3 = math.sqrt(3.0)
        return xp.clip((root3 - z) / (2.0 * root3), 0.0, 1.0)
    if family == "student_t":
        t = z / xp.sqrt((df - 2.0) / df)
        half = 0.5 * special.betainc(0.5 * df, 0.5, df / (df + t * t))
        return xp.where(t >= 0, half, 1.0 - half)
    raise ValueError(f"no CDF for noise family {family!r}")  # pragma: no cover


def interval_probability(family: str, df, a, b, xp=jnp, special=jax.scipy.special):
    """Prob(a < Z < b) for a <= b, as a difference of upper tails on the side away from 0, so that
    far-tail intervals keep their relative accuracy."""
    right = 0.5 * (a + b) >= 0
    upper_a = _upper_tail(family, df, xp.where(right, a, -b), xp, special)
    upper_b = _upper_tail(family, df, xp.where(right, b, -a), xp, special)
    return xp.maximum(upper_a - upper_b, 0.0)


def _np_interval(family, df, a, b):
    return interval_probability(family, df, a, b, np, scipy.special)


def _np_upper_tail(family, df, z):
    return _upper_tail(family, df, z, np, scipy.special)


# ---- 1-D: the matrix -------------------------------------------------------------------------


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
    if family == "rademacher":
        width = edges[1] - edges[0]
        first = edges[0] + 0.5 * width
        up, leak_up = _splat_1d(drift_target + spread, first, width, n)
        down, leak_down = _splat_1d(drift_target - spread, first, width, n)
        return 0.5 * (up + down), 0.5 * (leak_up + leak_down)
    # x' in [e_j, e_{j+1}]  <=>  Z in ((m - e_{j+1}) / w, (m - e_j) / w)
    low = (drift_target[:, None] - edges[None, 1:]) / spread
    high = (drift_target[:, None] - edges[None, :-1]) / spread
    matrix = interval_probability(family, df, low, high)
    leak = _upper_tail(family, df, (drift_target - edges[0]) / spread) + _upper_tail(family, df, (edges[-1] - drift_target) / spread)
    return matrix, leak


#: Beyond this many standard deviations a Gaussian cell probability is below 1e-25: under DROP_BELOW.
_BAND_REACH = {"gaussian": 10.5, "uniform": math.sqrt(3.0), "rademacher": 1.0}


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
    if law.family in _BAND_REACH and law.family != "rademacher":
        matrix, leak, bands = transition_sparse(grid, gradient, law, step_size)
        matrix = matrix.toarray()
        matrix.flags.writeable = False
        return matrix, leak, bands
    centres = grid.axes[0]
    target = centres - step_size * gradient
    edges, spread = grid.edges[0], step_size * law.scale
    if law.family == "student_t":
        # SciPy's betainc: XLA's on CPU took 90 s for the two 1001-cell matrices of a test.
        low = (target[:, None] - edges[None, 1:]) / spread
        high = (target[:, None] - edges[None, :-1]) / spread
        matrix = jnp.asarray(_np_interval(law.family, law.df, low, high))
        leak = _np_upper_tail(law.family, law.df, (target - edges[0]) / spread) + _np_upper_tail(law.family, law.df, (edges[-1] - target) / spread)
    else:  # Rademacher: atoms split between neighbouring centres
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
    tail = _np_upper_tail(family, np.nan, np.abs(z))  # Q(|z|)
    # column first + k: Z in (z[k + 1], z[k]). On one side of 0 that is |Q(|z[k+1]|) - Q(|z[k]|)|
    # (the difference of the two tails away from 0); the interval holding 0 is 1 - Q(|z[k]|) - Q(|z[k+1]|).
    values = np.abs(np.diff(tail, axis=1))
    rows = np.flatnonzero((z[:, 0] >= 0) & (z[:, -1] < 0))
    k = np.sum(z[rows] >= 0, axis=1) - 1
    values[rows, k] = 1.0 - tail[rows, k] - tail[rows, k + 1]
    leak = _np_upper_tail(family, np.nan, (target - edges[0]) / spread) + _np_upper_tail(family, np.nan, (edges[-1] - target) / spread)
    return first, np.maximum(values, 0.0), leak


def transition_sparse(grid: Grid, gradient: np.ndarray, law: NoiseLaw, step_size: float):
    """As `transition_matrix`, with P as a SciPy CSR matrix (the same entries): `(P, leak,
    (lower_band, upper_band))`. Gaussian and uniform noise build only each row's window around
    its target, O(n x window) tail evaluations in NumPy (the image map c - eta f'(c) is not
    monotone, so the window of row i need not be near column i: the matrix is sparse but its band
    can cover it); other families go through `transition_matrix`."""
    if law.family not in ("gaussian", "uniform"):
        matrix, leak, bands = transition_matrix(grid, gradient, law, step_size)
        return scipy.sparse.csr_matrix(matrix), leak, bands
    n = grid.n_cells
    edges, spread = grid.edges[0], step_size * law.scale
    target = grid.axes[0] - step_size * gradient
    first, values, leak = _band_rows(target, edges, spread, law.family, _BAND_REACH[law.family], n)
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


# ---- 2-D: the operator -----------------------------------------------------------------------


def _axis_kernel(law: NoiseLaw, spread: float, width: float, reach: int) -> np.ndarray:
    """Prob(spread Z in the cell at offset a h), a = -reach..reach (isotropic families)."""
    offsets = np.arange(-reach, reach + 1, dtype=np.float64)
    if law.family == "rademacher":  # atoms at +-spread, split linearly between neighbouring centres
        kernel = np.zeros(offsets.shape)
        for atom in (-spread / width, spread / width):
            j = math.floor(atom)
            t = atom - j
            for index, weight in ((j, 1.0 - t), (j + 1, t)):
                if -reach <= index <= reach:
                    kernel[index + reach] += 0.5 * weight
        return kernel
    low, high = (offsets - 0.5) * width / spread, (offsets + 0.5) * width / spread
    return _np_interval(law.family, law.df, low, high)


def _gaussian_kernel_full(covariance: np.ndarray, widths: np.ndarray, reach: tuple[int, int]) -> np.ndarray:
    """Prob(e in cell (a, b)) for e ~ N(0, covariance) in 2-D: exact in y given x, Gauss-Legendre in x."""
    var_x = covariance[0, 0]
    slope = covariance[0, 1] / var_x
    sd_y = math.sqrt(covariance[1, 1] - slope * covariance[0, 1])
    nodes, weights = _GAUSS_LEGENDRE
    a = np.arange(-reach[0], reach[0] + 1, dtype=np.float64)
    b = np.arange(-reach[1], reach[1] + 1, dtype=np.float64)
    x = (a[:, None] + 0.5 * nodes[None, :]) * widths[0]  # (A, 8) nodes inside each x-cell
    density = np.exp(-0.5 * x * x / var_x) / math.sqrt(2 * math.pi * var_x) * (0.5 * widths[0] * weights[None, :])
    mean_y = slope * x
    low = ((b[None, None, :] - 0.5) * widths[1] - mean_y[..., None]) / sd_y
    high = ((b[None, None, :] + 0.5) * widths[1] - mean_y[..., None]) / sd_y
    conditional = _np_interval("gaussian", np.nan, low, high)
    return np.einsum("aq,aqb->ab", density, conditional)


def kernel_reach(law: NoiseLaw, step_size: float, widths: np.ndarray, n_cells: int) -> tuple[int, ...]:
    """Cells per axis beyond which the kernel is negligible (or the whole box for Student-t)."""
    reach = []
    for axis, width in enumerate(widths):
        sd = step_size * math.sqrt(law.covariance[axis, axis])
        if law.family == "gaussian":
            cells = GAUSSIAN_REACH * sd / width
        elif law.family in ("uniform", "rademacher"):
            cells = math.sqrt(3.0) * sd / width + 1.0
        else:
            cells = n_cells
        reach.append(int(min(n_cells - 1, math.ceil(cells) + 1)))
    return tuple(reach)


def kernel_2d(law: NoiseLaw, step_size: float, widths: np.ndarray, reach: tuple[int, int]) -> np.ndarray:
    """K `(2 r_x + 1, 2 r_y + 1)`: Prob(eta eps lands in the cell at offset (a, b)) (symmetric laws)."""
    if law.isotropic or law.family != "gaussian":
        spread = step_size * law.scale
        return np.outer(_axis_kernel(law, spread, widths[0], reach[0]), _axis_kernel(law, spread, widths[1], reach[1]))
    return _gaussian_kernel_full(step_size**2 * law.covariance, widths, reach)


def _bilinear(targets, lower_centre, widths, n):
    """For targets `(N, 2)`: corner indices `(N, 4)` (flat) and weights `(N, 4)`, clamped to the centres."""
    u = jnp.clip((targets - lower_centre[None, :]) / widths[None, :], 0.0, n - 1.0)
    j = jnp.clip(jnp.floor(u), 0, n - 2).astype(jnp.int32)
    t = u - j.astype(u.dtype)
    i0, i1 = j[:, 0], j[:, 1]
    tx, ty = t[:, 0], t[:, 1]
    index = jnp.stack([i0 * n + i1, i0 * n + i1 + 1, (i0 + 1) * n + i1, (i0 + 1) * n + i1 + 1], axis=1)
    weight = jnp.stack([(1 - tx) * (1 - ty), (1 - tx) * ty, tx * (1 - ty), tx * ty], axis=1)
    return index, weight


class Operator2D:
    """The 2-D cell chain P at one step size as two maps on `(N,)` vectors (N = n^2, C order):

    - `push(p) = P^T p`: move a distribution one step (mass to m(c_i), bilinear split, FFT
      convolution with the cell-integrated noise kernel, the part outside the box dropped),
      then the rows renormalised: P = diag(1 / retained) P_raw.
    - `pull(h) = P h`: the expectation of h after one step, the adjoint.

    `retained` `(N,)` is P_raw 1, the mass each cell keeps in the box; `leak` `(N,)` the exact
    mass that leaves the box from each cell (isotropic families: product of per-axis
    probabilities; full covariance: the union bound over the axes).
    """

    def __init__(self, grid: Grid, gradient: np.ndarray, law: NoiseLaw, step_size: float, reach=None):
        n = grid.n_cells
        widths = grid.widths
        self.n, self.grid = n, grid
        reach = reach or kernel_reach(law, step_size, widths, n)
        self.kernel = jnp.asarray(kernel_2d(law, step_size, widths, reach))
        targets = grid.points - step_size * gradient
        lower_centre = np.array([ax[0] for ax in grid.axes])
        self.index, self.weight = _bilinear(jnp.asarray(targets), jnp.asarray(lower_centre), jnp.asarray(widths), n)
        self.retained = _pull(jnp.ones(n * n), self.kernel, self.index, self.weight, jnp.ones(n * n), n)
        self.leak = _leak_2d(grid, targets, law, step_size)

    def _sparse_kernel(self) -> np.ndarray:
        """K without its border rows and columns whose entries are all below DROP_BELOW x its
        largest (the reach is set by the largest step size of a call; small ones need less)."""
        kernel = np.asarray(self.kernel)
        keep = kernel >= DROP_BELOW * kernel.max()
        ra = int(np.abs(np.flatnonzero(keep.any(axis=1)) - kernel.shape[0] // 2).max())
        rb = int(np.abs(np.flatnonzero(keep.any(axis=0)) - kernel.shape[1] // 2).max())
        ca, cb = kernel.shape[0] // 2, kernel.shape[1] // 2
        return np.where(keep, kernel, 0.0)[ca - ra : ca + ra + 1, cb - rb : cb + rb + 1]

    @property
    def sparse_size(self) -> int:
        """About how many non-zero entries `sparse()` has: N x (kernel support + 1)^2."""
        a, b = self._sparse_kernel().shape
        return self.n * self.n * min(self.n, a + 1) * min(self.n, b + 1)

    def sparse(self) -> scipy.sparse.csr_matrix:
        """P itself, `(N, N)` SciPy CSR: diag(1 / row sums) S C, with S the bilinear split (4
        entries per row) and C the convolution, C[(i, j), (i + a, j + b)] = K[a, b] inside the box
        (the sum over a of kron(shift by a, the Toeplitz matrix of K's row a)). Entries of K
        below DROP_BELOW x its largest are dropped, as in 1-D. `P.T @ p` is `push(p)` and `P @ h`
        is `pull(h)` up to the FFT's rounding (tested)."""
        n, kernel = self.n, self._sparse_kernel()
        ra, rb = kernel.shape[0] // 2, kernel.shape[1] // 2
        convolution = sum(
            scipy.sparse.kron(
                scipy.sparse.eye(n, k=a, format="csr"),
                scipy.sparse.diags([kernel[a + ra, b + rb] for b in range(-rb, rb + 1)], list(range(-rb, rb + 1)), shape=(n, n), format="csr"),
                format="csr",
            )
            for a in range(-ra, ra + 1)
            if np.any(kernel[a + ra] > 0)
        )
        split = scipy.sparse.csr_matrix((np.asarray(self.weight).ravel(), np.asarray(self.index).ravel(), np.arange(n * n + 1) * 4), shape=(n * n, n * n))
        raw = (split @ convolution).tocsr()
        raw.eliminate_zeros()
        totals = np.asarray(raw.sum(axis=1)).ravel()
        if not totals.min() > 0:
            raise NoStationaryLaw("a cell sends all its mass out of the box")
        return (scipy.sparse.diags(1.0 / totals) @ raw).tocsr()

    def push(self, p):
        return _push(p, self.kernel, self.index, self.weight, self.retained, self.n)

    def pull(self, h):
        return _pull(h, self.kernel, self.index, self.weight, self.retained, self.n)


@partial(jax.jit, static_argnames=("n",))
def _push(p, kernel, index, weight, retained, n):
    moved = jnp.zeros(n * n, p.dtype).at[index.reshape(-1)].add(((p / retained)[:, None] * weight).reshape(-1))
    spread = jax.scipy.signal.fftconvolve(moved.reshape(n, n), kernel, mode="same")
    return spread.reshape(-1)


@partial(jax.jit, static_argnames=("n",))
def _pull(h, kernel, index, weight, retained, n):
    expected = jax.scipy.signal.fftconvolve(h.reshape(n, n), kernel[::-1, ::-1], mode="same").reshape(-1)
    return jnp.sum(expected[index] * weight, axis=1) / retained


def _leak_2d(grid: Grid, targets: np.ndarray, law: NoiseLaw, step_size: float) -> np.ndarray:
    inside = []
    for axis, edges in enumerate(grid.edges):
        spread = step_size * math.sqrt(law.covariance[axis, axis])
        m = targets[:, axis]
        if law.family == "rademacher":
            plus = (m + spread >= edges[0]) & (m + spread <= edges[-1])
            minus = (m - spread >= edges[0]) & (m - spread <= edges[-1])
            inside.append(0.5 * (plus.astype(np.float64) + minus.astype(np.float64)))
        else:
            below = _np_upper_tail(law.family, law.df, (m - edges[0]) / spread)
            above = _np_upper_tail(law.family, law.df, (edges[-1] - m) / spread)
            inside.append(1.0 - below - above)
    if law.isotropic or law.family != "gaussian":
        return 1.0 - inside[0] * inside[1]
    return (1.0 - inside[0]) + (1.0 - inside[1])  # union bound (correlated axes)
