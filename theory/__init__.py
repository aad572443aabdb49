"""Exact theory: the closed forms on quadratics and the exact law of SGD on a grid in 1-D and 2-D.

- `theory.quadratic`: the Gaussian law of every estimator at every horizon on a quadratic
  (`quadratic_law`, `quadratic_mse_curves`, ...), exact for any T.
- `theory.stationary`: the exact long-run law (`stationary_law` -> `StationaryLaw`) of constant-step
  SGD in 1-D and 2-D, with escape times and quasi-stationary laws of basins.
- Its parts, one job each: `theory.grid` (cells and the noise laws' cell integrals),
  `theory.kernel_1d` (the 1-D kernel as a matrix), `theory.kernel_2d` (the 2-D kernel as an
  operator), `theory.linalg` (GTH, pinned LU, Poisson equation, spectral gap), `theory.solve`
  (which solver, per step size).
- `theory.finite_time`: the law of every estimator at a run's own horizons and start
  (`finite_time_law` -> `FiniteTimeLaw`), exact products of the kernel with vectors
  (`theory.cell_products`: the kernel applied to blocks of vectors, start laws on the cells).
- Noise that follows the landscape (state-dependent Gaussian noise, exact minibatch mixtures):
  `state_dependent_law` (the `StationaryLaw` with this noise's kernel), `absorption` where the
  noise vanishes at minimizers (absorption probabilities and times), `linear_stability` (mean-square
  stability at a minimum, Wu, Ma and E 2018), escape times (`escape_steps` exact on cells, beside
  `eyring_kramers_steps`, `xie_escape_steps` and `diffusion_escape_steps_1d`).
- `theory.averaged_limit`: what the average converges to: Delta in E_pi x = theta* + eta Delta +
  O(eta^2) (`averaged_limit_expansion`), its decomposition with the exact law (`averaged_limit`).

The package sits above `analysis` (it uses its minimizers and basins) and below `figures`.
"""

from theory import quadratic
from theory.quadratic import (
    ESTIMATORS,
    GaussianLaw,
    averaged_mse_asymptotic,
    last_iterate_floor,
    quadratic_law,
    quadratic_mse,
    quadratic_mse_curves,
    stationary_covariance,
)
from theory.linalg import InaccurateLawWarning, NoStationaryLaw
from theory.stationary import QuasiStationary, StationaryLaw, stationary_law
from theory.finite_time import FiniteTimeLaw, finite_time_law
from theory.law_starts import stationary_starts
from theory.averaged_limit import AveragedLimit, averaged_limit, averaged_limit_expansion, free_energy_solution, grid_extrapolated_mean
from theory.state_law import state_dependent_law
from theory.absorption import Absorption, absorption
from theory.stability import Stability, linear_stability, lyapunov_exponent_1d, minibatch_threshold_1d
from theory.escape import diffusion_escape_steps_1d, escape_steps, eyring_kramers_steps, xie_escape_steps

__all__ = [
    "Absorption",
    "AveragedLimit",
    "ESTIMATORS",
    "FiniteTimeLaw",
    "GaussianLaw",
    "InaccurateLawWarning",
    "NoStationaryLaw",
    "QuasiStationary",
    "Stability",
    "StationaryLaw",
    "absorption",
    "averaged_limit",
    "averaged_limit_expansion",
    "averaged_mse_asymptotic",
    "diffusion_escape_steps_1d",
    "escape_steps",
    "eyring_kramers_steps",
    "finite_time_law",
    "free_energy_solution",
    "grid_extrapolated_mean",
    "last_iterate_floor",
    "linear_stability",
    "lyapunov_exponent_1d",
    "minibatch_threshold_1d",
    "quadratic",
    "quadratic_law",
    "quadratic_mse",
    "quadratic_mse_curves",
    "state_dependent_law",
    "stationary_covariance",
    "stationary_law",
    "stationary_starts",
    "xie_escape_steps",
]
