"""Findings 4a-4b: anchor re-weighting beats vanilla ICL (§3.1, Table 1)."""

from __future__ import annotations

from anchorlens import paper
from anchorlens.claims.arms import method_checks, paired_arms
from anchorlens.claims.inputs import Results, estimates, first_present, tasks_of
from anchorlens.claims.rules import ACCURACY_METRICS, Claim


def reweight_claims(results: Results, model: str) -> list[Claim]:
    table = paper.REWEIGHT_TABLE
    findings = [
        ("4a", "Re-weighting beats vanilla 1-shot ICL", "vanilla_1shot"),
        ("4b", "Re-weighting beats vanilla 5-shot ICL", "vanilla_5shot"),
    ]
    part, reason = results.of("reweight", model)
    judged = []
    for number, finding, baseline in findings:
        paper_text = f"{table['reweight']['Avg']:.2f} vs {table[baseline]['Avg']:.2f} % (Avg, Table 1)"
        metric = first_present(part["metric"], ACCURACY_METRICS) if not part.empty else None
        if part.empty or "method" not in part.columns or metric is None:
            judged.append(
                Claim(
                    number,
                    finding,
                    model,
                    paper_text,
                    reason=reason or "the reweight summary has no method column or no accuracy",
                )
            )
            continue
        values = estimates(part, ["task", "method"])
        paired, paired_average = paired_arms(results, "reweight", model, "reweight", metric)
        checks, headline = method_checks(
            values,
            tasks_of(part),
            metric,
            "reweight",
            [baseline],
            paired=paired,
            paired_average=paired_average,
        )
        judged.append(
            Claim(
                number,
                finding,
                model,
                paper_text,
                tuple(checks),
                headline=headline,
                reason="" if checks else f"no task has both reweight and {baseline}",
            )
        )
    return judged
