"""Heavy-tailed noise: a Student-t law with df > 2 degrees of freedom, rescaled to unit variance."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.integrate
import scipy.special
import scipy.stats

from objectives.noise_families.base import NoiseFamily, NoiseModel, check_scale


class StudentT(NoiseFamily):
    threefry_bulk = False  # rejection sampling: drawn with jax.random
    has_df = True
    heavy_tailed = True

    def tail_variance(self, reach, df):
        """E[Z^2 1{|Z| > reach}] for Z = c T, T ~ t_df, c = sqrt((df - 2)/df): 1 minus the
        truncated second moment over [-reach, reach] (a finite integral, accurate however heavy
        the tails)."""
        c = math.sqrt((df - 2.0) / df)
        t = scipy.stats.t(df)
        kept, _ = scipy.integrate.quad(lambda x: x * x * t.pdf(x), -reach / c, reach / c, limit=200)
        return float(max(0.0, 1.0 - c * c * kept))

    def standard(self, random, key, shape, dtype, df):
        df = jnp.asarray(df, dtype)
        return random.t(key, df, shape, dtype) * jnp.sqrt((df - 2) / df)

    def density(self, z, df, xp=np):
        c = math.sqrt((df - 2.0) / df)
        t = z / c
        log_norm = scipy.special.gammaln(0.5 * (df + 1)) - scipy.special.gammaln(0.5 * df) - 0.5 * math.log(df * math.pi)
        return xp.exp(log_norm - 0.5 * (df + 1) * xp.log1p(t * t / df)) / c

    def upper_tail(self, z, df, xp=jnp, special=None):
        special = jax.scipy.special if special is None else special
        t = z / xp.sqrt((df - 2.0) / df)
        half = 0.5 * special.betainc(0.5 * df, 0.5, df / (df + t * t))
        return xp.where(t >= 0, half, 1.0 - half)

    def quadrature(self, covariance, dim, order):
        raise ValueError(
            "Student-t noise has no quadrature rule matching its law (its high moments are infinite): "
            "use method='monte_carlo'"
        )

    def describe_extra(self, model):
        return {"df": float(model.df)}


def student_t(scale: float = 1.0, df: float = 4.0) -> NoiseModel:
    """Heavy-tailed noise: scale * sqrt((df - 2)/df) * t_df per coordinate (covariance scale^2 I).

    `df` must exceed 2, where the variance exists.
    """
    try:
        if isinstance(df, (complex, np.complexfloating)):  # float() would drop the imaginary part
            raise TypeError
        df_value = float(df)
    except (TypeError, ValueError):
        raise ValueError(f"df must be a number > 2, got {df!r}") from None
    if not math.isfinite(df_value) or df_value <= 2:
        raise ValueError(f"df must be > 2 (the variance of Student-t noise is infinite otherwise), got {df!r}")
    return NoiseModel("student_t", scale=check_scale(scale), df=df_value)


FAMILY = StudentT("student_t", rank=3, constructor=student_t)
