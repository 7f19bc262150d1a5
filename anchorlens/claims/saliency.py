"""Findings 1a-1c: the saliency flows S_wp, S_pq and S_ww by depth (§2.1, Fig. 3)."""

from __future__ import annotations

from anchorlens.claims.inputs import Results, depth_layers, estimates, tasks_of
from anchorlens.claims.rules import Claim, greater


def saliency_claims(results: Results, model: str) -> list[Claim]:
    findings = [
        ("1a", "Saliency: S_wp dominates shallow layers", "S_wp largest in shallow layers (Fig. 3)"),
        ("1b", "Saliency: S_pq dominates deep layers", "S_pq largest in deep layers (Fig. 3)"),
        ("1c", "Saliency: S_wp and S_pq mostly above S_ww", "both mostly above S_ww (Fig. 3)"),
    ]
    part, reason = results.of("saliency", model)
    if part.empty or "layer" not in part.columns:
        reason = reason or "the saliency summary has no layer column"
        return [Claim(n, f, model, p, reason=reason) for n, f, p in findings]
    values = estimates(part, ["task", "layer"])
    shallow, deep = depth_layers(part["layer"])
    comparisons = {
        "1a": [(layer, "S_wp", other) for layer in shallow for other in ("S_pq", "S_ww")],
        "1b": [(layer, "S_pq", other) for layer in deep for other in ("S_wp", "S_ww")],
        "1c": [(layer, flow, "S_ww") for layer in sorted(set(part["layer"].astype(int))) for flow in ("S_wp", "S_pq")],
    }
    last_layer = int(part["layer"].max())
    differences = results.flow_differences(model)
    judged = []
    for number, finding, paper_text in findings:
        checks, skipped = [], set()
        for task in tasks_of(part):
            for layer, a, b in comparisons[number]:
                if layer == last_layer and "S_wp" in (a, b):
                    # In the last layer only the target's row of attention reaches the loss, so S_wp (label
                    # words' rows) is 0 by construction: a comparison with it there says nothing about the model.
                    skipped.add(
                        f"layer {layer}, {a} > {b} (the last layer: only the target's attention row reaches the"
                        " loss, so S_wp is 0 by construction)"
                    )
                    continue
                if (task, layer, a) in values and (task, layer, b) in values:
                    checks.append(
                        greater(
                            f"{a} > {b}",
                            task,
                            values[(task, layer, a)],
                            values[(task, layer, b)],
                            a,
                            b,
                            layer=layer,
                            digits=3,
                            difference=differences.get((task, layer, f"{a} - {b}")),
                        )
                    )
        judged.append(
            Claim(
                number,
                finding,
                model,
                paper_text,
                tuple(checks),
                reason="" if checks else "the saliency summary lacks S_wp, S_pq or S_ww",
                skipped=tuple(sorted(skipped)),
                rule="most" if number == "1c" else "every",
            )
        )
    return judged
