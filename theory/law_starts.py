"""Chains started from the exact stationary law: `stationary_starts`.

A run started from pi_eta (`asgd`'s `run.x0 = "stationary"`) isolates the stationary regime: the
law of x_T does not move, and E x_avg_T = E_pi x at every T. The draw of chain i uses its own
uniforms (u_0, u_1..u_d) = `simulate.randomness.start_uniforms(seed, i)` only, so a chain's start
depends on (seed, i) alone, like its noise (any number of chains, any split between processes):

    cell   j = the first cell with F(j) > u_0,       F the cumulative density (C order),
    start    = c_j + (u_{1..d} - 1/2) * h            (uniform in the cell; c_j its centre, h its widths).

The same uniforms serve every step size (common random numbers across the sweep, as the noise).
The draw is exact for the cell law pi_h; the continuous chain started there is at the
stationary law up to the cell chain's O(h^2) error (`StationaryLaw.discretization_error`).
"""

from __future__ import annotations

import numpy as np

from simulate.randomness import start_uniforms
from theory.stationary import StationaryLaw

__all__ = ["stationary_starts"]


def stationary_starts(law: StationaryLaw, seed: int, chain_indices) -> np.ndarray:
    """`(S, C, d)`: the starts of chains `chain_indices` `(C,)` under `seed`, drawn from `law`'s
    density at each of its S step sizes (module docstring)."""
    if not isinstance(law, StationaryLaw):
        raise ValueError(f"law must be a theory.StationaryLaw, got {type(law).__name__}")
    chains = np.asarray(chain_indices)
    if chains.ndim != 1 or chains.size == 0 or not np.issubdtype(chains.dtype, np.integer) or chains.min() < 0 or chains.max() >= 2**32:
        raise ValueError(f"chain_indices must be a non-empty 1-D array of integers in [0, 2**32), got {chain_indices!r}")
    u = start_uniforms(seed, chains, law.dim + 1)
    # The solvers' densities may carry negative round-off (about 1e-17): no cell is drawn from it.
    cdf = np.cumsum(np.maximum(law.density.reshape(len(law.step_sizes), -1), 0.0), axis=1)
    starts = np.empty((cdf.shape[0], chains.size, law.dim))
    for s, row in enumerate(cdf):
        cells = np.minimum(np.searchsorted(row, u[:, 0] * row[-1], side="right"), row.size - 1)
        starts[s] = law.grid.points[cells] + (u[:, 1:] - 0.5) * law.grid.widths
    return starts
