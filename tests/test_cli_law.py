"""`[theory] stationary = true`: the exact law's rows in results.csv and its curves in the tradeoff figure."""

import json
import os
import tomllib

import numpy as np
import pytest

import objectives
import simulate
import figures
import theory
from analysis.errors import ErrorTable
from asgd import experiment_figures, result_folder
from asgd.config import ConfigError, parse_config
from support import main

HESSIAN, CENTER, SCALE = 1.0, 0.5, 1.0
STEP_SIZES = [0.1, 0.5]

QUADRATIC = f"""
name = "quadratic_law"

[objective]
kind = "quadratic"
hessian = [{HESSIAN}]
center = [{CENTER}]

[noise]
family = "gaussian"
scale = {SCALE}

[run]
step_sizes = {STEP_SIZES}
n_steps = 2000
n_chains = 4096
x0 = [{CENTER}]
checkpoints = 4

[output]
estimators = ["x", "x_avg", "x_tail"]
figures = ["tradeoff"]

[theory]
stationary = true
n_grid = 401
bounds = [-4.0, 5.0]
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("law")
    (root / "quadratic_law.toml").write_text(QUADRATIC)
    out = main("run", str(root / "quadratic_law.toml"), "--out", str(root / "res"), "--quiet")
    assert out.returncode == 0, out.stderr
    assert "exact long-run law: rows with source = stationary" in out.stdout and "reaches it at eta = 0.1, 0.5" in out.stdout
    assert "exact law at each checkpoint from x0: rows with source = law" in out.stdout
    return root / "res" / "quadratic_law"


def _law():
    f = objectives.quadratic(np.array([HESSIAN]), np.array([CENTER]))
    return theory.stationary_law(f, simulate.noise.gaussian(SCALE), STEP_SIZES, bounds=(-4.0, 5.0), n_grid=401)


def test_law_rows_equal_a_direct_stationary_law_call(folder):
    rows = result_folder.read_csv(folder / "results.csv")
    assert {r["source"] for r in rows} == {"simulation", "law", "stationary"}
    law_rows = [r for r in rows if r["source"] == "stationary"]
    simulated = [r for r in rows if r["source"] == "simulation"]
    horizons = sorted({r["n_steps"] for r in simulated})
    law, target = _law(), np.array([CENTER])
    expected = {"x": lambda t: law.mse(target), "x_avg": lambda t: law.averaged_mse(target, t), "x_avg_bias": lambda t: law.averaged_bias(target)}
    assert len(law_rows) == len(expected) * len(horizons) * len(STEP_SIZES)
    for row in law_rows:
        s = STEP_SIZES.index(row["step_size"])
        np.testing.assert_allclose(row["mse"], expected[row["estimator"]](row["n_steps"])[s], rtol=1e-9, atol=1e-15)
        assert row["n_chains"] == 0 and row["n_diverged"] == 0 and row["mse_se"] == "" and row["seed"] == ""
        # One basin: the escape time is infinite, so a run short of 10 relaxation times is "quasi_stationary".
        assert row["law_regime"] == ("stationary" if row["n_steps"] >= 10 * law.relaxation_time[s] else "quasi_stationary")
        assert row["mse_grid_error"] >= 0
    assert all(r["law_regime"] == "" and r["mse_grid_error"] == "" for r in simulated)
    assert all(r["law_regime"] == "finite_time" for r in rows if r["source"] == "law")
    arrays = np.load(folder / "arrays.npz")
    np.testing.assert_allclose(arrays["law/density"], law.density, rtol=1e-9, atol=1e-15)
    settings = json.loads((folder / "metadata.json").read_text())["law"]
    assert settings["n_grid"] == 401 and settings["bounds"] == [[-4.0], [5.0]] and len(settings["method"]) == 2


def test_simulated_floor_agrees_with_the_law_and_the_closed_form(folder):
    rows = result_folder.read_csv(folder / "results.csv")
    horizon = max(r["n_steps"] for r in rows)
    final = {(r["source"], r["estimator"], r["step_size"]): r for r in rows if r["n_steps"] == horizon}
    for eta in STEP_SIZES:
        simulated, law = final[("simulation", "x", eta)], final[("stationary", "x", eta)]
        closed_form = eta * SCALE**2 / (HESSIAN * (2 - eta * HESSIAN))  # Var of the AR(1) chain
        assert abs(simulated["mse"] - law["mse"]) <= 4.5 * simulated["mse_se"] + law["mse_grid_error"]
        assert abs(law["mse"] - closed_form) <= 0.02 * closed_form
        # x_avg started at the minimum: no transient; the large-T formula tr(Sigma_avg) / T leaves out
        # terms of relative size about (relaxation time) / T = 1 / (eta h T).
        simulated, law = final[("simulation", "x_avg", eta)], final[("stationary", "x_avg", eta)]
        neglected = 2.0 / (eta * HESSIAN * horizon) * law["mse"]
        assert abs(simulated["mse"] - law["mse"]) <= 4.5 * simulated["mse_se"] + law["mse_grid_error"] + neglected


def test_every_simulated_point_has_its_exact_finite_time_value(folder):
    """source = law: E|estimator_T - target|^2 from x0 at every checkpoint, for every estimator the
    run reports; it equals the quadratic closed form (within the grid's rounding) and the
    simulation within 4.5 standard errors."""
    rows = result_folder.read_csv(folder / "results.csv")
    exact = {(r["estimator"], r["step_size"], r["n_steps"]): r for r in rows if r["source"] == "law"}
    simulated = [r for r in rows if r["source"] == "simulation"]
    assert {(r["estimator"], r["step_size"], r["n_steps"]) for r in simulated} == set(exact)
    horizons = sorted({r["n_steps"] for r in simulated})
    closed = theory.quadratic_mse_curves(HESSIAN, SCALE**2, STEP_SIZES, horizons, np.array([CENTER]), np.array([CENTER]), estimators=("x", "x_avg", "x_tail"))
    for row in simulated:
        law = exact[(row["estimator"], row["step_size"], row["n_steps"])]
        assert law["horizon"] == law["n_steps"] and law["n_chains"] == 0
        assert abs(row["mse"] - law["mse"]) <= 4.5 * row["mse_se"] + law["mse_grid_error"], (row, law)
        expected = closed[row["estimator"]][STEP_SIZES.index(row["step_size"]), horizons.index(row["n_steps"])]
        assert abs(law["mse"] - expected) <= 0.03 * expected + law["mse_grid_error"], (law, expected)


def _captured_tradeoff(folder, monkeypatch):
    """Run `draw_figures` and keep the tradeoff figure's lines (gid, linestyle) and legend texts."""
    seen = {}

    def save(fig, path):
        if path.name == "tradeoff":
            ax = fig.axes[0]
            seen["lines"] = [(line.get_gid(), line.get_linestyle()) for line in ax.get_lines()]
            seen["zorders"] = [(line.get_gid(), line.get_zorder()) for line in ax.get_lines()]
            seen["bands"] = [collection.get_zorder() for collection in ax.collections]  # error bands
            seen["legend"] = [t.get_text() for t in ax.get_legend().get_texts()]
        return []

    monkeypatch.setattr(experiment_figures.plots, "save", save)
    experiment_figures.draw_figures(folder)
    return seen


def test_plot_draws_the_law_curves_over_the_simulated_points(folder, monkeypatch):
    (folder / "tradeoff.png").unlink()
    out = main("plot", str(folder))
    assert out.returncode == 0, out.stderr and (folder / "tradeoff.png").exists()
    seen = _captured_tradeoff(folder, monkeypatch)
    gids = [gid for gid, _ in seen["lines"]]
    assert "theory:x" in gids and "theory:x_avg" in gids
    assert "exact law (theory)" in seen["legend"]
    # Over the points, not hidden under them: every exact curve is drawn above every simulated
    # line and error band.
    exact = [z for gid, z in seen["zorders"] if str(gid).startswith("theory")]
    simulated = [z for gid, z in seen["zorders"] if not str(gid).startswith("theory")] + seen["bands"]
    assert exact and simulated and min(exact) > max(simulated), (exact, simulated)


def test_an_old_results_csv_without_source_still_loads_and_plots(folder, tmp_path, monkeypatch):
    old = tmp_path / "old"
    old.mkdir()
    for name in ("metadata.json", "arrays.npz"):
        (old / name).write_bytes((folder / name).read_bytes())
    (old / "points").mkdir()
    for path in (folder / "points").iterdir():
        (old / "points" / path.name).write_bytes(path.read_bytes())
    rows = [r for r in result_folder.read_csv(folder / "results.csv") if r["source"] == "simulation"]
    columns = ["experiment", "seed", "estimator", "step_size", "n_steps", "n_chains", "mse", "mse_se", "n_diverged", "target"]
    result_folder.write_csv(old / "results.csv", rows, columns)
    table = ErrorTable.from_csv(old / "results.csv")
    assert "source" not in table.columns() and len(table) == len(rows)
    seen = _captured_tradeoff(old, monkeypatch)
    # no law rows: the exact lines are the quadratic's closed forms, one per estimator
    assert {gid for gid, _ in seen["lines"] if str(gid).startswith("theory")} == {"theory:x", "theory:x_avg", "theory:x_tail"}
    assert any(gid is None for gid, _ in seen["lines"])  # the simulated curves are there


def test_an_unreached_law_is_drawn_dotted_without_stretching_the_axis():
    table = ErrorTable([{"estimator": "x", "step_size": e, "n_steps": 10, "mse": 1.0, "mse_se": 0.1} for e in (0.1, 0.2, 0.4)])
    theory = {"x": (np.array([0.1, 0.2, 0.4]), np.array([1e7, 1.1, 1.2]), np.array([False, True, True]))}
    fig = figures.plot_tradeoff(table, theory)
    assert fig.axes[0].get_ylim()[1] < 1e2  # an unreached value (here 1e7) does not stretch the axis
    lines = {line.get_gid(): line for line in fig.axes[0].get_lines()}
    assert lines["theory-unreached:x"].get_linestyle() == ":"
    np.testing.assert_array_equal(lines["theory-unreached:x"].get_xdata(), [0.1, 0.2])
    assert np.isnan(lines["theory:x"].get_ydata()[0]) and lines["theory:x"].get_linestyle() == "--"
    assert "exact law, not reached in T steps" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def _data(**theory):
    data = tomllib.loads(QUADRATIC)
    data["theory"] = theory
    return data


@pytest.mark.parametrize(
    "theory, key",
    [
        ({"stationary": "yes"}, "theory.stationary"),
        ({"stationary": True, "n_grid": 3}, "theory.n_grid"),
        ({"stationary": True, "n_grid": 100.0}, "theory.n_grid"),
        ({"stationary": True, "bounds": [1.0]}, "theory.bounds"),
        ({"stationary": True, "bounds": [2.0, 1.0]}, "theory.bounds"),
        ({"stationary": True, "bounds": [[0.0, 0.0], [1.0, 1.0]]}, "theory.bounds"),
        ({"stationary": True, "grid": 3}, "theory.grid"),
    ],
)
def test_bad_theory_tables_are_refused_naming_the_key(theory, key):
    with pytest.raises(ConfigError, match=rf"^{key} = "):
        parse_config(_data(**theory))


def test_stationary_is_refused_above_dimension_two():
    data = _data(stationary=True)
    data["objective"] = {"kind": "quadratic", "hessian": [1.0, 1.0, 1.0]}
    data["run"]["x0"] = [0.0, 0.0, 0.0]
    with pytest.raises(ConfigError, match=r"^theory.stationary = True: needs an objective of dim 1 or 2"):
        parse_config(data)
    data["theory"] = {"stationary": False}
    parse_config(data)


def test_the_theory_table_is_part_of_the_folder_fingerprint():
    a, b = parse_config(_data(stationary=True, n_grid=401)), parse_config(_data(stationary=True, n_grid=801))
    assert result_folder.fingerprint(a.raw) != result_folder.fingerprint(b.raw)
    quick = parse_config({**_data(stationary=True, n_grid=401), "quick": {"n_grid": 201}}, quick=True)
    assert quick.law_n_grid == 201 and quick.raw["theory"]["n_grid"] == 201


@pytest.mark.parametrize(
    "edit, message",
    [
        (("n_grid = 401", "n_grid = 4"), "theory.n_grid = 4: "),
        (("bounds = [-4.0, 5.0]", "bounds = [-0.5, 1.5]"), "theory.stationary = true: bounds="),  # the law leaks out of the box
    ],
)
def test_bad_theory_exits_2_before_any_file_is_written(tmp_path, edit, message):
    (tmp_path / "bad.toml").write_text(QUADRATIC.replace(*edit))
    out = main("run", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "res"), "--quiet")
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert not (tmp_path / "res").exists()


