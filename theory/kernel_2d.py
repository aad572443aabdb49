"""The 2-D cell chain as an operator, never the N x N matrix (N = n^2 cells).

Move each cell's mass to m(c_i), split it bilinearly between the four neighbouring centres (first
moments exact), then convolve with the cell-integrated noise law K[a, b] = Prob(eta eps in the
cell at offset (a, b)) by FFT. Isotropic families are products of 1-D cell integrals. A
full-covariance Gaussian is integrated as int_{x-cell} phi(x) [Phi_y|x(upper) - Phi_y|x(lower)] dx:
exact in y (the conditional CDF), 8-point Gauss-Legendre in x per cell.

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
from theory.grid import DROP_BELOW, Grid, NoiseLaw, interval_probability_np, upper_tail_np
from theory.linalg import NoStationaryLaw

__all__ = ["Operator2D", "kernel_2d", "kernel_reach"]

_GAUSS_LEGENDRE = np.polynomial.legendre.leggauss(8)


def _axis_kernel(law: NoiseLaw, spread: float, width: float, reach: int) -> np.ndarray:
    """Prob(spread Z in the cell at offset a h), a = -reach..reach (isotropic families)."""
    offsets = np.arange(-reach, reach + 1, dtype=np.float64)
    atoms = law.standard.atoms
    if atoms is not None:  # equally likely atoms at a spread, split linearly between neighbouring centres
        kernel = np.zeros(offsets.shape)
        for atom in atoms:
            position = atom * spread / width
            j = math.floor(position)
            t = position - j
            for index, weight in ((j, 1.0 - t), (j + 1, t)):
                if -reach <= index <= reach:
                    kernel[index + reach] += weight / len(atoms)
        return kernel
    low, high = (offsets - 0.5) * width / spread, (offsets + 0.5) * width / spread
    return interval_probability_np(law.family, law.df, low, high)


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
    conditional = interval_probability_np("gaussian", np.nan, low, high)  # this kernel is the Gaussian family's
    return np.einsum("aq,aqb->ab", density, conditional)


def kernel_reach(law: NoiseLaw, step_size: float, widths: np.ndarray, n_cells: int) -> tuple[int, ...]:
    """Cells per axis beyond which the kernel is negligible (`NoiseFamily.kernel_cells`: the whole
    box for Student-t)."""
    reach = []
    for axis, width in enumerate(widths):
        sd = step_size * math.sqrt(law.covariance[axis, axis])
        cells = law.standard.kernel_cells(sd, width, n_cells)
        reach.append(int(min(n_cells - 1, math.ceil(cells) + 1)))
    return tuple(reach)


def kernel_2d(law: NoiseLaw, step_size: float, widths: np.ndarray, reach: tuple[int, int]) -> np.ndarray:
    """K `(2 r_x + 1, 2 r_y + 1)`: Prob(eta eps lands in the cell at offset (a, b)) (symmetric laws)."""
    if law.isotropic or not law.standard.full_covariance:
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
        atoms = law.standard.atoms
        if atoms is not None:  # the fraction of equally likely atoms that land in the box
            landed = [((m + atom * spread >= edges[0]) & (m + atom * spread <= edges[-1])).astype(np.float64) for atom in reversed(atoms)]
            inside.append(sum(landed[1:], landed[0]) / len(atoms))
        else:
            below = upper_tail_np(law.family, law.df, (m - edges[0]) / spread)
            above = upper_tail_np(law.family, law.df, (edges[-1] - m) / spread)
            inside.append(1.0 - below - above)
    if law.isotropic or not law.standard.full_covariance:
        return 1.0 - inside[0] * inside[1]
    return (1.0 - inside[0]) + (1.0 - inside[1])  # union bound (correlated axes)
