"""Checks for public boundaries: constructors, `simulate.run`, the analysis functions, the CLI.

Each check takes the argument's name and the value given, returns the value in its canonical
type (a Python `int`, a Python `float`, a float64 NumPy array, a JAX dtype), or raises
`ValueError` whose message names the argument, the value given and what is allowed:

    >>> positive_int("n_steps", 0)
    Traceback (most recent call last):
    ValueError: n_steps must be an integer >= 1, got 0

Booleans are never accepted as numbers (`True` is an `int` in Python, never a count here).
`note` (where offered) is a short reason shown after the rule, e.g. "(number of resamples)".

This module sits in `objectives` because `objectives` imports nothing of ours, so every layer
(`objectives`, `simulate`, `analysis`, `asgd`) can use it. Checks run on the host, once, at the
boundary; compiled code never re-checks.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "integer",
    "positive_int",
    "non_negative_int",
    "seed",
    "random_key",
    "dimension",
    "real",
    "finite_float",
    "non_negative_float",
    "positive_float",
    "probability",
    "finite_array",
    "float_array",
    "points",
    "per_coordinate",
    "step_sizes",
    "psd_matrix",
    "float_dtype",
    "one_of",
]


def _suffix(note: str) -> str:
    return f" ({note})" if note else ""


def _is_integer(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


# ---- integers --------------------------------------------------------------------------------


def integer(name: str, value, *, lo: int | None = None, hi: int | None = None, note: str = "") -> int:
    """`value` as a Python int with lo <= value <= hi (either bound optional).

    The message reads "`name` must be an integer >= lo" (or "in [lo, hi]", "<= hi").
    """
    if lo is not None and hi is not None:
        allowed = f"an integer in [{lo}, {hi}]"
    elif lo is not None:
        allowed = f"an integer >= {lo}"
    elif hi is not None:
        allowed = f"an integer <= {hi}"
    else:
        allowed = "an integer"
    if not _is_integer(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{name} must be {allowed}{_suffix(note)}, got {value!r}")
    return int(value)


def positive_int(name: str, value, *, note: str = "") -> int:
    """A count >= 1 (steps, chains, grid points, ...)."""
    return integer(name, value, lo=1, note=note)


def non_negative_int(name: str, value, *, note: str = "") -> int:
    """An integer >= 0 (resamples, offsets, ...)."""
    return integer(name, value, lo=0, note=note)


def seed(name: str, value) -> int:
    """A random seed: an integer in [0, 2**32) (the range `jax.random.key` and NumPy accept)."""
    if not _is_integer(value) or not 0 <= value < 2**32:
        raise ValueError(f"{name} must be an integer in [0, 2**32), got {value!r}")
    return int(value)


def random_key(name: str, value) -> jax.Array:
    """A JAX random key from a seed (an integer in [0, 2**32), as `seed`) or a key itself.

    Accepted: a Python or NumPy integer, a 0-d integer array (also traced, under `jit`), a typed
    key (`jax.random.key(...)`) or a raw uint32 key of shape (2,) (`jax.random.PRNGKey(...)`).
    The library's one convention: every random function takes `seed=` and accepts a key there.
    """
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return jax.random.key(seed(name, value))
    dtype, shape = getattr(value, "dtype", None), getattr(value, "shape", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) and shape == ():
        return value
    if dtype is not None and jnp.dtype(dtype) == jnp.uint32 and shape == (2,):
        return value  # a raw key; jax.random accepts it as is
    if dtype is not None and jnp.issubdtype(dtype, jnp.integer) and shape == ():
        return jax.random.key(value)
    raise ValueError(f"{name} must be an integer in [0, 2**32) or a JAX random key (jax.random.key(seed)), got {value!r}")


def dimension(name: str, value) -> int:
    """The dimension of a space: an integer >= 1 ("dim must be a positive integer")."""
    if not _is_integer(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer (a dimension), got {value!r}")
    return int(value)


# ---- real numbers ----------------------------------------------------------------------------


def _interval(lo, hi, open_lo: bool, open_hi: bool) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if open_lo else '['}{lo:g}, {hi:g}{')' if open_hi else ']'}"
    if lo is not None:
        return f"{'>' if open_lo else '>='} {lo:g}"
    if hi is not None:
        return f"{'<' if open_hi else '<='} {hi:g}"
    return ""


def real(
    name: str,
    value,
    *,
    lo: float | None = None,
    hi: float | None = None,
    open_lo: bool = False,
    open_hi: bool = False,
    finite: bool = True,
    note: str = "",
) -> float:
    """`value` as a Python float in the interval given by lo/hi (open at either end if asked).

    `finite=False` lets +-inf through (NaN never passes). The message reads "`name` must be a
    finite number >= 0, got ...", or "a number in (0, 1)" etc.
    """
    where = _interval(lo, hi, open_lo, open_hi)
    bounded = lo is not None and hi is not None  # "finite" goes without saying
    allowed = f"{'a finite number' if finite and not bounded else 'a number'}{' ' + where if where else ''}"
    try:
        # float() of a NumPy complex drops the imaginary part with only a ComplexWarning: refuse it.
        number = float(value) if not isinstance(value, (bool, np.bool_, str, bytes, complex, np.complexfloating)) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    bad = math.isnan(number) or (finite and not math.isfinite(number))
    if not bad and lo is not None:
        bad = number <= lo if open_lo else number < lo
    if not bad and hi is not None:
        bad = number >= hi if open_hi else number > hi
    if bad:
        raise ValueError(f"{name} must be {allowed}{_suffix(note)}, got {value!r}")
    return number


def finite_float(name: str, value, *, note: str = "") -> float:
    """Any finite real number."""
    return real(name, value, note=note)


def non_negative_float(name: str, value, *, note: str = "") -> float:
    """A finite number >= 0 (noise scales, radii, penalties)."""
    return real(name, value, lo=0.0, note=note)


def positive_float(name: str, value, *, note: str = "") -> float:
    """A finite number > 0 (step sizes, degrees of freedom, widths)."""
    return real(name, value, lo=0.0, open_lo=True, note=note)


def probability(name: str, value, *, closed: bool = True, note: str = "") -> float:
    """A number in [0, 1] (`closed=True`) or in (0, 1) (`closed=False`)."""
    return real(name, value, lo=0.0, hi=1.0, open_lo=not closed, open_hi=not closed, note=note)


# ---- arrays ----------------------------------------------------------------------------------


def _float64(name: str, value, allowed: str) -> np.ndarray:
    """`value` as a float64 array; what NumPy cannot convert gives "`name` must be `allowed`".

    Complex values are refused by name: NumPy's cast would drop the imaginary part with only a
    ComplexWarning, which a user never sees in a script's output. Strings, booleans and None,
    which NumPy would turn into numbers, are refused too."""
    try:
        array = np.asarray(value)
        # NumPy would read "0.1" as 0.1, True as 1.0 and None as nan: none of them is a number here.
        if array.dtype.kind in "USb" or (array.dtype.kind == "O" and any(v is None for v in array.ravel())):
            raise TypeError
        if not np.iscomplexobj(array):
            array = array.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {allowed}, got {reprlib.repr(value)}") from None
    if np.iscomplexobj(array):
        raise ValueError(f"{name} must be real ({allowed}), got complex values {reprlib.repr(array.tolist())}")
    return array


def finite_array(name: str, value, *, shape: tuple | None = None) -> np.ndarray:
    """`value` as a float64 array with finite entries, of the given shape if one is given
    (`None` in `shape` matches any length on that axis)."""
    array = _float64(name, value, "an array of finite numbers")
    if shape is not None and (
        array.ndim != len(shape) or any(want is not None and got != want for got, want in zip(array.shape, shape))
    ):
        wanted = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        raise ValueError(f"{name} must have shape {wanted}, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got {array.tolist()}")
    return array


def points(name: str, value, n_rows: int, dim: int, *, rows: str = "n_rows") -> np.ndarray:
    """One point `(dim,)` for every row, or one point per row `(n_rows, dim)`, as a finite
    float64 `(n_rows, dim)` array (a read-only broadcast when one point is given). `rows` names
    the row count in the message (e.g. "n_chains", "n_step_sizes")."""
    array = _float64(name, value, f"an array of numbers of shape ({dim},) or ({n_rows}, {dim})")
    if array.shape == (dim,):
        array = np.broadcast_to(array, (n_rows, dim))
    elif array.shape != (n_rows, dim):
        raise ValueError(
            f"{name} must have shape ({dim},) (one point for all) or ({rows}, dim) = ({n_rows}, {dim}), "
            f"got shape {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got {array.tolist()}")
    return array


def float_array(name: str, value, *, ndim: tuple[int, ...], allowed: str) -> np.ndarray:
    """`value` as a finite float64 array with one of the allowed numbers of dimensions; `allowed`
    says in words what is allowed (e.g. "a vector of shape (K,) of positive well depths")."""
    array = _float64(name, value, allowed)
    if array.ndim not in ndim:
        raise ValueError(f"{name} must be {allowed}, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got {array.tolist()}")
    return array


def per_coordinate(name: str, value, dim: int, *, positive: bool = False, allow_zero: bool = False) -> np.ndarray:
    """A number or a `(dim,)` vector, broadcast to `(dim,)` float64; with `positive`, every entry
    > 0 (>= 0 with `allow_zero`)."""
    array = float_array(name, value, ndim=(0, 1), allowed=f"a number or a vector of shape ({dim},)")
    if array.ndim == 1 and array.shape[0] != dim:
        raise ValueError(f"{name} has shape {array.shape} but the objective has dim={dim}")
    if positive:
        bad = array < 0 if allow_zero else array <= 0
        if np.any(bad):
            kind = "non-negative" if allow_zero else "positive"
            raise ValueError(f"{name} must be {kind}, got {array.tolist()}")
    return np.broadcast_to(array, (dim,)).copy()


def step_sizes(name: str, value, *, allow_zero: bool = False) -> np.ndarray:
    """A number or a non-empty 1-D sequence of step sizes, as a float64 vector `(S,)`.

    Step sizes are finite and > 0 (>= 0 with `allow_zero`: eta = 0 is the unsmoothed objective).
    """
    rule = ">= 0" if allow_zero else "> 0"
    eta = np.atleast_1d(_float64(name, value, f"finite numbers {rule}"))
    if eta.ndim != 1 or eta.size == 0:
        raise ValueError(f"{name} must be a number or a non-empty 1-D sequence, got shape {eta.shape}")
    bad = ~np.isfinite(eta) | ((eta < 0) if allow_zero else (eta <= 0))
    if np.any(bad):
        raise ValueError(f"{name} must be finite and {rule}, got {eta[bad].tolist()} in {eta.tolist()}")
    return eta


def psd_matrix(name: str, value, *, dim: int | None = None) -> np.ndarray:
    """A symmetric positive semi-definite matrix `(d, d)` as float64 (of size `dim` if given).

    Symmetry and the smallest eigenvalue are checked up to 1e-12 relative to the largest entry,
    so a matrix built in floating point (e.g. A A^T) passes.
    """
    matrix = np.asarray(finite_array(name, value))
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or (dim is not None and matrix.shape[0] != dim):
        size = "a square matrix" if dim is None else f"a {dim}x{dim} matrix"
        raise ValueError(f"{name} must be {size}, got shape {matrix.shape}")
    scale = max(1.0, float(np.abs(matrix).max(initial=0.0)))
    if not np.allclose(matrix, matrix.T, rtol=1e-10, atol=1e-12 * scale):
        raise ValueError(f"{name} must be symmetric, got {matrix.tolist()}")
    smallest = float(np.linalg.eigvalsh(matrix).min())
    if smallest < -1e-12 * scale:
        raise ValueError(f"{name} must be positive semi-definite, got smallest eigenvalue {smallest:.3g}")
    return matrix


# ---- choices and dtypes ----------------------------------------------------------------------


def one_of(name: str, value, choices: Iterable):
    """`value` if it is one of `choices`; the message lists them."""
    options = tuple(choices)
    try:
        found = value in options
    except TypeError:  # an unhashable value against a set-like: not a valid choice
        found = False
    if not found:
        raise ValueError(f"{name} must be one of {list(options)!r}, got {value!r}")
    return value


def float_dtype(name: str, value, *, default=None):
    """A JAX float dtype, float32 or float64; `None` gives `default` or, without one, float64 in
    x64 mode and float32 otherwise. float64 needs JAX's x64 mode (the message says how)."""
    x64 = bool(jax.config.jax_enable_x64)
    if value is None:
        if default is not None:
            return float_dtype(name, default)
        return jnp.float64 if x64 else jnp.float32
    try:
        resolved = jnp.dtype(value)
    except TypeError:
        raise ValueError(f"{name} must be float32 or float64, got {value!r}") from None
    if resolved == jnp.float32:
        return jnp.float32
    if resolved == jnp.float64:
        if not x64:
            raise ValueError(
                f"{name}=float64 needs JAX's x64 mode: call jax.config.update('jax_enable_x64', True) "
                "before creating arrays, or set JAX_ENABLE_X64=1"
            )
        return jnp.float64
    raise ValueError(f"{name} must be float32 or float64, got {value!r}")
