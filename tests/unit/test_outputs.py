"""A results folder: `run_*(..., out=)` in Python writes what the command writes, and `load_result` reads it."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

import anchorlens as al
from anchorlens.cli import main
from anchorlens.errors import InvalidConfigError
from anchorlens.outputs import OUTPUT_FILES, folder_readme

DOCS = Path(__file__).resolve().parents[2] / "docs" / "experiments" / "index.md"


def _files(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


@pytest.fixture(scope="module")
def python_and_cli_folders(tmp_path_factory, tiny_folder):
    """One saliency run into a folder from Python, the same from the command line into another."""
    python_folder = tmp_path_factory.mktemp("python") / "sal"
    cli_folder = tmp_path_factory.mktemp("cli") / "sal"
    model = al.load_model(str(tiny_folder))
    config = al.SaliencyConfig(seeds=(42,), n_test=3)
    al.run_saliency(model, "sst2", config, out=python_folder, progress=False)
    args = ["saliency", "--task", "sst2", "--model", str(tiny_folder), "--n-test", "3", "--seeds", "42"]
    assert main([*args, "--out", str(cli_folder), "--no-progress"]) == 0
    return python_folder, cli_folder


def test_python_out_writes_what_the_command_writes_and_no_lock(python_and_cli_folders):
    python_folder, cli_folder = python_and_cli_folders
    files = _files(python_folder)
    assert files == _files(cli_folder)
    assert {"saliency.csv", "saliency_summary.csv", "saliency.html", "plotly.min.js", "README.md"} <= files
    assert not [name for name in files if name.endswith(".lock")]


def test_load_result_returns_the_folders_summary(python_and_cli_folders):
    python_folder, cli_folder = python_and_cli_folders
    loaded = al.load_result(python_folder)
    assert isinstance(loaded, al.SaliencyResult)
    pd.testing.assert_frame_equal(loaded.summary(), al.load_result(cli_folder, "saliency").summary())
    written = pd.read_csv(python_folder / "saliency_summary.csv")
    pd.testing.assert_frame_equal(loaded.summary_with_ci().reset_index(drop=True), written, check_dtype=False)


def test_the_figures_share_one_plotly_js(python_and_cli_folders):
    python_folder, _ = python_and_cli_folders
    html = (python_folder / "saliency.html").read_text()
    assert 'src="plotly.min.js"' in html
    assert len(html) < 500_000  # the 4.6 MB bundle is beside it, not inside
    assert (python_folder / "plotly.min.js").stat().st_size > 1_000_000


def test_the_folder_readme_names_its_files_and_columns(python_and_cli_folders):
    python_folder, _ = python_and_cli_folders
    readme = (python_folder / "README.md").read_text()
    assert readme == folder_readme(python_folder)
    for name in ("saliency.csv", "saliency_examples.parquet", "saliency_summary.csv", "saliency.html", "parts/"):
        assert f"`{name}`" in readme
    assert "`S_pq_raw`" in readme and "`ci_low`" in readme


def test_the_docs_list_every_output_file_in_the_same_words():
    docs = re.sub(r"\s+", " ", DOCS.read_text())
    for name, text in OUTPUT_FILES:
        shown = name.replace("{experiment}", "<experiment>").replace("{figure}", "<figure>")
        assert f"`DIR/{shown}`" in docs, name
        assert text in docs, text


def test_load_result_refuses_what_it_cannot_read(tmp_path, python_and_cli_folders):
    with pytest.raises(InvalidConfigError, match="no anchorlens results"):
        al.load_result(tmp_path)
    python_folder, _ = python_and_cli_folders
    with pytest.raises(InvalidConfigError, match="holds no auroc results"):
        al.load_result(python_folder, "auroc")
    with pytest.raises(InvalidConfigError, match="unknown experiment 'nope'"):
        al.load_result(python_folder, "nope")


def test_rewrite_folder_redraws_inlined_figures_to_share_plotly_js(tmp_path, python_and_cli_folders):
    import shutil

    from anchorlens.outputs import rewrite_folder
    from anchorlens.plots import plot_saliency, save_figure

    python_folder, _ = python_and_cli_folders
    folder = tmp_path / "old"
    shutil.copytree(python_folder, folder)
    (folder / "plotly.min.js").unlink()
    save_figure(plot_saliency(al.load_result(folder)), folder / "saliency")  # self-contained, as before
    assert (folder / "saliency.html").stat().st_size > 1_000_000
    assert rewrite_folder(folder) == ["saliency"]
    assert (folder / "saliency.html").stat().st_size < 500_000 and (folder / "plotly.min.js").is_file()


def test_a_figure_saved_twice_is_byte_identical(tmp_path, python_and_cli_folders):
    """A rerun into a folder under git rewrites its figures: they change only where the data do (plotly's div
    id would otherwise be random on every write)."""
    from anchorlens.plots import plot_saliency, save_figure

    python_folder, _ = python_and_cli_folders
    figure = plot_saliency(al.load_result(python_folder))
    first = Path(save_figure(figure, tmp_path / "one" / "saliency", plotlyjs="beside")[0]).read_bytes()
    second = Path(save_figure(figure, tmp_path / "two" / "saliency", plotlyjs="beside")[0]).read_bytes()
    assert first == second and b'id="anchorlens-saliency"' in first


def test_the_committed_results_hold_plotly_js_at_most_once_per_folder():
    results = DOCS.parents[1] / "results"
    assert results.is_dir()
    for folder in sorted({path.parent for path in results.rglob("*.html")}):
        copies = [path.name for path in folder.glob("*.html") if "* plotly.js v" in path.read_text(encoding="utf-8")]
        copies += [path.name for path in folder.glob("*.js")]
        assert len(copies) <= 1, f"{folder} holds plotly.js {len(copies)} times: {copies}"
