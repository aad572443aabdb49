"""MkDocs hooks: the pages that are generated at build time, never written by hand.

- `cli.md`: the command-line reference, from the real `asgd --help` of each subcommand and the
  output of `asgd list` (in this process, through `asgd.cli.main`, the code `python -m asgd`
  runs), so it cannot drift from the parser.
- `config.md`: the config reference, from the validator's own key sets and the constructors'
  signatures (`asgd.config_reference`).
- `figures/`: the committed PNGs of `notebooks/` (the README's figures), which the guides embed.
- `notebooks/`: the executed copies of `notebooks/*.ipynb` (written by `make notebooks` or
  `make docs`, see docs/execute_notebooks.py), rendered by mkdocs-jupyter without executing them
  again, and an overview page whose titles and summaries come from each notebook's first cell.

Where the executed copies are read from: `ASGD_DOCS_NOTEBOOKS` (a folder, relative to the
repository root or absolute; default `notebooks/executed`), or `ASGD_DOCS_NOTEBOOKS=none` to build
without them (the test suite does, tests/test_docs.py). Every notebook in `notebooks/` must then
have an executed copy there that holds at least one figure and the same code as the stored
notebook; otherwise the build warns, which fails `mkdocs build --strict`. Copies executed with
ASGD_FAST=1 are published with a note saying so.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
from pathlib import Path

import nbformat
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.asgd")

NOTEBOOKS_ENV = "ASGD_DOCS_NOTEBOOKS"
DEFAULT_EXECUTED = "notebooks/executed"
HELP_COLUMNS = "100"

# Filled by on_config for the other events of the same build.
_build: dict = {}


def _root(config) -> Path:
    return Path(config.config_file_path).resolve().parent


def _executed_dir(config) -> Path | None:
    setting = os.environ.get(NOTEBOOKS_ENV, DEFAULT_EXECUTED)
    if setting.strip().lower() == "none":
        return None
    folder = Path(setting)
    return folder if folder.is_absolute() else _root(config) / folder


def _code(notebook) -> list[str]:
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def _has_image(notebook) -> bool:
    return any(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


def _title_and_summary(notebook) -> tuple[str, str]:
    """The first cell's `# heading` and the paragraph after it."""
    first = next((cell.source for cell in notebook.cells if cell.cell_type == "markdown"), "")
    blocks = [block.strip() for block in re.split(r"\n\s*\n", first) if block.strip()]
    title = blocks[0].lstrip("#").strip() if blocks and blocks[0].startswith("#") else ""
    summary = next((block for block in blocks[1:] if not block.startswith("#")), "")
    return title, " ".join(summary.split())


def _nav_title(name: str) -> str:
    """`03_bias_optimization_tradeoff.ipynb` -> `03 · bias optimization tradeoff`."""
    number, _, rest = Path(name).stem.partition("_")
    return f"{number} · {rest.replace('_', ' ')}" if rest else number


def on_config(config):
    """Find the notebooks and their executed copies; add them to the navigation."""
    root = _root(config)
    sources = sorted((root / "notebooks").glob("*.ipynb"))
    executed_dir = _executed_dir(config)
    copies: dict[str, Path] = {}
    if executed_dir is not None:
        for source in sources:
            copy = executed_dir / source.name
            if not copy.exists():
                log.warning(f"{source.name}: no executed copy in {executed_dir}: run `make notebooks` "
                            f"(or `make docs`), or set {NOTEBOOKS_ENV}=none to build without notebooks")
                continue
            executed = nbformat.read(copy, as_version=4)
            if _code(executed) != _code(nbformat.read(source, as_version=4)):
                log.warning(f"{source.name}: the executed copy {copy} is stale (its code differs from "
                            "notebooks/): run `make notebooks` again")
            if not _has_image(executed):
                log.warning(f"{source.name}: the executed copy {copy} holds no figure (was it run under "
                            "MPLBACKEND=Agg?): execute it with docs/execute_notebooks.py")
            copies[source.name] = copy
    _build.clear()
    _build.update(sources=sources, executed_dir=executed_dir, copies=copies, fast=set())
    # Navigation titles from the file names: the notebooks' own headings hold LaTeX, which the
    # navigation shows raw. The pages keep their headings.
    section = ["notebooks/index.md"] + [
        {_nav_title(name): f"notebooks/{name}"} for name in copies
    ]
    config.nav = [item for item in (config.nav or []) if not (isinstance(item, dict) and "Notebooks" in item)]
    config.nav.append({"Notebooks": section})
    return config


