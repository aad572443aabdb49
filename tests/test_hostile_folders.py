"""Result folders under hostile hands (issue 26): several horizons with [theory] run to the
figures and re-plot; a point copied under another name, an edited `sweep.json` and a late failure
cannot mix configs or leave a claimed folder behind. In-process (`asgd.cli.main`): no JAX
start-up per case."""

import copy
import json
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest

import simulate
from asgd import cli, network, result_folder, sweep
from asgd.config import ConfigError
from asgd.network_config import parse_network_config

import support

TWO_HORIZONS = """
name = "two_horizons"

[objective]
kind = "quadratic"
hessian = [1.0]
center = [0.5]

[noise]
family = "gaussian"
scale = 1.0

[run]
step_sizes = [{step_sizes}]
n_steps = [20, 40]
n_chains = 16
seeds = [0, 1]
x0 = [0.5]
checkpoints = 3
method = "exact"          # the exact sampler: nothing to compile

[output]
estimators = ["x", "x_avg"]
figures = ["tradeoff", "chains"]

[theory]
stationary = true
n_grid = 101
bounds = [-4.0, 5.0]
"""


def write(folder: Path, step_sizes="0.1, 0.5", name="two.toml") -> Path:
    path = folder / name
    path.write_text(TWO_HORIZONS.format(step_sizes=step_sizes))
    return path


