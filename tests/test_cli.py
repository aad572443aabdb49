"""The `asgd` command line end to end: reproduce, run, plot, list, resume, bad input. In this process
(`support.main`) where nothing needs a process of its own; in a subprocess for the interrupt and
for one check per kind of error that no traceback reaches the user."""

import signal
import time
from pathlib import Path

import numpy as np
import pytest

from asgd import result_folder
from support import asgd, main, write_config

def _config(tmp_path, steps=(300,), seeds=(0, 1), name="small.toml", figures=("tradeoff",)):
    """The shared sharp_flat config (tests/support.py) as this file's sweep: step sizes 0.02 and
    0.2, 128 chains, 4 checkpoints, the smoothed target."""
    run = {"step_sizes": [0.02, 0.2], "n_steps": list(steps), "n_chains": 128, "seeds": list(seeds), "checkpoints": 4}
    return write_config(tmp_path / name, run=run, target={"kind": "smoothed"}, output={"figures": list(figures)})


def test_reproduce_quick_writes_tables_arrays_metadata_and_figures(tmp_path):
    out = main("reproduce", "quadratic_rates", "--quick", "--quiet", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "quadratic_rates"
    rows = result_folder.read_csv(folder / "results.csv")
    assert {"experiment", "estimator", "step_size", "n_steps", "n_chains", "mse", "mse_se", "n_diverged", "target"} <= set(rows[0])
    assert {r["estimator"] for r in rows} == {"x", "x_avg", "x_tail", "v", "v_avg"}
    for name in ("arrays.npz", "metadata.json", "tradeoff.png", "tradeoff.pdf"):
        assert (folder / name).exists(), name
    assert "x_avg" in out.stdout and "results in" in out.stdout
    assert not list(folder.rglob("*.tmp"))


def test_run_then_plot_redraws_without_simulating(tmp_path):
    all_figures = ("tradeoff", "landscape", "chains", "basins")
    out = main("run", str(_config(tmp_path, figures=all_figures)), "--out", str(tmp_path / "res"), "--quiet")
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "res" / "small"
    for figure in ("tradeoff", "landscape", "chains", "basins"):
        (folder / f"{figure}.png").unlink()
    out = main("plot", str(folder))
    assert out.returncode == 0, out.stderr
    assert all((folder / f"{figure}.png").exists() for figure in ("tradeoff", "landscape", "chains", "basins"))
    meta = (folder / "metadata.json").read_text()
    assert '"jax_backend"' in meta and '"versions"' in meta and '"wall_time_s"' in meta


def test_an_interrupted_sweep_resumes_to_the_same_results(tmp_path):
    config = _config(tmp_path, steps=(20000,), seeds=range(6), figures=())
    reference = main("run", str(config), "--out", str(tmp_path / "ref"), "--quiet")
    assert reference.returncode == 0, reference.stderr

    out_dir = tmp_path / "interrupted"
    process = asgd("run", config, "--out", out_dir, "--quiet", popen=True)
    points = out_dir / "small" / "points"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(points.glob("*.npz"))) < 2:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    saved = len(list(points.glob("*.npz")))
    if process.returncode == 0:
        pytest.skip("the sweep finished before the interrupt landed")
    assert process.returncode == 130, err
    assert "resume" in err and 2 <= saved < 6
    assert not (out_dir / "small" / "results.csv").exists()

    resumed = main("run", str(config), "--out", str(out_dir), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert f"{saved} sweep point(s) resumed" in resumed.stdout
    a = result_folder.read_csv(tmp_path / "ref" / "small" / "results.csv")
    b = result_folder.read_csv(out_dir / "small" / "results.csv")
    assert a == b
    with np.load(tmp_path / "ref" / "small" / "arrays.npz") as x, np.load(out_dir / "small" / "arrays.npz") as y:
        assert set(x.files) == set(y.files) and all(np.array_equal(x[k], y[k]) for k in x.files)


def test_a_folder_of_another_config_is_refused_unless_fresh(tmp_path):
    assert main("run", str(_config(tmp_path, steps=(100,), seeds=(0,))), "--out", str(tmp_path), "--quiet").returncode == 0
    other = _config(tmp_path, steps=(120,), seeds=(0,), name="other.toml")
    out = main("run", str(other), "--out", str(tmp_path), "--quiet")
    assert out.returncode == 2 and "different config" in out.stderr and "--fresh" in out.stderr
    assert main("run", str(other), "--out", str(tmp_path), "--quiet", "--fresh").returncode == 0


@pytest.mark.parametrize(
    "edit, message",
    [
        (("n_chains = 128", "n_chains = 128\nn_chainz = 3"), "run.n_chainz = 3: unknown key"),
        (("n_chains = 128", 'n_chains = "many"'), "run.n_chains = 'many': must be an integer"),
        (("step_sizes = [0.02, 0.2]", "step_sizes = [0.02, -0.2]"), "run.step_sizes[1] = -0.2: must be a finite number > 0"),
        (('family = "gaussian"\nscale = 1.0', 'family = "gaussian"\ncovariance = [[1.0, 0.0], [0.0, 1.0]]'), "must be 1x1 to match objective dim=1"),
    ],
)
def test_bad_configs_fail_before_simulating_with_exit_code_2(tmp_path, edit, message):
    path = _config(tmp_path)
    path.write_text(path.read_text().replace(*edit))
    out = main("run", str(path), "--out", str(tmp_path / "res"))
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "res").exists()


