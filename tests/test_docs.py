"""The documentation site builds in strict mode: API pages from the docstrings, the CLI reference.

The site is built as `make docs` builds it (mkdocs.yml, `mkdocs build --strict`), in this process
and into a temporary folder. Executing the notebooks is `make docs`'s job (and
tests/test_notebooks.py runs them in fast mode): here the executed copies are stand-ins, the
stored notebooks with one tiny figure each, which is enough to check that the pages are made
and show the figures. Strict mode turns every warning into a failure: a cross-reference to a
name that is not documented, a broken link, a notebook copy without figures.
"""

import importlib.util
import logging
import pathlib
import re
import shutil

import nbformat
import pytest

mkdocs_config = pytest.importorskip("mkdocs.config", reason="the docs extra: pip install -e '.[docs]'")
from mkdocs.commands.build import build  # noqa: E402
from mkdocs.exceptions import Abort  # noqa: E402

import analysis  # noqa: E402
import figures  # noqa: E402
import objectives  # noqa: E402
import simulate  # noqa: E402
import theory  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = ROOT / "mkdocs.yml"
PACKAGES = {"objectives": objectives, "simulate": simulate, "analysis": analysis, "theory": theory, "figures": figures}


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PIXEL_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="


def build_site(site_dir, monkeypatch, docs_dir=None, executed="none"):
    """`mkdocs build --strict` of mkdocs.yml into site_dir (optionally from another docs folder)."""
    monkeypatch.setenv("ASGD_DOCS_NOTEBOOKS", str(executed))
    monkeypatch.setenv("NO_MKDOCS_2_WARNING", "1")
    monkeypatch.chdir(site_dir.parent)  # mkdocs-jupyter's cache (build/.cache) goes there, not into the repository
    overrides = {"site_dir": str(site_dir), "strict": True}
    if docs_dir is not None:
        overrides["docs_dir"] = str(docs_dir)
    build(mkdocs_config.load_config(str(CONFIG), **overrides))


def stand_in_copies(folder: pathlib.Path) -> pathlib.Path:
    """The stored notebooks with a one-pixel figure in their first code cell, marked fast mode."""
    for source in NOTEBOOKS:
        notebook = nbformat.read(source, as_version=4)
        cell = next(cell for cell in notebook.cells if cell.cell_type == "code")
        cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": PIXEL_PNG})]
        notebook.metadata["asgd"] = {"fast": True}
        nbformat.write(notebook, folder / source.name)
    return folder


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site_dir = tmp_path_factory.mktemp("site")
    with pytest.MonkeyPatch.context() as monkeypatch:
        build_site(site_dir, monkeypatch, executed=stand_in_copies(tmp_path_factory.mktemp("executed")))
    return site_dir


def anchors(page: pathlib.Path) -> set[str]:
    return set(re.findall(r'id="([^"]+)"', page.read_text()))


def test_api_pages_document_every_name_in_all(site):
    for name, package in PACKAGES.items():
        documented = anchors(site / "api" / name / "index.html")
        missing = [f"{name}.{member}" for member in package.__all__ if f"{name}.{member}" not in documented]
        assert not missing, f"docs/api/{name}.md does not document {missing}"
    # Names imported over a submodule of the same name (docs/griffe_exports.py), a submodule's
    # members, and no internal module.
    simulate_page = anchors(site / "api" / "simulate" / "index.html")
    assert {"simulate.run", "simulate.noise.gaussian", "simulate.randomness.noise_block"} <= simulate_page
    assert "simulate.engine" not in simulate_page
    assert "analysis.errors" in anchors(site / "api" / "analysis" / "index.html")
    assert {"theory.quadratic_law", "theory.stationary_law", "theory.quadratic.quadratic_mse_curves"} <= anchors(site / "api" / "theory" / "index.html")
    assert "objectives.sharp_flat" in anchors(site / "api" / "objectives" / "index.html")


def test_api_pages_render_the_docstrings(site):
    page = (site / "api" / "simulate" / "index.html").read_text()
    assert "<strong>Arguments:</strong>" in page  # the **Arguments:** Markdown lists, as written
    assert "<code>n_chains</code>: C &gt;= 1 independent chains per step size." in page


