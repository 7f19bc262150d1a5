"""The command line in worker processes and on the offline models: error exits, a whole `auroc` run and its
resume, `prompt --json` with Gemma-3-270m's tokenizer, an unusable model cache."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from anchorlens.cli import main
from tests.unit import test_cli as unit
from tests.unit.test_cli import _one_error_line  # the unit tier's helpers


def test_bad_input_exits_non_zero_with_one_line_and_no_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "anchorlens.cli", "prompt", "--task", "nope"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "unknown task 'nope'" in result.stderr and "sst2" in result.stderr


@pytest.mark.smoke
def test_reproduce_command_on_smollm2_runs_every_paper_experiment(tmp_path):
    """The smoke set's one command: `anchorlens reproduce` on SmolLM2-135M at a tiny size, every experiment of
    the paper through the real model's hooks into one folder, with a report beside the paper's numbers."""
    out = tmp_path / "reproduce"
    args = ["reproduce", "--model", "smollm2-135m", "--tasks", "sst2", "--n-test", "2", "--batch-size", "2"]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    report = (out / "report.md").read_text(encoding="utf-8")
    for experiment in ("saliency", "isolation", "auroc", "diagnose", "reweight", "compress"):
        frame = pd.read_csv(out / experiment / f"{experiment}.csv")
        assert len(frame) > 0 and set(frame["task"]) == {"sst2"} and set(frame["seed"]) == {42}, experiment
        assert f"## {experiment}" in report
    assert "smollm2-135m" in report and (out / "reproduce-manifest.json").is_file()


def test_auroc_command_writes_tables_and_resumes(tmp_path, capsys):
    out = tmp_path / "not" / "there" / "yet"
    args = [
        "auroc",
        "--task",
        "sst2",
        "--model",
        "smollm2-135m",
        "--n-test",
        "4",
        "--seeds",
        "42",
        "--out",
        str(out),
        "--no-progress",
    ]
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


@pytest.mark.parametrize("task", ["sst2", "agnews", "trec", "emoc"])
def test_prompt_json_on_gemma(capsys, task):
    unit.test_prompt_json(capsys, task, "gemma-3-270m")


def test_an_unusable_model_cache_is_one_line(tmp_path):
    """Issue 17.3: a cache that cannot be written was a NotADirectoryError / PermissionError traceback."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {**os.environ, "ANCHORLENS_CACHE": str(blocker / "cache")}
    result = subprocess.run(
        [sys.executable, "-m", "anchorlens.cli", "prompt", "--task", "sst2"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 2
    assert "it lies below a file; set ANCHORLENS_CACHE to a writable folder" in _one_error_line(result.stderr)
