"""How the compression numbers moved with the anchor fix (issue 13.2).

The first wave's parts (results format 1, `docs/results/format1/<model>/parts/compress`) kept the first content
token of every demonstration as formatting; the regenerated parts (`docs/results/<model>/parts/compress`) keep
exactly the paper's anchors. Only the (task, seed) parts both folders hold are compared, so a partly regenerated
folder is compared on the same test inputs and demonstrations. Prints a markdown table: per task, model and method,
label loyalty / word loyalty / accuracy (%) and kept tokens, before → after, means over the shared seeds.

    python analyses/compression_moved.py [--results docs/results] [--models smollm2-135m gemma-3-270m]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from anchorlens.experiments.compress import METHODS
from anchorlens.models import OFFLINE_MODELS
from anchorlens.paper import COMPRESS_METHOD_LABELS

KEYS = ["task", "model", "seed", "method"]
VALUES = ["label_loyalty", "word_loyalty", "accuracy", "kept_tokens"]


def seed_rows(folder: Path) -> pd.DataFrame:
    """The per-seed rows of every finished compression part in a model folder (empty when there is none)."""
    parts = sorted((folder / "parts" / "compress").glob("*-seed*.csv"))
    if not parts:
        return pd.DataFrame(columns=KEYS + VALUES)
    return pd.concat([pd.read_csv(part)[KEYS + VALUES] for part in parts], ignore_index=True)


def moved(results: Path, models: list[str]) -> pd.DataFrame:
    """Before (format 1) and after (regenerated) means per task, model and method over the shared seeds."""
    frames = []
    for model in models:
        before, after = seed_rows(results / "format1" / model), seed_rows(results / model)
        both = before.merge(after, on=KEYS, suffixes=("_before", "_after"))
        if both.empty:
            continue
        seeds = both.groupby(["task", "model"])["seed"].agg(lambda s: " ".join(map(str, sorted(set(s)))))
        means = both.groupby(["task", "model", "method"], sort=False).mean(numeric_only=True).drop(columns="seed")
        frames.append(means.join(seeds.rename("seeds"), on=["task", "model"]).reset_index())
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    table["method"] = pd.Categorical(table["method"], categories=list(METHODS), ordered=True)
    return table.sort_values(["model", "task", "method"], ignore_index=True)


def markdown(table: pd.DataFrame) -> str:
    def pair(row: pd.Series, value: str, scale: float, digits: int) -> str:
        before, after = row[f"{value}_before"] * scale, row[f"{value}_after"] * scale
        return f"{before:.{digits}f} → {after:.{digits}f}"

    lines = [
        "| model | task (seeds) | method | label loyalty % | word loyalty % | accuracy % | kept tokens |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, row in table.iterrows():
        method = COMPRESS_METHOD_LABELS.get(row["method"], row["method"])
        lines.append(
            f"| {row['model']} | {row['task']} ({row['seeds']}) | {method} "
            f"| {pair(row, 'label_loyalty', 100, 1)} | {pair(row, 'word_loyalty', 100, 1)} "
            f"| {pair(row, 'accuracy', 100, 1)} | {pair(row, 'kept_tokens', 1, 0)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=Path("docs/results"))
    parser.add_argument("--models", nargs="+", default=list(OFFLINE_MODELS))
    args = parser.parse_args()
    table = moved(args.results, args.models)
    if table.empty:
        raise SystemExit(
            f"no (task, seed) compression part is in both {args.results}/format1/<model> and {args.results}/<model>"
        )
    print(markdown(table))


if __name__ == "__main__":
    main()
