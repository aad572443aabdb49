"""SimulationResult.save / SimulationResult.load: every field comes back, for every kind of run."""

import dataclasses

import numpy as np
import pytest

import objectives
import simulate

QUADRATIC = objectives.quadratic([1.0, 0.5], [1.0, -1.0])
RUN = dict(step_sizes=[0.1, 0.3], n_steps=20, n_chains=3, x0=[2.0, 2.0], seed=7)


def _assert_same(loaded: simulate.SimulationResult, result: simulate.SimulationResult):
    for field in dataclasses.fields(result):
        want, got = getattr(result, field.name), getattr(loaded, field.name)
        if field.name == "noise":
            assert got == want.describe()
        elif isinstance(want, np.ndarray):
            assert isinstance(got, np.ndarray) and got.dtype == want.dtype, field.name
            np.testing.assert_array_equal(got, want, err_msg=field.name)
        elif isinstance(want, dict):
            assert list(got) == list(want), field.name
            for key in want:
                assert got[key].dtype == want[key].dtype
                np.testing.assert_array_equal(got[key], want[key], err_msg=f"{field.name}/{key}")
        else:
            assert got == want and type(got) is type(want), (field.name, got, want)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({}, id="sgd"),
        pytest.param({"algorithm": simulate.sam(0.05)}, id="sam"),
        pytest.param({"algorithm": simulate.momentum(0.9)}, id="momentum"),
        pytest.param({"ema_decay": 0.9}, id="ema"),
        pytest.param({"track_v": False}, id="track_v_false"),
        pytest.param({"checkpoints": [1, 5, 12]}, id="checkpoints"),
        pytest.param({"trajectory": True}, id="trajectory"),
    ],
)
def test_every_field_round_trips(tmp_path, options):
    result = simulate.run(QUADRATIC, noise=simulate.noise.gaussian(0.5), **RUN, **options)
    path = result.save(tmp_path / "point.npz")
    loaded = simulate.SimulationResult.load(path)
    _assert_same(loaded, result)
    # A second save of the loaded result writes the same fields again.
    _assert_same(simulate.SimulationResult.load(loaded.save(tmp_path / "again.npz")), result)


def test_saved_file_loads_without_pickle_and_leaves_no_temporary(tmp_path):
    result = simulate.run(QUADRATIC, noise=simulate.noise.gaussian(0.5), **RUN, track_v=False)
    result.save(tmp_path / "point.npz")
    with np.load(tmp_path / "point.npz", allow_pickle=False) as data:
        assert all(data[name].dtype != object for name in data.files)
    assert [p.name for p in tmp_path.iterdir()] == ["point.npz"]


def test_load_refuses_a_file_not_written_by_save(tmp_path):
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a file written by SimulationResult.save"):
        simulate.SimulationResult.load(tmp_path / "other.npz")
