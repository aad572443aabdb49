"""Objectives written in Python and named from a config (`kind = "python"`, asgd.python_objective):
the module next to the config is found, its keyword arguments come from [objective.args], and
every failure names objective.function."""

import sys
import textwrap

import numpy as np
import pytest

from asgd.cli import main
from asgd.config import ConfigError, load_config
from support import python_config

MODULE = textwrap.dedent('''
    import jax.numpy as jnp
    import objectives

    def make_objective(depth=1.0, shift=0.0):
        """depth (x^2 - 1)^2 + shift x: a double well."""
        return objectives.from_function(lambda x: depth * (x[0] ** 2 - 1.0) ** 2 + shift * x[0], 1, name="user_wells")

    not_callable = 3

    def not_an_objective():
        return 42
''')

@pytest.fixture
def study(tmp_path, monkeypatch):
    """A folder with a user module (a unique name per test) and a function writing configs there."""
    module = f"wells_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path.parent)  # not the module's folder: it is found next to the config

    def write(function=f"{module}:make_objective", args="[objective.args]\ndepth = 2.0\nshift = 0.5", name="python_study"):
        return python_config(tmp_path / "study.toml", function.format(module=module), name=name, args=args)

    write.module = module
    yield write
    for name in (module, "broken_dependency"):  # forget the user modules after the test
        sys.modules.pop(name, None)


