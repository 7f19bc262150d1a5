"""Two method choices a reader must see (issue 28 §3), reported by the claims' own rules:

* **Isolation's k at the paper's depth fraction.** The paper's k = 5 is 5/48 of GPT2-XL's depth; on a model of
  L layers that is k = round(5/48 · L), at least 1 (`anchorlens.experiments.isolation.k_at_depth_fractions`:
  3 of SmolLM2's 30 layers, 2 of Gemma-3's 18). Claim 2 is judged at both the absolute k = 5 and that k. The
  rows at that k come from the default folder or from a second folder per model (``--depth-fraction FOLDER``,
  e.g. made by ``anchorlens isolation --k 2``), judged beside the default's; where neither holds the k (run
  ``anchorlens isolation --depth-fractions 0.1042``), it is not shown.
* **The BOS column in saliency.** S_wp and S_ww include the attention to a prepended BOS token by default;
  ``--exclude-bos`` leaves it out. Given a second folder per model made with ``--exclude-bos`` beside the
  default one, findings 1a-1c are judged on both and the report says how far S_wp moves (per task, the largest
  change of its per-layer mean) and how the verdicts move; without such a folder, not shown.

The command line, ``python analyses/method_choices.py FOLDER.. --exclude-bos FOLDER.. --depth-fraction FOLDER..
--check PAGE`` (or ``--write PAGE``; without ``--exclude-bos`` the BOS rows are not shown), is `main`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from anchorlens import paper
from anchorlens.claims.blocks import check_block, write_block
from anchorlens.claims.inputs import Results, estimates, tasks_of
from anchorlens.claims.isolation import isolation_claims
from anchorlens.claims.rules import MAIN_K, NOT_SHOWN, Claim
from anchorlens.claims.saliency import saliency_claims
from anchorlens.errors import AnchorlensError, UnknownModelError
from anchorlens.experiments.isolation import k_at_depth_fractions
from anchorlens.models import OFFLINE_MODELS

#: The paper's main k as a share of its model's depth.
PAPER_DEPTH_FRACTION = MAIN_K / paper.GPT2_XL_LAYERS
BLOCK = "method-choices"


def model_layers(results: Results, model: str) -> int | None:
    """The model's depth, from the layers of its per-layer summaries (saliency, AUROC); None when neither is in
    the folder."""
    for experiment in ("saliency", "auroc"):
        part, _ = results.of(experiment, model)
        if not part.empty and "layer" in part.columns:
            return int(part["layer"].max()) + 1
    return None


def verdict_text(claim: Claim | None, missing: str) -> str:
    if claim is None:
        return f"{NOT_SHOWN}: {missing}"
    if not claim.checks:
        return f"{claim.verdict}: {claim.reason}" if claim.reason else claim.verdict
    return f"{claim.verdict}, {claim.holds}"


def tasks_held(results: Results, experiment: str, model: str, **where: object) -> list[str]:
    """The tasks of `model`'s `experiment` summary (its rows matching `where`, e.g. ``k=2``), in the paper's order."""
    part, _ = results.of(experiment, model)
    for column, value in where.items():
        part = part[part[column] == value] if column in part.columns else part.iloc[0:0]
    return tasks_of(part) if not part.empty else []


def depth_fraction_lines(results: Results, isolated: Results) -> list[str]:
    """Per model of `results`: claim 2 at the absolute k = 5 and at k = round(5/48 · layers), judged on the
    isolation rows of `isolated` (the default folders, and any second folders holding other k). Where the rows at
    that k cover fewer tasks than k = 5's, both are judged on the tasks the k holds, so they compare like with
    like; the table names the tasks."""
    lines = [
        f"| model | layers | tasks judged | claim 2 at k = {MAIN_K} | k at {MAIN_K}/{paper.GPT2_XL_LAYERS} of the "
        "depth | claim 2 at that k |",
        "|---|---|---|---|---|---|",
    ]
    for model in results.models:
        layers = model_layers(results, model)
        k = k_at_depth_fractions(layers, (PAPER_DEPTH_FRACTION,))[0] if layers is not None else None
        tasks = tasks_held(isolated, "isolation", model, k=k) or tasks_held(isolated, "isolation", model)
        compared = isolated.on_tasks("isolation", model, tasks)
        judged = {claim.number: claim for claim in isolation_claims(compared, model)}
        at_main = verdict_text(judged.get(f"2 (k={MAIN_K})"), f"no isolation rows at k={MAIN_K}")
        named = " ".join(tasks) or "-"
        if layers is None or k is None:
            lines.append(f"| {model} | unknown | {named} | {at_main} | - | {NOT_SHOWN}: the folder gives no depth |")
            continue
        at_fraction = verdict_text(
            judged.get(f"2 (k={k})"),
            f"no isolation rows at k={k} (run isolation with --depth-fractions {PAPER_DEPTH_FRACTION:.4f}, or "
            f"--k {k} into a folder passed as --depth-fraction)",
        )
        lines.append(f"| {model} | {layers} | {named} | {at_main} | {k} | {at_fraction} |")
    return lines


def swp_moves(default: Results, excluded: Results, model: str) -> dict[str, float]:
    """Per task: the largest absolute change of S_wp's per-layer mean when the BOS column is left out."""
    with_bos, _ = default.of("saliency", model)
    without, _ = excluded.of("saliency", model)
    if with_bos.empty or without.empty:
        return {}
    before, after = estimates(with_bos, ["task", "layer"]), estimates(without, ["task", "layer"])
    moves: dict[str, float] = {}
    for key, estimate in before.items():
        task, _, metric = key
        if metric == "S_wp" and key in after:
            moves[task] = max(moves.get(task, 0.0), abs(after[key].mean - estimate.mean))
    return moves


