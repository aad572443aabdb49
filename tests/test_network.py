"""The small-network experiment end to end (issue 8): `asgd run` on a tiny teacher-student config,
its files, its metrics against direct computations, `asgd plot`, and resume."""

import json

import jax
import numpy as np
import pytest

import objectives
from asgd import network, result_folder
from support import main

TINY = """
kind = "network"
name = "tiny_net"
description = "a tiny teacher-student run for the tests"

[data]
dataset = "teacher_student"
n_train = 200
n_test = 300
n_features = 6
n_classes = 3
label_noise = 0.2

[model]
kind = "mlp"
hidden = [8]

[train]
step_sizes = [0.05, 0.5]
n_steps = 300
n_seeds = 4
batch_size = 16
ema_decay = 0.95
sam_radius = 0.05

[metrics]
hutchinson_probes = 8
power_iterations = 20
"""


def _asgd(*args, cwd):
    return main(*args, cwd=cwd)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("net")
    (folder / "tiny.toml").write_text(TINY)
    out = _asgd("run", "tiny.toml", "--out", "results", cwd=folder)
    assert out.returncode == 0, out.stderr[-3000:]
    return folder, out.stdout


def test_run_writes_every_file_and_a_row_per_method_step_size_and_metric(tiny_run):
    folder, stdout = tiny_run
    result = folder / "results" / "tiny_net"
    for name in ("results.csv", "arrays.npz", "metadata.json", "accuracy_sharpness.png", "accuracy_sharpness.pdf", "losses.png", "points/sgd.npz", "points/sam.npz"):
        assert (result / name).exists(), name
    rows = result_folder.read_csv(result / "results.csv")
    assert len(rows) == len(network.METHODS) * 2 * len(network.METRICS)
    assert {r["n_seeds"] + r["n_diverged"] for r in rows} == {4}
    meta = json.loads((result / "metadata.json").read_text())
    assert meta["kind"] == "network" and meta["n_train"] == 200 and meta["config"]["name"] == "tiny_net"
    assert "test_accuracy" in stdout and "tail_average" in stdout


def test_metrics_in_the_table_are_those_of_the_saved_parameters(tiny_run):
    folder, _ = tiny_run
    result = folder / "results" / "tiny_net"
    arrays = np.load(result / "arrays.npz")
    data = objectives.datasets.teacher_student(200, 300, n_features=6, n_classes=3, label_noise=0.2)
    train = objectives.mlp(*data.train, hidden=(8,), n_classes=3)
    test = train.with_data(data.test)
    params = arrays["tail_average/params"]  # (S, C, dim)
    np.testing.assert_allclose(arrays["tail_average/test_accuracy"], objectives.accuracy(test, params), atol=1e-6)
    np.testing.assert_allclose(arrays["tail_average/train_loss"], train.value(params), rtol=1e-4)
    rows = result_folder.read_csv(result / "results.csv")
    row = next(r for r in rows if r["method"] == "tail_average" and r["metric"] == "test_accuracy" and r["step_size"] == 0.5)
    values = arrays["tail_average/test_accuracy"][1]
    assert row["mean"] == pytest.approx(values.mean(), rel=1e-6)
    assert row["se"] == pytest.approx(values.std(ddof=1) / 2, rel=1e-6)
    # The sharpness columns estimate the Hessian of the training loss: compare with the exact trace.
    exact = np.trace(np.asarray(train.hessian(params[1, 0])))
    assert arrays["tail_average/hessian_trace"][1, 0] == pytest.approx(exact, rel=0.5)


def test_evaluating_every_method_traces_the_metrics_once_and_each_point_alone():
    """One compiled program serves every method of a run (the same model and shapes): the first
    version compiled it again per method, 14 times in `asgd reproduce mnist1d`. A point's
    metrics depend on its own parameters and keys only, not on the batch it is evaluated in."""
    data = objectives.datasets.teacher_student(40, 30, n_features=4, n_classes=3, label_noise=0.1)
    train = objectives.mlp(*data.train, hidden=(5,), n_classes=3)
    test = train.with_data(data.test)
    points = jax.random.normal(jax.random.key(0), (2, 3, train.dim)) * 0.3
    settings = dict(hutchinson_probes=2, power_iterations=3, sharpness_examples=20)
    traces = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/jaxpr_trace_duration":
            traces.append(event)

    first = network.evaluate(train, test, points, key=jax.random.key(1), **settings)
    methods = [(points + 0.1 * m, jax.random.fold_in(jax.random.key(1), m)) for m in range(3)]  # new values, the same shapes
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        for estimates, key in methods:
            network.evaluate(train, test, estimates, key=key, **settings)
    finally:
        jax.monitoring.clear_event_listeners()
    assert traces == [], f"{len(traces)} traces for new values of the same shapes"
    # The metrics of one point, evaluated alone with its own keys, are those it got in the batch.
    keys = jax.random.split(jax.random.key(1), 12).reshape(6, 2)
    alone = network._metrics(train, test, train.with_data(jax.tree.map(lambda leaf: leaf[:20], train.params)), points.reshape(6, -1)[4:5], keys[4:5],
                             hutchinson_probes=2, power_iterations=3)
    for name in network.METRICS:
        assert np.asarray(alone[name])[0] == pytest.approx(first[name].reshape(-1)[4], rel=1e-5), name
    np.testing.assert_allclose(first["test_accuracy"], objectives.accuracy(test, points), atol=1e-6)


def test_plot_redraws_and_a_second_run_resumes_with_identical_results(tiny_run):
    folder, _ = tiny_run
    result = folder / "results" / "tiny_net"
    (result / "losses.png").unlink()
    out = _asgd("plot", str(result), cwd=folder)
    assert out.returncode == 0 and (result / "losses.png").exists(), out.stderr[-2000:]
    before = (result / "results.csv").read_text()
    again = _asgd("run", "tiny.toml", "--out", "results", cwd=folder)
    assert again.returncode == 0 and "2 training run(s) resumed" in again.stdout, again.stderr[-2000:]
    assert (result / "results.csv").read_text() == before


def test_a_bad_network_config_fails_before_training_with_exit_code_2(tmp_path):
    (tmp_path / "bad.toml").write_text(TINY.replace("n_seeds = 4", "n_seeds = 1"))
    out = _asgd("run", "bad.toml", "--out", "results", cwd=tmp_path)
    assert out.returncode == 2 and "train.n_seeds = 1: must be >= 2" in out.stderr
    assert not (tmp_path / "results").exists()


def test_plot_network_draws_into_a_users_axes_and_names_a_wrong_count():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [
        {"method": method, "metric": metric, "step_size": eta, "mean": mean, "se": 0.01, "n_seeds": 4}
        for method, shift in (("sgd", 0.0), ("uniform_average", 0.1))
        for metric in ("test_accuracy", "hessian_trace")
        for eta, mean in ((0.1, 0.5 + shift), (1.0, 0.7 + shift))
    ]
    fig, grid = plt.subplots(2, 2)
    row = grid[1]
    assert network.plot_network(rows, ("test_accuracy", "hessian_trace"), ax=row) is row
    drawn = [line for line in grid[1][0].get_lines() if line.get_label() == network.METHOD_LABELS["uniform_average"]]
    assert len(drawn) == 1 and np.allclose(drawn[0].get_ydata(), [0.6, 0.8])
    assert grid[1][1].get_yscale() == "log" and not grid[0][0].get_lines()  # only the given panels
    with pytest.raises(ValueError, match=r"ax must hold one Axes per metric \(2"):
        network.plot_network(rows, ("test_accuracy", "hessian_trace"), ax=grid[0][0])
    plt.close(fig)
