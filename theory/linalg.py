"""Linear algebra of finite Markov chains: stationary vectors, Poisson equations, spectral gaps.

Two ways to the stationary vector pi of a stochastic matrix P (pi P = pi, sum pi = 1):

- `gth`: Grassmann-Taksar-Heyman elimination (Grassmann, Taksar and Heyman 1985, Oper. Res.
  33(5):1107-1116; see also Stewart, "Introduction to the Numerical Solution of Markov Chains",
  1994, sec. 2.7). Gaussian elimination in which every pivot is computed as a sum of
  off-diagonal probabilities, 1 - P_kk = sum_{j<k} P_kj, instead of a subtraction; there is no
  subtraction anywhere, so every entry of pi comes out with a small *relative* error, however
  nearly decomposable the chain (O'Cinneide 1993, Numer. Math. 65:109-120). A plain solve of
  (P^T - I) pi = 0 loses all accuracy when the spectral gap is below machine epsilon (an escape
  time of e^160 steps: `sharp_flat` at eta = 0.01), and returned negative probabilities there.
  Here GTH works on the band of P (elimination without pivoting keeps the band; cost n b^2 for a
  half-bandwidth b) plus, optionally, one dense first row and column (an "arrow": the extra
  state of the resurrected chains used for escape times and quasi-stationary laws).
- `pinned_lu`: LU of A = I - P with column k replaced by e_k (nonsingular for an irreducible
  chain): A^T x = e_k gives pi / pi_k, and A h = g solves the Poisson equation (I - P) h = g with
  h_k = 0 for pi.g = 0. Fast (LAPACK), accurate when the chain mixes; the factorisation serves
  both.

The asymptotic variance of the average of g(x_k) under pi (Kemeny and Snell; Meyn and Tweedie
2009, ch. 17) is lim_T T Cov(gbar_T) = <g, h>_pi + <h, g>_pi - <g, g>_pi with (I - P) h = g, g
centred under pi.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.linalg.lapack
import scipy.sparse
import scipy.sparse.linalg

__all__ = ["InaccurateLawWarning", "NoStationaryLaw", "gth", "lu_solver", "pinned_lu", "asymptotic_covariance", "second_eigenvalue", "gap_near_one"]

class NoStationaryLaw(ValueError):
    """The cell chain is reducible or singular: no unique stationary law on this grid."""


class InaccurateLawWarning(UserWarning):
    """A law computed without its accuracy guarantee: a 2-D chain too nearly decomposable for its
    LU, or a GMRES solve that stopped short of its tolerance."""


#: Spectral gaps below this are not resolved by float64 eigenvalue solvers: relaxation time inf.
SMALLEST_GAP = 1e-9


def gth(matrix: np.ndarray, lower_band: int, upper_band: int, *, arrow: bool = False, overwrite: bool = False) -> np.ndarray:
    """Stationary vector of a stochastic matrix by GTH elimination on its band (and arrow).

    **Arguments:**

    - `matrix`: `(n, n)` non-negative rows summing to 1 (the diagonal is never read); not modified.
    - `lower_band`, `upper_band`: P_ij = 0 unless -lower_band <= j - i <= upper_band, outside
      row and column 0 when `arrow`.
    - `arrow`: row 0 and column 0 may be dense.
    - `overwrite`: eliminate in `matrix` itself (float64, writable) instead of a copy.

    **Returns:** pi `(n,)`, non-negative, summing to 1. Raises `ValueError` if a state cannot
    reach the states before it (a reducible chain).
    """
    p = matrix if overwrite else np.array(matrix, dtype=np.float64, copy=True)
    n = p.shape[0]
    first = 1 if arrow else 0
    for k in range(n - 1, 0, -1):
        rows = slice(max(first, k - upper_band), k)
        cols = slice(max(first, k - lower_band), k)
        row = p[k, cols]
        total = row.sum() + (p[k, 0] if arrow else 0.0)
        if not total > 0:
            raise NoStationaryLaw(f"the chain is reducible: state {k} cannot reach any state before it")
        column = p[rows, k] / total
        p[rows, k] = column
        p[rows, cols] += np.outer(column, row)
        if arrow:
            corner = p[0, k] / total
            p[0, k] = corner
            p[0, cols] += corner * row
            p[rows, 0] += column * p[k, 0]
    x = np.zeros(n)
    x[0] = 1.0
    for k in range(1, n):
        rows = slice(max(first, k - upper_band), k)
        x[k] = x[rows] @ p[rows, k] + (x[0] * p[0, k] if arrow else 0.0)
        if x[k] > 1e200:  # probabilities can span more than float64's range: rescale as we go
            x[: k + 1] /= x[k]
    return x / x.sum()


def _pinned(matrix, pin: int):
    """A = I - P with column `pin` replaced by e_pin, CSC (P: a SciPy sparse matrix)."""
    a = scipy.sparse.identity(matrix.shape[0], format="csr") - matrix
    a = a.tocsc()
    a.data[a.indptr[pin] : a.indptr[pin + 1]] = 0.0  # column pin -> e_pin
    a = a + scipy.sparse.csc_matrix(([1.0], ([pin], [pin])), shape=a.shape)
    a.eliminate_zeros()
    return a


#: Above this share of non-zero entries the pinned matrix goes to dense LAPACK LU (SuperLU's
#: sparse LU loses to it once the rows' windows cover about a third of the matrix).
DENSE_ABOVE = 0.3


def pinned_lu(matrix, pin: int, lower_band: int, upper_band: int, *, ordering: str = "NATURAL", dense: bool | None = None):
    """(pi, solve) from one LU of A = I - P with column `pin` replaced by e_pin.

    A^T x = e_pin gives pi (normalised); `solve(g, trans=0)` `(n, m) -> (n, m)` is the Poisson
    solution (I - P) h = g with h_pin = 0 (for pi.g = 0), `trans=1` solves A^T x = g. `matrix`:
    P, NumPy or SciPy sparse; the bands are not needed (kept for the callers). SuperLU in the
    natural order with partial pivoting while the matrix is sparse: the rows' windows follow the
    image map c - eta f'(c), which is not monotone, so the band can cover the matrix while the LU
    in the natural order fills in little (and on a narrow band it is the band LU). SuperLU runs on
    one thread (LAPACK's band LU competed for cores with the step sizes' thread pool). Dense getrf
    above `DENSE_ABOVE` non-zeros. `ordering`: SuperLU's column ordering; a 2-D grid's chain wants
    a fill-reducing one ("MMD_AT_PLUS_A"; timings in benchmarks/README.md); `dense`: see
    `lu_solver`. Negative entries of pi are left as computed (the caller checks them).
    """
    n = matrix.shape[0]
    solve = lu_solver(_pinned(scipy.sparse.csr_matrix(matrix), pin), ordering=ordering, dense=dense)
    unit = np.zeros(n)
    unit[pin] = 1.0
    x = solve(unit, trans=1)
    return x / x.sum(), solve


def lu_solver(a, *, ordering: str = "NATURAL", dense: bool | None = None):
    """`solve(b, trans=0)` from one LU of the sparse square matrix `a` (`trans=1` solves with
    a^T): SuperLU with the column `ordering`, or dense LAPACK getrf when `dense` (default: above
    `DENSE_ABOVE` non-zeros, or when SuperLU finds a zero pivot column)."""
    n = a.shape[0]
    factor = None
    if not (a.nnz >= DENSE_ABOVE * n * n if dense is None else dense):
        try:
            factor = scipy.sparse.linalg.splu(scipy.sparse.csc_matrix(a), permc_spec=ordering)
        except RuntimeError:  # "Factor is exactly singular": SuperLU's pivoting met a zero column; dense LAPACK decides
            factor = None
    if factor is not None:

        def solve(b, trans=0):
            return factor.solve(np.asarray(b, dtype=np.float64), trans="T" if trans else "N")

        return solve
    lu = scipy.linalg.lu_factor(a.toarray(), check_finite=False)

    def solve(b, trans=0):
        return scipy.linalg.lu_solve(lu, b, trans=trans, check_finite=False)

    return solve


def asymptotic_covariance(pi: np.ndarray, g: np.ndarray, h: np.ndarray) -> np.ndarray:
    """lim T Cov(mean of g(x_k)) = <g, h>_pi + <h, g>_pi - <g, g>_pi, `(m, m)`, from centred g
    `(n, m)` and the Poisson solutions h `(n, m)`."""
    gh = (g * pi[:, None]).T @ h
    gg = (g * pi[:, None]).T @ g
    return gh + gh.T - gg


def second_eigenvalue(apply_transpose, pi: np.ndarray, n: int) -> float:
    """|lambda_2| of P: the largest eigenvalue modulus of P^T - pi 1^T (P^T with its Perron
    direction removed), by ARPACK (deterministic start vector). nan if ARPACK does not converge."""

    def deflated(x):
        return apply_transpose(x) - pi * np.sum(x)

    operator = scipy.sparse.linalg.LinearOperator((n, n), matvec=deflated, dtype=np.float64)
    start = np.cos(np.linspace(0.0, 3.0, n)) + 0.1
    try:
        values = scipy.sparse.linalg.eigs(operator, k=1, which="LM", v0=start, ncv=min(n, 32), tol=1e-9, maxiter=20 * n, return_eigenvectors=False)
    except scipy.sparse.linalg.ArpackNoConvergence as failure:
        values = failure.eigenvalues
        if len(values) == 0:
            return float("nan")
    return float(np.max(np.abs(values)))


def gap_near_one(solve, pi: np.ndarray, n: int) -> float:
    """|1 - lambda| for the eigenvalue lambda != 1 of P closest to 1, by shift-invert ARPACK with
    the pinned LU's `solve` (`pinned_lu`): on sum-zero vectors A^T x = y solves (I - P^T) x = y
    up to a multiple of pi, so y -> x - pi sum(x) is (I - P^T)^-1 there, eigenvalues 1 / (1 - lambda).
    A few solves where plain ARPACK on P takes hundreds of products (metastable chains, lambda_2
    within 1e-9 of 1). nan if ARPACK does not converge."""

    def inverse(y):
        x = solve(y - pi * np.sum(y), trans=1)
        return x - pi * np.sum(x)

    operator = scipy.sparse.linalg.LinearOperator((n, n), matvec=inverse, dtype=np.float64)
    start = np.cos(np.linspace(0.0, 3.0, n)) + 0.1
    try:
        values = scipy.sparse.linalg.eigs(operator, k=1, which="LM", v0=start, ncv=min(n, 20), tol=1e-8, maxiter=n, return_eigenvectors=False)
    except scipy.sparse.linalg.ArpackNoConvergence:
        return float("nan")
    largest = float(np.max(np.abs(values)))
    return 1.0 / largest if largest > 0 else float("nan")


def relaxation_time(second: float) -> float:
    """1 / (1 - |lambda_2|) steps; inf when the gap is below `SMALLEST_GAP` (metastable)."""
    gap = 1.0 - second
    if not np.isfinite(gap):
        return float("nan")
    return float("inf") if gap < SMALLEST_GAP else 1.0 / gap


def sparse_or_dense(matrix, lower_band: int = 0, upper_band: int = 0):
    """A fast `x -> P^T x`: the product with the transposed sparse matrix (CSR) when `matrix` is
    SciPy sparse or its band is narrow, else the dense product x P (no transposed copy)."""
    if scipy.sparse.issparse(matrix):
        transposed = matrix.T  # CSC: a view of the CSR arrays
        return lambda x: transposed @ x
    n = matrix.shape[0]
    if lower_band + upper_band + 1 < n // 4:
        transposed = scipy.sparse.csr_matrix(matrix).T.tocsr()
        return lambda x: transposed @ x
    return lambda x: x @ matrix