run_main = support.run_main


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished two-horizon run with [theory]: (config path, result folder)."""
    root = tmp_path_factory.mktemp("horizons")
    config = write(root)
    assert cli.main(["run", str(config), "--out", str(root / "out"), "--quiet"]) == 0
    return config, root / "out" / "two_horizons"


def copy_of(finished, tmp_path) -> Path:
    folder = tmp_path / "out" / "two_horizons"
    shutil.copytree(finished[1], folder)
    return folder


def test_two_horizons_with_theory_run_to_the_figures_and_replot(finished, capsys, tmp_path):
    # Was: results.csv written, then "pool: table 0 has two rows ..." (the T = 20 and T = 40 runs
    # both have rows at checkpoint t = 1), exit 2, no figure; `asgd plot` the same.
    _, folder = finished
    rows = result_folder.read_csv(folder / "results.csv")
    simulated = [r for r in rows if r["source"] == "simulation"]
    assert {r["horizon"] for r in simulated} == {20, 40}
    assert {r["horizon"] for r in rows if r["source"] == "law"} == {r["n_steps"] for r in rows if r["source"] == "law"}
    for horizon in (20, 40):  # each run's own final rows: 2 seeds x 2 estimators x 2 step sizes
        assert len([r for r in simulated if r["horizon"] == r["n_steps"] == horizon]) == 8
    # The rows of the run T = 20 at t = 20 are its final estimators, from its own saved point.
    point = simulate.SimulationResult.load(folder / "points" / "seed1_T20.npz")
    row = next(r for r in simulated if r["seed"] == 1 and r["horizon"] == 20 and r["n_steps"] == 20 and r["estimator"] == "x" and r["step_size"] == 0.5)
    np.testing.assert_allclose(row["mse"], np.mean((point.x[1, :, 0].astype(np.float64) - 0.5) ** 2), rtol=1e-6)
    for name in ("tradeoff.png", "chains.png"):
        (folder / name).unlink()
    code, err = run_main(capsys, "plot", folder)
    assert code == 0, err
    assert (folder / "tradeoff.png").exists() and (folder / "chains.png").exists()


def test_a_point_copied_under_another_seeds_name_is_refused_on_resume_and_plot(finished, capsys, tmp_path):
    folder = copy_of(finished, tmp_path)
    shutil.copy(folder / "points" / "seed1_T40.npz", folder / "points" / "seed0_T40.npz")
    code, err = run_main(capsys, "run", finished[0], "--out", tmp_path / "out", "--quiet")
    assert code == 2 and "seed0_T40.npz': this sweep point does not belong here: it records seed = 1" in err, err
    code, err = run_main(capsys, "plot", folder)  # the chains figure is drawn from the points
    assert code == 2 and "seed0_T40.npz': this sweep point does not belong here: it records seed = 1" in err, err


def test_a_point_of_another_horizon_under_this_name_is_refused(finished, capsys, tmp_path):
    folder = copy_of(finished, tmp_path)
    shutil.copy(folder / "points" / "seed0_T20.npz", folder / "points" / "seed0_T40.npz")
    code, err = run_main(capsys, "run", finished[0], "--out", tmp_path / "out", "--quiet")
    assert code == 2 and "it records n_steps = 20" in err, err


def test_an_edited_sweep_json_cannot_let_another_config_run_in_the_folder(finished, capsys, tmp_path):
    folder = copy_of(finished, tmp_path)
    other = write(tmp_path, step_sizes="0.2, 0.4", name="other.toml")
    manifest = json.loads((folder / "sweep.json").read_text())
    wanted = result_folder.fingerprint(tomllib.loads(other.read_text()))
    # Only the fingerprint edited: it no longer hashes the config sweep.json records.
    (folder / "sweep.json").write_text(json.dumps({**manifest, "fingerprint": wanted}))
    code, err = run_main(capsys, "run", other, "--out", tmp_path / "out", "--quiet")
    assert code == 2 and "sweep.json': its fingerprint" in err and "edited or copied by hand" in err, err
    # Fingerprint and config both edited: the saved points still record the other step sizes.
    (folder / "sweep.json").write_text(json.dumps({**manifest, "fingerprint": wanted, "config": tomllib.loads(other.read_text())}))
    code, err = run_main(capsys, "run", other, "--out", tmp_path / "out", "--quiet")
    assert code == 2 and "it records step_sizes = [0.1, 0.5]" in err and "say [0.2, 0.4]" in err, err


def test_a_failure_after_the_claim_releases_the_folder(tmp_path, capsys, monkeypatch):
    config = write(tmp_path)

    def late_failure(*args, **kwargs):
        raise ValueError("a check that fails late")

    monkeypatch.setattr(sweep.simulate, "run", late_failure)
    code, err = run_main(capsys, "run", config, "--out", tmp_path / "out", "--quiet")
    assert code == 2 and "a check that fails late" in err
    assert not (tmp_path / "out" / "two_horizons" / "sweep.json").exists()
    assert not (tmp_path / "out" / "two_horizons" / "points").exists()
    # A folder with saved work keeps its claim: that work resumes.
    points = tmp_path / "kept" / "two_horizons" / "points"
    result_folder.claim_folder(points.parent, "two_horizons", tomllib.loads(config.read_text()), fresh=False)
    (points / "seed0_T20.npz").parent.mkdir(parents=True, exist_ok=True)
    (points / "seed0_T20.npz").write_bytes(b"work")
    with pytest.raises(ValueError), result_folder.released_on_failure(points.parent):
        raise ValueError("late")
    assert (points.parent / "sweep.json").exists()


NETWORK = tomllib.loads((Path(__file__).resolve().parents[1] / "asgd" / "experiments" / "nn.toml").read_text())


def test_network_configs_that_failed_after_the_claim_are_refused_before_it(tmp_path):
    raw = copy.deepcopy(NETWORK)
    raw["train"].update(n_steps=1, methods=["sgd", "swa"])
    with pytest.raises(ConfigError, match=r"train.n_steps = 1: must be >= 2 with method swa"):
        parse_network_config(raw)
    raw = copy.deepcopy(NETWORK)
    raw["data"] = {"dataset": "teacher_student", "n_train": 20, "n_test": 10, "seed": 0}
    raw["train"].update(batch_size=64, n_steps=2)
    with pytest.raises(ConfigError, match=r"train.batch_size = 64: must be <= the 20 training examples"):
        network.run_network(parse_network_config(raw), tmp_path / "out" / "nn", quiet=True)
    assert not (tmp_path / "out").exists()
