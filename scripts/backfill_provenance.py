"""Write a ``provenance`` block into the committed part records that predate `run_provenance` (commit cca0ce8),
from what the git history says made each part, marked as backfilled.

    python scripts/backfill_provenance.py docs/results/smollm2-135m docs/results/gemma-3-270m

The commit that made a part is the last one that changed its rows or per-example rows (``<part>.csv``,
``<part>.examples.parquet``; a later commit that touched only the record does not count). What is known of the
regeneration (docs/results.md, the commits' messages): parts made by commit baa8e3a ran on one NVIDIA H200,
every other part on CPU, all on transformer-lens 3.9.0 with HookedTransformer (no record names a ':bridge'
model); the CPU parts of the "Regenerated results" commits came from scripts/regenerate.sh, one thread per
model; torch on CPU was scripts/setup.sh's pin then (2.13.0). What is not known stays null: torch and threads
on the GPU, threads of the re-weighting parts committed by hand, transformers (only its range was pinned).
A record that already has a provenance block is left as it is; the part files and their hashes are untouched
(the combined records hash the parts' rows, never the part records: `anchorlens.runs.parts_digest`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

GPU_COMMIT = "baa8e3a"
GPU_DEVICE = "cuda (NVIDIA H200)"
CPU_DEVICE = "cpu (x86_64)"
CPU_TORCH = "2.13.0"
TRANSFORMER_LENS = "3.9.0"
#: Commits of scripts/regenerate.sh, which sets OMP_NUM_THREADS=1 (one thread per model).
REGENERATION_SUBJECT = "Regenerated results (format 2)"


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout.strip()


def making_commit(record: Path) -> tuple[str, str]:
    """(short sha, subject) of the last commit that changed the part's rows or per-example rows."""
    stem = record.with_suffix("")
    files = [str(stem.with_suffix(".csv")), str(stem.with_suffix(".examples.parquet"))]
    line = git("log", "-1", "--format=%h%x00%s", "--", *files)
    if not line:
        raise SystemExit(f"{record}: no commit changed its rows; commit the part first")
    sha, subject = line.split("\0", 1)
    return sha, subject


def backfilled(sha: str, subject: str) -> dict[str, object]:
    on_gpu = sha.startswith(GPU_COMMIT)
    by_script = subject.startswith(REGENERATION_SUBJECT) or subject.startswith("ruff format")
    return {
        "device": GPU_DEVICE if on_gpu else CPU_DEVICE,
        "model_class": "hooked",
        "threads": None if on_gpu or not by_script else 1,
        "torch": None if on_gpu else CPU_TORCH,
        "transformer_lens": TRANSFORMER_LENS,
        "transformers": None,
        "source": f"backfilled from git history: made by commit {sha} ({subject})",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+")
    args = parser.parse_args(argv)
    written = 0
    for folder in args.folders:
        for path in sorted(Path(folder).glob("parts/*/*.json")):
            record = json.loads(path.read_text())
            if "provenance" in record:
                continue
            record["provenance"] = backfilled(*making_commit(path))
            # As `ResultStore.write_part` writes a record: sorted keys, indent 2, no final newline.
            path.write_text(json.dumps(record, indent=2, sort_keys=True))
            written += 1
    print(f"backfilled {written} part records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
