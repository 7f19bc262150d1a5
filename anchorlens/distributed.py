"""Data-parallel runs: every process (rank) computes its share of the (task, seed) parts, rank 0 merges them.

Launch any run command under ``torchrun`` or ``accelerate launch`` (docs/scaling.md); both set ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE`` and the rendezvous address, which is what this module
reads. Without them a run is one process and nothing here does anything.

Exactness: the unit of work is a whole (task, seed) part, computed exactly as one process computes it (same
prompts, same batches), and written to the same part file; the merged table is therefore the one a single
process writes, given the same device type and thread count. Resuming works across ranks because a part
already on disk is skipped whoever wrote it.

The ranks never exchange tensors, only wait for each other and hear rank 0's decisions (which parts are
left, or an error), so the process group is always gloo (CPU sockets), also on GPU nodes: it needs no per-GPU
communicator and no NCCL watchdog. A rank that crashes closes its sockets, and the others' next barrier fails
at once (torchrun also stops them).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import torch
import torch.distributed as dist

from anchorlens.errors import DistributedRunError, InvalidConfigError

if TYPE_CHECKING:
    from anchorlens.experiments.common import ExperimentConfig
    from anchorlens.tasks import Task

T = TypeVar("T")

#: How long a barrier waits. The last barrier of an experiment waits for the slowest rank's whole share, which
#: can be an hour or more per part on a 6B model; a crashed rank is noticed at once, so only a hung one waits
#: this long.
BARRIER_TIMEOUT = timedelta(hours=24)

#: How long a rank waits for parts written on other machines to show up in a shared folder.
PART_VISIBILITY_WAIT_S = 120.0

#: Per-rank records of what each rank computed: ``DIR/ranks/<experiment>-rank<r>-of-<n>.json``.
RANK_RECORDS = "ranks"


@dataclass(frozen=True)
class Process:
    """This process's place in a data-parallel run; the default is a plain single-process run."""

    rank: int = 0
    world_size: int = 1
    #: Rank among the processes on this machine, and how many there are (for GPUs and CPU threads).
    local_rank: int = 0
    local_world_size: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise InvalidConfigError(f"rank {self.rank} is outside world size {self.world_size}; launch with torchrun")
        if not 0 <= self.local_rank < self.local_world_size <= self.world_size:
            raise InvalidConfigError(
                f"local rank {self.local_rank} of {self.local_world_size} processes per machine does not fit a world "
                f"of {self.world_size}; launch with torchrun or accelerate launch, which set these consistently"
            )

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes the merged tables, figures and reports."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def _int_from(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise InvalidConfigError(
            f"environment variable {name}={value!r} is not an integer; unset it or fix it"
        ) from None


def process_from_env(env: Mapping[str, str] | None = None) -> Process:
    """The process described by the launcher's variables (torchrun, accelerate launch); none set: one process.

    Without ``LOCAL_WORLD_SIZE`` every rank is taken to share this machine, which only errs towards fewer
    CPU threads per rank.
    """
    env = os.environ if env is None else env
    world_size = _int_from(env, "WORLD_SIZE", 1)
    return Process(
        rank=_int_from(env, "RANK", 0),
        world_size=world_size,
        local_rank=_int_from(env, "LOCAL_RANK", 0),
        local_world_size=_int_from(env, "LOCAL_WORLD_SIZE", world_size),
    )


def init_distributed(env: Mapping[str, str] | None = None, *, timeout: timedelta = BARRIER_TIMEOUT) -> Process:
    """Join the launcher's process group if this is a multi-process run (once; later calls just return).

    A single process (no launcher) is the no-op default.
    """
    process = process_from_env(env)
    if not process.is_distributed:
        return process
    if not dist.is_available():
        raise DistributedRunError("this torch build has no torch.distributed; install a standard torch wheel")
    if not dist.is_initialized():
        environment = os.environ if env is None else env
        if not environment.get("MASTER_ADDR") or not environment.get("MASTER_PORT"):
            raise DistributedRunError(
                f"WORLD_SIZE={process.world_size} but MASTER_ADDR/MASTER_PORT are not set; launch with torchrun or "
                "accelerate launch (docs/scaling.md), or unset WORLD_SIZE for a single process"
            )
        dist.init_process_group("gloo", rank=process.rank, world_size=process.world_size, timeout=timeout)
    if (dist.get_rank(), dist.get_world_size()) != (process.rank, process.world_size):
        raise DistributedRunError(
            f"the process group is rank {dist.get_rank()} of {dist.get_world_size()} but RANK/WORLD_SIZE say "
            f"{process.rank} of {process.world_size}; start the run through one launcher only"
        )
    return process


