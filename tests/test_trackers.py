"""A user's own estimator (`simulate.tracker`) runs in the driver beside the built-in ones,
without any edit to the library, and the result holds it by name."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import objectives
import simulate

N_STEPS = 150  # three noise blocks, the last one short
START = N_STEPS - 15  # the last 10% of the steps: k = 136..150


# A weighted average over the last 10% of the steps, weight w_k = k:
#   x_late = sum_{k > START} k x_k / sum_{k > START} k.
def _late_init(x0):
    return (jnp.zeros_like(x0), jnp.zeros((), x0.dtype))


def _late_update(state, x, step):
    weighted, total = state
    weight = jnp.where(step > START, step, 0).astype(x.dtype)
    return (weighted + weight * x, total + weight)


def _late_readout(state, step):
    weighted, total = state
    return weighted / total


LATE = simulate.tracker("x_late", _late_init, _late_update, _late_readout)
QUADRATIC = objectives.quadratic([[2.0, 0.3], [0.3, 0.7]], [0.2, 0.1])
RUN = dict(step_sizes=[0.1, 0.5], n_steps=N_STEPS, n_chains=64, x0=[1.0, -1.0], seed=3, checkpoints=[N_STEPS])


def _weighted_late_average(trajectory):
    """The same estimator from the stored path x_0..x_T `(T + 1, S, C, d)`, in float64."""
    steps = np.arange(START + 1, N_STEPS + 1)
    path = trajectory[START + 1 :].astype(np.float64)
    return np.einsum("k,ksci->sci", steps.astype(np.float64), path) / steps.sum()


@pytest.mark.parametrize("algorithm", [simulate.sgd(), simulate.momentum(0.5)], ids=["sgd", "momentum"])
def test_a_user_tracker_matches_its_estimator_on_the_trajectory(algorithm):
    result = simulate.run(QUADRATIC, algorithm=algorithm, trajectory=True, trackers=[LATE], **RUN)
    assert result.estimators[-1] == "x_late"
    np.testing.assert_allclose(result.x_late, _weighted_late_average(result.trajectory), rtol=2e-6, atol=2e-6)
    assert np.array_equal(result.estimator("x_late"), result.checkpoints["x_late"][-1])


def test_a_user_tracker_changes_no_built_in_estimator():
    plain = simulate.run(QUADRATIC, ema_decay=0.9, **RUN)
    tracked = simulate.run(QUADRATIC, ema_decay=0.9, trackers=[LATE], **RUN)
    for name in plain.estimators:
        assert np.array_equal(plain.checkpoints[name], tracked.checkpoints[name]), name


def test_a_user_tracker_of_a_diverged_chain_stops_at_its_last_good_step():
    # |1 - 0.95 * 2.2| = 1.09 per step: the chains at the larger step size leave the ball.
    diverging = objectives.quadratic([1.0, 2.2], [0.0, 0.0])
    kwargs = dict(RUN, step_sizes=[0.1, 0.95], divergence_radius=50.0, warn_on_divergence=False, trajectory=True)
    result = simulate.run(diverging, trackers=[simulate.tracker("x_sum_of_late", _late_init, _late_update, lambda s, t: s[0])], **kwargs)
    assert result.diverged[1].all() and not result.diverged[0].any()
    # A chain frozen at step k holds its state of step k - 1: the weighted sum over k' in (START, k).
    steps = np.arange(N_STEPS + 1, dtype=np.float64)[:, None, None]
    alive = (steps < np.where(result.diverged, result.diverged_at, N_STEPS + 1)) & (steps > START)
    expected = np.sum(np.where(alive[..., None], steps[..., None] * result.trajectory.astype(np.float64), 0), axis=0)
    np.testing.assert_allclose(result.x_sum_of_late, expected, rtol=2e-6, atol=1e-4)


def test_a_user_tracker_round_trips_through_save_and_load(tmp_path):
    result = simulate.run(QUADRATIC, trackers=[LATE], **RUN)
    loaded = simulate.SimulationResult.load(result.save(tmp_path / "r.npz"))
    assert loaded.estimators == result.estimators
    assert np.array_equal(loaded.x_late, result.x_late)


def test_a_second_run_with_the_same_tracker_does_not_recompile():
    simulate.run(QUADRATIC, trackers=[LATE], **RUN)
    compiles = []
    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        again = simulate.tracker("x_late", _late_init, _late_update, _late_readout)
        simulate.run(QUADRATIC, trackers=[again], **dict(RUN, seed=4, step_sizes=[0.2, 0.3]))
    finally:
        jax.monitoring.clear_event_listeners()
    assert compiles == []


@pytest.mark.parametrize("name", ["x_avg", "x_sum", "not a name"])
def test_a_tracker_name_taken_or_not_an_identifier_is_refused(name):
    with pytest.raises(ValueError, match=f"tracker name '{name}'"):
        simulate.run(QUADRATIC, trackers=[simulate.tracker(name, _late_init, _late_update, _late_readout)], **RUN)


def test_method_exact_refuses_trackers():
    with pytest.raises(ValueError, match="trackers need method='sgd'"):
        simulate.run(QUADRATIC, method="exact", trackers=[LATE], **RUN)
