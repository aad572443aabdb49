"""Chains of SGD and their averages under a noise model.

    result = simulate.run(objective, step_sizes=[0.01, 0.1], n_steps=1000, n_chains=4096, x0=x0)

`simulate.noise` holds the noise models; `simulate.randomness` states the per-chain randomness
contract; `simulate.engine` is the compiled core.
"""

from simulate import noise, randomness
from simulate.result import ESTIMATORS, SimulationResult
from simulate.run import DivergenceWarning, checkpoint_schedule, run, tail_length

__all__ = [
    "ESTIMATORS",
    "DivergenceWarning",
    "SimulationResult",
    "checkpoint_schedule",
    "noise",
    "randomness",
    "run",
    "tail_length",
]
