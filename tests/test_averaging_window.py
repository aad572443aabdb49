"""The averaging-window diagnostic (issue 27): it flags a planted window that spans a forced jump
between two basins of a small objective and not one inside a basin; the windows are exactly the
iterates `simulate.run` averages; the statistics against a hand computation."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

import objectives
import simulate
from asgd import averaging_window as aw

#: Two Gaussian wells on the x axis, barrier at the origin.
WELLS = objectives.gaussian_wells([1.0, 1.0], [[-2.0, 0.0], [2.0, 0.0]], [0.7, 0.7], confinement=0.05)
LEFT, RIGHT = np.array([-2.0, 0.0]), np.array([2.0, 0.0])


def _segment(start, n_steps: int, seed: int) -> np.ndarray:
    """n_steps of SGD (step 0.05, Gaussian noise 0.5) from `start`: iterates x_1..x_n, `(n, 2)`."""
    result = simulate.run(WELLS, step_sizes=0.05, n_steps=n_steps, n_chains=1, x0=start, noise=simulate.noise.gaussian(0.5),
                          seed=seed, trajectory=True)
    return result.trajectory[1:, 0, 0]


def _diagnose(path: np.ndarray, first_step: int) -> aw.WindowDiagnostic:
    """The diagnostic of the window first_step..T of the run `path` (x_1..x_T, every step sampled)."""
    steps = np.arange(1, path.shape[0] + 1)
    window = path[first_step - 1:]
    return aw.diagnose_window(steps, aw.point_losses(WELLS, path), first_step, aw.point_losses(WELLS, window.mean(axis=0)),
                              aw.point_losses(WELLS, aw.line_points(window[0], window[-1])))


def test_a_window_spanning_a_forced_jump_between_basins_is_flagged_and_one_inside_a_basin_is_not():
    before = _segment(LEFT, 200, seed=1)
    jumped = np.concatenate([before, _segment(RIGHT, 200, seed=2)])  # forced to the other well at step 201
    stayed = np.concatenate([before, _segment(before[-1], 200, seed=2)])
    assert np.all(jumped[150:200, 0] < 0) and np.all(jumped[200:, 0] > 0) and np.all(stayed[:, 0] < 0)  # as planted
    across, inside = _diagnose(jumped, 101), _diagnose(stayed, 101)  # the tail half: steps 101..400
    assert across.flagged and not inside.flagged
    # The average of the jumped window sits near the ridge (x1 about 2/3), where the loss is far above every iterate's.
    assert across.jensen_gap > 0.3 and inside.jensen_gap < 0
    assert across.line_barrier > 0.5 and inside.line_barrier < 0.05  # the line from -2 to +2 crosses the ridge
    # A window after the jump is one basin again.
    assert not _diagnose(jumped, 250).flagged


def test_diagnose_window_matches_a_hand_computation():
    steps = np.array([10, 20, 30, 40])
    trace = np.array([[5.0, 1.0], [1.0, 2.0], [3.0, 2.0], [2.0, 2.0]])  # (K, seeds)
    line = np.array([[1.0, 2.0], [4.0, 1.0], [2.0, 2.0]])  # t = 0, 1/2, 1
    found = aw.diagnose_window(steps, trace, 20, np.array([2.5, 1.0]), line)
    np.testing.assert_allclose(found.iterates_loss, [2.0, 2.0])  # steps 20, 30, 40 only
    np.testing.assert_allclose(found.jensen_gap, [0.5, -1.0])
    np.testing.assert_allclose(found.line_barrier, [4.0 - 1.5, 0.0])  # chord at t = 1/2: (1 + 2) / 2 and 2
    np.testing.assert_allclose(found.spike, [3.0 / 2.0, 1.0])
    assert found.flagged.tolist() == [True, False]
    with pytest.raises(ValueError, match="first_step=50 is after the last sampled step 40"):
        aw.diagnose_window(steps, trace, 50, np.ones(2), line)


def _config(**overrides):
    values = dict(n_steps=40, tail_fraction=0.3, ema_decay=0.9, swa_start=0.6, trace_points=8,
                  methods=("cosine", "sgd", "uniform_average", "tail_average", "ema", "swa"))
    return SimpleNamespace(**{**values, **overrides})


def test_windows_are_the_iterates_that_simulate_run_averages():
    config = _config()
    windows = aw.averaging_windows(config)
    assert set(windows) == {"uniform_average", "tail_average", "ema", "swa"}
    quadratic = objectives.quadratic(np.diag([1.0, 0.3]), np.zeros(2))
    kwargs = dict(step_sizes=0.3, n_steps=config.n_steps, n_chains=2, x0=np.array([2.0, -1.0]), seed=4,
                  tail_fraction=config.tail_fraction, trajectory=True, ema_decay=config.ema_decay, track_v=False)
    sgd = simulate.run(quadratic, **kwargs)
    path = sgd.trajectory[:, 0]  # x_0..x_T
    for method, estimate in (("uniform_average", sgd.x_avg), ("tail_average", sgd.x_tail)):
        np.testing.assert_allclose(path[windows[method].first_step:].mean(axis=0), estimate[0], rtol=1e-5, atol=1e-6)
    # The EMA's window: the last n steps, which carry at least 95% of its weight and n - 1 do not.
    n = config.n_steps - windows["ema"].first_step + 1
    assert 0.9 ** n <= 0.05 < 0.9 ** (n - 1)
    # SWA's window is its constant phase: x_tail of a run with the SWA schedule, over that window's length.
    decay_end = round(config.swa_start * config.n_steps)  # where `asgd.network` ends SWA's decay: step 24
    first = windows["swa"].first_step
    assert first == decay_end + 1
    swa = simulate.run(quadratic, schedule=simulate.swa(0, decay_end, 0.5),
                       **{**kwargs, "tail_fraction": (config.n_steps - decay_end) / config.n_steps})
    np.testing.assert_allclose(swa.trajectory[first:, 0].mean(axis=0), swa.x_tail[0], rtol=1e-5, atol=1e-6)
    steps = aw.trace_steps(config)
    assert {w.first_step for w in windows.values()} <= set(steps.tolist()) and steps[-1] == config.n_steps
    assert set(np.round(np.arange(1, 9) * 40 / 8).astype(int).tolist()) <= set(steps.tolist())
    assert set(aw.averaging_windows(_config(methods=("cosine", "sgd", "ema")))) == {"ema"}


def test_window_frequencies_count_flags_and_falls_per_method_and_step_size():
    rows = [dict(experiment="e", method="ema", step_size=0.3, flagged=f, below_last=b, jensen_gap=g, line_barrier=0.1 * g, spike=1 + g)
            for f, b, g in ((1, 1, 2.0), (1, 0, 1.0), (0, 1, -1.0), (0, 0, -2.0))]
    rows.append(dict(rows[0], step_size=1.0))
    first, second = aw.window_frequencies(rows)
    assert (first["n_seeds"], first["n_flagged"], first["n_below_last"], first["n_flagged_and_below"]) == (4, 2, 2, 1)
    assert first["mean_jensen_gap"] == 0 and first["max_line_barrier"] == pytest.approx(0.2) and first["max_spike"] == 3
    assert (second["step_size"], second["n_seeds"], second["n_flagged_and_below"]) == (1.0, 1, 1)
    assert math.isclose(aw.EMA_WEIGHT, 0.95)