def shutdown_distributed() -> None:
    """Leave the process group, if one was joined (torch warns at exit otherwise)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(process: Process) -> None:
    """Wait until every rank gets here; a no-op in a single process."""
    if process.is_distributed:
        dist.barrier()


def shard(units: Sequence[T], rank: int, world_size: int) -> list[T]:
    """Rank `rank`'s share of `units`, dealt round-robin: every unit goes to exactly one rank, in order."""
    if not 0 <= rank < world_size:
        raise InvalidConfigError(f"rank {rank} is outside world size {world_size}")
    return list(units[rank::world_size])


def main_rank_decides(process: Process, decide: Callable[[], T]) -> T:
    """Run `decide` on rank 0 alone and give its result to every rank; if it fails, every rank fails.

    Rank 0 writes shared files (the results manifest) alone so that ranks do not race on them, and reads the
    folder alone so that all ranks act on one view of it, whatever each machine's filesystem cache shows.
    Sharing its error lets every rank exit with the same one-line message instead of the others dying at a
    broken barrier.
    """
    if not process.is_distributed:
        return decide()
    failure: BaseException | None = None
    message: list[object] = [None, None]  # (rank 0's result, its error message)
    if process.is_main:
        try:
            message[0] = decide()
        except Exception as error:  # noqa: BLE001 - re-raised below, after the others have heard of it
            failure, message[1] = error, str(error)
    dist.broadcast_object_list(message, src=0)
    if failure is not None:
        raise failure
    if message[1] is not None:
        raise DistributedRunError(f"rank 0 stopped the run: {message[1]}")
    return message[0]  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------- placement


def rank_device(process: Process, requested: str | None, *, cuda_available: bool) -> str | None:
    """The device this rank's model goes to.

    One process keeps the request (None: TransformerLens's choice). Several processes each take the GPU of
    their local rank when CUDA is there (``cuda`` without an index means that GPU too), else the CPU; an
    explicit ``cuda:K`` or ``cpu`` is kept.
    """
    if not process.is_distributed:
        return requested
    if requested is None:
        return f"cuda:{process.local_rank}" if cuda_available else "cpu"
    if requested == "cuda":
        return f"cuda:{process.local_rank}"
    return requested


