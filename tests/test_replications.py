"""Replications of a network experiment (issue 27): `asgd run --replications 2` at tiny size gives
independent draws (other data, minibatch seed and initialisations, each reproducible), and the
pooled table equals the per-seed differences pooled by hand from the replications' own files."""

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from asgd import network, replications, result_folder
from asgd.config import ConfigError, load_config
from asgd.network_config import parse_network_config
from asgd.schema import read_toml
from support import TINY_MNIST1D, config, main, run_config, to_toml

pytest.importorskip("mnist1d")

TINY = to_toml(config(
    TINY_MNIST1D, name="tiny_replicated", data={"seed": 5},
    train={"methods": ["cosine", "sgd", "tail_average"], "n_steps": 32, "seed": 11},
    metrics={"trace_points": 8}, replicate={"replications": 2},
))


@pytest.fixture(scope="module")
def replicated(tmp_path_factory):
    return run_config(tmp_path_factory.mktemp("replicated"), TINY)


def test_replications_draw_other_data_seeds_and_initialisations_reproducibly(replicated):
    path, result, stdout = replicated
    config = load_config(path)
    table = result_folder.read_csv(result / "replications.csv")
    assert [(r["data_seed"], r["train_seed"], r["init_seed"]) for r in table] == [(5, 11, 0), (6, 12, 3)]
    first, second = (replications.replication_config(config, r) for r in (0, 1))
    assert replications.replication_config(config, 1) == second  # a function of (config, r) alone
    assert (first.data["seed"], first.seed, first.init_seed) == (5, 11, 0)  # replication 0 is the config itself
    data = [network.load_dataset(c) for c in (first, second)]
    assert data[0].train[0].shape == data[1].train[0].shape and not np.array_equal(data[0].train[0], data[1].train[0])
    x0 = [np.load(result / f"replication_{r}" / "arrays.npz")["x0"] for r in (0, 1)]
    train = network.build_model(second, data[1])[0]
    np.testing.assert_array_equal(x0[1], np.stack([train.init(seed) for seed in (3, 4, 5)]))  # its own initialisations
    assert not np.isclose(x0[0][:, None], x0[1][None]).all(axis=-1).any()  # no initialisation shared
    # Each replication's folder is an ordinary result folder of its own config (what `asgd run` would read).
    for r, replication in enumerate((first, second)):
        metadata = result_folder.read_metadata(result / f"replication_{r}")
        assert parse_network_config(metadata["config"]) == replication
    assert "2 replications" in stdout and "tail_average" in stdout


def test_pooled_table_is_the_per_seed_differences_pooled_by_hand_from_the_replication_files(replicated):
    _, result, _ = replicated
    pooled = result_folder.read_csv(result / "pooled.csv")
    assert list(pooled[0]) == replications.POOLED_COLUMNS and len(pooled) == 3 * 2 * 2
    for method, eta, metric in (("tail_average", 0.5, "test_accuracy"), ("sgd", 0.05, "test_loss")):
        samples = []
        for r in (0, 1):
            arrays = np.load(result / f"replication_{r}" / "arrays.npz")
            best = result_folder.read_csv(result / f"replication_{r}" / "paired.csv")[0]["baseline_step_size"]
            s, b = [0.05, 0.5].index(eta), [0.05, 0.5].index(best)
            samples.append(arrays[f"{method}/{metric}"][s].astype(float) - arrays[f"cosine/{metric}"][b])
        row = next(r for r in pooled if (r["method"], r["step_size"], r["metric"]) == (method, eta, metric))
        everything = np.concatenate(samples)
        se = everything.std(ddof=1) / math.sqrt(6)
        assert row["n_seeds"] == 6 and row["n_replications"] == 2
        assert row["mean_difference"] == pytest.approx(everything.mean(), abs=1e-7)
        assert row["se"] == pytest.approx(se, rel=1e-5)
        assert row["ci_high"] - row["mean_difference"] == pytest.approx(stats.t.ppf(0.975, 5) * se, rel=1e-5)
        means = np.array([sample.mean() for sample in samples])
        assert row["replication_sd"] == pytest.approx(means.std(ddof=1), rel=1e-5, abs=1e-9)
        assert row["replication_ci_low"] == pytest.approx(means.mean() - stats.t.ppf(0.975, 1) * means.std(ddof=1) / math.sqrt(2), abs=1e-7)
    windows = result_folder.read_csv(result / "windows.csv")
    assert {r["replication"] for r in windows} == {0, 1} and {r["method"] for r in windows} == {"tail_average"}
    assert len(windows) == 2 * 2 * 3 and (result / "summary.md").read_text().startswith("### tiny_replicated")


