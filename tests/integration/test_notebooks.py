"""Every notebook runs top to bottom on the real offline model at a small size, so none of them rots."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))


def small_parameters(out: Path) -> str:
    return "\n".join(
        [
            'MODEL = "smollm2-135m"',  # the faster offline model; the notebooks' default is the README's model
            'TASKS = ["sst2", "trec"]',
            "SEEDS = (42,)",
            "N_TEST = 4",
            f"OUT = {str(out)!r}",
        ]
    )


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


@pytest.mark.integration
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    parameters = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(parameters) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    parameters[0].source = small_parameters(tmp_path / "out")
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    figures = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "application/vnd.plotly.v1+json" in output.get("data", {})
    ]
    assert figures, f"{path.name} shows no plotly figure"
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors
