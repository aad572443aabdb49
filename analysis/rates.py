"""Rates on a log-log scale: `fit_rate(x, y)` -> slope with a confidence interval.

Claims like "the last iterate's floor grows like eta" or "the averaged error falls like 1/T" are
slopes of log y against log x. The fit is (weighted) least squares,

    log y_i = a + b log x_i + e_i,

with the interval b +- t_{n-2, (1+c)/2} se(b). With weights w_i (for instance 1/se_i^2 of the
errors, converted by `fit_rate` to the log scale as w_i y_i^2, since var(log y) ~ (se/y)^2),
se(b) uses the weighted residual variance: the weights fix the relative precision of the points,
the scatter about the line fixes the absolute one, so a curve that is not a power law over the
fitted range gets a wide interval rather than a falsely narrow one.

The t quantile is computed here with NumPy and the standard library only (SciPy is not a
run-time dependency): the t tail is a regularized incomplete beta function, evaluated with its
continued fraction (modified Lentz), and inverted by bisection.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = ["RateFit", "fit_rate", "student_t_quantile"]

_EPS = 1e-15
_TINY = 1e-300


class RateFit(NamedTuple):
    """A log-log least-squares fit: log y = intercept + slope log x.

    `slope_lo`, `slope_hi` bound the `confidence` interval of the slope; `slope_se` is its
    standard error; `n_points` the number of points fitted (the interval has n_points - 2
    degrees of freedom).
    """

    slope: float
    slope_lo: float
    slope_hi: float
    intercept: float
    slope_se: float
    n_points: int

    def __str__(self) -> str:
        return f"slope {self.slope:.3f} [{self.slope_lo:.3f}, {self.slope_hi:.3f}] (n={self.n_points})"


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (Numerical Recipes 6.4), by the modified Lentz method."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    # Converges in O(sqrt(max(a, b))) terms where x is near the switch point (a+1)/(a+b+2).
    for m in range(1, 10_000 + int(20 * math.sqrt(max(a, b)))):
        m2 = 2 * m
        for numerator in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            h *= d * c
        if abs(d * c - 1.0) < _EPS:
            return h
    raise ArithmeticError(f"incomplete beta continued fraction did not converge for a={a}, b={b}, x={x}")


def _incomplete_beta(a: float, b: float, x: float, one_minus_x: float) -> float:
    """The regularized incomplete beta I_x(a, b), with 1 - x passed separately (no cancellation)."""
    if x <= 0.0:
        return 0.0
    if one_minus_x <= 0.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(one_minus_x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, one_minus_x) / b


def _student_t_upper_tail(t: float, df: float) -> float:
    """P(T > t) for t >= 0: (1/2) I_{df/(df+t^2)}(df/2, 1/2)."""
    t2 = t * t
    return 0.5 * _incomplete_beta(df / 2.0, 0.5, df / (df + t2), t2 / (df + t2))


def student_t_quantile(probability: float, df: float) -> float:
    """The `probability` quantile of Student's t with `df` > 0 degrees of freedom.

    Bisection on the upper tail (1/2) I_{df/(df+t^2)}(df/2, 1/2) to a relative 1e-13; the tail
    is computed directly, so quantiles far in the tail keep their relative accuracy.
    """
    probability, df = float(probability), float(df)
    if not 0.0 < probability < 1.0:
        raise ValueError(f"probability must be in (0, 1), got {probability}")
    if not (df > 0 and math.isfinite(df)):
        raise ValueError(f"df must be positive and finite, got {df}")
    if probability == 0.5:
        return 0.0
    # The smaller tail, taken from `probability` itself: 1 - (1 - p) would lose digits for tiny p.
    sign, tail = (-1.0, probability) if probability < 0.5 else (1.0, 1.0 - probability)
    lo, hi = 0.0, 1.0
    while _student_t_upper_tail(hi, df) > tail:
        lo, hi = hi, 2.0 * hi
    while hi - lo > 1e-13 * hi:
        mid = 0.5 * (lo + hi)
        if _student_t_upper_tail(mid, df) > tail:
            lo = mid
        else:
            hi = mid
    return sign * 0.5 * (lo + hi)


def fit_rate(x, y, *, weights=None, confidence: float = 0.95) -> RateFit:
    """Slope of log y against log x with a `confidence` interval.

    **Arguments:**

    - `x`, `y`: positive finite arrays of the same length n >= 3.
    - `weights`: optional inverse variances of y, one per point (e.g. `1 / mse_se**2`); used on
      the log scale as `weights * y**2`. Only their ratios matter (see the module docstring).
    - `confidence`: the level of the interval (t-distribution with n - 2 degrees of freedom).

    **Returns:** a `RateFit(slope, slope_lo, slope_hi, intercept, slope_se, n_points)`; the
    intercept is the natural log of y at x = 1.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.size}")
    if x.size < 3:
        raise ValueError(f"fit_rate needs at least 3 points for an interval, got {x.size}")
    if np.any(~np.isfinite(x) | (x <= 0)) or np.any(~np.isfinite(y) | (y <= 0)):
        raise ValueError(f"x and y must be positive and finite (a log-log fit), got x={x.tolist()}, y={y.tolist()}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if weights is None:
        w = np.ones_like(y)
    else:
        given = np.asarray(weights, dtype=np.float64).ravel()
        if given.shape != y.shape or np.any(~np.isfinite(given) | (given <= 0)):
            raise ValueError(f"weights must be {y.size} positive finite numbers (one per point), got {given.tolist()}")
        w = given * y**2  # var(log y) ~ var(y) / y^2
    lx, ly = np.log(x), np.log(y)
    mean_x, mean_y = np.average(lx, weights=w), np.average(ly, weights=w)
    sxx = np.sum(w * (lx - mean_x) ** 2)
    if not sxx > 1e-12 * np.sum(w) * max(1.0, mean_x**2):
        raise ValueError(f"x must take at least two distinct values, got {np.unique(x).tolist()}")
    slope = np.sum(w * (lx - mean_x) * (ly - mean_y)) / sxx
    intercept = mean_y - slope * mean_x
    residual = ly - intercept - slope * lx
    n = x.size
    sigma2 = np.sum(w * residual**2) / (n - 2)
    slope_se = float(np.sqrt(sigma2 / sxx))
    half = student_t_quantile(0.5 + confidence / 2, n - 2) * slope_se
    return RateFit(float(slope), float(slope - half), float(slope + half), float(intercept), slope_se, n)