def exclude_bos_lines(default: Results, excluded: Results | None) -> list[str]:
    """Per model × finding 1a-1c: the verdict with the BOS column and without, and how far S_wp moves. Where the
    second folder holds fewer tasks than the default one, both are judged on the tasks it holds (named)."""
    lines = [
        "| model | finding | tasks judged | with BOS (default) | without BOS (--exclude-bos) | largest change of "
        "S_wp's layer mean |",
        "|---|---|---|---|---|---|",
    ]
    for model in default.models:
        if model in OFFLINE_MODELS and not OFFLINE_MODELS[model].prepend_bos:
            # prompts without a BOS token have no column to leave out: --exclude-bos gives the same numbers
            named = " ".join(tasks_held(default, "saliency", model)) or "-"
            for claim in saliency_claims(default, model):
                same = f"the same: {model}'s prompts have no BOS token"
                lines.append(
                    f"| {model} | {claim.number} | {named} | {verdict_text(claim, '')} | {same} | 0 (no BOS) |"
                )
            continue
        tasks = tasks_held(excluded, "saliency", model) if excluded is not None else []
        compared = default.on_tasks("saliency", model, tasks) if tasks else default
        other = {c.number: c for c in saliency_claims(excluded, model)} if excluded is not None and tasks else {}
        moves = swp_moves(compared, excluded, model) if excluded is not None and tasks else {}
        moved = ", ".join(f"{task} {value:.3f}" for task, value in sorted(moves.items())) or "-"
        named = " ".join(tasks or tasks_held(default, "saliency", model)) or "-"
        for claim in saliency_claims(compared, model):
            without = verdict_text(other.get(claim.number), "no --exclude-bos saliency folder for this model")
            lines.append(f"| {model} | {claim.number} | {named} | {verdict_text(claim, '')} | {without} | {moved} |")
    return lines


