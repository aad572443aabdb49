"""Rates on a log-log scale: `fit_rate(x, y)` -> slope with a confidence interval.

Claims like "the last iterate's floor grows like eta" or "the averaged error falls like 1/T" are
slopes of log y against log x. The fit is (weighted) least squares,

    log y_i = a + b log x_i + e_i,

with the interval b +- t_{n-2, (1+c)/2} se(b). With weights w_i (for instance 1/se_i^2 of the
errors, converted by `fit_rate` to the log scale as w_i y_i^2, since var(log y) ~ (se/y)^2),
se(b) uses the weighted residual variance: the weights fix the relative precision of the points,
the scatter about the line fixes the absolute one, so a curve that is not a power law over the
fitted range gets a wide interval rather than a falsely narrow one.

The t quantile is `scipy.stats.t.ppf`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import stats

from objectives import validation as check

__all__ = ["RateFit", "fit_rate"]


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
    confidence = check.probability("confidence", confidence, closed=False)
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
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 2)) * slope_se
    return RateFit(float(slope), float(slope - half), float(slope + half), float(intercept), slope_se, n)