def _asgd_output(argv: list[str]) -> str:
    """What `asgd ARGV` prints (stdout), run in this process with a fixed terminal width."""
    from asgd.cli import main  # loads the library: only when a build asks for this page

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            try:
                code = main(argv)
            except SystemExit as stop:  # --help exits 0
                code = stop.code
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous
    if code not in (0, None):
        raise RuntimeError(f"asgd {' '.join(argv)} exited with {code}")
    return buffer.getvalue().rstrip()


def cli_page() -> str:
    top = _asgd_output(["--help"])
    match = re.search(r"\{([a-z_,-]+)\}", top)
    if match is None:
        raise RuntimeError(f"no subcommands found in `asgd --help`:\n{top}")
    commands = match.group(1).split(",")
    lines = [
        "# Command line",
        "",
        "The `asgd` program (also `python -m asgd`), installed with the package. This page is "
        "generated when the site is built, from the program's own `--help` and from `asgd list`.",
        "",
        "```text",
        "$ asgd --help",
        top,
        "```",
    ]
    for command in commands:
        lines += ["", f"## `asgd {command}`", "", "```text", f"$ asgd {command} --help",
                  _asgd_output([command, "--help"]), "```"]
        if command == "list":
            lines += ["", "What it prints:", "", "```text", "$ asgd list", _asgd_output(["list"]), "```"]
    return "\n".join(lines) + "\n"


def notebooks_page() -> str:
    sources, copies = _build["sources"], _build["copies"]
    lines = [
        "# Notebooks",
        "",
        "Each notebook tells one part of the story and asserts its claims: it fails when a claim does "
        "not hold. The stored notebooks (`notebooks/` in the repository) have no outputs; the pages "
        "here are copies executed at full size by `make docs`, figures included. `make notebooks` "
        "writes the same executed copies to `notebooks/executed/`; `ASGD_FAST=1` selects small sizes.",
        "",
    ]
    if _build["executed_dir"] is None:
        lines += [f"!!! note \"Built without notebooks\"", f"    This build was made with `{NOTEBOOKS_ENV}=none`.", ""]
    lines += ["| notebook | what it shows |", "|---|---|"]
    for source in sources:
        title, summary = _title_and_summary(nbformat.read(source, as_version=4))
        name = f"[{title or source.stem}]({source.name})" if source.name in copies else (title or source.stem)
        lines.append(f"| {name} | {summary.replace('|', '&#124;')} |")
    return "\n".join(lines) + "\n"


@event_priority(100)  # before mkdocs-jupyter's on_files, which must see the notebooks
def on_files(files, config):
    files.append(File.generated(config, "cli.md", content=cli_page()))
    from asgd.config_reference import markdown as config_reference  # loads the library, as cli_page

    files.append(File.generated(config, "config.md", content=config_reference()))
    files.append(File.generated(config, "notebooks/index.md", content=notebooks_page()))
    # The committed figures of notebooks/ (the README's), shown by the guides as figures/NAME.png.
    for png in sorted((_root(config) / "notebooks").glob("*.png")):
        files.append(File.generated(config, f"figures/{png.name}", abs_src_path=str(png)))
    for name, copy in _build["copies"].items():
        files.append(File.generated(config, f"notebooks/{name}", abs_src_path=str(copy)))
        if nbformat.read(copy, as_version=4).metadata.get("asgd", {}).get("fast"):
            _build["fast"].add(f"notebooks/{name}")
    return files


def on_nav(nav, config, files):
    """mkdocs-jupyter wraps each notebook File in an object that reads the path from the wrapped
    file's `src_dir`, which a copy outside docs/ does not have: give the wrapper the path."""
    for name, copy in _build["copies"].items():
        wrapped = files.get_file_from_path(f"notebooks/{name}")
        if wrapped is not None and wrapped.abs_src_path is None:
            wrapped.abs_src_path = str(copy)
    return nav


def on_page_content(html, page, config, files):
    if page.file.src_uri in _build.get("fast", ()):
        note = ('<div class="admonition warning"><p class="admonition-title">Small sizes</p><p>This copy '
                "was executed with <code>ASGD_FAST=1</code> (small sizes, same claims); "
                "<code>make docs</code> publishes the full-size run.</p></div>")
        return note + html
    return html
