"""`analysis.plots`: every figure renders under Agg, saves PNG and PDF atomically, in one style."""

import os

import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import analysis  # noqa: E402
import objectives  # noqa: E402
import simulate  # noqa: E402
from analysis import plots  # noqa: E402
from analysis.errors import ErrorTable  # noqa: E402

STEP_SIZES = [0.01, 0.03, 0.1, 0.3]
HORIZONS = [10, 30, 100, 300, 1000, 3000]
DOUBLE_WELL = objectives.from_function(lambda x: jnp.sum((x**2 - 1.0) ** 2 + 0.3 * x), 1, name="double_well")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _table(bootstrap=False):
    """x: a floor growing like eta; x_avg: 1/T after T = 100, flat before; one all-diverged row."""
    rows = []
    for name in ("x", "x_avg"):
        for eta in STEP_SIZES:
            for t in HORIZONS:
                mse = 0.5 * eta if name == "x" else 5.0 / max(t, 100)
                row = dict(estimator=name, step_size=eta, n_steps=t, mse=mse, mse_se=0.05 * mse, n_chains=100, n_diverged=0)
                if name == "x" and eta == 0.3 and t == 3000:
                    row.update(mse=np.nan, mse_se=np.nan, n_chains=0, n_diverged=100)
                if bootstrap:
                    row.update(mse_lo=0.9 * row["mse"], mse_hi=1.1 * row["mse"])
                rows.append(row)
    return ErrorTable(rows)


def _result():
    rng = np.random.default_rng(0)
    final = rng.normal(np.array([-1.0, 1.0])[:, None, None], 0.3, size=(2, 300, 1))
    diverged = np.zeros((2, 300), bool)
    diverged[1, :5] = True
    return simulate.SimulationResult(
        **{name: final for name in simulate.ESTIMATORS}, diverged=diverged, diverged_at=np.where(diverged, 7, -1),
        checkpoint_steps=np.array([100]), checkpoints={name: final[None] for name in simulate.ESTIMATORS},
        step_sizes=np.array([0.05, 0.2]), n_steps=100, n_chains=300, seed=0, tail_fraction=0.5,
        noise=simulate.noise.gaussian(1.0), objective_name="double_well", dim=1, dtype="float64", divergence_radius=1e6,
    )


def _figures(tmp_path):
    grid = np.linspace(-2.0, 2.0, 201)[:, None]
    rng = np.random.default_rng(1)
    paths = np.cumsum(rng.normal(0, 0.05, size=(3, 41, 2)), axis=1) + np.array([1.0, 0.5])
    averages = np.cumsum(paths, axis=1) / np.arange(1, 42)[:, None]
    bowl = objectives.quadratic(np.diag([1.0, 10.0]), [0.0, 1.0])
    return {
        "tradeoff": plots.plot_tradeoff(_table(), theory={"x": (STEP_SIZES, 0.5 * np.array(STEP_SIZES))}, path=tmp_path / "tradeoff"),
        "tradeoff_bootstrap": plots.plot_tradeoff(_table(bootstrap=True), path=tmp_path / "tradeoff_bootstrap.png"),
        "rates": plots.plot_rates(_table(), 0.3, theory={"x_avg": (HORIZONS, 5.0 / np.array(HORIZONS))}, path=tmp_path / "rates.pdf"),
        "landscape": plots.plot_landscape(
            DOUBLE_WELL,
            smoothed=[(0.1, lambda x: np.sum((x**2 - 1.0) ** 2, -1) + 0.05), (0.3, DOUBLE_WELL)],
            penalized=[(0.1, np.asarray(DOUBLE_WELL.value(grid)) + 0.1)],
            minimizers=[[-1.03], [0.96]], bounds=(-2.0, 2.0), n_points=201, path=tmp_path / "landscape",
        ),
        "chains": plots.plot_chains(DOUBLE_WELL, _result(), 1, estimators=("x", "x_avg", "v_avg"), path=tmp_path / "chains"),
        "basins": plots.plot_basins(STEP_SIZES, {"x": np.tile([0.7, 0.3], (4, 1)), "x_avg": np.tile([0.4, np.nan], (4, 1))},
                                    ["sharp", "flat"], path=tmp_path / "basins"),
        "valley": plots.plot_valley(bowl, paths, averages, bounds=((-1.0, 2.0), (-0.5, 2.0)), path=tmp_path / "valley"),
        "valley_alone": plots.plot_valley(bowl, paths, None, path=tmp_path / "valley_alone"),
    }


