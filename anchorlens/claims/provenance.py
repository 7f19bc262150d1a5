"""Where each committed part was computed, and how closely parts made by different devices or model classes agree,
generated from records only: each part record's ``provenance`` block (`anchorlens.model_classes.run_provenance`,
or a block backfilled from the git history, which says so in its ``source``) and the committed comparison records
(``class-agreement-<model>.json`` of analyses/class_agreement.py). A statement with no record behind it is not
made: where no record compares the parts of two devices, the block says so.

    python analyses/provenance.py docs/results/smollm2-135m docs/results/gemma-3-270m --check docs/results.md

The command line (analyses/provenance.py) is `main`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from anchorlens import paper
from anchorlens.claims.blocks import check_block, write_block
from anchorlens.claims.rules import ranges
from anchorlens.errors import AnchorlensError, DataFileError
from anchorlens.registry import in_paper_order
from anchorlens.runs import part_records

#: What makes two parts' provenance the same for the table (the source and the threads say how, not where).
WHERE = ("device", "model_class", "torch", "transformer_lens")
#: A comparison record of analyses/class_agreement.py, per model.
AGREEMENT_FILE = "class-agreement-{model}.json"


def part_provenance(folder: str | Path) -> list[dict[str, object]]:
    """One row per part record of `folder`: experiment, task, seed, model, and the record's provenance fields
    (None where the record has none)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFileError(f"no results folder {folder}; pass folders holding parts/, e.g. docs/results/smollm2-135m")
    rows = []
    for experiment, task, seed, record in part_records(folder):
        provenance = record.get("provenance") or {}
        rows.append(
            {
                "experiment": experiment,
                "task": task,
                "seed": int(seed),
                "model": (record.get("signature") or {}).get("model"),
                **{name: provenance.get(name) for name in (*WHERE, "threads", "transformers", "source")},
            }
        )
    return rows


def seeds_by_task(rows: Iterable[dict[str, object]]) -> str:
    """Tasks with their seeds as ranges (``sst2 1-5, trec 1-3``), in the paper's task order."""
    seeds: dict[str, list[int]] = {}
    for row in rows:
        seeds.setdefault(str(row["task"]), []).append(int(row["seed"]))  # type: ignore[call-overload]
    ordered = sorted(seeds, key=lambda task: (paper.task_rank(task), task))
    return ", ".join(f"{task} {ranges(seeds[task])}" for task in ordered)


def cell(value: object) -> str:
    return "not recorded" if value is None else str(value)


def model_in(folder: str | Path, model: object) -> str:
    """The model column of a folder's rows: the model, and the folder's name where it is another (a second folder
    beside the default one, e.g. ``gemma-3-270m (folder gemma-3-270m-exclude-bos)``)."""
    name = Path(folder).name
    return cell(model) if name == str(model) else f"{cell(model)} (folder {name})"


