"""The Python examples of the README and of the documentation's guides run as written, and the
numbers they print are asserted: each claim is read from the text (so a change of wording or
number is checked, not a copy of it here) and compared within the text's own rounding, or within
standard errors. (docs/getting-started.md's examples run in tests/test_docs.py.)"""

import importlib.metadata
import importlib.util
import json
import pathlib
import re
import tomllib

import numpy as np
import pytest

import analysis
import objectives
import simulate
import theory
from asgd import result_folder
from asgd.cli import _parser
from asgd.config import parse_config
from asgd.schema import read_toml

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# The documentation's pages, where the README's sections moved (their examples and numbers are
# checked here too); getting-started.md's examples run in tests/test_docs.py.
GUIDES = sorted(page for page in (ROOT / "docs").glob("*.md") if page.name != "getting-started.md")
PAGES = [README, *GUIDES]
TEXT = "\n".join(page.read_text() for page in PAGES)


def _blocks() -> list[tuple[str, str]]:
    """(page, code) of every ```python block of the README and the guides, in order."""
    blocks = [(page.name, block) for page in PAGES for block in re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)]
    assert any(page == "README.md" for page, _ in blocks), "the README shows no Python example"
    return blocks


def _claim(pattern: str) -> tuple[str, ...]:
    found = re.search(pattern, TEXT)
    assert found, f"the README no longer says {pattern!r}"
    return found.groups()


def _within_rounding(value: float, printed: str) -> bool:
    """`value` rounds to `printed` (as many significant digits as printed, e.g. '2000' -> 1, '0.069' -> 2)."""
    digits = len(printed.replace(".", "").replace("-", "").split("e")[0].strip("0")) or 1
    return float(f"{value:.{digits}g}") == float(printed)


@pytest.fixture(scope="module")
def namespaces() -> list[dict]:
    spaces = []
    for page, block in _blocks():
        space = {}
        exec(compile(block, page, "exec"), space)
        spaces.append(space)
    return spaces


def _namespace_of(namespaces, marker: str) -> dict:
    (index,) = [i for i, (_, block) in enumerate(_blocks()) if marker in block]
    return namespaces[index]


def test_every_code_block_is_closed():
    """A fence left open turns the rest of a page into code on GitHub and in the site."""
    for page in PAGES:
        fences = [n for n, line in enumerate(page.read_text().splitlines(), 1) if line.lstrip().startswith("```")]
        assert len(fences) % 2 == 0, f"{page.name}: an odd number of ``` fences (lines {fences})"


def test_readme_python_blocks_run(namespaces):
    assert len(namespaces) == len(_blocks())


def test_the_average_is_closer_by_the_factors_the_readme_prints(namespaces):
    low, eta_low, high, eta_high = _claim(r"the average is (\d+)x \(eta=([\d.]+)\) to (\d+)x \(eta=([\d.]+)\) closer")
    space = _namespace_of(namespaces, "the average is")
    result, mse_last, mse_avg = space["result"], space["mse_last"], space["mse_avg"]
    ratio = dict(zip(result.step_sizes.tolist(), mse_last / mse_avg))
    assert _within_rounding(ratio[float(eta_low)], low), ratio
    assert _within_rounding(ratio[float(eta_high)], high), ratio
    # ... and they are the exact law's, within the Monte Carlo error of the two means (3 SE).
    center = np.array([1.0, -1.0])
    for s, eta in enumerate(result.step_sizes):
        law = theory.quadratic_law([[2.0, 0.5], [0.5, 1.0]], np.eye(2), eta, 2_000, [3.0, 3.0], center)
        for name, mse in (("x", mse_last[s]), ("x_avg", mse_avg[s])):
            squared = np.sum((getattr(result, name)[s] - center) ** 2, axis=-1)
            assert abs(mse - law.mse(name, center)) < 3 * squared.std() / np.sqrt(squared.size), (eta, name)


def test_the_stationary_law_snippet_gives_the_mean_and_asymptotic_variance_it_prints(namespaces):
    mean, variance = _claim(r"E x = ([\d.]+), lim T Var\(x_avg\) = (\d+/\d+)")
    law = _namespace_of(namespaces, "lim T Var(x_avg)")["law"]
    numerator, denominator = map(float, variance.split("/"))
    error = 2 * np.asarray(law.discretization_error).max() + 1e-6
    np.testing.assert_allclose(np.asarray(law.mean)[:, 0], float(mean), atol=error)
    # lim T Var(x_avg) = H^-1 Sigma H^-1 = 1/4 for H = 2, Sigma = 1, at every step size, within
    # the law's own grid error (twice its change from the coarse grid of half the cells).
    fine = np.asarray(law.asymptotic_variance)[:, 0, 0]
    grid_error = 2 * np.abs(fine - np.asarray(law.coarse.asymptotic_variance)[:, 0, 0])
    assert np.all(np.abs(fine - numerator / denominator) <= grid_error + 1e-9), (fine, grid_error)


