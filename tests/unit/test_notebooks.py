"""The notebooks: one per paper section and one for your own prompts, each importing only the public API (they
run top to bottom in tests/integration/test_notebooks.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))


def test_there_is_one_notebook_per_paper_section_and_one_for_your_own_prompts():
    assert [path.stem.split("_", 1)[1] for path in NOTEBOOKS] == [
        "information_flow",
        "isolation",
        "auroc",
        "reweighting",
        "compression",
        "error_diagnosis",
        "your_own_prompts",  # every analysis of §1-§4 of issue 14 on hand-written prompts, public API only
    ]


def test_notebooks_import_only_the_public_api():
    """`anchorlens` and `anchorlens.plots`: what a user is told to import, so the notebooks show the public API."""
    import ast
    import importlib.util

    def imported(node: ast.ImportFrom, name: str) -> str:
        """The module `from <module> import <name>` takes: the submodule if `name` is one, else <module>."""
        full = f"{node.module}.{name}"
        return full if importlib.util.find_spec(full) is not None else node.module or ""

    allowed = {"anchorlens", "anchorlens.plots"}
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type != "code":
                continue
            for node in ast.walk(ast.parse(cell.source)):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "anchorlens":
                    names = [imported(node, alias.name) for alias in node.names]
                else:
                    continue
                inside = [name for name in names if name.split(".")[0] == "anchorlens" and name not in allowed]
                assert not inside, f"{path.name} imports {inside}; use anchorlens.<name> or anchorlens.plots"
