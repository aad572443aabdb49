"""The noise models of the chains: `objectives.noise` and `objectives.state_noise`, under their
public name `simulate.noise`.

Additive laws eps in grad f(x) + eps (`gaussian`, `rademacher`, `uniform`, `student_t`: one
object per family in `objectives.noise_families`), minibatch sampling of a finite sum
(`minibatch`), and Gaussian noise whose covariance depends on x (`state_dependent(cov)`,
`hessian_aligned(scale)`, `loss_scaled(scale, f_min)`, `label_noise(scale)`: eps = C(x)^(1/2) z
on the Gaussian family's draws z). They are defined once, in `objectives`, so that smoothing
(`objectives.smoothed`), simulation and the exact law share them. Every non-additive model
answers `covariance_at(objective, x)`: C at one point, `(d,)` -> `(d, d)`, traceable by JAX.
"""

from objectives.noise import (
    FAMILIES,
    TABLE,
    Minibatch,
    NoiseFamily,
    NoiseModel,
    family_named,
    gaussian,
    minibatch,
    rademacher,
    student_t,
    uniform,
)
from objectives.state_noise import KINDS, StateDependent, hessian_aligned, label_noise, loss_scaled, state_dependent

__all__ = [
    "FAMILIES", "TABLE", "Minibatch", "NoiseFamily", "NoiseModel", "family_named", "gaussian", "minibatch",
    "rademacher", "uniform", "student_t", "KINDS", "StateDependent", "state_dependent", "hessian_aligned",
    "loss_scaled", "label_noise",
]