def test_the_critical_step_size_of_sharp_flat_is_where_v_star_jumps_wells():
    (printed,) = _claim(r"`SHARP_FLAT_CRITICAL_STEP_SIZE` \$\\approx ([\d.]+)\$")
    (headline,) = _claim(r"\(\$\\eta_c \\approx ([\d.]+)\$\)")
    critical = objectives.SHARP_FLAT_CRITICAL_STEP_SIZE
    assert _within_rounding(critical, printed) and _within_rounding(critical, headline)
    # v*(eta) is in the sharp well (x < 0) just below it and in the flat well (x > 0) just above.
    path = analysis.smoothed_solution(objectives.sharp_flat(), simulate.noise.gaussian(1.0), [critical - 5e-4, critical + 5e-4])
    assert path.points[0, 0] < 0 < path.points[1, 0]


def test_every_command_of_the_cli_is_in_the_readme_command_list():
    (listing,) = _claim(r"(?s)## The command line\n\n```bash\n(.*?)```")
    assert all(line.startswith(("asgd ", "srun ", "python ")) for line in listing.splitlines()), listing  # the block is closed
    listed = {line.split()[1] for line in listing.splitlines() if line.startswith("asgd ")}
    commands = set(next(a for a in _parser()._actions if a.dest == "command").choices)
    assert listed == commands


def test_your_own_landscape_lies_on_its_exact_law(namespaces):
    """The README's own-landscape example: the simulated points are within 4.5 standard errors of
    the finite-T law it draws over them, and v*(eta) is where its comment says."""
    space = _namespace_of(namespaces, "finite_time_law")
    table, exact = space["table"], space["exact"]
    assert set(exact) == {"x", "x_avg"}
    for name, (etas, values) in exact.items():
        rows = table.select(estimator=name)
        np.testing.assert_allclose(rows.column("step_size"), etas)
        z = (rows.column("mse") - values) / rows.column("mse_se")
        assert np.all(np.abs(z) < 4.5), (name, z)
    (printed,) = _claim(r"# \(S, 1\): ([-\d., ]+)\n")
    for value, shown in zip(space["v_star"][:, 0], printed.split(", ")):
        assert _within_rounding(value, shown), (value, shown)


def test_the_readme_config_is_valid():
    """Every TOML example of the README passes the config validator (a Python objective's module
    aside: it is not in the repository)."""
    examples = re.findall(r"```toml\n(.*?)```", README.read_text(), flags=re.S)
    assert examples, "the README shows no config"
    for example in examples:
        config = parse_config(tomllib.loads(example), quick=True)
        assert config.name and config.horizons == (2000,) and config.estimators == ("x", "x_avg", "x_tail")


HEADLINE_RUN = ROOT / "notebooks" / "measured" / "sharp_flat_tradeoff"


def test_the_headline_figure_is_current_and_its_caption_is_its_run():
    """notebooks/tradeoff_sharp_flat.png is the tradeoff.png of `asgd reproduce sharp_flat_tradeoff`,
    whose metadata.json and results.csv are committed beside it (notebooks/measured/): that run's
    config is the experiment's config today, its library version today's, and the caption's
    numbers are its rows."""
    meta = json.loads((HEADLINE_RUN / "metadata.json").read_text())
    assert meta["config"] == read_toml(ROOT / "asgd" / "experiments" / "sharp_flat_tradeoff.toml"), (
        "the experiment changed: rerun `asgd reproduce sharp_flat_tradeoff` and commit its tradeoff.png, "
        "metadata.json and results.csv")
    assert meta["versions"]["asgd-smoothing"] == importlib.metadata.version("asgd-smoothing")
    rows = result_folder.read_csv(HEADLINE_RUN / "results.csv")
    mse = {r["estimator"]: float(r["mse"]) for r in rows
           if r["source"] == "simulation" and float(r["step_size"]) == 0.2 and int(r["n_steps"]) == 20_000}
    last, factor, averaged = _claim(r"\(([\d.]+) at \$\\eta = 0\.2\$\), the averages (\d+)x closer \(([\d.e-]+)\)")
    chains, thousands, units = _claim(r"sharp_flat_tradeoff` \((\d+) chains, \$T = (\d+)\\,(\d+)\$")
    assert _within_rounding(mse["x"], last) and _within_rounding(mse["x_avg"], averaged), mse
    assert _within_rounding(mse["x"] / mse["x_avg"], factor), mse
    assert int(chains) == meta["config"]["run"]["n_chains"] and int(thousands + units) == meta["config"]["run"]["n_steps"]


