"""Rates on a log-log scale: `fit_rate(x, y)` -> slope with a confidence interval.

Claims like "the last iterate's floor grows like eta" or "the averaged error falls like 1/T" are
slopes of log y against log x. The fit is (weighted) least squares,

    log y_i = a + b log x_i + e_i,

with the interval b +- t_{n-2, (1+c)/2} se(b). With weights w_i (for instance 1/se_i^2 of the
errors, converted by `fit_rate` to the log scale as w_i y_i^2, since var(log y) ~ (se/y)^2),
se(b) uses the weighted residual variance (the weights fix relative, not absolute, precision).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np
from jax.scipy.special import betainc

__all__ = ["RateFit", "fit_rate", "student_t_quantile"]


class RateFit(NamedTuple):
    slope: float
    slope_lo: float
    slope_hi: float
    intercept: float
    slope_se: float
    n_points: int

    def __str__(self) -> str:
        return f"slope {self.slope:.3f} [{self.slope_lo:.3f}, {self.slope_hi:.3f}] (n={self.n_points})"


def _student_t_cdf(t: float, df: float) -> float:
    # P(T <= t) = 1 - I_{df/(df+t^2)}(df/2, 1/2) / 2 for t >= 0 (regularized incomplete beta).
    with jax.enable_x64(True):  # float64 locally: a float32 incomplete beta is off by ~1e-5
        tail = 0.5 * float(betainc(df / 2, 0.5, df / (df + t * t)))
    return 1.0 - tail if t >= 0 else tail


def student_t_quantile(probability: float, df: float) -> float:
    """The `probability` quantile of Student's t with `df` degrees of freedom (bisection on the CDF)."""
    if not 0 < probability < 1:
        raise ValueError(f"probability must be in (0, 1), got {probability}")
    if not df > 0:
        raise ValueError(f"df must be positive, got {df}")
    if probability < 0.5:
        return -student_t_quantile(1 - probability, df)
    lo, hi = 0.0, 1.0
    while _student_t_cdf(hi, df) < probability:
        hi *= 2
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if _student_t_cdf(mid, df) < probability:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-10 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def fit_rate(x, y, *, weights=None, confidence: float = 0.95) -> RateFit:
    """Slope of log y against log x with a `confidence` interval.

    **Arguments:**

    - `x`, `y`: positive arrays of the same length n >= 3.
    - `weights`: optional inverse variances of y (e.g. 1 / se^2); converted to the log scale.
    - `confidence`: the level of the interval (t-distribution with n - 2 degrees of freedom).

    **Returns:** a `RateFit(slope, slope_lo, slope_hi, intercept, slope_se, n_points)`.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.size}")
    if x.size < 3:
        raise ValueError(f"fit_rate needs at least 3 points for an interval, got {x.size}")
    if np.any(~np.isfinite(x) | (x <= 0)) or np.any(~np.isfinite(y) | (y <= 0)):
        raise ValueError("x and y must be positive and finite (a log-log fit)")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if weights is None:
        w = np.ones_like(y)
    else:
        w = np.asarray(weights, dtype=np.float64).ravel() * y**2  # var(log y) ~ var(y) / y^2
        if w.shape != y.shape or np.any(~np.isfinite(w) | (w <= 0)):
            raise ValueError("weights must be positive and finite, one per point")
    lx, ly = np.log(x), np.log(y)
    mean_x, mean_y = np.average(lx, weights=w), np.average(ly, weights=w)
    sxx = np.sum(w * (lx - mean_x) ** 2)
    if sxx == 0:
        raise ValueError("x must take at least two distinct values")
    slope = np.sum(w * (lx - mean_x) * (ly - mean_y)) / sxx
    intercept = mean_y - slope * mean_x
    residual = ly - intercept - slope * lx
    n = x.size
    sigma2 = np.sum(w * residual**2) / (n - 2)
    slope_se = float(np.sqrt(sigma2 / sxx))
    half = student_t_quantile(0.5 + confidence / 2, n - 2) * slope_se
    return RateFit(float(slope), float(slope - half), float(slope + half), float(intercept), slope_se, n)