def threads_per_rank(process: Process, cpu_count: int, omp_num_threads: str | None) -> int | None:
    """CPU threads for each rank so that the ranks of one machine do not oversubscribe its cores.

    None leaves torch's setting: in a single process, or when ``OMP_NUM_THREADS`` is set (by the user, or by
    torchrun, which sets it to 1 for several processes per node). Results are bitwise comparable only
    between runs with the same thread count.
    """
    if not process.is_distributed or omp_num_threads:
        return None
    return max(1, cpu_count // process.local_world_size)


def check_devices_per_rank(process: Process, n_devices: int) -> None:
    """Refuse splitting a model over several GPUs while several ranks share a machine.

    TransformerLens spreads a model over ``cuda:0`` .. ``cuda:n_devices-1`` whatever the rank, so ranks on one
    machine would pile onto the same GPUs: with ``n_devices`` > 1, run one process per machine.
    """
    if n_devices > 1 and process.local_world_size > 1:
        raise InvalidConfigError(
            f"--n-devices {n_devices} with {process.local_world_size} processes per machine: TransformerLens puts "
            f"every rank's model on cuda:0..{n_devices - 1}, so the ranks would share GPUs; launch one process "
            "per machine (torchrun --nproc_per_node 1) or use --n-devices 1"
        )


def place_rank(process: Process, requested: str | None, *, n_devices: int = 1) -> str | None:
    """Pick this rank's device, make it the current CUDA device and cap CPU threads; returns the device."""
    check_devices_per_rank(process, n_devices)
    device = rank_device(process, requested, cuda_available=torch.cuda.is_available())
    threads = threads_per_rank(process, os.cpu_count() or 1, os.environ.get("OMP_NUM_THREADS"))
    if threads is not None:
        torch.set_num_threads(threads)
    if device is not None and torch.device(device).type == "cuda" and torch.device(device).index is not None:
        torch.cuda.set_device(torch.device(device))  # so stray allocations do not all land on cuda:0
    return device


# ----------------------------------------------------------------------------------------------- records


def rank_record_path(out: str | Path, experiment: str, process: Process) -> Path:
    return Path(out) / RANK_RECORDS / f"{experiment}-rank{process.rank}-of-{process.world_size}.json"


def write_rank_record(out: str | Path, experiment: str, process: Process, parts: list[dict[str, object]]) -> Path:
    """Record which parts this rank computed in this run, where and how long (provenance on a cluster)."""
    from anchorlens.files import atomic_write_text

    record = {
        "experiment": experiment,
        "rank": process.rank,
        "world_size": process.world_size,
        "local_rank": process.local_rank,
        "host": socket.gethostname(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "parts": parts,
    }
    path = rank_record_path(out, experiment, process)
    atomic_write_text(path, json.dumps(record, indent=2))
    return path


# ------------------------------------------------------------------------------------------------ running


def run_shard(
    experiment: str,
    run_part: Callable[[Task, int], object],
    tasks: Sequence[Task],
    config: ExperimentConfig,
    out: str | Path,
    process: Process,
    *,
    progress: bool = False,
    folder_checked: bool = False,
) -> None:
    """Compute this rank's share of the (task, seed) parts of `experiment` missing from `out`.

    `run_part(task, seed)` computes and writes one part. Returns on every rank once all parts are on disk,
    so rank 0 can merge them. `folder_checked`: the run's preparation has checked `out` against these settings
    (`anchorlens.preparation`), so rank 0 does not check it again.
    """
    from tqdm.auto import tqdm

    from anchorlens.runs import ResultStore, part_path

    signature = config.signature()
    units = [(task, seed) for task in tasks for seed in config.seeds]

    def pending_on_disk() -> list[int]:
        # rank 0 checks the folder against these settings, unless a run's preparation did (`anchorlens.preparation`)
        store = ResultStore(out, experiment, signature, checked=folder_checked)
        return [index for index, (task, seed) in enumerate(units) if not store.done(task.name, seed)]

    # Sharding the pending parts (not all of them) keeps a resumed run balanced.
    pending = [units[index] for index in main_rank_decides(process, pending_on_disk)]
    records = []
    mine = shard(pending, process.rank, process.world_size)
    for task, seed in tqdm(mine, desc=f"{experiment} rank {process.rank}", disable=not progress, leave=False):
        began = time.perf_counter()
        run_part(task, seed)
        records.append({"task": task.name, "seed": seed, "seconds": round(time.perf_counter() - began, 3)})
    write_rank_record(out, experiment, process, records)
    barrier(process)
    # Paths only, no ResultStore: building one rewrites the manifest, which could race with rank 0 moving on
    # to the next experiment in the same folder.
    missing = _wait_until_visible([part_path(out, experiment, task.name, seed) for task, seed in units])
    if missing:
        raise DistributedRunError(
            f"rank {process.rank} cannot see the {experiment} parts {', '.join(p.stem for p in missing)} that other "
            f"ranks wrote; --out {out} must be a folder every machine shares (a network filesystem), not a local disk"
        )


def _wait_until_visible(
    paths: list[Path], *, wait_s: float = PART_VISIBILITY_WAIT_S, poll_s: float = 2.0
) -> list[Path]:
    """The paths still missing after up to `wait_s` seconds: a network filesystem may show another machine's
    new file only once its cached view of the folder expires (NFS: up to a minute)."""
    deadline = time.monotonic() + wait_s
    while True:
        missing = [path for path in paths if not path.is_file()]
        if not missing or time.monotonic() >= deadline:
            return missing
        time.sleep(poll_s)
