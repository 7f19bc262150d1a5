"""Faults: a run killed with SIGKILL and rerun gives the tables of an uninterrupted run; same seed, same table."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest


def _command(folder, out):
    return [
        sys.executable,
        "-m",
        "anchorlens.cli",
        "saliency",
        "--task",
        "sst2",
        "trec",
        "--model",
        str(folder),
        "--n-test",
        "6",
        "--seeds",
        "1",
        "2",
        "3",
        "--batch-size",
        "2",
        "--out",
        str(out),
        "--no-progress",
    ]


def _table(out) -> pd.DataFrame:
    frame = pd.read_csv(out / "saliency.csv")
    return frame.sort_values(["task", "seed", "layer"]).reset_index(drop=True)


def test_sigkill_then_rerun_equals_an_uninterrupted_run(tmp_path, tiny_folder):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    reference = tmp_path / "reference"
    subprocess.run(_command(tiny_folder, reference), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        _command(tiny_folder, killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    parts = killed / "parts" / "saliency"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None and len(list(parts.glob("*-seed*.json"))) < 2:
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed; make it longer"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished_before = len(list(parts.glob("*-seed*.json")))
    assert 0 < finished_before < 6

    subprocess.run(_command(tiny_folder, killed), check=True, env=env, capture_output=True)
    resumed, expected = _table(killed), _table(reference)
    assert len(resumed) == len(expected) == 2 * 3 * 6  # tasks x seeds x layers, no duplicates
    pd.testing.assert_frame_equal(resumed, expected)


def _isolation_run(model, out):
    from anchorlens.experiments import IsolationConfig
    from anchorlens.orchestrate import run_experiment

    config = IsolationConfig(seeds=(1, 2, 3), n_test=6, batch_size=2, k=(1, 2))
    return run_experiment("isolation", model, ["sst2", "trec"], config, out, progress=False, figure=False)


def _killed_child(model, out, delay: float) -> None:
    """Fork a run (the model is already in memory, so it starts at once) and SIGKILL it after `delay` s."""
    pid = os.fork()
    if pid == 0:  # the child: run, then leave without pytest's cleanup
        code = 0
        try:
            import torch

            torch.set_num_threads(1)
            _isolation_run(model, out)
        except BaseException:
            code = 1
        os._exit(code)
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_twenty_kills_at_random_points_then_a_rerun_equal_an_uninterrupted_run(tmp_path, tiny_folder):
    """Kill a run at 20 seeded random moments (each rerun resumes the last), then finish it: the tables and
    per-example rows equal those of a run never interrupted, and no part is read while half written."""
    import random

    import torch

    from anchorlens.models import load_model

    torch.set_num_threads(1)
    model = load_model(str(tiny_folder))
    began = time.perf_counter()
    reference = _isolation_run(model, tmp_path / "reference")
    whole_run = time.perf_counter() - began

    killed = tmp_path / "killed"
    delays = random.Random(20).choices([whole_run * f for f in (0.05, 0.2, 0.4, 0.6, 0.8, 1.0)], k=20)
    for delay in delays:
        _killed_child(model, killed, delay)
    resumed = _isolation_run(model, killed)
    keys = ["task", "seed", "k", "condition"]
    pd.testing.assert_frame_equal(
        resumed.frame.sort_values(keys).reset_index(drop=True), reference.frame.sort_values(keys).reset_index(drop=True)
    )
    example_keys = [*keys, "example"]
    pd.testing.assert_frame_equal(
        resumed.examples.sort_values(example_keys).reset_index(drop=True),
        reference.examples.sort_values(example_keys).reset_index(drop=True),
    )
