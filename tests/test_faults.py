"""Faults: a run killed with SIGKILL and rerun gives the tables of an uninterrupted run; same seed, same table."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

pytestmark = pytest.mark.integration


def _command(folder, out):
    return [sys.executable, "-m", "anchorlens.cli", "saliency", "--task", "sst2", "trec", "--model", str(folder),
            "--n-test", "6", "--seeds", "1", "2", "3", "--batch-size", "2", "--out", str(out), "--no-progress"]


def _table(out) -> pd.DataFrame:
    frame = pd.read_csv(out / "saliency.csv")
    return frame.sort_values(["task", "seed", "layer"]).reset_index(drop=True)


def test_sigkill_then_rerun_equals_an_uninterrupted_run(tmp_path, tiny_folder):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    reference = tmp_path / "reference"
    subprocess.run(_command(tiny_folder, reference), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    process = subprocess.Popen(_command(tiny_folder, killed), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    parts = killed / "parts" / "saliency"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None and len(list(parts.glob("*.csv"))) < 2:
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed; make it longer"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished_before = len(list(parts.glob("*.csv")))
    assert 0 < finished_before < 6
    assert not list(parts.glob("*.tmp"))  # only whole parts on disk

    subprocess.run(_command(tiny_folder, killed), check=True, env=env, capture_output=True)
    resumed, expected = _table(killed), _table(reference)
    assert len(resumed) == len(expected) == 2 * 3 * 6  # tasks x seeds x layers, no duplicates
    pd.testing.assert_frame_equal(resumed, expected)