def test_missing_files_and_unknown_experiments_are_one_line_errors(tmp_path):
    for args, message in (
        (("run", str(tmp_path / "nope.toml")), "cannot read config"),
        (("reproduce", "nonsense", "--out", str(tmp_path)), "unknown; built-in experiments"),
        (("plot", str(tmp_path)), "is not a result folder"),
    ):
        out = main(*args)
        assert out.returncode == 2 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_an_error_reaches_a_user_of_the_command_as_one_line_with_exit_code_2(tmp_path):
    # In a process of its own: what escapes main() (a traceback, a warning at exit) would show here.
    path = _config(tmp_path)
    path.write_text(path.read_text().replace("n_chains = 128", "n_chains = 128\nn_chainz = 3"))
    out = asgd("run", str(path), "--out", str(tmp_path / "res"))
    assert out.returncode == 2 and "run.n_chainz = 3: unknown key" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert not (tmp_path / "res").exists()


def test_list_names_objectives_noise_models_and_experiments():
    out = main("list")
    assert out.returncode == 0
    for name in ("sharp_flat", "valley_2d", "student_t", "quadratic_rates", "sharp_flat_tradeoff", "basin_selection"):
        assert name in out.stdout


def test_two_seeds_are_pooled_in_the_printed_table_and_every_figure_and_per_seed_gives_panels(tmp_path, monkeypatch, capsys):
    import json

    from analysis import pool
    from analysis.errors import ErrorTable
    from asgd import cli, experiment_figures

    titles = {}
    save = experiment_figures.plots.save

    def keep_titles(fig, path):
        titles[Path(path).name] = [ax.get_title() for ax in fig.axes]
        return save(fig, path)

    monkeypatch.setattr(experiment_figures.plots, "save", keep_titles)
    config = _config(tmp_path, steps=(200,), seeds=(0, 1), figures=("tradeoff", "rates", "chains", "basins"))
    config.write_text(config.read_text().replace('kind = "smoothed"', 'kind = "minimizer"'))  # one minimizer search, not two
    assert cli.main(["run", str(config), "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    folder = tmp_path / "small"
    assert "2 seeds (0, 1) x 128 = 256 chains, pooled" in out

    # By hand: every non-diverged chain of both seeds as one sample.
    pooled = pool(ErrorTable(r for r in result_folder.read_csv(folder / "results.csv") if r["n_steps"] == 200))
    with np.load(folder / "arrays.npz") as arrays:
        for estimator in ("x", "x_avg", "v_avg"):
            points = np.concatenate([arrays[f"seed{s}_T200/{estimator}"] for s in (0, 1)], axis=1).astype(np.float64)
            diverged = np.concatenate([arrays[f"seed{s}_T200/diverged"] for s in (0, 1)], axis=1)
            for s, eta in enumerate(arrays["step_sizes"]):
                squared = np.sum((points[s][~diverged[s]] - arrays["targets"][s]) ** 2, axis=-1)
                mse, se = squared.mean(), squared.std(ddof=1) / np.sqrt(squared.size)
                row = pooled.select(estimator=estimator, step_size=float(eta)).to_records()[0]
                assert row["n_chains"] + row["n_diverged"] == 256 and row["n_seeds"] == 2
                np.testing.assert_allclose([row["mse"], row["mse_se"]], [mse, se], rtol=1e-9)
                assert f"{mse:>11.4g} +- {se:<8.2g}" in out  # the printed table is the pooled one

    about = "sharp_flat, gaussian noise (scale 1)"  # every figure names the objective and the noise
    assert titles["tradeoff"] == [f"small: {about}\nT = 200 steps, 256 chains (2 seeds pooled)"]
    assert titles["rates_eta0.2"] == [f"small: {about}\n$\\eta$ = 0.2, 256 chains (2 seeds pooled)"]
    assert titles["chains"][0].startswith(f"small: {about}\n") and " of 256 chains non-diverged, 2 seeds pooled" in titles["chains"][0]
    assert [title.split("\n") for title in titles["basins"]] == [
        [f"small: {about}", "256 chains (2 seeds pooled), T = 200", name] for name in ("sharp well at x = -0.997: f'' = 44.4", "flat well at x = 0.961: f'' = 2.58")]

    # per_seed = true: the same folder re-drawn, one panel per seed, each naming its seed.
    meta = json.loads((folder / "metadata.json").read_text())
    meta["config"]["output"].update(per_seed=True, figures=["tradeoff", "chains", "basins"])
    (folder / "metadata.json").write_text(json.dumps(meta))
    titles.clear()
    experiment_figures.draw_figures(folder)
    assert titles["tradeoff"] == [f"small: {about}, seed {s}\nT = 200 steps, 128 chains" for s in (0, 1)]
    assert [title.split(";")[0] for title in titles["chains"]] == [f"small: {about}, seed {s}\n128 of 128 chains non-diverged" for s in (0, 1)]
    assert len(titles["basins"]) == 4 and titles["basins"][2].startswith(f"small: {about}, seed 1\n128 chains, T = 200\nsharp well")


def test_the_critical_step_size_comes_from_the_objectives_closed_form():
    from asgd.config import parse_config
    from asgd.experiment_figures import critical_step_size

    base = {"name": "c", "noise": {"family": "gaussian", "scale": 2.0}, "run": {"step_sizes": [0.1], "n_steps": 10, "n_chains": 2, "x0": [0.0]}}
    quadratic = parse_config({**base, "objective": {"kind": "quadratic", "hessian": [0.5, 4.0]}, "run": {**base["run"], "x0": [0.0, 0.0]}})
    assert critical_step_size(quadratic)[0] == pytest.approx(2 / 4.0)  # 2 / lambda_max: SGD diverges beyond
    import objectives

    sharp_flat = parse_config({**base, "objective": {"kind": "sharp_flat"}})
    assert critical_step_size(sharp_flat)[0] == pytest.approx(objectives.SHARP_FLAT_CRITICAL_STEP_SIZE / 2.0)  # F_eta depends on eta * scale
    assert critical_step_size(parse_config({**base, "objective": {"kind": "rippled_quadratic"}})) is None


def test_figures_draw_the_configs_estimators_or_three_by_default(tmp_path):
    """`[output] estimators` chooses what the figures draw; without it all five are tabulated
    and three (last iterate, uniform and tail average) drawn, a number a slide can hold."""
    from asgd.config import load_config
    from asgd.experiment_figures import describe, drawn_estimators

    config = load_config(_config(tmp_path))
    assert config.estimators == ("x", "x_avg", "x_tail", "v", "v_avg") and drawn_estimators(config) == ("x", "x_avg", "x_tail")
    path = _config(tmp_path)
    path.write_text(path.read_text().replace("[output]", '[output]\nestimators = ["v_avg", "x"]'))
    chosen = load_config(path)
    assert drawn_estimators(chosen) == ("v_avg", "x")
    assert describe(chosen, chosen.objective) == "sharp_flat, gaussian noise (scale 1)"


@pytest.mark.slow
def test_make_demo_raises_no_warning_but_the_librarys_own(tmp_path):
    """`make demo` (`asgd reproduce --quick`) under warnings as errors, except the library's own
    warning classes, which name a cause the user can act on (a diverged chain, a near tie, an
    inaccurate law, a result folder): a NumPy, JAX or matplotlib warning inside a run would be a
    warning without one (issue 25). About 2 minutes: the whole quick set."""
    import warnings

    import analysis
    import simulate
    import theory
    from asgd.result_folder import ResultFolderWarning

    own = (simulate.DivergenceWarning, analysis.TieWarning, theory.InaccurateLawWarning, ResultFolderWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for category in own:
            warnings.simplefilter("default", category)
        out = main("reproduce", "--quick", "--quiet", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "warning" not in out.stderr.lower(), out.stderr[-3000:]  # none of the library's own either, here
