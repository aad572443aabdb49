"""The cell chain as products with blocks of vectors, and start laws on its cells (for
`theory.finite_time`).

`CellChain` applies P (the 1-D matrix of `theory.kernel_1d`, the 2-D sparse matrix or FFT
operator of `theory.kernel_2d`) to a block of vectors at once: `push(V) = P^T V` moves laws
forward, `pull(H) = P H` takes expectations; `stationary()` gives pi and a Poisson solver from
`theory.linalg`/`theory.solve`. `start_law` puts a start (a point, points, a law or a density) on
the cells.

Which kernel a noise gets is chosen here, once per grid (`cell_kernels`): the additive kernels of
`theory.kernel_1d`/`theory.kernel_2d` (`AdditiveCells`), or, for noise whose covariance depends on x
(state-dependent Gaussian, Hessian-aligned, loss-scaled, label noise, exact minibatches), the
mixture matrix of `theory.state_dependent` (`StateDependentCells`). Each answers `chain(eta)` ->
(a `CellChain`, whether the chain has one closed class, so that pi and the Poisson solution exist).
"""

from __future__ import annotations

import contextlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse

from objectives import FiniteSum
from theory import linalg as solvers
from theory import solve as chains
from theory.kernel_1d import transition_sparse
from theory.kernel_2d import Operator2D, kernel_reach
from theory.minibatch_kernel import in_float64
from theory.state_dependent import cell_kernel, components
from theory.state_law import closed_classes
from theory.stationary import StationaryLaw

__all__ = ["AdditiveCells", "CellChain", "StateDependentCells", "cell_kernels", "one_blas_thread", "start_law"]

#: 2-D kernels with more than this many entries per row are applied by FFT (`Operator2D`), narrower
#: ones as the sparse matrix.
SPARSE_2D_ROW = 400


class CellChain:
    """P at one step size, as products with blocks of vectors: `push(V) = P^T V` (laws move
    forward) and `pull(H) = P H` (expectations), V and H `(N, m)`; and `stationary()`: pi and a
    Poisson solver. `matrix`: a cell matrix built elsewhere (the state-dependent kernels), used as
    given (then `gradient`, `law`, `step_size` and `reach` are not read)."""

    def __init__(self, grid, gradient, law, step_size, reach, *, matrix=None):
        self.size = grid.size
        self.matrix, self.operator, self.bands = None, None, None
        if matrix is not None:
            pass
        elif grid.dim == 1:
            matrix, _, self.bands = transition_sparse(grid, gradient[:, 0], law, step_size)
        else:
            op = Operator2D(grid, gradient, law, step_size, reach)
            if op.sparse_size <= SPARSE_2D_ROW * self.size:  # narrow kernels: the sparse matrix
                matrix = op.sparse()
            else:  # wide kernels: the FFT operator on a block of vectors
                matrix = None
                self.operator = op
                self._push = jax.jit(jax.vmap(op.push, in_axes=1, out_axes=1))
                self._pull = jax.jit(jax.vmap(op.pull, in_axes=1, out_axes=1))
        if matrix is not None:
            if matrix.nnz >= solvers.DENSE_ABOVE * self.size**2:  # BLAS beats the sparse product
                self.matrix = matrix.toarray()
                self._transposed = self.matrix.T
            else:
                self.matrix = matrix.tocsr()
                self._transposed = matrix.T.tocsr()

    def push(self, block: np.ndarray) -> np.ndarray:
        if self.operator is not None:
            return _padded(self._push, block)
        return np.asarray(self._transposed @ block)

    def pull(self, block: np.ndarray) -> np.ndarray:
        if self.operator is not None:
            return _padded(self._pull, block)
        return np.asarray(self.matrix @ block)

    def stationary(self, pin: int):
        """(pi, poisson) where `poisson(g)` `(N, m)` -> u with (I - P) u = g - pi g, pi u = 0; None
        where no law comes out (a reducible cell chain)."""
        if self.operator is not None:  # wide kernels mix fast: GMRES on the operator
            pi, _ = chains._stationary_2d(self.operator, self.size)

            def poisson(g):
                return chains._poisson_2d(self.operator, pi, g - pi @ g)

        else:
            lower, upper = self.bands or (0, 0)
            matrix = scipy.sparse.csr_matrix(self.matrix)
            try:
                pi, solve = solvers.pinned_lu(matrix, pin, lower, upper, ordering="NATURAL" if self.bands else chains.FILL_REDUCING)
            except (solvers.NoStationaryLaw, RuntimeError, np.linalg.LinAlgError):
                return None
            if not np.all(np.isfinite(pi)):
                return None

            def poisson(g):
                h = solve(g - pi @ g)
                return h - pi @ h

        return pi, poisson


class AdditiveCells:
    """The additive noise law `law`'s kernel on `grid`: `gradient` `(N, d)` grad f at the centres,
    `pin` the lowest cell (it holds mass: the pinned LU's column)."""

    def __init__(self, f, law, grid):
        self.grid, self.law = grid, law
        with jax.enable_x64(True):
            self.gradient = np.asarray(f.grad(grid.points), dtype=np.float64)
            self.pin = int(np.argmin(np.asarray(f.value(grid.points))))

    def chain(self, step_size: float):
        reach = kernel_reach(self.law, step_size, self.grid.widths, self.grid.n_cells) if self.grid.dim == 2 else None
        return CellChain(self.grid, self.gradient, self.law, step_size, reach), True


