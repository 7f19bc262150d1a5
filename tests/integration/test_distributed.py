"""Data-parallel runs in worker processes: 2 CPU processes (torchrun, gloo) against one process, and a failing
rank that stops the others."""

from __future__ import annotations

import json
import shutil
import textwrap
import time

import pandas as pd
import pytest
import torch

from anchorlens.cli import main
from tests.unit.test_distributed import FAILING_RUN, _rank_parts, _sorted, _torchrun  # the unit tier's helpers


def test_two_processes_merge_to_the_single_process_tables(tmp_path, tiny_folder):
    run = [
        "reproduce",
        "--model",
        str(tiny_folder),
        "--tasks",
        "sst2",
        "emoc",
        "--seeds",
        "42",
        "43",
        "--n-test",
        "6",
        "--experiments",
        "saliency",
        "isolation",
        "--no-progress",
    ]
    single, dist = tmp_path / "single", tmp_path / "dist"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank below
    try:
        assert main([*run, "--out", str(single)]) == 0
    finally:
        torch.set_num_threads(threads)

    # A part finished earlier (here by the single process) is reused, whichever process made it.
    kept = dist / "saliency" / "parts" / "saliency" / "sst2-seed42.csv"
    kept.parent.mkdir(parents=True)
    shutil.copy2(single / "saliency" / "manifest.json", dist / "saliency" / "manifest.json")
    for suffix in (".csv", ".examples.parquet", ".json"):  # a part: seed rows, per-example rows, its record
        shutil.copy2(
            single / "saliency" / "parts" / "saliency" / f"sst2-seed42{suffix}", kept.parent / f"sst2-seed42{suffix}"
        )
    stamp = kept.stat().st_mtime_ns

    result = _torchrun(["-m", "anchorlens.cli", *run, "--out", str(dist)])
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("wrote ") == 1  # rank 0 alone reports

    everything = {(task, seed) for task in ("sst2", "emoc") for seed in (42, 43)}
    for experiment in ("saliency", "isolation"):
        merged = pd.read_csv(dist / experiment / f"{experiment}.csv")
        expected = pd.read_csv(single / experiment / f"{experiment}.csv")
        pd.testing.assert_frame_equal(_sorted(merged), _sorted(expected), check_exact=True)
        for part in (single / experiment / "parts" / experiment).glob("*.csv"):
            assert (dist / experiment / "parts" / experiment / part.name).read_bytes() == part.read_bytes()
        by_rank0, by_rank1 = _rank_parts(dist / experiment, experiment)
        assert by_rank0 and by_rank1 and not by_rank0 & by_rank1  # both ranks worked, never on the same part
        reused = {("sst2", 42)} if experiment == "saliency" else set()
        assert by_rank0 | by_rank1 == everything - reused
    assert kept.stat().st_mtime_ns == stamp
    assert json.loads((dist / "reproduce-manifest.json").read_text())["processes"] == 2
    assert (dist / "report.md").is_file() and (dist / "saliency" / "saliency.html").is_file()


@pytest.mark.parametrize("failing", ["part", "folder"])
def test_a_failing_rank_stops_the_others_instead_of_hanging(tmp_path, failing):
    script = tmp_path / "probe.py"
    script.write_text(textwrap.dedent(FAILING_RUN))
    began = time.monotonic()
    result = _torchrun([str(script), str(tmp_path / "out"), failing], timeout=120)
    assert result.returncode != 0
    assert time.monotonic() - began < 120
    if failing == "part":
        assert "rank 1 broke" in result.stderr
    else:  # every rank exits with rank 0's message
        assert "is not a folder" in result.stderr and "rank 0 stopped the run" in result.stderr
