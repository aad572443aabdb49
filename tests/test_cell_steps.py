"""`theory.cell_steps.Stepper`: the compiled steps (banded blocks, windows, dense kernels) against
the cell chain's own products (`CellChain.push`/`pull`, SciPy), step by step in NumPy."""

import jax
import numpy as np
import pytest

import objectives
import simulate
from theory.cell_products import CellChain, start_law
from theory.cell_steps import KILL_BUDGET, Stepper
from theory.grid import make_grid
from theory.stationary import check_inputs, grid_gradient

PAIRS = (np.array([0, 1, 2]), np.array([0, 1, 2]))  # r rows x, v, a tail's x; s rows their squares


def _setting(eta, n_cells):
    f = objectives.sharp_flat()
    law, _, _ = check_inputs(f, simulate.noise.gaussian(1.0), [eta], n_cells, 0.5)
    grid = make_grid(np.array([-7.0]), np.array([9.0]), n_cells)
    with jax.enable_x64(True):
        gradient = grid_gradient(f, grid)
        chain = CellChain(grid, gradient, law, eta, None)
    points = grid.points[:, 0]
    g = np.stack([points + 1.0, points - eta * gradient[:, 0] + 1.0, points + 1.0])  # centred near the sharp well
    block = np.zeros((1 + 3 + 3, grid.size))
    block[0] = start_law(np.array([-1.0]), grid, 1)[0]
    return chain, g, block


@pytest.mark.parametrize("eta, n_cells", [(0.01, 801), (0.4, 200)])  # a narrow band (windows) and a dense kernel
def test_compiled_steps_equal_the_chains_own_products(eta, n_cells):
    chain, g, block = _setting(eta, n_cells)
    with jax.enable_x64(True):
        windowed = Stepper(chain, PAIRS, dim=1)
        whole = Stepper(chain, PAIRS, dim=1, window=False)
        reference = Stepper(chain, PAIRS, dim=2)  # not compiled: CellChain.push, one step at a time
        out, killed = windowed.advance(block, g, 150)
        out, more = windowed.advance(out, g, 150)  # a second call: a new window from the law's support
        full, nothing = whole.advance(block, g, 300)
        expected, _ = reference.advance(block, g, 300)
        h = np.stack([g[0], g[1] ** 2])
        pulled = windowed.pull(h, 40)
        pulled_reference = reference.pull(h, 40)
    scale = np.max(np.abs(expected), axis=1, keepdims=True)
    np.testing.assert_allclose(full / scale, expected / scale, rtol=0, atol=1e-13)
    np.testing.assert_allclose(out / scale, expected / scale, rtol=0, atol=1e-13)
    np.testing.assert_allclose(pulled, pulled_reference, rtol=1e-12, atol=1e-14)
    assert all(0.0 <= mass <= KILL_BUDGET for mass in (killed, more, nothing))  # nothing: only cells under FLUSH
    if eta == 0.01:  # the law sits in the sharp well: the window is a fraction of the grid
        support = np.flatnonzero(out[0] != 0.0)
        assert support[-1] - support[0] < n_cells // 2
