"""Checks of a law's settings against the noise: heavy tails the box truncates.

The cell chain renormalises each row to the box, so the noise it applies is the true noise
conditioned on landing in the box. For light tails the lost mass (`out_of_box`, held below
`max_leak`) bounds the error. For Student-t noise with few degrees of freedom it does not: the
variance sits in the far tails, and a box that keeps all but 1e-6 of the mass can keep a small
part of the variance (df = 2.0001, eta = 0.2, a box reaching 14 noise units from the mean: of the variance
it keeps 0.07%), so the law's floors come out far too small with no sign of it. `check_heavy_tails` bounds the
share of the noise variance beyond the box and refuses the law above `MAX_LOST_VARIANCE`.
"""

from __future__ import annotations

import numpy as np

from objectives.noise_families import family_named

__all__ = ["MAX_LOST_VARIANCE", "check_heavy_tails", "lost_variance"]

#: The largest share of the noise variance the box may cut off (per axis, from the law's mean).
MAX_LOST_VARIANCE = 0.01


def lost_variance(df: float, reach: float) -> float:
    """E[Z^2 1{|Z| > reach}] for Z Student-t with `df` > 2 degrees of freedom scaled to unit
    variance (the Student-t family's `tail_variance`)."""
    return family_named("student_t").tail_variance(reach, df)


def check_heavy_tails(law, step_sizes, lower, upper, means) -> None:
    """Refuse (`ValueError` naming the step sizes) a Student-t law whose box cuts off more than
    `MAX_LOST_VARIANCE` of the noise variance: a step from the law's mean `means` `(S, d)` reaches
    the nearest edge of the box at reach = distance / (eta sigma_axis) noise units."""
    if not law.standard.heavy_tailed:
        return
    scales = np.sqrt(np.diag(law.covariance))
    lost = []
    for eta, mean in zip(np.asarray(step_sizes, float), np.asarray(means, float)):
        distance = np.minimum(mean - lower, upper - mean)
        lost.append(max(law.standard.tail_variance(float(max(d, 0.0) / (eta * s)), law.df) for d, s in zip(distance, scales)))
    lost = np.array(lost)
    bad = lost > MAX_LOST_VARIANCE
    if np.any(bad):
        raise ValueError(
            f"noise: Student-t with df = {law.df:g} has heavy tails: the box bounds=({np.asarray(lower).tolist()}, "
            f"{np.asarray(upper).tolist()}) cuts off {np.round(lost[bad], 4).tolist()} of the noise variance at step sizes "
            f"{np.asarray(step_sizes)[bad].tolist()} (allowed: {MAX_LOST_VARIANCE:g}), so the law's spread would come out too "
            "small; widen bounds, or use more degrees of freedom"
        )
