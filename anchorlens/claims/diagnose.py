"""Finding 6: the predicted confusion matches the true one (§3.3, Fig. 6)."""

from __future__ import annotations

import math

import pandas as pd

from anchorlens.claims.inputs import Results, task_key
from anchorlens.claims.rules import (
    CORRELATIONS,
    FAILS,
    FEW_SEEDS,
    HOLDS,
    MIN_SEEDS_TO_DECIDE,
    P_VALUE_BELOW,
    UNCLEAR,
    Check,
    Claim,
    Estimate,
    over_seeds,
)
from anchorlens.errors import AnchorlensError


def diagnose_claims(results: Results, model: str) -> list[Claim]:
    number, finding, paper_text = (
        "6",
        "Diagnosis: predicted confusion matches the true one",
        "predicted ≈ true confusion (Fig. 6)",
    )
    found, reason = diagnosis_correlations(results, model)
    if found is None:
        return [Claim(number, finding, model, paper_text, reason=reason)]
    name, per_task = found
    checks, skipped = [], []
    for task in sorted(per_task, key=task_key):
        over, pooled, p, n_permutations = per_task[task]
        if not (math.isfinite(pooled) and math.isfinite(p)):
            skipped.append(f"{task} (no correlation: fewer than 3 class pairs, or a constant matrix)")
            continue
        smallest = 1 / n_permutations if n_permutations else float("nan")
        detail = (
            f"{name} over seeds {over.text()}; seed-mean matrices {pooled:.2f}, permutation p = {p:.3f} "
            f"(smallest reachable {smallest:.3f})"
        )
        test = f"{name} > 0 over seeds, permutation p < {P_VALUE_BELOW}"
        if over.seeds is not None and over.seeds < MIN_SEEDS_TO_DECIDE:
            checks.append(Check(test, task, FEW_SEEDS, -math.inf, detail + f"; {over.seeds} seed"))
            continue
        # Holds when both the seeds and the permutation test place it above 0; contradicted only when the seeds
        # place it below 0; anything between (a positive value the test cannot confirm) is not shown.
        if over.has_interval and over.low > 0 and p < P_VALUE_BELOW:
            outcome = HOLDS
        elif over.has_interval and over.high < 0:
            outcome = FAILS
        else:
            outcome = UNCLEAR
            if smallest >= P_VALUE_BELOW:
                detail += f": {n_permutations} relabellings cannot reach p < {P_VALUE_BELOW}"
        brief = f"{name} over seeds {over.text()}, p = {p:.3f} (min. {smallest:.3f})"
        why = "unclear (the seeds' interval holds 0, or the permutation test does not confirm it)"
        checks.append(
            Check(
                test, task, outcome, over.low if over.has_interval else -math.inf, detail, brief=brief, unclear_why=why
            )
        )
    return [
        Claim(
            number,
            finding,
            model,
            paper_text,
            tuple(checks),
            skipped=tuple(skipped),
            reason="" if checks else "no task has a correlation",
        )
    ]


def diagnosis_correlations(
    results: Results, model: str
) -> tuple[tuple[str, dict[str, tuple[Estimate, float, float, int]]] | None, str]:
    """((correlation name, {task: (over seeds, seed-mean, p-value, relabellings)}), "") from the seed rows of
    diagnose.csv: the correlation of each seed's predicted and true confusion (`DiagnoseResult.summary` of that
    seed's rows) with its seed-level t-interval (`over_seeds`), and the correlation of the seed-mean matrices
    with its one-sided permutation p-value and the number of relabellings compared (the smallest reachable
    p-value is one over it: 1/24 with 4 classes); (None, why) without seed rows."""
    _, reason = results.of("diagnose", model)
    rows = results.seed_rows.get("diagnose")
    rows = rows[rows["model"].astype(str) == model] if rows is not None and "model" in rows.columns else None
    if rows is None or rows.empty:
        return None, reason or f"no diagnose results for {model}"
    from anchorlens.experiments import DiagnoseResult

    try:
        pooled = DiagnoseResult.from_frame(rows).summary()
        per_seed = pd.concat(
            [
                DiagnoseResult.from_frame(seed_rows).summary().assign(seed=seed)
                for seed, seed_rows in rows.groupby("seed")
            ],
            ignore_index=True,
        )
    except (AnchorlensError, KeyError, ValueError) as error:
        return None, f"the diagnose rows of {model} cannot be summarised ({error})"
    for name, p_name in CORRELATIONS:
        if {name, p_name, "n_permutations"} <= set(pooled.columns):
            found = {}
            for row in pooled.to_dict("records"):
                task = str(row["task"])
                seeds = per_seed.loc[per_seed["task"].astype(str) == task, name].to_numpy(dtype=float)
                found[task] = (over_seeds(seeds), float(row[name]), float(row[p_name]), int(row["n_permutations"]))
            return (name, found), ""
    wanted = " or ".join(f"{name} with {p_name}" for name, p_name in CORRELATIONS)
    return None, f"the summary of diagnose.csv has no {wanted}"
