"""Every notebook runs top to bottom in fast mode (ASGD_FAST=1) and its assertions hold.

Outputs are not kept in git (the notebooks are stored stripped); figures go to a temporary
folder here (ASGD_FIGURES), to notebooks/figures/ with `make notebooks`.
"""

import os
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_notebooks_exist():
    assert NOTEBOOKS, "no notebooks found in notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_fast_mode(path, tmp_path, monkeypatch):
    monkeypatch.setenv("ASGD_FAST", "1")
    monkeypatch.setenv("ASGD_FIGURES", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.get("outputs"), f"{path.name} is stored with outputs: strip them (see README)"
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    assert any(tmp_path.glob("*.png")), f"{path.name} saved no figure"
