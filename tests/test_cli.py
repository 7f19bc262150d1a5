"""The command line: `anchorlens prompt --json` on all tasks and both offline tokenizers, and error exits."""

from __future__ import annotations

import json
import subprocess
import sys

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
