"""`figures`: every figure renders under Agg, saves PNG and PDF atomically, in one style."""

import io
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
import figures as plots  # noqa: E402
import theory  # noqa: E402
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
    # chains: the landscape on the densities' axis, no second (right) y axis.
    assert len(figures["chains"].axes) == 1
    landscape = next(line for line in figures["chains"].axes[0].get_lines() if line.get_gid() == "landscape")
    assert landscape.get_label() == "$f$ (rescaled)" and np.max(landscape.get_ydata()) <= figures["chains"].axes[0].get_ylim()[1]
    assert set(plots.ESTIMATOR_STYLE[name]["color"] for name in simulate.ESTIMATORS) <= set(plots.OKABE_ITO)


def test_tradeoff_draws_the_last_horizon_and_rates_fit_the_tail_of_the_curve(tmp_path):
    fig = plots.plot_tradeoff(_table())
    x_line = next(line for line in fig.axes[0].get_lines() if line.get_label() == plots.ESTIMATOR_STYLE["x_avg"]["label"])
    np.testing.assert_allclose(x_line.get_ydata(), 5.0 / 3000)  # T = 3000 only, not a zigzag over horizons
    assert fig.axes[0].get_title() == "T = 3000 steps, 100 chains"  # 100 counted or diverged in every row
    early = plots.plot_tradeoff(_table(), n_steps=10)
    assert early.axes[0].get_title() == "T = 10 steps, 100 chains"

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
    curves = theory.quadratic_mse_curves(1.0, 1.0, [0.05, 0.2, 0.8], result.checkpoint_steps, [1.0], [0.0])
    plots.plot_tradeoff(table, theory={name: ([0.05, 0.2, 0.8], curves[name][:, -1]) for name in curves}, path=tmp_path / "t")
    plots.plot_rates(table, 0.2, theory={"x_avg": (result.checkpoint_steps, curves["x_avg"][1])}, path=tmp_path / "r")
    assert all((tmp_path / f"{stem}.{suffix}").exists() for stem in "tr" for suffix in ("png", "pdf"))


def _two_by_two():
    with plots.style():
        return plt.subplots(2, 2, figsize=(8, 6))


_GRID = np.linspace(-2.0, 2.0, 101)[:, None]
_PATHS = np.cumsum(np.random.default_rng(1).normal(0, 0.05, size=(2, 21, 2)), axis=1)
#: Every public plot function, drawing into the user's `ax` (basins: a row of two axes).
DRAW_INTO = {
    "plot_tradeoff": lambda ax: plots.plot_tradeoff(_table(), ax=ax),
    "plot_rates": lambda ax: plots.plot_rates(_table(), 0.1, ax=ax),
    "plot_landscape": lambda ax: plots.plot_landscape(DOUBLE_WELL, smoothed=[(0.1, DOUBLE_WELL.value(_GRID))], n_points=101, ax=ax),
    "plot_chains": lambda ax: plots.plot_chains(DOUBLE_WELL, _result(), 1, ax=ax),
    "plot_basins": lambda ax: plots.plot_basins(STEP_SIZES, {"x": np.tile([0.7, 0.3], (4, 1))}, ["a", "b"], ax=ax),
    "plot_valley": lambda ax: plots.plot_valley(objectives.quadratic(np.diag([1.0, 10.0])), _PATHS, levels=8, ax=ax),
}
PLOT_FUNCTIONS = sorted(name for name in plots.__all__ if name.startswith("plot_"))


def test_the_ax_cases_cover_every_public_plot_function():
    assert sorted(DRAW_INTO) == PLOT_FUNCTIONS


@pytest.mark.parametrize("name", PLOT_FUNCTIONS)
def test_every_plot_function_draws_into_the_users_subplot_and_returns_it(name):
    fig, axes = _two_by_two()
    target = axes[1] if name == "plot_basins" else axes[0, 1]
    returned = DRAW_INTO[name](target)
    assert returned is target
    assert plt.get_fignums() == [fig.number] and len(fig.axes) == 4  # no new figure, no twin axes
    drawn = set(np.ravel(target).tolist())
    for ax in fig.axes:
        assert bool(ax.get_lines() or ax.collections or ax.patches) == (ax in drawn), (name, ax)
    with pytest.raises(ValueError, match="ax must be"):
        DRAW_INTO[name]("not an axes")


