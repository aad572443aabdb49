"""Record what made a committed notebook figure: `make figures` writes it beside the PNG.

    python docs/record_figure.py notebooks/07_exact_long_run_law.ipynb notebooks/exact_law_sharp_flat.png

writes notebooks/exact_law_sharp_flat.json: the notebook's name, its full-size settings (every
`A if FAST else B` of its code, with B: the sizes of the run that drew the figure), the library
version and the hash of its code cells. tests/test_readme.py compares the settings and the
version with today's notebook and library, as it compares the headline run's config: a figure
whose notebook's sizes changed since is not current (rerun `make figures`). The code hash is kept
for the reader (what exactly ran), not checked: a comment or a reworded print keeps the figure.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import json
import sys
from pathlib import Path

import nbformat


def code_of(notebook_path) -> str:
    """The notebook's code cells, joined."""
    cells = nbformat.read(notebook_path, as_version=4).cells
    return "\n".join(cell.source for cell in cells if cell.cell_type == "code")


def full_size_settings(source: str) -> list[str]:
    """The full-size branch of every `A if FAST else B` (or `B if not FAST else A`), in order of
    the source, as code: `4001` for `N_GRID = 801 if FAST else 4001`."""
    settings = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.IfExp):
            test = node.test
            if isinstance(test, ast.Name) and test.id == "FAST":
                settings.append((node.lineno, node.col_offset, ast.unparse(node.orelse)))
            elif isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and isinstance(test.operand, ast.Name) and test.operand.id == "FAST":
                settings.append((node.lineno, node.col_offset, ast.unparse(node.body)))
    return [setting for _, _, setting in sorted(settings)]


def record(notebook_path) -> dict:
    """What `make figures` stores beside the figure of `notebook_path` (run at full size)."""
    source = code_of(notebook_path)
    return {
        "notebook": Path(notebook_path).name,
        "full_size_settings": full_size_settings(source),
        "version": importlib.metadata.version("asgd-smoothing"),
        "code_sha256": hashlib.sha256(source.encode()).hexdigest(),
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].endswith(".png"):
        print("usage: python docs/record_figure.py NOTEBOOK.ipynb FIGURE.png", file=sys.stderr)
        return 2
    notebook, figure = Path(argv[0]), Path(argv[1])
    figure.with_suffix(".json").write_text(json.dumps(record(notebook), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
