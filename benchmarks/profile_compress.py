"""Where a compressed query's time goes: torch.profiler over Hidden_anchor (the query against the pruned anchor
cache) and over its floor (the query tokens alone), on the same batches, side by side (issue 16.1).

    python benchmarks/profile_compress.py --model smollm2-135m --task trec --n-prompts 16 [--top 12]

Prints, for each of the two, the total profiled CPU time and the operators with the largest self CPU time, and
writes both tables and the ratio to ``OUT/profile-compress-<model>-<task>.json``. The difference between the two
tables is what the cache costs over the query's own tokens.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import query_only_forward  # noqa: E402

from anchorlens.experiments.common import device_of, pad_token_id  # noqa: E402
from anchorlens.experiments.compress import build_anchor_cache  # noqa: E402
from anchorlens.kv_cache import pad_queries, query_tokens, run_query_with_cache  # noqa: E402
from anchorlens.models import load_model  # noqa: E402
from anchorlens.prompts import task_prompts  # noqa: E402


def profile_once(work) -> dict[str, tuple[int, float]]:
    """{operator: (calls, self CPU seconds)} of one call of `work`."""
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        work()
    return {event.key: (event.count, event.self_cpu_time_total / 1e6) for event in profiler.key_averages()}


def profiled_side_by_side(works: dict[str, object], rounds: int) -> dict[str, tuple[float, list[dict]]]:
    """Per work: (self CPU seconds per round, operators by self CPU time), the works profiled in turn, round by
    round, after one warm-up each, so that a change in the machine's load reaches all of them alike."""
    for work in works.values():
        work()
    totals: dict[str, dict[str, list[float]]] = {name: {} for name in works}
    for _ in range(rounds):
        for name, work in works.items():
            for operator, (calls, seconds) in profile_once(work).items():
                entry = totals[name].setdefault(operator, [0, 0.0])
                entry[0] += calls
                entry[1] += seconds
    out = {}
    for name, operators in totals.items():
        total = sum(seconds for _, seconds in operators.values()) / rounds
        ranked = sorted(operators.items(), key=lambda item: item[1][1], reverse=True)
        out[name] = (
            total,
            [
                {
                    "operator": operator,
                    "calls_per_round": int(calls) // rounds,
                    "self_cpu_seconds_per_round": seconds / rounds,
                    "share": seconds / rounds / total,
                }
                for operator, (calls, seconds) in ranked
            ],
        )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--task", default="trec")
    parser.add_argument("--n-prompts", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)

    model = load_model(args.model)
    device, pad = device_of(model), pad_token_id(model)
    _, prompts = task_prompts(model, args.task, 42, n_test=args.n_prompts)
    cache = build_anchor_cache(model, prompts[0])
    chunks = [prompts[i : i + args.batch_size] for i in range(0, len(prompts), args.batch_size)]
    queries = [
        pad_queries([query_tokens(p, cache) for p in chunk], pad_token_id=pad, device=device) for chunk in chunks
    ]
    with torch.no_grad():
        profiles = profiled_side_by_side(
            {
                "hidden_anchor": lambda: [run_query_with_cache(model, cache, *q) for q in queries],
                "query_only": lambda: [query_only_forward(model, *q) for q in queries],
            },
            args.rounds,
        )
    (anchor_total, anchor_ops), (floor_total, floor_ops) = profiles["hidden_anchor"], profiles["query_only"]

    report = {
        "model": args.model,
        "task": args.task,
        "prompts": len(prompts),
        "batch_size": args.batch_size,
        "cached_positions": cache.n_kept,
        "torch_threads": torch.get_num_threads(),
        "machine": platform.platform(),
        "profiled_cpu_seconds_per_input": {
            "hidden_anchor": anchor_total / len(prompts),
            "query_only": floor_total / len(prompts),
        },
        "hidden_anchor_over_query_only": anchor_total / floor_total,
        "top_operators": {"hidden_anchor": anchor_ops[: args.top], "query_only": floor_ops[: args.top]},
    }
    for name, operators in report["top_operators"].items():
        print(f"\n{name}: {report['profiled_cpu_seconds_per_input'][name] * 1e3:.2f} ms per input (profiled)")
        print("| operator | calls per round | self CPU ms per round | share |\n|---|---|---|---|")
        for row in operators:
            print(
                f"| {row['operator']} | {row['calls_per_round']} | {row['self_cpu_seconds_per_round'] * 1e3:.1f} "
                f"| {row['share']:.1%} |"
            )
    print(f"\nhidden_anchor / query_only (profiled CPU time): {report['hidden_anchor_over_query_only']:.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"profile-compress-{Path(args.model).name}-{args.task}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
