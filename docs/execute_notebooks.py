"""Execute notebooks into a folder, outputs and figures kept: `make notebooks` and `make docs`.

    python docs/execute_notebooks.py OUT_DIR notebooks/01_smoothing_view.ipynb ...

The stored notebooks have no outputs (tests/test_notebooks.py keeps it so); this writes the
executed copies to OUT_DIR under the same names. Figures are embedded as PNG outputs: the kernel
uses matplotlib's inline backend whatever MPLBACKEND says in the caller's environment (under
`MPLBACKEND=Agg`, as the tests set it, a notebook holds no image at all). A copy that holds no
image is an error, and so is a failing cell: nothing is written for that notebook then, so a
stale or half-run copy never reaches the site. ASGD_FAST=1 (small sizes) is recorded in the
copy's metadata (`asgd.fast`); the documentation marks such pages.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def image_count(notebook) -> int:
    """The number of PNG outputs in an executed notebook."""
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


def execute(path: Path, out_dir: Path) -> Path:
    """Run `path` top to bottom in its own folder and write the executed copy to `out_dir`."""
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(notebook, timeout=None, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    images = image_count(notebook)
    if images == 0:
        raise RuntimeError(f"{path.name}: the executed notebook holds no image/png output")
    notebook.metadata["asgd"] = {"fast": os.environ.get("ASGD_FAST") == "1", "seconds": round(seconds, 1)}
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / path.name
    partial = target.with_name(f".{target.name}.partial")
    nbformat.write(notebook, partial)
    partial.replace(target)  # atomic: a reader never sees half a notebook
    print(f"{path.name}: {seconds:.0f} s, {images} figure(s) -> {target}", flush=True)
    return target


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    # The kernel inherits this process's environment.
    os.environ["MPLBACKEND"] = INLINE_BACKEND
    out_dir = Path(argv[0])
    for name in argv[1:]:
        execute(Path(name), out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
