"""The analyses/ scripts run end to end (on a tiny local model) and results_tables prints every table."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pandas as pd
import pytest

ANALYSES = Path(__file__).parents[2] / "analyses"
SCRIPTS = ("fig3_saliency", "fig4_isolation", "fig5_auroc", "fig6_diagnose", "table1_reweight", "table2_compress")
#: Each script's own options, after the shared ones (a repeated option overrides), kept small: the tables and
#: claims need a result per experiment, not the paper's sizes. Isolation's k = 5 is the claim's row; diagnosis
#: tops every class up to 30 inputs (240 over both tasks), so it runs them in few batches (the batch size changes
#: no number: tests/unit/test_batch_invariance.py).
SCRIPT_OPTIONS = {
    "fig4_isolation": ["--k", "5"],
    "fig6_diagnose": ["--batch-size", "16"],
    "table1_reweight": ["--epochs", "2"],
    "table2_compress": ["--random-draws", "2"],
}


def run_script(name: str, argv: list[str], monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(ANALYSES))  # the scripts import their shared `_common`
    monkeypatch.setattr(sys, "argv", [f"{name}.py", *argv])
    runpy.run_path(str(ANALYSES / f"{name}.py"), run_name="__main__")


@pytest.fixture(scope="module")
def analyses_out(tiny_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("analyses")
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in SCRIPTS:
            # TREC's 5-shot baseline (30 demonstrations) is longer than the tiny model's 512-token context.
            tasks = ["sst2"] if name == "table1_reweight" else ["sst2", "trec"]
            extra = SCRIPT_OPTIONS.get(name, [])
            run_script(
                name,
                [
                    "--models",
                    str(tiny_folder),
                    "--tasks",
                    *tasks,
                    "--seeds",
                    "1",
                    "--n-test",
                    "4",
                    "--batch-size",
                    "2",
                    "--out",
                    str(out),
                    *extra,
                ],
                monkeypatch,
            )
    return out / Path(tiny_folder).name


def test_results_tables_prints_all_eight_tables_and_the_matrices(analyses_out, monkeypatch, capsys):
    run_script("results_tables", [str(analyses_out), "--matrices", "trec", "--heatmaps"], monkeypatch)
    printed = capsys.readouterr().out
    titles = [line for line in printed.splitlines() if line.startswith("#### ")]
    assert [t.split(" (")[0].split(",")[0] for t in titles] == [
        "#### Saliency",
        "#### Isolation",
        "#### AUROC and R_l",
        "#### Error diagnosis",
        "#### Anchor re-weighting",
        "#### Context compression",
        "#### Context compression per task",
        "#### Hidden_anchor speed-up",
        "#### Confusion matrices",
    ]
    # Diagnosis tops every class up to 30 inputs (its own protocol), so its n is larger than --n-test.
    assert all("seeds [1], n = 4 per task and seed" in t for i, t in enumerate(titles[:8]) if i != 3)
    assert "seeds [1], n = " in titles[3]
    assert "| paper, GPT2-XL | Anchor re-weighting (1-shot per class) | 90.1 |" in printed
    assert (
        "| task | model | ICL | Text_anchor | Hidden_random | Hidden_random-top | Hidden_anchor | kept / demo tokens |"
        in printed
    )
    assert "| class | predicted: ABBR |" in printed
    heatmaps = list(analyses_out.rglob("diagnose-trec.svg"))
    assert len(heatmaps) == 1 and f"]({heatmaps[0].as_posix()})" in printed
    assert heatmaps[0].read_text().count("<rect") == 1 + 2 * 6 * 6  # background and two 6-class matrices


def test_heatmaps_without_matrices_is_refused(tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_script("results_tables", [str(tmp_path), "--heatmaps"], monkeypatch)
    assert exit_info.value.code == 2 and "add e.g. --matrices trec" in capsys.readouterr().err


def test_claims_judges_what_the_scripts_wrote(analyses_out, monkeypatch, capsys):
    # The summaries the experiments save are what analyses/claims.py reads: every experiment with a summary
    # gets checks (a renamed column, key or metric would leave it none: not shown, with the reason).
    with pytest.raises(SystemExit) as exit_info:  # claims.py exits with its status (1 when a README is stale)
        run_script("claims", [str(analyses_out)], monkeypatch)
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    rows = {line.split(" | ")[0].lstrip("| "): line for line in printed.splitlines() if line.startswith("| ")}
    by_experiment = {
        "saliency": ("1a", "1b", "1c"),
        "isolation": ("2 (k=5)",),
        "auroc": ("3a", "3b"),
        "reweight": ("4a", "4b"),
        "compress": ("5a", "5b", "5c"),
    }
    judged = [experiment for experiment in by_experiment if (analyses_out / f"{experiment}_summary.csv").is_file()]
    assert {"saliency", "isolation", "auroc", "reweight"} <= set(judged)

    def checked(number: str) -> bool:
        """The finding has checks (its "checks holding" cell is not "-"): the data was read. At these sizes a
        verdict may still be "not shown" when no check can decide (one seed; an AUROC defined on fewer than two
        seeds), or, for 5c, when ICL beats the no-demonstration baseline on no task: the reason then says so."""
        cells = rows[number].split(" | ")
        return cells[5] != "-" or "not testable" in cells[4]

    for experiment in judged:
        for number in by_experiment[experiment]:
            assert checked(number), rows[number]
    assert checked("5d"), rows["5d"]  # the speed-up comes from compress.csv's seed rows


def test_compression_moved_compares_only_the_parts_both_folders_hold(tmp_path, monkeypatch, capsys):
    def part(folder: str, seed: int, accuracy: float, kept: int, task: str = "sst2") -> None:
        path = tmp_path / folder / "parts" / "compress" / f"{task}-seed{seed}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame(
            {
                "task": task,
                "model": "m",
                "seed": seed,
                "method": ["hidden_anchor", "icl"],
                "label_loyalty": [0.9, 1.0],
                "word_loyalty": [0.7, 1.0],
                "accuracy": [accuracy, 0.5],
                "kept_tokens": [kept, 57],
                "n": 200,
            }
        )
        frame.to_csv(path, index=False)

    part("format1/m", 42, 0.6, 18)
    part("format1/m", 43, 0.1, 99)  # not regenerated yet: left out of the comparison
    part("m", 42, 0.55, 12)

    def exit_code(*options: str) -> int:
        with pytest.raises(SystemExit) as stopped:
            run_script("compression_moved", ["--results", str(tmp_path), *options], monkeypatch)
        return stopped.value.code

    assert exit_code("--models", "m") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Generated by `python analyses/compression_moved.py --models m`")
    assert lines[4:] == [
        "| m | sst2 (42) | ICL | 100.0 → 100.0 | 100.0 → 100.0 | 50.0 → 50.0 | 57 → 57 |",
        "| m | sst2 (42) | Hidden_anchor | 90.0 → 90.0 | 70.0 → 70.0 | 60.0 → 55.0 | 18 → 12 |",
    ]
    page = tmp_path / "page.md"
    page.write_text("Before.\n<!-- compression-moved:start -->\nold\n<!-- compression-moved:end -->\nAfter.\n")
    assert exit_code("--models", "m", "--check", str(page)) == 1
    assert exit_code("--models", "m", "--write", str(page)) == 0
    assert "| m | sst2 (42) | Hidden_anchor | 90.0 → 90.0 |" in page.read_text()
    assert page.read_text().startswith("Before.\n") and page.read_text().endswith("After.\n")
    assert exit_code("--models", "m", "--check", str(page)) == 0
    capsys.readouterr()
    assert exit_code("--models", "m", "--methods", "hidden_anchor") == 0
    printed = capsys.readouterr().out
    assert (
        "--methods hidden_anchor` from the parts both folders hold; do not edit by hand. Method: Hidden_anchor."
        in printed
    )
    assert printed.splitlines()[-1] == "| m | sst2 (42) | 90.0 → 90.0 | 70.0 → 70.0 | 60.0 → 55.0 | 18 → 12 |"
    part("format1/m", 43, 0.2, 50, task="trec")
    part("m", 43, 0.4, 44, task="trec")
    assert exit_code("--models", "m", "--methods", "hidden_anchor", "--mean-over-tasks") == 0
    printed = capsys.readouterr().out  # each task weighs the same: (60 + 20) / 2 -> (55 + 40) / 2
    # Each task with its own seeds: a mean over tasks never claims a seed that one of them lacks.
    assert (
        printed.splitlines()[-1] == "| m | sst2 (42), trec (43) | 90.0 → 90.0 | 70.0 → 70.0 | 40.0 → 47.5 | 34 → 28 |"
    )
    with pytest.raises(SystemExit, match="no \\(task, seed\\) compression part"):
        run_script("compression_moved", ["--results", str(tmp_path), "--models", "other"], monkeypatch)


def test_repository_compression_blocks_match_the_parts(monkeypatch, capsys):
    """README's Hidden_anchor rows and the results page's full table are what the committed parts give now."""
    monkeypatch.chdir(ANALYSES.parent)
    for options, page in ((["--methods", "hidden_anchor", "--mean-over-tasks"], "README.md"), ([], "docs/results.md")):
        with pytest.raises(SystemExit) as stopped:
            run_script("compression_moved", [*options, "--check", page], monkeypatch)
        assert stopped.value.code == 0, capsys.readouterr().out


def test_every_script_writes_its_table_beside_the_others(analyses_out, tiny_folder):
    # Results go to OUT/<model folder's name>, not into the model's own folder (a path as the model name).
    assert not any(Path(tiny_folder).glob("*.csv"))
    for experiment in ("saliency", "isolation", "auroc", "diagnose", "reweight", "compress"):
        frame = pd.read_csv(analyses_out / f"{experiment}.csv")
        tasks = ["sst2"] if experiment == "reweight" else ["sst2", "trec"]
        assert sorted(frame["task"].unique()) == tasks and set(frame["seed"]) == {1}


def test_class_agreement_compares_the_first_inputs_and_leaves_out_rows_that_depend_on_the_others(monkeypatch):
    """A subset check joins the committed rows of the recomputed inputs only, drops compression's best draw
    (chosen over all inputs), refuses diagnosis (PCA over all inputs) and says whether the two are identical."""
    monkeypatch.syspath_prepend(str(ANALYSES))
    import class_agreement

    def rows(examples, loyalty):
        methods = ("hidden_anchor", "hidden_random_top")
        return pd.DataFrame(
            [
                {
                    "example": e,
                    "method": m,
                    "prediction": 1,
                    "label_loyalty": loyalty,
                    "word_loyalty": 0.5,
                    "correct": 1,
                }
                for e in examples
                for m in methods
            ]
        )

    committed, fresh = rows(range(10), 1.0), rows(range(3), 1.0)
    fresh.loc[fresh["method"] == "hidden_random_top", "label_loyalty"] = 0.0  # another best draw on 3 inputs
    report = class_agreement.compare_part(committed, fresh, "compress", subset=True)
    assert report["rows"] == 3 and report["identical"]
    fresh.loc[0, "word_loyalty"] = 0.25
    changed = class_agreement.compare_part(committed, fresh, "compress", subset=True)
    assert not changed["identical"] and changed["word_loyalty"]["max_abs_diff"] == 0.25
    with pytest.raises(SystemExit, match="not the same inputs"):
        class_agreement.compare_part(committed, fresh, "compress")  # without subset: not the same inputs
    with pytest.raises(SystemExit, match="PCA over all inputs"):
        class_agreement.compare_part(committed, fresh, "diagnose", subset=True)