def test_cli_reference_is_the_parsers_help(site):
    page = (site / "cli" / "index.html").read_text()
    for command in ("reproduce", "run", "list", "plot", "demo"):
        assert f"usage: asgd {command}" in page, f"no --help of `asgd {command}` on the CLI page"
    assert "--quick" in page and "sharp_flat_tradeoff" in page  # an option; `asgd list` output


def test_config_reference_page_is_built_from_the_schema(site):
    page = (site / "config" / "index.html").read_text()
    assert "Config reference" in page and "<code>rippled_quadratic</code>" in page and "<code>student_t</code>" in page
    assert "<code>n_grid</code>" in page and "<code>replications</code>" in page  # sweep and network tables
    # The application's API page: the config, sweep and figure entry points a user calls.
    assert {"asgd.config.load_config", "asgd.sweep.run_sweep", "asgd.experiment_figures.draw_figures",
            "asgd.experiment_figures.drawn_estimators", "asgd.networks.load", "asgd.networks.run"} <= anchors(site / "api" / "asgd" / "index.html")


def test_cross_references_resolve_to_the_api_pages(site):
    page = (site / "getting-started" / "index.html").read_text()
    assert 'href="../api/simulate/#simulate.run"' in page


def test_notebook_pages_show_the_figures(site):
    overview = (site / "notebooks" / "index.html").read_text()
    for source in NOTEBOOKS:
        assert f'href="{source.stem}/"' in overview, f"the notebooks page does not link {source.name}"
        page = (site / "notebooks" / source.stem / "index.html").read_text()
        assert f"data:image/png;base64,{PIXEL_PNG}" in page, f"{source.name}: its figure is not on its page"
        assert "ASGD_FAST=1" in page  # the note on copies executed at small sizes


def test_broken_cross_reference_fails_the_strict_build(tmp_path, monkeypatch, caplog):
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs)
    with open(docs / "api" / "simulate.md", "a") as page:
        page.write("\nSee also [simulate.no_such_function][].\n")
    with caplog.at_level(logging.WARNING), pytest.raises(Abort, match="strict mode"):
        build_site(tmp_path / "site", monkeypatch, docs_dir=docs)
    assert "simulate.no_such_function" in caplog.text


def load_hooks():
    spec = importlib.util.spec_from_file_location("asgd_docs_hooks", ROOT / "docs" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    return hooks


def test_notebook_copies_without_figures_or_missing_are_refused(tmp_path, monkeypatch, caplog):
    """Executed under MPLBACKEND=Agg, a notebook holds no image: the build must not publish it."""
    sources = NOTEBOOKS
    for source in sources[1:]:
        shutil.copy(source, tmp_path / source.name)  # stored copies: no outputs, so no figure
    monkeypatch.setenv("ASGD_DOCS_NOTEBOOKS", str(tmp_path))
    config = mkdocs_config.load_config(str(CONFIG), site_dir=str(tmp_path / "site"))
    with caplog.at_level(logging.WARNING):
        load_hooks().on_config(config)
    assert f"{sources[0].name}: no executed copy" in caplog.text
    for source in sources[1:]:
        assert f"{source.name}: the executed copy" in caplog.text and "holds no figure" in caplog.text
    section = next(item["Notebooks"] for item in config.nav if isinstance(item, dict) and "Notebooks" in item)
    assert [next(iter(entry.values())) for entry in section[1:]] == [f"notebooks/{s.name}" for s in sources[1:]]


def test_stale_notebook_copy_is_refused(tmp_path, monkeypatch, caplog):
    source = NOTEBOOKS[0]
    notebook = nbformat.read(source, as_version=4)
    code = next(cell for cell in notebook.cells if cell.cell_type == "code")
    code.source += "\n# edited after the copy was executed"
    code.outputs = [nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo="})]
    nbformat.write(notebook, tmp_path / source.name)
    monkeypatch.setenv("ASGD_DOCS_NOTEBOOKS", str(tmp_path))
    config = mkdocs_config.load_config(str(CONFIG), site_dir=str(tmp_path / "site"))
    with caplog.at_level(logging.WARNING):
        load_hooks().on_config(config)
    assert f"{source.name}: the executed copy" in caplog.text and "is stale" in caplog.text
    assert "holds no figure" not in caplog.text  # it has one


def test_getting_started_examples_run():
    page = (ROOT / "docs" / "getting-started.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    assert blocks, "the getting-started page shows no Python example"
    for block in blocks:
        exec(compile(block, "docs/getting-started.md", "exec"), {})
