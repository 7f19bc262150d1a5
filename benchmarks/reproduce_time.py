"""Time the main job (``anchorlens reproduce``) and keep the measurement as a record; the README's line on the
main job's time is generated from the newest record made at the defaults.

    python benchmarks/reproduce_time.py [--out benchmarks/results] [--run-dir DIR] [-- REPRODUCE_OPTIONS..]
    python benchmarks/reproduce_time.py --short --check README.md  # exit 1 when it is not the newest record's
    python benchmarks/reproduce_time.py --short --write README.md
    python benchmarks/reproduce_time.py --write docs/reproduce.md   # with the seconds per experiment
    python benchmarks/reproduce_time.py --package  # copy it into the package (`anchorlens reproduce --help`)

The job runs in a subprocess (``python -m anchorlens.cli reproduce --out RUN_DIR --no-progress`` plus the options
after ``--``, e.g. ``-- --tasks sst2 --n-test 2``) into a fresh folder (a temporary one unless ``--run-dir``
names an empty one), so no finished part of an earlier run is reused. Measured: the wall time of the
subprocess, its peak resident memory (``ru_maxrss`` of the waited-for children) and, from its
``reproduce-manifest.json``, the seconds per experiment and the versions. Written to
``OUT/reproduce-<commit>.json`` at the defaults and ``OUT/reproduce-<commit>-options.json`` with options, with
the options, the machine (processor, CPU count, load average at the start) and whether the work tree had
uncommitted changes. The full job takes about 20 minutes on 2 CPU cores: run it on an idle machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = "main-job-time"
RECORD_GLOB = "reproduce-*.json"


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def machine() -> dict[str, object]:
    return {
        "processor": platform.processor() or platform.machine(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
    }


def time_reproduce(run_dir: Path, options: Sequence[str]) -> dict[str, object]:
    """Run the main job into `run_dir` with `options` and measure it (see the module docstring)."""
    command = [sys.executable, "-m", "anchorlens.cli", "reproduce", "--out", str(run_dir), "--no-progress", *options]
    started_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    at_start = machine()
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=ROOT, check=False)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(
            f"reproduce_time.py: error: {' '.join(command)} exited {completed.returncode}; nothing recorded"
        )
    manifest = json.loads((run_dir / "reproduce-manifest.json").read_text())
    versions = manifest.get("versions") or {}
    # The model class the job's interpreter builds by default (its transformer-lens line decides it).
    model_class = subprocess.run(
        [sys.executable, "-c", "import anchorlens; print(anchorlens.default_model_class())"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted_changes": bool(git("status", "--porcelain", "--untracked-files=no")),
        "command": ["anchorlens", "reproduce", "--out", "DIR", "--no-progress", *options],
        "options": list(options),
        "started": started_at,
        "seconds": round(seconds, 1),
        # ru_maxrss is in KiB on Linux: the largest resident set of any waited-for child, here the job.
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
        "machine": at_start,
        "versions": versions,
        "model_class": model_class,
        "config": manifest.get("config"),
        "seconds_per_experiment": manifest.get("seconds_per_experiment_this_run"),
    }


def record_path(out: Path, record: dict[str, object]) -> Path:
    suffix = "-options" if record["options"] else ""
    return out / f"reproduce-{record['commit']}{suffix}.json"


def newest_default_record(records_dir: Path) -> tuple[Path, dict] | None:
    """The newest record (by start time) of a run at the defaults with a committed work tree, or None."""
    found = []
    for path in sorted(records_dir.glob(RECORD_GLOB)):
        record = json.loads(path.read_text())
        if not record.get("options") and not record.get("uncommitted_changes"):
            found.append((str(record.get("started")), path, record))
    if not found:
        return None
    _, path, record = max(found, key=lambda item: item[0])
    return path, record


#: The package's copy of the newest record's essentials, read by ``anchorlens reproduce --help``.
PACKAGE_RECORD = ROOT / "anchorlens" / "data" / "main_job_time.json"


def package_record(records_dir: Path) -> dict[str, object] | None:
    """What the package keeps of the newest record at the defaults (`anchorlens.reproduce.measured_main_job`),
    with the record's path; None where there is none."""
    newest = newest_default_record(records_dir)
    if newest is None:
        return None
    path, record = newest
    return {
        "commit": record["commit"],
        "seconds": record["seconds"],
        "peak_rss_bytes": record["peak_rss_bytes"],
        "cpu_count": (record.get("machine") or {}).get("cpu_count"),
        "transformer_lens": (record.get("versions") or {}).get("transformer-lens"),
        "model_class": record.get("model_class"),
        "record": path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path),
    }


