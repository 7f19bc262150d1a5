"""Data-parallel runs: sharding and placement rules, and 2 CPU processes (torchrun, gloo) against one process.

The multi-process tests launch ``python -m torch.distributed.run`` on the tiny local model; both sides run with
one CPU thread per process, since bitwise equality only holds for the same thread count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from anchorlens.cli import main
from anchorlens.distributed import (
    Process,
    check_devices_per_rank,
    init_distributed,
    process_from_env,
    rank_device,
    shard,
    threads_per_rank,
)
from anchorlens.errors import DistributedRunError, InvalidConfigError, ModelLoadError
from anchorlens.models import check_n_devices

TWO_RANKS = Process(rank=1, world_size=2, local_rank=1, local_world_size=2)
LAUNCHER_VARIABLES = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
    "GROUP_RANK",
    "ROLE_RANK",
    "TORCHELASTIC_RUN_ID",
)


# ------------------------------------------------------------------------------------------- pure rules


@pytest.mark.parametrize("world_size", [1, 2, 3, 5, 9])
def test_shard_deals_every_unit_to_exactly_one_rank_in_order(world_size):
    units = [(task, seed) for task in ("sst2", "agnews", "trec", "emoc") for seed in (42, 43)]
    shares = [shard(units, rank, world_size) for rank in range(world_size)]
    assert sorted(unit for share in shares for unit in share) == sorted(units)
    assert all(share == sorted(share, key=units.index) for share in shares)
    assert max(map(len, shares)) - min(map(len, shares)) <= 1  # balanced
    assert shard(units, 0, 3) == [units[0], units[3], units[6]]


def test_shard_refuses_a_rank_outside_the_world():
    with pytest.raises(InvalidConfigError, match="outside world size"):
        shard([1, 2], 2, 2)


def test_process_from_launcher_variables():
    assert process_from_env({}) == Process()
    assert not Process().is_distributed and Process().is_main
    torchrun = {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4"}
    assert process_from_env(torchrun) == Process(rank=5, world_size=8, local_rank=1, local_world_size=4)
    # Without LOCAL_WORLD_SIZE all ranks are taken to share the machine (fewer threads, never too many).
    assert process_from_env({"RANK": "1", "WORLD_SIZE": "2"}).local_world_size == 2
    with pytest.raises(InvalidConfigError, match="not an integer"):
        process_from_env({"WORLD_SIZE": "two"})
    with pytest.raises(InvalidConfigError, match="outside world size"):
        process_from_env({"RANK": "2", "WORLD_SIZE": "2"})


def test_single_process_needs_no_process_group_and_a_half_launch_is_refused():
    assert init_distributed({}) == Process()
    assert not torch.distributed.is_initialized()
    with pytest.raises(DistributedRunError, match="MASTER_ADDR"):
        init_distributed({"RANK": "0", "WORLD_SIZE": "2"})


def test_rank_device():
    assert rank_device(Process(), None, cuda_available=True) is None  # one process: TransformerLens's choice
    assert rank_device(Process(), "cuda", cuda_available=True) == "cuda"
    assert rank_device(TWO_RANKS, None, cuda_available=True) == "cuda:1"
    assert rank_device(TWO_RANKS, "cuda", cuda_available=True) == "cuda:1"
    assert rank_device(TWO_RANKS, None, cuda_available=False) == "cpu"
    assert rank_device(TWO_RANKS, "cuda:0", cuda_available=True) == "cuda:0"  # an explicit choice is kept


def test_threads_per_rank():
    assert threads_per_rank(Process(), 16, None) is None
    assert threads_per_rank(TWO_RANKS, 16, None) == 8
    assert threads_per_rank(Process(0, 8, 0, 8), 4, None) == 1
    assert threads_per_rank(TWO_RANKS, 16, "3") is None  # the user's (or torchrun's) OMP_NUM_THREADS wins


def test_device_split_rules():
    check_devices_per_rank(Process(rank=1, world_size=4, local_rank=0, local_world_size=1), 8)  # one rank per node
    with pytest.raises(InvalidConfigError, match="one process per machine"):
        check_devices_per_rank(TWO_RANKS, 2)
    check_n_devices(1, 0)
    check_n_devices(4, 8)
    with pytest.raises(ModelLoadError, match="needs 2 CUDA GPUs, this machine has 0"):
        check_n_devices(2, 0)
    with pytest.raises(ModelLoadError, match="at least 1"):
        check_n_devices(0, 8)


@pytest.mark.skipif(
    not __import__("anchorlens").model_classes.has_hooked_transformer(),
    reason="splitting a model over GPUs is a HookedTransformer's (transformer-lens 3.9)",
)
def test_n_devices_reaches_transformer_lens_and_the_cli_refuses_missing_gpus(tiny_folder, monkeypatch, capsys):
    import anchorlens.models as models

    args = ["auroc", "--model", str(tiny_folder), "--task", "sst2", "--out", "unused", "--n-devices", "2"]
    if not torch.cuda.is_available():
        assert main(args) == 2
        assert "needs 2 CUDA GPUs" in capsys.readouterr().err
    # Pretend there are two GPUs; with device="cpu" TransformerLens still keeps every block on the CPU.
    monkeypatch.setattr(models, "check_n_devices", lambda n_devices, cuda_devices: None)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    model = models.load_model(str(tiny_folder), device="cpu", n_devices=2)
    assert model.cfg.n_devices == 2


# ------------------------------------------------------------------------------------------ two processes


def _launch_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    env["OMP_NUM_THREADS"] = "1"
    return env


def _torchrun(args: list[str], *, timeout: float = 240) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    return subprocess.run(command, env=_launch_env(), capture_output=True, text=True, timeout=timeout)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in ("task", "seed", "layer", "k", "condition") if c in frame.columns]
    return frame.sort_values(keys).reset_index(drop=True)


def _rank_parts(folder: Path, experiment: str) -> list[set[tuple[str, int]]]:
    records = [json.loads((folder / "ranks" / f"{experiment}-rank{rank}-of-2.json").read_text()) for rank in (0, 1)]
    return [{(part["task"], part["seed"]) for part in record["parts"]} for record in records]


FAILING_RUN = """
import sys
from pathlib import Path
from types import SimpleNamespace

from anchorlens.distributed import init_distributed, run_shard

process = init_distributed()
where, failing = Path(sys.argv[1]), sys.argv[2]
if failing == "folder":
    where.write_text("a file where the output folder should be")  # rank 0 refuses it when creating the manifest


def run_part(task, seed):
    if failing == "part" and process.rank == 1:
        raise RuntimeError("rank 1 broke")  # rank 0 is done with its share and waits at the last barrier


# Stand-ins for a task and an experiment config: importing the experiments would only slow the launch.
config = SimpleNamespace(seeds=(42, 43), signature=lambda: {"n_test": 1})
run_shard("probe", run_part, [SimpleNamespace(name="sst2")], config, where, process)
"""
