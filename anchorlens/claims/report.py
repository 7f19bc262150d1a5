"""Every finding for every model, and the printed forms: the full table with every check that does not hold,
and the README's short form."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from anchorlens.claims.auroc import auroc_claims
from anchorlens.claims.compress import compress_claims
from anchorlens.claims.diagnose import diagnose_claims
from anchorlens.claims.inputs import Results, spread_text, task_key
from anchorlens.claims.isolation import isolation_claims
from anchorlens.claims.reweight import reweight_claims
from anchorlens.claims.rules import (
    EXPERIMENTS,
    FAILS,
    FEW_SEEDS,
    HOLDS,
    MAIN_K,
    MIN_SEEDS_TO_DECIDE,
    NO_INTERVAL,
    NO_RISE,
    Check,
    Claim,
    ranges,
    repeated_failures,
)
from anchorlens.claims.saliency import saliency_claims

FINDINGS = (saliency_claims, isolation_claims, auroc_claims, reweight_claims, compress_claims, diagnose_claims)


def all_claims(results: Results) -> list[Claim]:
    """Every finding for every model, finding by finding (models in folder order)."""
    per_model = {model: [claim for judge in FINDINGS for claim in judge(results, model)] for model in results.models}
    numbers = list(dict.fromkeys(claim.number for claims in per_model.values() for claim in claims))
    return [
        claim for number in numbers for model in results.models for claim in per_model[model] if claim.number == number
    ]


def exceptions(claim: Claim) -> list[str]:
    """The checks that do not hold, grouped by test, outcome and task, layers as ranges with the worst shown."""
    groups: dict[tuple[str, str, str], list[Check]] = {}
    for check in claim.checks:
        if check.outcome != HOLDS:
            groups.setdefault((check.test, check.outcome, check.task), []).append(check)
    lines = []
    for (test, outcome, task), checks in groups.items():
        worst = min(checks, key=lambda check: check.margin)
        layers = [check.layer for check in checks if check.layer is not None]
        if layers:
            where = f"{task} layer{'s' if len(layers) > 1 else ''} {ranges(layers)}"
            shown = f"worst layer {worst.layer}: {worst.detail}" if len(layers) > 1 else worst.detail
        else:
            where, shown = task, worst.detail
        unclear = worst.unclear_why or (
            "unclear (the paired difference's interval holds 0)" if worst.brief else "unclear (intervals overlap)"
        )
        state = {
            FAILS: "fails",
            NO_INTERVAL: "cannot be judged (no interval, e.g. one seed)",
            NO_RISE: "cannot be judged (the AUROC does not clearly rise)",
            FEW_SEEDS: f"cannot be judged (fewer than {MIN_SEEDS_TO_DECIDE} seeds)",
        }.get(outcome, unclear)
        lines.append(f"{test} {state}: {where} ({shown})")
    repeated = [f"repeated across tasks: {text}" for text in repeated_failures(claim.checks)]
    return repeated + lines + [f"not judged: {reason}" for reason in claim.skipped]


def coverage(results: Results) -> list[str]:
    """One line per model: for each experiment with a summary, the seeds × test inputs per seed each task's rows
    rest on (the largest ``n_seeds`` and ``n_examples`` of its rows), so that a partly regenerated folder says
    what its verdicts stand on. Tasks with the same numbers, and then experiments with the same tasks and
    numbers, are listed together: ``saliency: 5×200 sst2 trec, 1×200 emoc; reweight, compress: 1×200 sst2``."""
    lines = []
    for model in results.models:
        by_text: dict[str, list[str]] = {}
        for experiment in EXPERIMENTS:
            summary, missing = results.of(experiment, model)
            if missing or not {"n_seeds", "n_examples"} <= set(summary.columns):
                continue
            per_task = summary.groupby("task")[["n_seeds", "n_examples"]].max()
            inputs = results.seed_rows.get(experiment)
            if (
                experiment == "diagnose"
                and inputs is not None
                and {"task", "model", "seed", "n"} <= set(inputs.columns)
            ):
                # The summary's rows are class pairs (n_examples: the pair's two classes); the seed rows carry
                # every input of the seed (n), top-ups included.
                inputs = inputs[inputs["model"].astype(str) == model]
                per_seed = inputs.groupby(["task", "seed"])["n"].max().groupby("task")
                per_task = pd.DataFrame({"n_seeds": per_seed.size(), "n_examples": per_seed.sum()})
            tasks_of_size: dict[str, list[str]] = {}
            for task in sorted(per_task.index, key=task_key):
                seeds, examples = int(per_task.loc[task, "n_seeds"]), per_task.loc[task, "n_examples"]
                # An AUROC defined on no seed (one class predicted everywhere) rests on nothing.
                size = f"{seeds}×{examples / seeds:.0f}" if seeds else "no seed defined:"
                tasks_of_size.setdefault(size, []).append(str(task))
            text = ", ".join(f"{size} {' '.join(tasks)}" for size, tasks in tasks_of_size.items())
            by_text.setdefault(text, []).append(experiment)
        held = [f"{', '.join(experiments)}: {text}" for text, experiments in by_text.items()]
        lines.append(f"- {model}: " + ("; ".join(held) if held else "no summary yet"))
    return lines


def coverage_text(covered: Sequence[str]) -> list[str]:
    if not covered:
        return []
    return ["", "What the verdicts rest on, per task: seeds × test inputs per seed (from the summaries):", "", *covered]


def render(claims: Sequence[Claim], command: str, covered: Sequence[str] = (), spread: Sequence[str] = ()) -> str:
    """The markdown the README embeds: a note on where it comes from, the table, then each claim's exceptions."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        f"Generated by `{command}` from the results' 95% intervals; the rules are the table at the top of "
        "`analyses/claims.py`. Do not edit by hand: `--write README.md` regenerates this block.",
        "",
        "| # | finding | model | paper | ours, 95% CI | checks holding | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for claim in claims:
        lines.append(
            "| "
            + " | ".join(
                cell(text)
                for text in (
                    claim.number,
                    claim.finding,
                    claim.model,
                    claim.paper,
                    claim.ours,
                    claim.holds,
                    f"**{claim.verdict}**",
                )
            )
            + " |"
        )
    listed = [(claim, exceptions(claim)) for claim in claims]
    listed = [(claim, found) for claim, found in listed if found]
    if listed:
        lines += ["", "Checks that do not hold (the verdict counts them):", ""]
        for claim, found in listed:
            lines.append(f"- **{claim.number}, {claim.model}** ({claim.verdict}):")
            lines += [f"  - {line}" for line in found]
    lines += coverage_text(covered) + spread_text(spread)
    return "\n".join(lines) + "\n"