def test_the_digits_network_figure_is_current_and_its_caption_is_its_run():
    """notebooks/small_network_digits.png is the accuracy_sharpness.png of `asgd reproduce nn`
    (`make figures`), whose metadata.json and results.csv are in notebooks/measured/nn/: of
    today's config and version, and the networks guide's numbers are its rows."""
    folder = ROOT / "notebooks" / "measured" / "nn"
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["config"] == read_toml(ROOT / "asgd" / "experiments" / "nn.toml"), "rerun `make figures`"
    assert meta["versions"]["asgd-smoothing"] == importlib.metadata.version("asgd-smoothing")
    mean = {(r["method"], float(r["step_size"]), r["metric"]): float(r["mean"]) for r in result_folder.read_csv(folder / "results.csv")}
    trace_small, trace_large = _claim(r"Hessian trace falls from ([\d.]+) at \$\\eta = 0\.01\$ to ([\d.]+) at \$\\eta = 1\$")
    accuracy_small, accuracy_large = _claim(r"accuracy ([\d.]+) to ([\d.]+)\)")
    uniform, last = _claim(r"lower at small \$\\eta\$ \(([\d.]+) against\n?\s*([\d.]+) at \$\\eta = 0\.01\$")
    assert _within_rounding(mean[("sgd", 0.01, "hessian_trace")], trace_small)
    assert _within_rounding(mean[("sgd", 1.0, "hessian_trace")], trace_large)
    assert _within_rounding(mean[("sgd", 0.01, "test_accuracy")], accuracy_small)
    assert _within_rounding(mean[("sgd", 1.0, "test_accuracy")], accuracy_large)
    assert _within_rounding(mean[("uniform_average", 0.01, "test_accuracy")], uniform) and last == accuracy_small


NOTEBOOK_FIGURES = {"exact_law_sharp_flat.png": "07_exact_long_run_law.ipynb",
                    "noise_that_follows_the_landscape.png": "10_noise_that_follows_the_landscape.ipynb"}


def _record_figure():
    spec = importlib.util.spec_from_file_location("asgd_record_figure", ROOT / "docs" / "record_figure.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_notebook_figures_are_current():
    """The figures `make figures` draws by notebooks (07, 10) carry a record beside them
    (docs/record_figure.py): their notebook, its full-size settings and the library version when
    drawn. Both must be today's, as for the experiment figures above (a figure drawn at other sizes
    or by another version is stale: rerun `make figures`)."""
    tool = _record_figure()
    for figure, notebook in NOTEBOOK_FIGURES.items():
        recorded = json.loads((ROOT / "notebooks" / figure).with_suffix(".json").read_text())
        today = tool.record(ROOT / "notebooks" / notebook)
        assert recorded["notebook"] == notebook, (figure, recorded["notebook"])
        assert recorded["full_size_settings"] == today["full_size_settings"], f"{figure}: {notebook}'s sizes changed: rerun `make figures`"
        assert recorded["version"] == today["version"], f"{figure}: drawn by version {recorded['version']}: rerun `make figures`"
    # The settings are what a size change alters: notebook 07 at another grid is caught.
    source = tool.code_of(ROOT / "notebooks" / "07_exact_long_run_law.ipynb")
    assert "4001" in tool.full_size_settings(source)
    assert tool.full_size_settings(source.replace("801 if FAST else 4001", "801 if FAST else 2001")) != tool.full_size_settings(source)


@pytest.mark.slow
def test_the_headline_numbers_of_sharp_flat_tradeoff():
    # README: at eta = 0.2 the last iterate's mean squared distance to v*(eta) is 0.069, the
    # averages' 1.2e-4, "600x closer" (asgd reproduce sharp_flat_tradeoff: 8192 chains, T = 20,000, seed 0).
    last, factor, averaged = _claim(r"\(([\d.]+) at \$\\eta = 0\.2\$\), the averages (\d+)x closer \(([\d.e-]+)\)")
    f, noise = objectives.sharp_flat(), simulate.noise.gaussian(1.0)
    result = simulate.run(f, step_sizes=[0.2], n_steps=20_000, n_chains=8_192, x0=[-1.0], noise=noise, seed=0, checkpoints=[20_000])
    target = np.asarray(analysis.smoothed_solution(f, noise, [0.2]))
    table = analysis.errors(result, target, checkpoints=False)
    mse = {row["estimator"]: row["mse"] for row in table}
    assert _within_rounding(mse["x"], last), mse
    assert _within_rounding(mse["x_avg"], averaged) or _within_rounding(mse["v_avg"], averaged), mse
    assert _within_rounding(mse["x"] / mse["x_avg"], factor), mse
