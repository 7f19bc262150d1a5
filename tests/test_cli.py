"""The command line: `anchorlens prompt --json` on all tasks and both offline tokenizers, and error exits."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from anchorlens.cli import main


@pytest.mark.parametrize("model", ["smollm2-135m", "gemma-3-270m"])
@pytest.mark.parametrize("task", ["sst2", "agnews", "trec", "emoc"])
def test_prompt_json(capsys, task, model):
    assert main(["prompt", "--task", task, "--model", model, "--seed", "42", "--json"]) == 0
    view = json.loads(capsys.readouterr().out)
    tokens = view["tokens"]
    assert tokens[view["target_position"]] == ":" and view["target_position"] == len(tokens) - 1
    for name, positions in view["label_positions"].items():
        assert [tokens[p] for p in positions] == [view["label_tokens"][name]]
    if task == "sst2":
        assert view["demonstration_rows"] == [66730, 29890] and view["query_row"] == 726
    if task == "trec":
        assert view["demonstration_rows"] == [3408, 371, 453, 4457, 5315, 168] and view["query_row"] == 473
    assert (tokens[0] == "<bos>") == (model == "gemma-3-270m")


def test_listings(capsys):
    assert main(["tasks"]) == 0
    assert "Abbreviation" in capsys.readouterr().out
    assert main(["models", "--json"]) == 0
    names = [row["name"] for row in json.loads(capsys.readouterr().out)]
    assert names == ["smollm2-135m", "gemma-3-270m"]


def test_bad_input_exits_non_zero_with_one_line_and_no_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "anchorlens.cli", "prompt", "--task", "nope"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "unknown task 'nope'" in result.stderr and "sst2" in result.stderr


@pytest.mark.integration
def test_auroc_command_writes_tables_and_resumes(tmp_path, capsys):
    out = tmp_path / "not" / "there" / "yet"
    args = ["auroc", "--task", "sst2", "--model", "smollm2-135m", "--n-test", "4", "--seeds", "42", "--out", str(out),
            "--no-progress"]
    assert main(args) == 0
    frame = pd.read_csv(out / "auroc.csv")
    assert {"task", "seed", "layer", "auroc", "R"} <= set(frame.columns) and len(frame) == 30
    assert (out / "auroc.html").is_file() and (out / "auroc.parquet").is_file()
    part = out / "parts" / "auroc" / "sst2-seed42.csv"
    stamp = part.stat().st_mtime_ns
    assert main(args) == 0  # resumes: the finished part is not recomputed
    assert part.stat().st_mtime_ns == stamp
    changed = [a if a != "4" else "5" for a in args]
    assert main(changed) == 2
    assert "other settings (n_test differ)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args,message",
    [
        (["saliency", "--task", "sst2", "--n-test", "0", "--out", "x"], "n_test must be at least 1"),
        (["isolation", "--task", "nope", "--out", "x"], "unknown task 'nope'"),
        (["auroc", "--task", "sst2", "--model", "not-a-model", "--out", "x"], "unknown model 'not-a-model'"),
    ],
)
def test_experiment_commands_reject_bad_input(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    assert message in capsys.readouterr().err