def test_pool_folder_rebuilds_the_pooled_files_from_the_replication_folders_alone(replicated, tmp_path):
    _, result, _ = replicated
    copy = tmp_path / "copy"
    shutil.copytree(result, copy)
    names = ("pooled.csv", "replications.csv", "windows.csv", "window_frequencies.csv", "summary.md")
    for name in names:
        (copy / name).unlink()
    replications.pool_folder(copy)
    for name in names:
        if name == "replications.csv":  # the same but for the recorded wall times, read back through CSV
            assert result_folder.read_csv(copy / name) == result_folder.read_csv(result / name)
        else:
            assert (copy / name).read_bytes() == (result / name).read_bytes(), name
    shutil.rmtree(copy / "replication_1" / "points")
    (copy / "replication_1" / "metadata.json").unlink()  # unfinished: left out, and one is too few to pool
    with pytest.raises(ConfigError, match="1 finished replication"):
        replications.pool_folder(copy)


def test_pool_differences_matches_a_hand_computation_of_the_ci_and_i_squared():
    key = ("ema", 0.3, "test_accuracy")
    samples = [np.array([0.01, 0.03, 0.02]), np.array([0.05, 0.07, 0.06, 0.08]), np.array([-0.02, 0.0])]
    (row,) = replications.pool_differences("e", [{key: sample} for sample in samples])
    everything = np.concatenate(samples)
    assert row["mean_difference"] == pytest.approx(everything.mean())
    assert row["ci_low"] == pytest.approx(everything.mean() - stats.t.ppf(0.975, 8) * everything.std(ddof=1) / 3)
    means = np.array([0.02, 0.065, -0.01])
    se = np.array([0.01 / math.sqrt(3), np.std([0.05, 0.07, 0.06, 0.08], ddof=1) / 2, 0.01])
    w = 1 / se**2
    q = np.sum(w * (means - np.sum(w * means) / np.sum(w)) ** 2)
    assert row["i_squared"] == pytest.approx((q - 2) / q) and 0.9 < row["i_squared"] < 1  # real spread between replications
    assert row["replication_ci_high"] == pytest.approx(means.mean() + stats.t.ppf(0.975, 2) * means.std(ddof=1) / math.sqrt(3))
    lows = means - stats.t.ppf(0.975, [2, 3, 1]) * se  # -0.005, +0.045, -0.137: only the second's interval is above 0
    assert lows[1] > 0 > lows[0] and (row["n_hold"], row["n_against"]) == (1, 0)
    (same,) = replications.pool_differences("e", [{key: np.array([0.01, 0.02, 0.03]) + shift} for shift in (0.0, 0.001)])
    assert same["i_squared"] == 0  # two replications within their noise: Q < R - 1


def test_replications_are_refused_where_they_cannot_pool(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.replace('methods = ["cosine", "sgd", "tail_average"]', 'methods = ["sgd", "tail_average"]'))
    with pytest.raises(ConfigError, match="replications pool the differences from the cosine baseline"):
        replications.run_replicated(load_config(path), tmp_path / "out")
    path.write_text(TINY.replace("replications = 2", "replications = 0"))
    with pytest.raises(ConfigError, match="replicate.replications = 0"):
        load_config(path)
    path.write_text(TINY.replace("[replicate]", "[replicate]\ncount = 3"))
    with pytest.raises(ConfigError, match="count"):
        load_config(path)
    out = main("reproduce", "quadratic_rates", "--replications", "2", "--out", tmp_path)
    assert out.returncode == 2 and "only network experiments (kind = \"network\") replicate" in out.stderr
    assert read_toml(path)["replicate"]["count"] == 3


def test_replicate_n_seeds_sets_the_seeds_of_each_replication_and_their_disjoint_initialisations(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.replace("replications = 2", "replications = 2\nn_seeds = 2"))
    config = load_config(path)
    assert config.n_seeds == 3 and config.replication_seeds == 2  # the plain run keeps train.n_seeds
    replicated = [replications.replication_config(config, r) for r in range(3)]
    assert [(c.n_seeds, c.init_seed, c.seed, c.data["seed"]) for c in replicated] == [(2, 0, 11, 5), (2, 2, 12, 6), (2, 4, 13, 7)]
    assert all(parse_network_config(c.raw) == c for c in replicated)


# ---- the networks guide's numbers ------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
MEASURED = ROOT / "notebooks" / "measured" / "mnist1d"


@pytest.mark.parametrize("size", ["full", "quick"])
@pytest.mark.parametrize("name", ["mnist1d_cnn", "mnist1d_mlp"])
def test_the_readme_quotes_the_committed_replicated_runs(size, name):
    """`notebooks/measured/mnist1d/<size>/<name>/` are files of `asgd reproduce mnist1d [--quick]
    --replications 5`; the networks guide (docs/networks.md) quotes their summary's tables line by line."""
    folder = MEASURED / size / name
    pooled, frequencies = (result_folder.read_csv(folder / f) for f in ("pooled.csv", "window_frequencies.csv"))
    summary = (folder / "summary.md").read_text()
    assert summary == replications.summary_markdown(pooled, frequencies)  # the summary is the tables' own
    assert {r["n_replications"] for r in pooled} == {len(result_folder.read_csv(folder / "replications.csv"))}
    guide = (ROOT / "docs" / "networks.md").read_text()
    quoted = [line for line in summary.splitlines() if line.startswith("| ")]
    assert quoted and [line for line in quoted if line not in guide] == []
