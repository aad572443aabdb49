"""`analysis.fit_rate`: log-log slopes with t intervals (the quantile from scipy.stats)."""

import math

import numpy as np
import pytest
from scipy import stats

import analysis


def test_fit_rate_recovers_exact_power_laws_weighted_or_not():
    x = np.geomspace(10, 1e5, 9)
    for slope, scale in ((-1.0, 7.0), (0.5, 0.01), (2.0, 3.0)):
        y = scale * x**slope
        for weights in (None, np.geomspace(1, 100, x.size)):
            fit = analysis.fit_rate(x, y, weights=weights)
            assert fit.slope == pytest.approx(slope, abs=1e-10) and fit.intercept == pytest.approx(math.log(scale), abs=1e-9)
            assert fit.slope_se == pytest.approx(0.0, abs=1e-9) and fit.n_points == 9


def test_fit_rate_interval_is_the_textbook_regression_interval():
    rng = np.random.default_rng(0)
    x = np.geomspace(1, 1000, 7)
    y = 2.0 * x**-0.7 * np.exp(rng.normal(0, 0.2, x.size))
    fit = analysis.fit_rate(x, y, confidence=0.9)
    reference = stats.linregress(np.log(x), np.log(y))
    assert fit.slope == pytest.approx(reference.slope, rel=1e-12)
    assert fit.intercept == pytest.approx(reference.intercept, rel=1e-12)
    assert fit.slope_se == pytest.approx(reference.stderr, rel=1e-10)
    half = stats.t.ppf(0.95, 5) * reference.stderr
    assert (fit.slope_lo, fit.slope_hi) == pytest.approx((reference.slope - half, reference.slope + half), rel=1e-9)


def test_fit_rate_interval_covers_the_true_slope_at_its_level():
    rng = np.random.default_rng(1)
    x = np.geomspace(10, 1e5, 8)
    fits = [analysis.fit_rate(x, 3.0 * x**0.5 * np.exp(rng.normal(0, 0.1, x.size))) for _ in range(600)]
    coverage = np.mean([fit.slope_lo <= 0.5 <= fit.slope_hi for fit in fits])
    assert 0.925 <= coverage <= 0.975, coverage  # 95% nominal; binomial sd 0.9%
    narrow = np.mean([fit.slope_lo <= 0.5 <= fit.slope_hi for fit in (analysis.fit_rate(x, y, confidence=0.5) for y in
                      (3.0 * x**0.5 * np.exp(rng.normal(0, 0.1, x.size)) for _ in range(600)))])
    assert 0.44 <= narrow <= 0.56, narrow


def test_weights_from_standard_errors_are_used_on_the_log_scale():
    # Relative errors se/y: the point with a huge se must barely move the weighted slope.
    x = np.geomspace(1, 1e4, 6)
    y = x**-1.0
    y_bad = y.copy()
    y_bad[-1] *= 30.0
    se = 0.01 * y_bad
    se[-1] = 1e3 * y_bad[-1]
    weighted = analysis.fit_rate(x, y_bad, weights=1 / se**2)
    plain = analysis.fit_rate(x, y_bad)
    assert weighted.slope == pytest.approx(-1.0, abs=1e-4) and abs(plain.slope + 1.0) > 0.2
    # Equivalent to ordinary least squares on sqrt(w)-scaled log data, w = (y / se)^2.
    w = (y_bad / se) ** 2
    design = np.stack([np.ones_like(x), np.log(x)], axis=1) * np.sqrt(w)[:, None]
    coef = np.linalg.lstsq(design, np.log(y_bad) * np.sqrt(w), rcond=None)[0]
    assert (weighted.intercept, weighted.slope) == pytest.approx(tuple(coef), rel=1e-9)


def test_fit_rate_rejects_what_a_log_log_fit_cannot_use():
    with pytest.raises(ValueError, match="positive and finite"):
        analysis.fit_rate([1, 2, 3], [1, -1, 2])
    with pytest.raises(ValueError, match="at least 3 points"):
        analysis.fit_rate([1, 2], [1, 2])
    with pytest.raises(ValueError, match="same length"):
        analysis.fit_rate([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="weights must be 3 positive finite"):
        analysis.fit_rate([1, 2, 3], [1, 2, 3], weights=[1, 2])
    with pytest.raises(ValueError, match="two distinct values"):
        analysis.fit_rate([2, 2, 2], [1, 2, 3])
