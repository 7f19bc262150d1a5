"""Time each experiment's 95% interval summary on saved results, at the sizes the committed results have.

Every run command ends by writing ``<experiment>_summary.csv`` (`ExperimentResult.summary_with_ci`), and
`analyses/claims.py` adds the paired saliency differences (`SaliencyResult.differences_with_ci`). At the paper's
sizes (5 seeds × 200 inputs × 4 tasks, up to 30 layers) these bootstraps are the only part of a run that grows
with the number of resamples rather than with the model, so their cost is measured here, not asserted in tests:

    python benchmarks/summaries.py docs/results/smollm2-135m docs/results/gemma-3-270m --repeats 2

For every folder and every experiment with a ``<experiment>_examples.parquet``, the result is read back
(`ExperimentResult.load`) and its summary timed: the fastest of `--repeats` calls, with no separate warm-up (a
summary is computed once per run, so the first call is the cost a user meets). The report gives the
per-example rows the bootstrap resamples, the summary rows it writes and the seconds, as a table and as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import torch

from anchorlens.experiments import SaliencyResult
from anchorlens.orchestrate import EXPERIMENTS


def best_seconds(work: Callable[[], pd.DataFrame], repeats: int) -> tuple[float, pd.DataFrame]:
    """The fastest of `repeats` calls, with the frame the last call returned."""
    times = []
    frame = pd.DataFrame()
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        frame = work()
        times.append(time.perf_counter() - start)
    return min(times), frame


def folder_timings(folder: Path, repeats: int) -> dict[str, dict]:
    """Per experiment found in `folder`: per-example rows, summary rows and seconds of its bootstrap summary
    (and, for saliency, of the paired flow differences claims.py judges 1a-1c by)."""
    timings: dict[str, dict] = {}
    for name, spec in EXPERIMENTS.items():
        if not (folder / f"{name}_examples.parquet").is_file():
            continue
        result = spec.result_class.load(folder)
        seconds, summary = best_seconds(result.summary_with_ci, repeats)
        timings[name] = {
            "examples": len(result.examples),
            "tasks": int(result.examples["task"].nunique()),
            "seeds": int(result.examples["seed"].nunique()),
            "summary_rows": len(summary),
            "seconds": seconds,
        }
        if isinstance(result, SaliencyResult):
            seconds, differences = best_seconds(result.differences_with_ci, repeats)
            timings["saliency differences"] = {
                **timings[name],
                "summary_rows": len(differences),
                "seconds": seconds,
            }
    return timings


def markdown(report: dict) -> str:
    rows = [
        "| folder | summary | tasks × seeds | per-example rows | summary rows | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for folder, timings in report["folders"].items():
        for name, t in timings.items():
            rows.append(
                f"| {Path(folder).name} | {name} | {t['tasks']} × {t['seeds']} | {t['examples']} | "
                f"{t['summary_rows']} | {t['seconds']:.2f} |"
            )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="result folders (what a run command's --out holds)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/summaries.json"))
    args = parser.parse_args(argv)
    missing = [str(folder) for folder in args.folders if not folder.is_dir()]
    if missing:
        parser.error(f"no such result folder: {', '.join(missing)} (pass what a run command's --out holds)")
    report = {
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
        "machine": platform.platform(),
        "folders": {str(folder): folder_timings(folder, args.repeats) for folder in args.folders},
    }
    if not any(report["folders"].values()):
        parser.error("none of the folders holds an <experiment>_examples.parquet")
    table = markdown(report)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**report, "table": table}, indent=2))
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