def test_every_plot_renders_under_agg_and_saves_png_and_pdf_atomically(tmp_path):
    figures = _figures(tmp_path)
    for name, fig in figures.items():
        assert isinstance(fig, matplotlib.figure.Figure)
        for suffix in (".png", ".pdf"):
            assert (tmp_path / f"{name}{suffix}").stat().st_size > 1000, name
    assert sorted(os.listdir(tmp_path)) == sorted(f"{name}{suffix}" for name in figures for suffix in (".png", ".pdf"))
    assert (tmp_path / "tradeoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "rates.pdf").read_bytes()[:5] == b"%PDF-"


def test_one_style_everywhere_colour_per_estimator_and_labelled_axes(tmp_path):
    figures = _figures(tmp_path)
    for name in ("tradeoff", "rates"):
        ax = figures[name].axes[0]
        colours = {line.get_label(): line.get_color() for line in ax.get_lines()}
        for estimator in ("x", "x_avg"):
            label = next(key for key in colours if key.startswith(plots.ESTIMATOR_STYLE[estimator]["label"]))
            assert colours[label] == plots.ESTIMATOR_STYLE[estimator]["color"]
        assert ax.get_xscale() == ax.get_yscale() == "log"
        assert ax.xaxis.label.get_fontsize() == 9 and ax.get_legend().get_texts()[0].get_fontsize() == 8
    assert figures["tradeoff"].axes[0].get_xlabel() == r"step size $\eta$"
    assert "v^*(\\eta)" in figures["tradeoff"].axes[0].get_ylabel()
    for name, fig in figures.items():
        assert fig.axes[0].get_xlabel() and fig.axes[0].get_ylabel(), name
    assert figures["chains"].axes[1].get_ylabel() == "$f(x)$"  # the landscape's own axis
    assert set(plots.ESTIMATOR_STYLE[name]["color"] for name in simulate.ESTIMATORS) <= set(plots.OKABE_ITO)


def test_tradeoff_draws_the_last_horizon_and_rates_fit_the_tail_of_the_curve(tmp_path):
    fig = plots.plot_tradeoff(_table())
    x_line = next(line for line in fig.axes[0].get_lines() if line.get_label() == plots.ESTIMATOR_STYLE["x_avg"]["label"])
    np.testing.assert_allclose(x_line.get_ydata(), 5.0 / 3000)  # T = 3000 only, not a zigzag over horizons
    assert fig.axes[0].get_title() == "T = 3000 steps"
    early = plots.plot_tradeoff(_table(), n_steps=10)
    assert early.axes[0].get_title() == "T = 10 steps"

    legend = [text.get_text() for text in plots.plot_rates(_table(), 0.1).axes[0].get_legend().get_texts()]
    # x_avg is flat before T = 100 and 1/T after: the tail fit finds -1, the flat x finds 0.
    assert any(text.startswith(plots.ESTIMATOR_STYLE["x_avg"]["label"]) and "slope -1.00" in text for text in legend), legend
    assert any(text.startswith(plots.ESTIMATOR_STYLE["x"]["label"]) and "slope 0.00" in text for text in legend), legend
    with pytest.raises(ValueError, match=r"step_size must be one of the table's step sizes \[0.01, 0.03, 0.1, 0.3\]"):
        plots.plot_rates(_table(), 0.2)
    with pytest.raises(ValueError, match="n_steps=7 is not a horizon"):
        plots.plot_tradeoff(_table(), n_steps=7)


def test_plots_draw_real_error_tables_from_the_engine(tmp_path):
    f = objectives.quadratic(1.0, [0.0])
    result = simulate.run(f, step_sizes=[0.05, 0.2, 0.8], n_steps=400, n_chains=200, x0=[1.0], checkpoints=6, seed=2)
    table = analysis.errors(result, [0.0], bootstrap=50)
    curves = analysis.theory.quadratic_mse_curves(1.0, 1.0, [0.05, 0.2, 0.8], result.checkpoint_steps, [1.0], [0.0])
    plots.plot_tradeoff(table, theory={name: ([0.05, 0.2, 0.8], curves[name][:, -1]) for name in curves}, path=tmp_path / "t")
    plots.plot_rates(table, 0.2, theory={"x_avg": (result.checkpoint_steps, curves["x_avg"][1])}, path=tmp_path / "r")
    assert all((tmp_path / f"{stem}.{suffix}").exists() for stem in "tr" for suffix in ("png", "pdf"))