class StateDependentCells:
    """The kernel N(x - eta grad f(x), eta^2 C(x)) (or the exact minibatch mixture) on `grid`, as
    `theory.state_law` builds it; `noise` bound to f (`theory.state_dependent.bind_noise`).

    Where the noise vanishes at a minimizer the cell chain has several closed classes (or one a
    few cells wide): `chain` then says so (False), and the caller runs the exact products only
    (no pi, no Poisson solution: the expansion does not apply, the finite-T law still does)."""

    def __init__(self, f, noise, grid):
        self.grid = grid
        self.parts = components(f, noise, grid.points)
        self.gradient = self.parts.mean_gradient  # v = x - eta grad f(x): the mixture's mean drift
        with jax.enable_x64(True):
            values = np.asarray((in_float64(f) if isinstance(f, FiniteSum) else f).value(grid.points))
        self.pin = int(np.argmin(values))

    def chain(self, step_size: float):
        matrix, _ = cell_kernel(self.grid, self.parts, float(step_size))
        classes = closed_classes(matrix)
        ergodic = len(classes) == 1 and classes[0].size >= min(self.grid.size, 8)
        return CellChain(self.grid, None, None, step_size, None, matrix=matrix), ergodic


def cell_kernels(f, noise, law, grid):
    """The kernel of SGD on `grid` for `noise`: `AdditiveCells` where `law` (the additive noise
    law) is given, else `StateDependentCells` (`noise` bound to f)."""
    return AdditiveCells(f, law, grid) if law is not None else StateDependentCells(f, noise, grid)


def _padded(apply, block):
    """`apply` on `block` `(N, m)` padded with zero columns to a multiple of 8: one compiled
    program for every few widths (the number of vectors changes as tails start and end)."""
    m = block.shape[1]
    width = -(-m // 8) * 8
    padded = np.zeros((block.shape[0], width))
    padded[:, :m] = block
    return np.asarray(apply(jnp.asarray(padded)))[:, :m]


def start_law(x0, grid, n_step_sizes):
    """mu_0 `(S, N)` from a point `(d,)` (split linearly between neighbouring centres) or a law."""
    if isinstance(x0, StationaryLaw):
        if x0.grid.n_cells != grid.n_cells or not (np.array_equal(x0.grid.lower, grid.lower) and np.array_equal(x0.grid.upper, grid.upper)):
            raise ValueError(
                f"x0 is a law on another grid ({x0.grid.n_cells} cells per axis over {x0.grid.lower.tolist()}, "
                f"{x0.grid.upper.tolist()}) than this one ({grid.n_cells} over {grid.lower.tolist()}, {grid.upper.tolist()}): "
                "pass bounds and n_grid equal to the law's"
            )
        density = x0.density.reshape(len(x0.step_sizes), -1)
        if density.shape[0] not in (1, n_step_sizes):
            raise ValueError(f"x0 is a law for {density.shape[0]} step sizes, expected {n_step_sizes} (or 1)")
        return np.broadcast_to(density, (n_step_sizes, grid.size)).copy()
    array = np.asarray(x0, dtype=np.float64)
    if array.ndim == 2 and array.shape[1] == grid.dim and array.shape != grid.shape:  # one point per chain
        points, counts = np.unique(array, axis=0, return_counts=True)
        mu = sum(c * start_law(point, grid, 1)[0] for point, c in zip(points, counts)) / counts.sum()
        return np.broadcast_to(mu, (n_step_sizes, grid.size)).copy()
    if array.shape == (grid.dim,):
        if not (np.all(np.isfinite(array)) and np.all(array >= grid.lower) and np.all(array <= grid.upper)):
            raise ValueError(f"x0 must lie in the box [{grid.lower.tolist()}, {grid.upper.tolist()}], got {array.tolist()}")
        weights = np.ones(1)
        index = np.zeros((1, 0), np.int64)
        for axis in range(grid.dim):
            centres = grid.axes[axis]
            u = np.clip((array[axis] - centres[0]) / grid.widths[axis], 0.0, grid.n_cells - 1.0)
            j = min(int(math.floor(u)), grid.n_cells - 2)
            t = u - j
            index = np.concatenate([np.repeat(index, 2, axis=0), np.tile([[j], [j + 1]], (index.shape[0], 1))], axis=1)
            weights = np.repeat(weights, 2) * np.tile([1.0 - t, t], weights.size)
        mu = np.zeros(grid.size)
        np.add.at(mu, np.ravel_multi_index(tuple(index.T), grid.shape), weights)
        return np.broadcast_to(mu, (n_step_sizes, grid.size)).copy()
    flat = array.reshape(array.shape[0], -1) if array.ndim == grid.dim + 1 else array.reshape(1, -1)
    if flat.shape[1] != grid.size or flat.shape[0] not in (1, n_step_sizes) or array.shape[-grid.dim :] != grid.shape and array.shape != (grid.size,):
        raise ValueError(
            f"x0 must be a point ({grid.dim},), a StationaryLaw or a density on this grid {grid.shape} (or (S,) + that), got shape {array.shape}"
        )
    if not (np.all(flat >= 0) and np.allclose(flat.sum(axis=1), 1.0)):
        raise ValueError("x0 as a density must be non-negative and sum to 1 per step size")
    return np.broadcast_to(flat, (n_step_sizes, grid.size)).copy()


def one_blas_thread():
    """BLAS on one thread: each step's product is small (N x ~10 vectors), where OpenBLAS's
    threads cost more than they give (benchmarks/README.md, "Lab notes"); the step sizes run side
    by side instead. A no-op without threadpoolctl."""
    try:
        import threadpoolctl
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpoolctl.threadpool_limits(1, user_api="blas")
