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