def render_short(claims: Sequence[Claim], command: str, full_at: str, covered: Sequence[str] = ()) -> str:
    """The README's form: one row per finding, one column per model (verdict, checks holding, our headline
    number); the checks that do not hold are in the full form at ``full_at``."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    models = list(dict.fromkeys(claim.model for claim in claims))
    findings: dict[str, dict[str, Claim]] = {}
    for claim in claims:
        if claim.number.startswith("2 (k=") and claim.number != f"2 (k={MAIN_K})":
            continue  # isolation's other k are in the full form; the paper's main result is k = 5
        findings.setdefault(claim.number, {})[claim.model] = claim
    lines = [
        f"Generated by `{command} --short {full_at}` by the rules in `analyses/claims.py`; do not edit by hand. "
        f"Per model: verdict, tasks holding, our weakest (or average) number with its 95% interval (of the paired "
        f"difference where both sides share test inputs). What does not hold, and isolation at k other than "
        f"{MAIN_K}: [{Path(full_at).name}]({full_at}).",
        "",
        "| # | finding | paper | " + " | ".join(models) + " |",
        "|---|---|---|" + "---|" * len(models),
    ]
    for number, by_model in findings.items():
        first = next(iter(by_model.values()))
        cells = []
        for model in models:
            judged = by_model.get(model)
            if judged is None:
                cells.append("-")
            elif not judged.checks:
                cells.append(f"**{judged.verdict}**")  # the reason is in the full form
            else:  # the tasks are in the coverage lines; "weakest" is in the header
                # The most repeated failure across tasks (all of them are in the full form).
                failures = repeated_failures(judged.checks, name_tasks=False)
                repeated = f" ({failures[0]}{', and more' if len(failures) > 1 else ''})" if failures else ""
                cells.append(
                    f"**{judged.verdict}**, {judged.holds}{repeated}; {judged.ours_brief.removeprefix('weakest, ')}"
                )
        lines.append("| " + " | ".join(cell(text) for text in (number, first.finding, first.paper, *cells)) + " |")
    lines += coverage_text(covered)
    return "\n".join(lines) + "\n"