def main_job_line(records_dir: Path, short: bool = False) -> str:
    """The pages' sentence on the main job's time, from the newest record at the defaults (`short`: the README's
    form, without the seconds per experiment)."""
    newest = newest_default_record(records_dir)
    if newest is None:
        return "The main job's time awaits a record (`python benchmarks/reproduce_time.py` writes one)."
    path, record = newest
    versions = record.get("versions") or {}
    found = record.get("machine") or {}
    where = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
    line_of = (
        f"transformer-lens {versions.get('transformer-lens', 'unknown')}, {record.get('model_class', 'class unknown')}"
    )
    memory = f"{record['peak_rss_bytes'] / 2**30:.1f} GiB"
    if short:  # the README's length is capped (docs test): the essentials and the record
        return (
            f"Main job at commit {record['commit']} ({line_of}): {record['seconds']:.0f} s on "
            f"{found.get('cpu_count')} CPU cores, peak memory {memory} ([record]({where}))."
        )
    per_experiment = record.get("seconds_per_experiment") or {}
    parts = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in per_experiment.items())
    return (
        f"At commit {record['commit']} ({line_of}) the main job took {record['seconds']:.0f} s on "
        f"{found.get('cpu_count')} CPU cores ({found.get('processor')})"
        + (f" ({parts})" if parts else "")
        + f", peak resident memory {memory} (`{where}`)."
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    options = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="folder of the records")
    parser.add_argument("--run-dir", default=None, help="an empty folder for the job (default: a temporary one)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", metavar="PAGE", help="exit 1 (with a diff) when PAGE's main-job-time line is stale")
    mode.add_argument("--write", metavar="PAGE", help="replace PAGE's main-job-time line with the newest record's")
    mode.add_argument(
        "--package", action="store_true", help=f"write the newest record's essentials to {PACKAGE_RECORD}"
    )
    parser.add_argument("--short", action="store_true", help="the README's form: no seconds per experiment")
    args = parser.parse_args(own)
    out = Path(args.out)
    if args.package:
        essentials = package_record(out)
        if essentials is None:
            print(f"reproduce_time.py: error: no record at the defaults in {out}; run the job first", file=sys.stderr)
            return 2
        PACKAGE_RECORD.write_text(json.dumps(essentials, indent=2) + "\n")
        print(f"{PACKAGE_RECORD}: {essentials['seconds']} s at {essentials['commit']}")
        return 0
    if args.check or args.write:
        from anchorlens.claims.blocks import check_block, write_block
        from anchorlens.errors import AnchorlensError

        line = main_job_line(out, args.short)
        try:
            if args.check:
                return check_block(Path(args.check), line, BLOCK, "benchmarks/reproduce_time.py")
            write_block(Path(args.write), line, BLOCK)
        except AnchorlensError as error:
            print(f"reproduce_time.py: error: {error}", file=sys.stderr)
            return 2
        print(f"{args.write}: {BLOCK} line written")
        return 0
    if args.run_dir is not None:
        run_dir = Path(args.run_dir)
        if run_dir.exists() and any(run_dir.iterdir()):
            print(f"reproduce_time.py: error: {run_dir} is not empty; name an empty folder (a rerun reuses parts)")
            return 2
        record = time_reproduce(run_dir, options)
    else:
        with tempfile.TemporaryDirectory(prefix="reproduce-time-") as temporary:
            record = time_reproduce(Path(temporary), options)
    out.mkdir(parents=True, exist_ok=True)
    path = record_path(out, record)
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{path}: {record['seconds']} s, peak RSS {record['peak_rss_bytes'] / 2**30:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