def test_a_metastable_law_gives_inf_rows_without_a_warning():
    """`make demo`'s sharp_flat_tradeoff: below the critical step size the averaged law is
    metastable (tr Sigma_avg = inf). Its x_avg rows say mse = inf, grid error nan, regime
    quasi_stationary, and no RuntimeWarning (inf - inf) is raised on the way."""
    import warnings

    from asgd import law_rows

    with open(os.path.join(os.path.dirname(experiment_figures.__file__), "experiments", "sharp_flat_tradeoff.toml"), "rb") as file:
        data = tomllib.load(file)
    data["run"]["step_sizes"], data["theory"]["n_grid"] = [0.01, 0.2], 801
    config = parse_config(data, quick=True)
    law = law_rows.compute_law(config)
    targets = np.array([[-1.0], [1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        regime = law_rows.regimes(config, law, [5000])
        rows = {(r["estimator"], r["step_size"]): r for r in law_rows.law_rows(config, law, targets, [5000], regime)}
    metastable, reached = rows[("x_avg", 0.01)], rows[("x_avg", 0.2)]
    assert metastable["mse"] == np.inf and np.isnan(metastable["mse_grid_error"]) and metastable["law_regime"] == "quasi_stationary"
    assert np.isfinite(reached["mse"]) and 0 <= reached["mse_grid_error"] < 0.01 * reached["mse"] and reached["law_regime"] == "stationary"
    assert all(np.isfinite(r["mse"]) and np.isfinite(r["mse_grid_error"]) for (name, _), r in rows.items() if name != "x_avg")


def test_quadratic_configs_get_closed_form_finite_time_curves():
    """A quadratic config with Gaussian noise: the figures' exact lines are the closed forms at each
    checkpoint from x0 (`theory.quadratic_law`); other landscapes get none from here."""
    config = parse_config(_data(stationary=False))
    curves = experiment_figures.quadratic_curves(config, [1, 10, 100])
    for s, eta in enumerate(STEP_SIZES):
        for k, t in enumerate([1, 10, 100]):
            law = theory.quadratic_law(HESSIAN, SCALE**2, eta, t, np.array([CENTER]), np.array([CENTER]))
            for name in ("x", "x_avg", "x_tail"):
                np.testing.assert_allclose(curves[name][s, k], law.mse(name, [CENTER]), rtol=1e-9)
    data = _data(stationary=False)
    data["objective"] = {"kind": "sharp_flat"}
    assert experiment_figures.quadratic_curves(parse_config(data), [1, 10]) is None