def second_folder_commands(model: str, out: str | Path) -> list[str]:
    """The ``anchorlens`` commands (without the leading ``anchorlens``) that make an offline model's second
    folders beside its default folder `out`, as `scripts/regenerate.sh` runs them: isolation at the k of the
    paper's depth fraction into ``OUT-depth-fraction`` where that k is not among the default k (1 3 5 7), and
    saliency without the BOS column into ``OUT-exclude-bos`` where the model's prompts start with one. The
    settings are the default folder's (5 seeds, 200 test inputs, the four tasks).

    >>> second_folder_commands("gemma-3-270m", "docs/results/gemma-3-270m")[0].split(" --out ")[1]
    'docs/results/gemma-3-270m-depth-fraction'
    """
    if model not in OFFLINE_MODELS:
        raise UnknownModelError(
            f"no offline model {model!r}: its depth and BOS are not known before loading; use one of "
            f"{sorted(OFFLINE_MODELS)}"
        )
    offline = OFFLINE_MODELS[model]
    seeds = " ".join(str(seed) for seed in paper.SEEDS)
    common = f"--task {' '.join(paper.TASK_LABELS)} --model {model} --n-test 200 --seeds {seeds}"
    commands = []
    (k,) = k_at_depth_fractions(offline.n_layers, (PAPER_DEPTH_FRACTION,))
    if k not in paper.ISOLATION_K:
        commands.append(f"isolation {common} --k {k} --out {out}-depth-fraction")
    if offline.prepend_bos:
        commands.append(f"saliency {common} --exclude-bos --out {out}-exclude-bos")
    return commands


def render_method_choices(
    folders: Sequence[str | Path],
    exclude_bos: Sequence[str | Path],
    command: str,
    depth_fraction: Sequence[str | Path] = (),
) -> str:
    """The block: `folders` are the default results, `exclude_bos` saliency folders made with ``--exclude-bos``,
    `depth_fraction` isolation folders holding the k at the paper's depth fraction (read beside `folders`; a k
    both hold is refused as two folders holding one result)."""
    default = Results.read([str(folder) for folder in folders])
    excluded = Results.read([str(folder) for folder in exclude_bos]) if exclude_bos else None
    isolated = Results.read([str(folder) for folder in [*folders, *depth_fraction]]) if depth_fraction else default
    lines = [
        f"Generated by `{command}` by the rules of `anchorlens.claims`; do not edit by hand.",
        "",
        f"Isolation at the paper's depth fraction ({MAIN_K}/{paper.GPT2_XL_LAYERS} = {PAPER_DEPTH_FRACTION:.4f}):",
        "",
        *depth_fraction_lines(default, isolated),
        "",
        "Saliency with and without the BOS column (S_wp and S_ww include it by default):",
        "",
        *exclude_bos_lines(default, excluded),
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python analyses/method_choices.py FOLDER.. [--exclude-bos FOLDER..] [--depth-fraction FOLDER..]
    [--check|--write PAGE]``: 0, 1 when a checked block is stale, 2 on bad input (a one-line error)."""
    parser = argparse.ArgumentParser(description="Claim 2 at the paper's depth fraction; 1a-1c without BOS.")
    parser.add_argument("folders", nargs="+", help="results folders, e.g. docs/results/smollm2-135m")
    parser.add_argument(
        "--exclude-bos", nargs="+", default=[], metavar="FOLDER", help="saliency folders made with --exclude-bos"
    )
    parser.add_argument(
        "--depth-fraction",
        nargs="+",
        default=[],
        metavar="FOLDER",
        help="isolation folders at the k of the paper's depth fraction (e.g. `anchorlens isolation --k 2` on an "
        "18-layer model), read beside FOLDER",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", metavar="PAGE", help="exit 1 (with a diff) when PAGE's block is stale")
    mode.add_argument("--write", metavar="PAGE", help="replace PAGE's block with what is printed now")
    args = parser.parse_args(argv)
    command = " ".join(
        [
            "python analyses/method_choices.py",
            *args.folders,
            *(["--exclude-bos", *args.exclude_bos] if args.exclude_bos else []),
            *(["--depth-fraction", *args.depth_fraction] if args.depth_fraction else []),
        ]
    )
    try:
        printed = render_method_choices(args.folders, args.exclude_bos, command, args.depth_fraction)
        if args.check:
            return check_block(Path(args.check), printed, BLOCK, "analyses/method_choices.py")
        if args.write:
            write_block(Path(args.write), printed, BLOCK)
            print(f"{args.write}: {BLOCK} block written")
            return 0
    except AnchorlensError as error:
        print(f"method_choices.py: error: {error}", file=sys.stderr)
        return 2
    print(printed, end="")
    return 0
