"""The MNIST-1D experiment's machinery end to end on a tiny config (issue 17): every method
(cosine-decay baseline, constant-step SGD and its averages, EMA, SWA, SAM) on the CNN, the tidy
results.csv and paired.csv, the paired differences against the arrays they come from, and the
config's errors. The built-in configs (asgd reproduce mnist1d) are parsed, not run."""

import math

import numpy as np
import pytest
from scipy import stats

from asgd import network, result_folder
from asgd.cli import GROUPS, builtin_experiments
from asgd.config import ConfigError, load_config
from support import TINY_MNIST1D, config, run_config, to_toml

pytest.importorskip("mnist1d")

TINY = to_toml(config(
    TINY_MNIST1D, description="a tiny MNIST-1D run for the tests",
    model={"channels": [4, 8]},  # not the MLP's: for the bad-config cases below
    train={"ema_decay": 0.9, "swa_start": 0.5},
))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    _, results, stdout = run_config(tmp_path_factory.mktemp("mnist1d"), TINY)
    return results, stdout


def test_every_method_writes_a_tidy_row_per_step_size_and_metric_and_the_cli_prints_the_paired_table(tiny_run):
    result, stdout = tiny_run
    rows = result_folder.read_csv(result / "results.csv")
    assert len(rows) == 7 * 2 * len(network.METRICS)
    assert {r["method"] for r in rows} == set(network.ALL_METHODS) and {r["n_seeds"] + r["n_diverged"] for r in rows} == {3}
    for name in ("points/sgd.npz", "points/sam.npz", "points/cosine.npz", "points/swa.npz", "accuracy_sharpness.png"):
        assert (result / name).exists(), name
    paired = result_folder.read_csv(result / "paired.csv")
    assert list(paired[0]) == network.PAIRED_COLUMNS and len(paired) == 7 * 2 * 2
    assert "minus the tuned baseline (cosine at eta = " in stdout and "swa" in stdout


def test_every_averaged_method_and_seed_has_its_window_diagnostic_and_the_arrays_hold_the_loss_trace(tiny_run):
    result, _ = tiny_run
    windows = result_folder.read_csv(result / "windows.csv")
    assert len(windows) == 4 * 2 * 3 and {r["method"] for r in windows} == {"uniform_average", "tail_average", "ema", "swa"}
    arrays = np.load(result / "arrays.npz")
    steps, trace = arrays["trace/steps"], arrays["trace/sgd_loss"]  # (K,), (K, S, seeds)
    assert trace.shape == (steps.size, 2, 3) and steps[-1] == 64 and arrays["trace/swa_loss"].shape == trace.shape
    row = next(r for r in windows if r["method"] == "tail_average" and r["step_size"] == 0.5 and r["seed"] == 1)
    assert row["first_step"] == 33 and row["iterates_loss"] == pytest.approx(trace[steps >= 33, 1, 1].mean(), rel=1e-5)
    # The average's own test accuracy, and the flags as the numbers say.
    assert row["average_test_accuracy"] == pytest.approx(float(arrays["tail_average/test_accuracy"][1, 1]))
    assert row["last_test_accuracy"] == pytest.approx(float(arrays["sgd/test_accuracy"][1, 1]))  # SGD's own last iterate
    assert all(r["flagged"] == (r["jensen_gap"] > 0) and r["below_last"] == (r["average_test_accuracy"] < r["last_test_accuracy"]) for r in windows)
    frequencies = result_folder.read_csv(result / "window_frequencies.csv")
    assert len(frequencies) == 8 and sum(r["n_seeds"] for r in frequencies) == len(windows)
    assert (result / "windows.png").exists() == any(r["below_last"] for r in windows)


def test_paired_differences_are_those_of_the_saved_per_seed_metrics_against_the_best_cosine_step(tiny_run):
    result, _ = tiny_run
    arrays = np.load(result / "arrays.npz")
    paired = result_folder.read_csv(result / "paired.csv")
    cosine = arrays["cosine/test_accuracy"]  # (S, seeds); nothing diverges at these step sizes
    best = int(np.argmax(cosine.mean(axis=1)))
    assert {r["baseline_step_size"] for r in paired} == {[0.05, 0.5][best]}
    row = next(r for r in paired if r["method"] == "swa" and r["step_size"] == 0.5 and r["metric"] == "test_loss")
    differences = arrays["swa/test_loss"][1].astype(float) - arrays["cosine/test_loss"][best]
    se = differences.std(ddof=1) / math.sqrt(3)
    assert row["mean_difference"] == pytest.approx(differences.mean(), rel=1e-5, abs=1e-7)
    assert row["se"] == pytest.approx(se, rel=1e-5)
    assert row["ci_high"] - row["mean_difference"] == pytest.approx(stats.t.ppf(0.975, 2) * se, rel=1e-5)
    own = next(r for r in paired if r["method"] == "cosine" and r["step_size"] == [0.05, 0.5][best] and r["metric"] == "test_accuracy")
    assert own["mean_difference"] == 0 and own["ci_low"] == own["ci_high"] == 0


def test_mnist1d_names_both_models_and_their_configs_parse_in_full_and_quick_mode():
    assert GROUPS["mnist1d"] == ["mnist1d_cnn", "mnist1d_mlp"]
    for name in GROUPS["mnist1d"]:
        for quick in (False, True):
            config = load_config(builtin_experiments()[name], quick=quick)
            assert config.data["dataset"] == "mnist1d" and set(config.methods) == set(network.ALL_METHODS)
            assert config.n_seeds >= (4 if quick else 8)
    assert load_config(builtin_experiments()["mnist1d_cnn"]).model["kind"] == "cnn1d"


@pytest.mark.parametrize(
    "old, new, message",
    [
        ('methods = ["cosine",', 'methods = ["adam", "cosine",', "train.methods = 'adam'"),
        ('methods = ["cosine",', 'methods = ["sgd", "cosine",', "train.methods = .*must not repeat a method"),
        ("swa_start = 0.5", "swa_start = 1.0", "train.swa_start = 1.0"),
        ("channels = [4, 8]", "channels = []", "model.channels = \\[\\]"),
    ],
)
def test_bad_mnist1d_configs_name_the_key(tmp_path, old, new, message):
    path = tmp_path / "bad.toml"
    path.write_text(TINY.replace(old, new))
    with pytest.raises(ConfigError, match=message):
        load_config(path)
