"""Time one whole compression part (`anchorlens compress`, one task and seed) with the code of two commits, side
by side in one run, and write the ratio to ``benchmarks/results/compress-part-<model>.json`` (issue 16.2).

    python benchmarks/compress_part.py --before 8e0818c --model smollm2-135m --task sst2 --n-test 50

Each commit's code runs from its own temporary ``git worktree`` in a fresh process, one thread each
(``OMP_NUM_THREADS=1``), alternating before/after ``--repeats`` times so both see the same machine load. Model
loading is excluded: the time is the part's compute only, read as the wall time of the command minus a run that
loads the model and stops at the finished part; each side has its own model cache, built by an untimed warm-up
run. ``8e0818c`` is the last commit before the random baselines' draws were batched. Its kept positions are
already the fixed ones, so the methods without random draws (ICL, Text_anchor, Hidden_anchor) compute the same
numbers, which the script checks (``same_numbers``). The random draws differ by design: since cbe09bc draw ``d``
of seed ``s`` has its own generator keyed by (s, d), where 8e0818c drew them one after another from one
generator, so Hidden_random(-top) rows are compared by time only."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def run_part(code: Path, out: Path, args: argparse.Namespace, n_test: int | None = None) -> float:
    """Wall seconds of one `anchorlens compress` part run with the package at ``code``.

    Each side converts the offline weights into its own model cache (``$ANCHORLENS_CACHE``): the cache format
    changed between the commits, and one side's rebuild must neither be timed nor touch the user's cache."""
    env = os.environ | {
        "PYTHONPATH": str(code),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "ANCHORLENS_CACHE": str(code.parent / f"cache-{code.name}"),
    }
    command = [
        sys.executable,
        "-m",
        "anchorlens.cli",
        "compress",
        "--task",
        args.task,
        "--model",
        args.model,
        "--seeds",
        str(args.seed),
        "--n-test",
        str(n_test or args.n_test),
        "--out",
        str(out),
        "--no-progress",
    ]
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, cwd=code, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="8e0818c", help="commit before the change (default: %(default)s)")
    parser.add_argument("--after", default="HEAD", help="commit after the change (default: %(default)s)")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--n-test", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    timings: dict[str, list[float]] = {"before": [], "after": []}
    tables: dict[str, pd.DataFrame] = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        code = {}
        resolved = {  # the commit hashes, so that "HEAD" in the JSON still says which code ran
            side: subprocess.run(
                ["git", "rev-parse", "--short", getattr(args, side)],
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            for side in ("before", "after")
        }
        for side in ("before", "after"):
            code[side] = scratch / side
            subprocess.run(
                ["git", "worktree", "add", "--detach", "-f", str(code[side]), getattr(args, side)],
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
        try:
            for side in ("before", "after"):  # builds each side's model cache, untimed
                run_part(code[side], scratch / f"warm-up-{side}", args, n_test=1)
            for repeat in range(args.repeats):
                for side in ("before", "after"):
                    out = scratch / f"out-{side}-{repeat}"
                    total = run_part(code[side], out, args)
                    loading = run_part(code[side], out, args)  # the part is finished: load, check, summarise
                    timings[side].append(total - loading)
                    tables[side] = pd.read_csv(out / "compress.csv")
        finally:
            for side in ("before", "after"):
                subprocess.run(["git", "worktree", "remove", "--force", str(code[side])], cwd=ROOT, capture_output=True)

    columns = ["method", "label_loyalty", "word_loyalty", "accuracy"]
    without_draws = ("icl", "text_anchor", "hidden_anchor")
    before, after = (
        tables[s][columns][tables[s]["method"].str.lower().isin(without_draws)]
        .sort_values("method")
        .reset_index(drop=True)
        for s in ("before", "after")
    )
    assert len(before) == len(after) == len(without_draws), (before, after)
    same_numbers = bool(((before.drop(columns="method") - after.drop(columns="method")).abs() < 1e-9).all().all())
    result = {
        "what": "one whole compression part, compute seconds (model loading excluded), one thread",
        "command": " ".join(sys.argv),
        "model": args.model,
        "task": args.task,
        "seed": args.seed,
        "n_test": args.n_test,
        "before_commit": resolved["before"],
        "after_commit": resolved["after"],
        "before_seconds": timings["before"],
        "after_seconds": timings["after"],
        "speedup": min(timings["before"]) / min(timings["after"]),
        # ICL, Text_anchor and Hidden_anchor; the random draws differ by design (module docstring).
        "same_numbers": same_numbers,
        "compared_methods": list(without_draws),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"compress-part-{args.model}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