@pytest.mark.parametrize("made_by", ["plot_tradeoff", "the user inside style()"])
def test_a_figure_made_in_the_style_keeps_it_under_the_users_own_savefig(made_by):
    with plots.style():
        if made_by == "plot_tradeoff":
            fig = plots.plot_tradeoff(_table(), title="a title long enough to be clipped by a careless layout")
            ax = fig.axes[0]
        else:
            fig, ax = plt.subplots(figsize=(5.0, 3.4))
            plots.plot_tradeoff(_table(), title="a title long enough to be clipped by a careless layout", ax=ax)
    assert plt.rcParams["figure.constrained_layout.use"] is False  # the user's savefig runs outside the style
    fig.savefig(io.BytesIO(), format="png", dpi=100)
    renderer = fig.canvas.get_renderer()
    canvas = fig.bbox
    for artist in (ax.title, ax.get_legend(), ax.xaxis.label, ax.yaxis.label):
        box = artist.get_window_extent(renderer)
        assert canvas.x0 - 1 <= box.x0 and box.x1 <= canvas.x1 + 1 and canvas.y0 - 1 <= box.y0 and box.y1 <= canvas.y1 + 1, artist
    assert ax.title.get_fontsize() == plots.RCPARAMS["axes.titlesize"]
    assert ax.get_legend().get_texts()[0].get_fontsize() == plots.RCPARAMS["legend.fontsize"]


def test_a_user_title_keeps_the_horizon_and_chain_count_and_pooled_seeds_are_said():
    fig = plots.plot_tradeoff(_table(), title="my study")
    assert fig.axes[0].get_title() == "my study\nT = 3000 steps, 100 chains"
    pooled = analysis.pool([_table(), _table()])
    assert plots.plot_tradeoff(pooled, title="my study").axes[0].get_title() == "my study\nT = 3000 steps, 200 chains (2 seeds pooled)"
    assert plots.plot_rates(pooled, 0.1, title="rates").axes[0].get_title() == "rates\n$\\eta$ = 0.1, 200 chains (2 seeds pooled)"
    fig = plots.plot_chains(DOUBLE_WELL, [_result(), _result()], 1)
    assert fig.axes[0].get_title().startswith("590 of 600 chains non-diverged, 2 seeds pooled")


def test_tradeoff_marks_the_critical_step_size():
    ax = plots.plot_tradeoff(_table(), critical_step_size=0.05).axes[0]
    line = next(line for line in ax.get_lines() if line.get_gid() == "critical_step_size")
    assert np.all(np.asarray(line.get_xdata()) == 0.05)
    assert any("critical step size" in text.get_text() and "0.05" in text.get_text() for text in ax.get_legend().get_texts())
    labelled = plots.plot_tradeoff(_table(), critical_step_size=0.2, critical_label="2/L").axes[0]
    assert "2/L" in [text.get_text() for text in labelled.get_legend().get_texts()]
    assert not any(line.get_gid() == "critical_step_size" for line in plots.plot_tradeoff(_table()).axes[0].get_lines())
    with pytest.raises(ValueError, match="critical_step_size must be a finite number > 0, got -1"):
        plots.plot_tradeoff(_table(), critical_step_size=-1)


def test_basin_panels_have_binomial_error_bars_and_plain_number_labels():
    p = np.array([[0.7, 0.3], [0.5, 0.5], [0.1, 0.9], [0.0, 1.0]])
    n = np.array([100, 400, 100, 50])
    labels = [np.array([-1.0, 0.0]), (np.float64(1.0), np.float64(0.5))]
    fig = plots.plot_basins(STEP_SIZES, {"x": p}, labels, n_chains={"x": n})
    for b, ax in enumerate(fig.axes):
        (container,) = ax.containers
        segments = container.lines[2][0].get_segments()
        half_widths = np.array([(segment[1][1] - segment[0][1]) / 2 if len(segment) else np.nan for segment in segments])
        se = np.sqrt(p[:, b] * (1 - p[:, b]) / n)
        np.testing.assert_allclose(half_widths, np.where(se > 0, se, np.nan), rtol=1e-12)  # p = 0 or 1: no bar
    assert [ax.get_title() for ax in fig.axes] == ["basin: (-1, 0)", "basin: (1, 0.5)"]
    one_d = plots.plot_basins(STEP_SIZES, {"x": p}, [np.float64(-0.997), [0.961]], n_chains=100)
    assert [ax.get_title() for ax in one_d.axes] == ["basin: x = -0.997", "basin: x = 0.961"]
    with pytest.raises(ValueError, match=r"n_chains for 'x' must be a count >= 1 or 4 of them"):
        plots.plot_basins(STEP_SIZES, {"x": p}, labels, n_chains=[1, 2])


def test_landscape_is_scaled_to_the_wells_and_refuses_a_2d_objective():
    ax = plots.plot_landscape(DOUBLE_WELL, minimizers=[[-1.03], [0.96]]).axes[0]
    np.testing.assert_allclose(ax.get_xlim(), (-2.03, 1.96))  # the wells, 1 (>= half their spread) beyond
    np.testing.assert_allclose(plots.landscape_bounds([[-1.0], [3.0]]), (-3.0, 5.0))
    np.testing.assert_allclose(plots.landscape_bounds([[0.0]], np.linspace(-4, 2, 601)), (-3.94, 1.94))
    with pytest.raises(ValueError, match="plot_landscape draws 1-D objectives, got f of dim=2"):
        plots.plot_landscape(objectives.quadratic(np.eye(2)))


