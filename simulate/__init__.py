"""Chains of SGD (or SAM, or heavy-ball momentum) and their averages under a noise model.

    result = simulate.run(objective, step_sizes=[0.01, 0.1], n_steps=1000, n_chains=4096, x0=x0)
    result = simulate.run(objective, ..., algorithm=simulate.sam(0.05))
    result = simulate.run(objective, ..., schedule=simulate.cosine_decay(1000))   # eta_k = eta s(k)

`simulate.noise` holds the noise models; `simulate.randomness` states the per-chain randomness
contract; `simulate.kernels` the update rules (`sgd`, `sam`, `momentum`), `simulate.gradients`
where their gradients come from, `simulate.schedules` the step-size schedules (`constant`,
`cosine_decay`, `step_decay`, `swa`), `simulate.trackers` the estimators (the built-in averages,
and `simulate.tracker` for your own), and `simulate.driver` the one
compiled loop that runs them all.
"""

from simulate import kernels, noise, randomness, schedules, trackers
from simulate.kernels import Kernel, momentum, sam, sgd
from simulate.schedules import Schedule, constant, cosine_decay, step_decay, swa
from simulate.result import ESTIMATORS, SimulationResult
from simulate.run import DivergenceWarning, checkpoint_schedule, run, tail_length
from simulate.trackers import BUILT_IN_ESTIMATORS, Tracker, tracker

__all__ = [
    "BUILT_IN_ESTIMATORS",
    "ESTIMATORS",
    "DivergenceWarning",
    "Kernel",
    "Schedule",
    "SimulationResult",
    "Tracker",
    "checkpoint_schedule",
    "constant",
    "cosine_decay",
    "kernels",
    "momentum",
    "noise",
    "randomness",
    "run",
    "sam",
    "schedules",
    "sgd",
    "step_decay",
    "swa",
    "tail_length",
    "tracker",
    "trackers",
]