def where_table(folders: Sequence[str | Path]) -> list[str]:
    """Per model × experiment × (device, class, torch, transformer-lens): the parts, as tasks with their seeds."""
    lines = [
        "| model | experiment | device | model class | torch | transformer-lens | threads | parts (task: seeds) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    order = {name: index for index, name in enumerate(in_paper_order())}
    for folder in folders:
        rows = part_provenance(folder)
        groups: dict[tuple, list[dict[str, object]]] = {}
        for row in rows:
            key = (model_in(folder, row["model"]), row["experiment"], *(row[name] for name in WHERE))
            groups.setdefault(key, []).append(row)
        for key in sorted(groups, key=lambda k: (order.get(str(k[1]), len(order)), str(k[1]), [str(v) for v in k])):
            members = groups[key]
            threads = sorted({cell(row["threads"]) for row in members})
            lines.append(
                "| " + " | ".join([*(cell(value) for value in key), ", ".join(threads), seeds_by_task(members)]) + " |"
            )
    return lines


def sources(folders: Sequence[str | Path]) -> list[str]:
    """How many part records carry a provenance block written by the run, backfilled, or none."""
    written = backfilled = missing = 0
    for folder in folders:
        for row in part_provenance(folder):
            if row["device"] is None:
                missing += 1
            elif str(row["source"] or "").startswith("backfilled"):
                backfilled += 1
            else:
                written += 1
    line = (
        f"Of {written + backfilled + missing} part records, {written} carry the provenance their run wrote and "
        f"{backfilled} a block backfilled from the git history (its `source` names the commit that made the part; "
        "what that history does not say is null, shown as not recorded)"
    )
    return [line + (f"; {missing} have none." if missing else ".")]


def agreement_lines(folders: Sequence[str | Path], records_dir: str | Path) -> list[str]:
    """One line per committed comparison record of a folder's model: what was compared and the largest
    differences it recorded; a line saying so where a model has none. A model is stated once, though a second
    folder beside its default one (e.g. ``--exclude-bos``) holds parts of it too."""
    lines = []
    models = dict.fromkeys(
        model for folder in folders for model in sorted({str(row["model"]) for row in part_provenance(folder)})
    )
    for model in models:
        path = Path(records_dir) / AGREEMENT_FILE.format(model=model)
        if not path.is_file():
            lines.append(f"- {model}: no committed record compares its parts across devices or model classes.")
            continue
        record = json.loads(path.read_text())
        versions = record.get("versions") or {}
        parts = []
        for name, measured in (record.get("parts") or {}).items():
            largest = max(
                (value["max_abs_diff"] for value in measured.values() if isinstance(value, dict)), default=None
            )
            differing = measured.get("predictions_differing")
            parts.append(
                f"{name.replace(':', ' ')} ({measured.get('rows')} rows): largest absolute difference "
                f"{largest:.2g}, {differing} predictions differing"
            )
        lines.append(
            f"- {model}: recomputed with model class {record.get('model_class')} on transformer-lens "
            f"{versions.get('transformer-lens')}, torch {versions.get('torch')}, against "
            f"`{record.get('compared_with')}` ({path.as_posix()}): " + "; ".join(parts) + "."
        )
    return lines


def gpu_cpu_lines(folders: Sequence[str | Path]) -> list[str]:
    """Whether any recorded comparison pairs parts of two devices: none of the committed records does (the
    class-agreement records compare model classes on one device); say so rather than state an agreement."""
    devices = sorted({str(row["device"]) for folder in folders for row in part_provenance(folder) if row["device"]})
    if len(devices) < 2:
        return []
    return [
        f"The parts ran on {len(devices)} devices ({', '.join(devices)}). No committed record compares parts "
        "computed on different devices, so how closely they agree is not stated here."
    ]


def render_provenance(folders: Sequence[str | Path], records_dir: str | Path, command: str) -> str:
    """The generated block: the table of where each part ran, then what the comparison records say."""
    lines = [
        f"Generated by `{command}` from the part records' provenance and the committed comparison records; do not "
        "edit by hand.",
        "",
        *where_table(folders),
        "",
        *sources(folders),
        "",
        *gpu_cpu_lines(folders),
        "",
        "Recorded comparisons:",
        "",
        *agreement_lines(folders, records_dir),
    ]
    return "\n".join(lines) + "\n"


BLOCK = "provenance"


def main(argv: Sequence[str] | None = None) -> int:
    """``python analyses/provenance.py FOLDER.. [--check|--write PAGE]``: 0, 1 when a checked block is stale, 2 on
    bad input (a one-line error)."""
    parser = argparse.ArgumentParser(
        description="Print, check or write a page's block of where each part ran and how closely parts agree."
    )
    parser.add_argument("folders", nargs="+", help="results folders, e.g. docs/results/smollm2-135m")
    parser.add_argument(
        "--records", default="benchmarks/results", help="folder of the comparison records (class-agreement-*.json)"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", metavar="PAGE", help="exit 1 (with a diff) when PAGE's provenance block is stale")
    mode.add_argument("--write", metavar="PAGE", help="replace PAGE's provenance block with what is printed now")
    args = parser.parse_args(argv)
    command = " ".join(["python analyses/provenance.py", *args.folders])
    try:
        printed = render_provenance(args.folders, args.records, command)
        if args.check:
            return check_block(Path(args.check), printed, BLOCK, "analyses/provenance.py")
        if args.write:
            write_block(Path(args.write), printed, BLOCK)
            print(f"{args.write}: provenance block written")
            return 0
    except AnchorlensError as error:
        print(f"provenance.py: error: {error}", file=sys.stderr)
        return 2
    print(printed, end="")
    return 0