def test_a_python_objective_next_to_the_config_is_built_with_its_args_and_runs(study, tmp_path, capsys):
    config = load_config(study())
    f = config.objective
    assert f.name == "user_wells" and f.dim == 1
    x = np.array([[0.0], [1.5], [-2.0]], np.float32)
    expected = 2.0 * (x[:, 0] ** 2 - 1.0) ** 2 + 0.5 * x[:, 0]
    np.testing.assert_allclose(np.asarray(f.value(x)), expected, rtol=1e-6)
    assert str(tmp_path) not in sys.path  # the config's folder is searched during the import only
    assert main(["run", str(study()), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert "python_study" in capsys.readouterr().out
    assert (tmp_path / "out" / "python_study" / "results.csv").exists()


def test_asgd_plot_finds_the_python_objective_where_the_run_found_it(study, tmp_path, capsys):
    """The result folder records the config's folder; `asgd plot` looks there from any working
    directory (not the module's folder), and names that folder when the module has moved."""
    path = study()
    path.write_text(path.read_text().replace('figures = []', 'figures = ["tradeoff"]'))
    folder = tmp_path / "out" / "python_study"
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    (folder / "tradeoff.png").unlink()
    sys.modules.pop(study.module)  # a fresh process: the module is not imported yet
    capsys.readouterr()
    assert main(["plot", str(folder)]) == 0, capsys.readouterr().err
    assert (folder / "tradeoff.png").exists()
    assert str(tmp_path) not in sys.path
    sys.modules.pop(study.module)
    (tmp_path / f"{study.module}.py").rename(tmp_path / "moved.py")
    capsys.readouterr()
    assert main(["plot", str(folder)]) == 2
    assert f"module {study.module!r} not found (looked in the config's folder {str(tmp_path)!r}" in capsys.readouterr().err


def test_without_args_the_function_gets_its_defaults(study):
    f = load_config(study(args="")).objective
    np.testing.assert_allclose(float(f.value(np.array([2.0], np.float32))), 9.0)


@pytest.mark.parametrize(
    "function, args, message",
    [
        ("no_such_module_here:make", "", r"objective.function = 'no_such_module_here:make': module 'no_such_module_here' not found \(looked in the config's folder"),
        ("{module}:missing", "", r"objective.function = '{module}:missing': module '{module}' has no attribute 'missing'"),
        ("{module}:not_callable", "", r"objective.function = '{module}:not_callable': 'not_callable' in module '{module}' is not callable"),
        ("{module}:not_an_objective", "", r"objective.function = '{module}:not_an_objective': must return an objectives.Objective .*returned a int"),
        ("{module}:make_objective", "[objective.args]\ncolour = 1", r"objective.function = '{module}:make_objective': calling it with objective.args = \{{'colour': 1\}} raised TypeError"),
        ("{module}", "", r"objective.function = '{module}': must be 'module:function'"),
        ("{module}:make-objective", "", r"objective.function = '{module}:make-objective': must be 'module:function'"),
    ],
    ids=["module-missing", "attribute-missing", "not-callable", "not-an-objective", "bad-args", "no-colon", "not-a-name"],
)
def test_each_failure_names_objective_function(study, function, args, message):
    with pytest.raises(ConfigError, match=message.format(module=study.module)):
        load_config(study(function=function, args=args))


def test_a_module_that_fails_to_import_and_a_missing_function_key_are_named(study, tmp_path):
    (tmp_path / "broken_dependency.py").write_text("import surely_not_installed_package\n")
    with pytest.raises(ConfigError, match=r"objective.function = 'broken_dependency:f': importing module 'broken_dependency' failed: ModuleNotFoundError"):
        load_config(study(function="broken_dependency:f", args=""))
    path = study()
    path.write_text(path.read_text().replace(f'function = "{study.module}:make_objective"', ""))
    with pytest.raises(ConfigError, match="objective.function = None: missing"):
        load_config(path)


def test_a_search_box_lets_a_python_objective_have_smoothed_targets_figures_and_the_law(study, tmp_path, capsys):
    """`objective.search_box` gives an objective without its own box one: v*(eta) targets, the
    basins and landscape figures and the exact law's default grid then work from a config.
    Without it the run is refused, naming the key to add."""
    path = study()
    text = path.read_text().replace('kind = "point"\npoint = [1.0]', 'kind = "smoothed"').replace("figures = []", 'figures = ["basins", "landscape"]')
    path.write_text(text)
    code = main(["run", str(path), "--out", str(tmp_path / "refused"), "--quiet"])
    assert code == 2 and "no default search box" in capsys.readouterr().err
    path.write_text(text.replace(f'function = "{study.module}:make_objective"', f'function = "{study.module}:make_objective"\nsearch_box = [-2.0, 2.0]')
                    + "\n[theory]\nstationary = true\nn_grid = 400\n")  # the law's grid: the search box
    config = load_config(path)
    f = config.objective
    np.testing.assert_array_equal(np.stack(f.search_box(f.params)), [[-2.0], [2.0]])
    assert config.objective.search_box == f.search_box  # equal boxes: one compiled program, not one per build
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    folder = tmp_path / "out" / "python_study"
    assert (folder / "basins.png").exists() and (folder / "landscape.png").exists()
    rows = [line.split(",") for line in (folder / "results.csv").read_text().splitlines()]
    assert any("law" in row for row in rows[1:])
    # v*(eta) of 2 (x^2 - 1)^2 + 0.5 x at eta = 0.05 sits in the left well, near the minimizer of f.
    arrays = np.load(folder / "arrays.npz")
    target = [arrays[k] for k in arrays.files if k.endswith("targets")][0]
    assert -1.1 < float(np.ravel(target)[0]) < -1.0


@pytest.mark.parametrize(
    "box, message",
    [
        ("[1.0, -1.0]", "must have lower < upper"),
        ("[-1.0]", r"must be \[lower, upper\]"),
        ('["a", 1.0]', "objective.search_box"),
        ("[[-1.0, -1.0], [1.0, 1.0]]", "each end must be a number or 1 numbers"),
    ],
)
def test_a_bad_search_box_is_named(study, box, message):
    path = study()
    path.write_text(path.read_text().replace(f'function = "{study.module}:make_objective"', f'function = "{study.module}:make_objective"\nsearch_box = {box}'))
    with pytest.raises(ConfigError, match=message) as error:
        load_config(path)
    assert "objective.search_box" in str(error.value)
