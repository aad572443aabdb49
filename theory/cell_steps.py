"""Many steps of `theory.finite_time`'s forward accumulators in one compiled call (`Stepper`).

The state is a block V `(m, N)` over the N cells: row 0 the law p_k, then C rows r_k (first
moments of the sums, one per summed function g_c) and Q rows s_k (second moments, the pairs
(a_q, b_q) of those C rows). One step (module docstring of `theory.finite_time`):

    p' = p P,   r_c' = r_c P + g_c p',   s_q' = s_q P + g_a (r_b P) + g_b (r_a P) + g_a g_b p'.

1-D (`Stepper` from the matrix of `theory.kernel_1d`): P^T is banded, P_ij = 0 unless
-L <= j - i <= U, so V P is a sum of K = L + U + 1 shifted rows (the diagonal, "DIA", storage),
run as a `lax.fori_loop` of steps in float64 on the CPU: no Python per step. Kernels wider than a
third of the grid use the dense matrix.

Windows. A chain that stays in one basin (the metastable step sizes) holds all but 1e-30 of its
mass on a few dozen of the grid's cells, and the products there are the whole cost. Each call
therefore runs on a window of W cells (a power of two) around the cells where p > `FLOOR` = 1e-30,
with `margin` cells either side, as the chain killed outside the window: the mass a step sends
out of it, and the mass outside it when it is cut, is summed exactly (`killed`). Since every
accumulator is bounded by the law (|r_c| <= k |g|_inf p, |s_q| <= k^2 |g|_inf^2 p), the averages'
moments change by at most killed x |g|_inf^2; a call that kills more than `KILL_BUDGET` is run
again on a window twice as wide, so the total stays below 1e-25 x the number of calls: far below
float64 rounding of the moments. Cells holding less than `FLUSH` = 1e-250 are killed at every
step, window or not (their mass is counted the same way): left alone they decay into subnormal
numbers, on which a product costs ~100 cycles. Without a window (`window=False`, or one that
would cover the grid) only those are killed.

Other chains (2-D: sparse matrix or FFT operator) step in NumPy through `CellChain.push`.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse

__all__ = ["Stepper", "FLOOR", "KILL_BUDGET"]

#: Cells holding less of the law than this are outside the window when it is cut.
FLOOR = 1e-30
#: Cells holding less than this are killed at every step (no subnormal numbers).
FLUSH = 1e-250
#: The most mass one call may kill before it is run again on a window twice as wide.
KILL_BUDGET = 1e-25
#: The narrowest window, and the block of outputs of one dense product (windows start at multiples of it).
SMALLEST_WINDOW = BLOCK = 64


class Stepper:
    """`advance(V, G, n)` -> (V after n steps, mass killed); `pull(H, n)` = P^n H (H `(c, N)`).

    `pairs` (a, b) index the C rows of r for the Q rows of s; `G` `(C, N)` the summed functions,
    centred (a zero row keeps its accumulators at zero: an idle slot)."""

    def __init__(self, chain, pairs, *, dim: int, window: bool = True):
        self.chain, self.size = chain, chain.size
        self.pairs = (tuple(int(a) for a in pairs[0]), tuple(int(b) for b in pairs[1]))
        self.compiled = dim == 1 and chain.operator is None  # 1-D: a banded (or dense) matrix
        self.windowed = window and self.compiled
        if not self.compiled:
            return
        matrix = scipy.sparse.coo_matrix(chain.matrix)
        i, j, value = matrix.row, matrix.col, matrix.data
        lower, upper = int(max(0, -(j - i).min())), int(max(0, (j - i).max()))
        n = self.size
        if lower + upper + 1 > n // 3:  # wide kernels: the dense matrix, no window
            self.dense = np.asarray(scipy.sparse.csr_matrix(chain.matrix).toarray())
            self.windowed = False
            return
        self.dense = None
        self.padded_size = -(-n // BLOCK) * BLOCK
        # push: V P; pull: P H = (H^T P^T)^T, the push of P^T (its band mirrored)
        self.lower, self.width, self.blocks = _band_blocks(i, j, value, lower, upper, self.padded_size)
        self.pull_lower, _, self.pull_blocks = _band_blocks(j, i, value, upper, lower, self.padded_size)

    # ---- the forward accumulators -------------------------------------------------------------

    def advance(self, block: np.ndarray, g: np.ndarray, n_steps: int):
        """(V `(m, N)` after `n_steps` steps, mass killed by the window)."""
        if n_steps == 0:
            return block, 0.0
        if not self.compiled:
            return self._advance_numpy(block, g, n_steps), 0.0
        if self.dense is not None:
            out = _dense_steps(self.pairs)(jnp.asarray(self.dense), jnp.asarray(block), jnp.asarray(g), n_steps)
            return np.array(out), 0.0
        extra = self.padded_size - self.size
        result, killed = self._windowed(np.pad(block, ((0, 0), (0, extra))), np.pad(g, ((0, 0), (0, extra))), n_steps)
        return result[:, : self.size], killed

    def _windowed(self, block, g, n_steps):
        """The steps on the window that keeps the killed mass within budget (module docstring)."""
        support = np.flatnonzero(block[0] > FLOOR)
        first, last = (int(support[0]), int(support[-1])) if support.size else (0, self.size - 1)
        margin = self.width
        while True:
            size = _window_size(last - first + 1 + 2 * margin + BLOCK)
            if size >= self.padded_size or not self.windowed:
                return self._run(block, g, n_steps, 0, self.padded_size)
            start = min(max(0, (first + last + 1 - size) // 2) // BLOCK * BLOCK, self.padded_size - size)
            outside = float(block[0, :start].sum() + block[0, start + size :].sum())
            result, killed = self._run(block, g, n_steps, start, size)
            if killed + outside <= KILL_BUDGET:
                return result, killed + outside
            margin *= 2

    def _run(self, block, g, n_steps, start, size):
        """The compiled steps on the cells start..start + size - 1."""
        window = slice(start, start + size)
        n_blocks = (size + self.width - 1) // BLOCK
        blocks = self.blocks[start // BLOCK : start // BLOCK + n_blocks]
        out, killed = _banded_steps(self.pairs)(
            jnp.asarray(blocks), jnp.asarray(block[:, window].T), jnp.asarray(g[:, window].T), n_steps, self.lower
        )
        full = np.zeros_like(block)
        full[:, window] = np.asarray(out).T
        return full, float(killed)

    def _advance_numpy(self, block, g, n_steps):
        a, b = (np.asarray(self.pairs[0], int), np.asarray(self.pairs[1], int))
        c = g.shape[0]
        for _ in range(n_steps):
            pushed = self.chain.push(block.T).T
            p, r = pushed[:1], pushed[1 : 1 + c]
            block = np.concatenate([p, r + g * p, pushed[1 + c :] + g[a] * r[b] + g[b] * r[a] + g[a] * g[b] * p])
        return block

    # ---- expectations ---------------------------------------------------------------------------

    def pull(self, h: np.ndarray, n_steps: int) -> np.ndarray:
        """P^n h for h `(c, N)` (functions of the cell)."""
        if n_steps == 0:
            return h
        if not self.compiled:
            for _ in range(n_steps):
                h = self.chain.pull(h.T).T
            return h
        if self.dense is not None:
            return np.asarray(_dense_pulls(jnp.asarray(self.dense), jnp.asarray(h), n_steps))
        padded = np.pad(h, ((0, 0), (0, self.padded_size - self.size))).T
        out = _banded_products(jnp.asarray(self.pull_blocks), jnp.asarray(padded), n_steps, self.pull_lower)
        return np.asarray(out).T[:, : self.size]


def _band_blocks(i, j, value, lower, upper, padded_size):
    """(L, K, blocks) of the matrix A with entries `value` at (i, j), A_ij = 0 unless -L <= j - i <= U,
    for V -> V A: (V A)[j] = sum_t D[t, j] V[j + t - U], D[t, j] = A[j + t - U, j]. In blocks of B
    outputs (from the cell -L on), each block a dense (B, B + K - 1) matrix on the B + K - 1 inputs
    it reads: one batched matrix product a step (XLA fuses a K-term sum of shifted rows into each
    of its consumers: slower, (benchmarks/README.md, "Lab notes")). The band is widened to K - 1 a multiple of B (zero diagonals):
    step sizes of one call then share compiled programs."""
    upper += -(lower + upper) % BLOCK
    width = lower + upper + 1
    blocks = np.zeros(((padded_size + width - 1) // BLOCK + 1, BLOCK, BLOCK + width - 1))
    out = j + lower  # the output's index from the cell -L
    blocks[out // BLOCK, out % BLOCK, out % BLOCK + i - j + upper] = value
    return lower, width, blocks


# ---- compiled steps (cached per structure; arrays are arguments, so new step sizes do not recompile
# unless a shape changes) ------------------------------------------------------------------------


def _accumulate(pushed, g, pairs, axis=0):
    """The new block from the pushed one: p' = pushed p, r' = r P + g p', s' (module docstring);
    rows along `axis` (1: cells first). Squares only (a = b, as in 1-D) without a gather: fewer
    operations to compile."""
    a, b = (np.asarray(pairs[0], int), np.asarray(pairs[1], int))
    c = g.shape[axis]
    p, r, s = (jax.lax.slice_in_dim(pushed, *ends, axis=axis) for ends in ((0, 1), (1, 1 + c), (1 + c, pushed.shape[axis])))
    if np.array_equal(a, np.arange(c)) and np.array_equal(b, a):
        return jnp.concatenate([p, r + g * p, s + 2.0 * g * r + g * g * p], axis=axis)
    ga, gb = jnp.take(g, a, axis=axis), jnp.take(g, b, axis=axis)
    rb, ra = jnp.take(r, b, axis=axis), jnp.take(r, a, axis=axis)
    return jnp.concatenate([p, r + g * p, s + ga * rb + gb * ra + ga * gb * p], axis=axis)


def _flush(block):
    """The chain killed on the cells where p < `FLUSH` (cells first: block `(W, m)`): (block, the mass
    killed). Left alone, such cells decay into subnormal numbers, each product on which costs ~100
    cycles (benchmarks/README.md, "Lab notes")."""
    tiny = block[:, :1] < FLUSH
    return jnp.where(tiny, 0.0, block), jnp.sum(jnp.where(tiny[:, 0], block[:, 0], 0.0))


def _window_size(cells: int) -> int:
    """Windows come in few sizes, each its own compiled program: powers of two from BLOCK on."""
    return max(BLOCK, 1 << math.ceil(math.log2(cells)))


def _push(blocks, block, lower):
    """V A on a window of W cells (cells first: V `(W, m)`), blocks `(nb, B, B + K - 1)` (the
    window's output blocks, from L = `lower` cells before it): (the window's output, the mass
    of column 0 pushed outside it)."""
    size, m = block.shape
    n_blocks, _, reach = blocks.shape  # reach = B + K - 1
    reads = -(-(reach - BLOCK) // BLOCK)  # further blocks of inputs a block of outputs reads
    padded = jnp.pad(block, ((reach - BLOCK, (n_blocks + reads) * BLOCK - size - reach + BLOCK), (0, 0)))
    chunks = padded.reshape(n_blocks + reads, BLOCK, m)
    inputs = jnp.concatenate([chunks[i : i + n_blocks] for i in range(reads + 1)], axis=1)[:, :reach]
    out = jnp.einsum("bij,bjm->bim", blocks, inputs).reshape(n_blocks * BLOCK, m)
    # out[e] is the cell start - L + e; what lands outside the window is killed
    cell = jnp.arange(n_blocks * BLOCK) - lower
    killed = jnp.sum(jnp.where((cell < 0) | (cell >= size), out[:, 0], 0.0))
    return jax.lax.dynamic_slice_in_dim(out, lower, size), killed


@functools.lru_cache(maxsize=None)
def _banded_steps(pairs):
    """n steps of the accumulators on a window (`_push`), g `(W, C)`: (block, mass killed)."""

    @jax.jit
    def run(blocks, block, g, n_steps, lower):
        def step(_, carry):
            block, killed = carry
            pushed, lost = _push(blocks, block, lower)
            block, flushed = _flush(_accumulate(pushed, g, pairs, axis=1))
            return block, killed + lost + flushed

        return jax.lax.fori_loop(0, n_steps, step, (block, jnp.zeros((), block.dtype)))

    return run


@jax.jit
def _banded_products(blocks, block, n_steps, lower):
    """V A^n on the whole (padded) grid."""
    return jax.lax.fori_loop(0, n_steps, lambda _, v: _push(blocks, v, lower)[0], block)


@functools.lru_cache(maxsize=None)
def _dense_steps(pairs):
    @jax.jit
    def run(matrix, block, g, n_steps):
        return jax.lax.fori_loop(0, n_steps, lambda _, v: _accumulate(v @ matrix, g, pairs), block)

    return run


@jax.jit
def _dense_pulls(matrix, h, n_steps):
    return jax.lax.fori_loop(0, n_steps, lambda _, h: h @ matrix.T, h)
