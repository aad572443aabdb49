"""The noise models of the chains: `objectives.noise`, under its public name `simulate.noise`.

Additive laws eps in grad f(x) + eps (`gaussian`, `rademacher`, `uniform`, `student_t`) and
minibatch sampling of a finite sum (`minibatch`). They are defined once, in `objectives.noise`,
so that smoothing (`objectives.smoothed`) and simulation share them.
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

__all__ = [
    "FAMILIES", "TABLE", "Minibatch", "NoiseFamily", "NoiseModel", "family_named", "gaussian", "minibatch",
    "rademacher", "uniform", "student_t",
]
