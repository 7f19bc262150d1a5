"""Findings 3a-3c: the AUROC of the attention to label words, and its cumulative rise R_l (§2.3, Fig. 5)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from anchorlens.claims.inputs import Results, depth_layers, estimates, tasks_of
from anchorlens.claims.rules import (
    AUROC_DEEP_ABOVE,
    AUROC_SHALLOW_BELOW,
    NO_RISE,
    Check,
    Claim,
    Estimate,
    greater,
    over_seeds,
    ranges,
)
from anchorlens.experiments.auroc import cumulative_r
from anchorlens.stats import LEVEL


def auroc_claims(results: Results, model: str) -> list[Claim]:
    findings = [
        ("3a", "AUROC ≈ 0.5 in shallow layers", "≈ 0.5 in shallow layers (Fig. 5)"),
        ("3b", "AUROC clears 0.7 in a deep layer chosen on other seeds", "up to ≈ 0.8 in deep layers (Fig. 5)"),
        ("3c", "R_l rises mainly after the shallow layers", "R_l rises in middle and deep layers (Fig. 5)"),
    ]
    part, reason = results.of("auroc", model)
    if part.empty or "layer" not in part.columns or "auroc" not in set(part["metric"]):
        reason = reason or "the auroc summary has no layer column or no auroc metric"
        return [Claim(n, f, model, p, reason=reason) for n, f, p in findings]
    values = estimates(part, ["task", "layer"])
    # R may come as a column beside the auroc rows (one value per task and layer, no interval).
    r_column = (
        {
            (str(task), int(layer)): float(r)
            for task, layer, r in part.loc[part["metric"] == "auroc", ["task", "layer", "R"]].itertuples(index=False)
            if pd.notna(r)
        }
        if "R" in part.columns
        else {}
    )
    shallow, deep = depth_layers(part["layer"])
    n_layers = max(int(layer) for layer in part["layer"]) + 1
    uniform = len(shallow) / n_layers  # R_l at the last shallow layer if every layer added the same excess
    seed_rows = results.seed_rows.get("auroc")
    checks: dict[str, list[Check]] = {"3a": [], "3b": [], "3c": []}
    skipped: dict[str, list[str]] = {"3a": [], "3b": [], "3c": []}
    for task in tasks_of(part):
        for layer in shallow:
            if (task, layer, "auroc") in values:
                checks["3a"].append(
                    greater(
                        f"AUROC < {AUROC_SHALLOW_BELOW}",
                        task,
                        Estimate.exact(AUROC_SHALLOW_BELOW),
                        values[(task, layer, "auroc")],
                        "",
                        "AUROC",
                        layer=layer,
                        b_first=True,
                    )
                )
        held_out = held_out_deep_auroc(seed_rows, model, task, deep)
        if held_out is None:
            skipped["3b"].append(f"{task} (no per-seed AUROC of the deep layers: auroc.csv is missing or lacks it)")
        else:
            estimate, chosen = held_out
            checks["3b"].append(
                greater(
                    f"held-out AUROC > {AUROC_DEEP_ABOVE}",
                    task,
                    estimate,
                    Estimate.exact(AUROC_DEEP_ABOVE),
                    f"held-out AUROC ({chosen})",
                    "",
                )
            )
        task_layers = sorted({layer for t, layer, _ in values if t == task})
        total = values.get((task, task_layers[-1], "excess"))
        r = r_at(values, r_column, task, task_layers, shallow[-1])
        test = f"R < {uniform:.2f} (uniform rise) at the last shallow layer"
        if total is not None and total.has_interval and total.low <= 0:
            # R_l is a share of the whole curve's excess over 0.5; with that excess not clearly above 0 it is no
            # share of a rise (it swings without bound): the check cannot decide, whatever R_l reads.
            detail = f"total excess of the AUROC over 0.5 {total.text()}, so R_l is no share of a rise"
            checks["3c"].append(Check(test, task, NO_RISE, -math.inf, detail))
        elif r is None:
            skipped["3c"].append(f"{task} (no R_l: the AUROC curve's excess over 0.5 sums to 0)")
        else:
            checks["3c"].append(
                greater(test, task, Estimate.exact(uniform), r, "", "R", layer=shallow[-1], b_first=True)
            )
    return [
        Claim(
            n,
            f,
            model,
            p,
            tuple(checks[n]),
            reason=""
            if checks[n]
            else "no per-seed AUROC (auroc.csv) of the deep layers"
            if skipped[n]
            else "no AUROC in these layers",
            skipped=tuple(skipped[n]),
        )
        for n, f, p in findings
    ]


def held_out_deep_auroc(
    seed_rows: pd.DataFrame | None, model: str, task: str, deep: Sequence[int], level: float = LEVEL
) -> tuple[Estimate, str] | None:
    """Finding 3b without picking the best of many noisy layers unchecked: for each seed, the deep layer with
    the highest mean AUROC over the other seeds is chosen, and this seed's AUROC at that layer is kept (leave
    one seed out). Returns the held-out values' mean with their seed-level t-interval, and the chosen layers;
    None without per-seed AUROC rows (``auroc.csv``: ``task, model, seed, layer, auroc``). Seeds where the
    AUROC is undefined (one class predicted) take no part; with one defined seed nothing is held out, and the
    estimate (that seed's best deep layer) rests on one seed, so it decides nothing."""
    needed = {"task", "model", "seed", "layer", "auroc"}
    if seed_rows is None or not needed <= set(seed_rows.columns):
        return None
    rows = seed_rows[(seed_rows["model"].astype(str) == model) & (seed_rows["task"].astype(str) == task)]
    rows = rows[rows["layer"].astype(int).isin(list(deep))]
    if "head" in rows.columns:
        rows = rows[rows["head"].isna()]
    if rows.empty:
        return None
    table = rows.pivot_table(index="seed", columns="layer", values="auroc", dropna=False).dropna(how="all")
    if table.empty:  # the model predicted one class on every input of every seed
        return Estimate(float("nan"), float("nan"), float("nan"), 0), "defined on no seed"
    if len(table) == 1:
        return over_seeds(table.max(axis=1).to_numpy(), level), "one seed: no layer chosen apart"
    held_out, chosen = [], []
    for seed in table.index:
        layer = int(table.drop(index=seed).mean().idxmax())
        held_out.append(float(table.loc[seed, layer]))
        chosen.append(layer)
    return over_seeds(held_out, level), f"layer{'s' if len(set(chosen)) > 1 else ''} {ranges(chosen)}"


def r_at(values: dict, r_column: dict, task: str, layers: list[int], layer: int) -> Estimate | None:
    """R_l at `layer`: the summary's R metric with its interval if it has one, else its R column, else R from
    the mean AUROC curve."""
    if (task, layer, "R") in values and math.isfinite(values[(task, layer, "R")].mean):
        return values[(task, layer, "R")]
    if (task, layer) in r_column:
        return Estimate.exact(r_column[(task, layer)])
    curve = np.array(
        [values[(task, depth, "auroc")].mean if (task, depth, "auroc") in values else np.nan for depth in layers]
    )
    if layer not in layers:
        return None
    r = float(cumulative_r(curve)[layers.index(layer)])  # NaN where the curve's excess over 0.5 sums to 0
    return Estimate.exact(r) if math.isfinite(r) else None