def test_plots_accept_a_data_frame_with_the_tables_columns():
    pytest.importorskip("pandas")
    for plot, args in ((plots.plot_tradeoff, ()), (plots.plot_rates, (0.1,))):
        from_table, from_frame = plot(_table(), *args).axes[0], plot(_table().to_pandas(), *args).axes[0]
        assert [line.get_label() for line in from_frame.get_lines()] == [line.get_label() for line in from_table.get_lines()]
        for a, b in zip(from_table.get_lines(), from_frame.get_lines()):
            np.testing.assert_array_equal(a.get_xydata(), b.get_xydata())


def _overlapping_tick_labels(fig, axis_name: str) -> list[tuple[str, str]]:
    """Pairs of drawn tick labels (major and minor) of each axis that overlap on the canvas."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    pairs = []
    for ax in fig.axes:
        axis = getattr(ax, f"{axis_name}axis")
        low, high = sorted(axis.get_view_interval())
        labels = [t for minor in (False, True) for tick, t in zip(axis.get_ticklocs(minor=minor), axis.get_ticklabels(minor=minor))
                  if t.get_text() and low <= tick <= high]
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in labels]
        pairs += [(a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1 :] if box_a.overlaps(box_b)]
    return pairs


@pytest.mark.parametrize("limits", [(0.25, 0.9), (0.05, 0.9), (0.2, 3.0), (3e-6, 2e-5), (1e-8, 1.0)])
def test_log_axes_tick_labels_never_overlap(limits):
    """matplotlib labels every minor tick of a log axis spanning about a decade ("3x10^-1 4x10^-1",
    overlapping on the x axis of a small panel); `tidy_log_axes` (run by `save` and every plot
    function) keeps decades and a few plain mantissas."""
    with plots.style():
        fig, ax = plt.subplots(figsize=(2.0, 2.0))
    ax.set(xscale="log", yscale="log", xlim=limits, ylim=limits)
    plots.tidy_log_axes(fig)
    assert not _overlapping_tick_labels(fig, "x") and not _overlapping_tick_labels(fig, "y")
    texts = [t.get_text() for t in ax.yaxis.get_ticklabels(minor=True) if t.get_text()]
    if limits == (0.25, 0.9):
        assert texts == ["0.2", "0.3", "0.5"]  # plain numbers, still labelled inside a decade


def test_exact_curves_are_drawn_over_the_points_and_only_for_the_drawn_estimators():
    theory_curves = {name: (STEP_SIZES, [0.5 * eta if name == "x" else 0.05 for eta in STEP_SIZES]) for name in ("x", "x_avg")}
    ax = plots.plot_tradeoff(_table(), theory_curves).axes[0]
    lines = {line.get_gid() or line.get_label(): line for line in ax.get_lines()}
    simulated = max(line.get_zorder() for line in ax.get_lines() if not str(line.get_gid()).startswith("theory"))
    assert min(lines["theory:x"].get_zorder(), lines["theory:x_avg"].get_zorder()) > simulated
    assert any("band" in t.get_text() for t in ax.get_legend().get_texts())  # what the bands are, even when unseen
    only_x = plots.plot_tradeoff(_table(), theory_curves, estimators=["x"]).axes[0]
    assert [line.get_gid() for line in only_x.get_lines() if str(line.get_gid()).startswith("theory")] == ["theory:x"]


def test_basins_are_named_by_their_curvature_and_the_landscape_legend_names_every_marker():
    names = plots.basin_names(np.array([[-1.0], [0.96], [2.0]]), np.array([44.4, 2.58, 10.0]))
    assert names == ["sharp well at x = -1: f'' = 44.4", "flat well at x = 0.96: f'' = 2.58", "well at x = 2: f'' = 10"]
    assert plots.basin_names(np.array([[0.0, 1.0]]), np.array([3.0])) == [r"well at (0, 1): tr $\nabla^2 f$ = 3"]
    fig = plots.plot_landscape(DOUBLE_WELL, smoothed=[(0.1, DOUBLE_WELL)], minimizers=[[-1.03], [0.96]], title="double well")
    ax = fig.axes[0]
    assert ax.get_title() == "double well"
    assert any("argmin $F_\\eta$" in t.get_text() for t in ax.get_legend().get_texts())
    fig.canvas.draw()
    legend, axes_box = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.x0 >= axes_box.x1  # beside the data, not over it
