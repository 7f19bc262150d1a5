"""Finding 2: isolating label words in the first k layers costs most loyalty (§2.2, Fig. 4)."""

from __future__ import annotations

from anchorlens.claims.inputs import Results, estimates, tasks_of
from anchorlens.claims.rules import MAIN_K, Claim, greater


def isolation_claims(results: Results, model: str) -> list[Claim]:
    finding, paper_text = (
        "Isolation: label words matter most in the first k={k} layers",
        "first-k isolation cuts loyalty; last-k or random words barely (Fig. 4)",
    )
    part, reason = results.of("isolation", model)
    if part.empty or not {"k", "condition"} <= set(part.columns):
        reason = reason or "the isolation summary has no k or condition column"
        return [Claim(f"2 (k={MAIN_K})", finding.format(k=MAIN_K), model, paper_text, reason=reason)]
    values = estimates(part, ["task", "k", "condition"])
    ks = sorted({int(k) for k in part["k"]}, key=lambda k: (k != MAIN_K, k))
    judged = []
    for k in ks:
        checks = []
        for task in tasks_of(part):
            for metric, short in (("label_loyalty", "label loyalty"), ("word_loyalty", "word loyalty")):
                first = values.get((task, k, "label_first", metric))
                for other in ("label_last", "random_first"):
                    compared = values.get((task, k, other, metric))
                    if first is not None and compared is not None:
                        difference = results.paired("isolation", model, other, "label_first", metric, k=k).get(task)
                        checks.append(
                            greater(
                                f"{short}: {other} > label_first",
                                task,
                                compared,
                                first,
                                other,
                                "label_first",
                                difference=difference,
                            )
                        )
        judged.append(
            Claim(
                f"2 (k={k})",
                finding.format(k=k),
                model,
                paper_text,
                tuple(checks),
                reason="" if checks else f"no label_first with label_last or random_first at k={k}",
            )
        )
    return judged
