"""Findings 5a-5d: Hidden_anchor compression keeps loyalty and accuracy and speeds inference up (§3.2,
Tables 2-3)."""

from __future__ import annotations

import pandas as pd

from anchorlens import paper
from anchorlens.claims.arms import method_checks, paired_arms
from anchorlens.claims.inputs import Results, estimates, first_present, task_key, tasks_of
from anchorlens.claims.rules import ACCURACY_METRICS, COMPRESSED, PAIRED_ARMS, Claim, Estimate, greater, over_seeds
from anchorlens.stats import means_with_ci


def compress_claims(results: Results, model: str) -> list[Claim]:
    gpt2 = paper.COMPRESS_TABLE["GPT2-XL"]
    label, word, accuracy = 0, 1, 2  # positions in the paper's (label loyalty, word loyalty, accuracy)
    best_other_label = max(gpt2[m][label] for m in COMPRESSED if m != "hidden_anchor")
    other_contexts = [m for m in COMPRESSED if m != "hidden_anchor"]
    speedups = [v for values in paper.COMPRESS_SPEEDUP.values() for v in values.values()]
    findings = [
        (
            "5a",
            "Compression: Hidden_anchor most loyal (label loyalty)",
            f"{gpt2['hidden_anchor'][label]:.2f} vs {best_other_label:.2f} % (best other, GPT2-XL, Table 2)",
            "label_loyalty",
            other_contexts,
        ),
        (
            "5b",
            "Compression: Hidden_anchor beats Hidden_random(-top) on word loyalty",
            f"{gpt2['hidden_anchor'][word]:.2f} vs {gpt2['hidden_random'][word]:.2f} / "
            f"{gpt2['hidden_random_top'][word]:.2f} % (GPT2-XL)",
            "word_loyalty",
            ["hidden_random", "hidden_random_top"],
        ),
        (
            "5c",
            "Compression: Hidden_anchor keeps more ICL accuracy than other compressed contexts",
            f"{gpt2['hidden_anchor'][accuracy]:.2f} vs "
            + " / ".join(f"{gpt2[m][accuracy]:.2f}" for m in other_contexts)
            + f", ICL {gpt2['icl'][accuracy]:.2f} % (GPT2-XL)",
            None,
            other_contexts,
        ),
    ]
    part, reason = results.of("compress", model)
    judged = []
    for number, finding, paper_text, metric, others in findings:
        if metric is None:
            metric = first_present(part["metric"], ACCURACY_METRICS) if not part.empty else None
        if part.empty or "method" not in part.columns or metric is None or metric not in set(part["metric"]):
            missing = metric or "accuracy"
            judged.append(
                Claim(
                    number,
                    finding,
                    model,
                    paper_text,
                    reason=reason or f"the compress summary has no method column or no {missing}",
                )
            )
            continue
        values = estimates(part, ["task", "method"])
        tasks, untestable = tasks_of(part), list[str]()
        if number == "5c":
            tasks, untestable = icl_above_baseline(results, model, tasks, metric)
        paired, paired_average = paired_arms(results, "compress", model, "hidden_anchor", metric)
        checks, headline = method_checks(
            values,
            tasks,
            metric,
            "hidden_anchor",
            others,
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
                reason=""
                if checks
                else "not testable on any task (ICL does not beat the no-demonstration baseline)"
                if untestable
                else f"no task has hidden_anchor and {', '.join(others)}",
                skipped=tuple(untestable),
            )
        )
    judged.append(speedup_claim(results, model, f"{min(speedups):.1f}-{max(speedups):.1f}x (GPT2-XL, GPT-J; Table 3)"))
    return judged


def icl_above_baseline(results: Results, model: str, tasks: list[str], metric: str) -> tuple[list[str], list[str]]:
    """(tasks where ICL's accuracy lies above the no-demonstration baseline, why each other task is not testable).

    Finding 5c asks which compressed context keeps most of what the demonstrations add; where ICL adds nothing
    measurable there is nothing to keep, and every compressed context may tie it. The baseline: a
    ``zero_shot`` arm of the compression rows where there is one, else the most frequent gold class of the
    seed's test inputs predicted for every input (what a prompt without demonstrations that only knows the
    class frequencies gets; ICL at chance does not beat it). Judged on the paired per-input difference,
    `anchorlens.stats.means_with_ci`: testable when its interval lies above 0. Without per-example rows every
    task is kept (nothing to decide it on)."""
    examples = results.examples.get("compress")
    arm = PAIRED_ARMS["compress"]
    if examples is None or not {"gold", metric} <= set(examples.columns):
        return tasks, []
    rows = examples[(examples["model"] == model) & examples["task"].isin(tasks)]
    icl = rows[rows[arm] == "icl"].set_index(["task", "model", "seed", "example"])
    zero_shot = rows[rows[arm] == "zero_shot"].set_index(["task", "model", "seed", "example"])
    if not zero_shot.empty:
        baseline, name = zero_shot[metric].reindex(icl.index), "zero-shot"
    else:
        gold = icl["gold"]
        majority = gold.groupby(level=["task", "seed"]).transform(lambda g: g.value_counts().idxmax())
        baseline, name = (gold == majority).astype(float), "most frequent class"
    frame = pd.DataFrame({"icl": icl[metric], "baseline": baseline}).dropna()
    frame = frame.assign(difference=frame["icl"] - frame["baseline"]).reset_index()
    summary = means_with_ci(frame, ["task"], ["icl", "baseline", "difference"]).set_index(["task", "metric"])
    testable, untestable = [], []
    for task in tasks:
        if (task, "difference") not in summary.index:
            testable.append(task)
            continue
        row = {m: summary.loc[(task, m)] for m in ("icl", "baseline", "difference")}
        if row["difference"]["ci_low"] > 0:
            testable.append(task)
            continue
        text = {m: Estimate(r["mean"], r["ci_low"], r["ci_high"]).text(100, 1) for m, r in row.items()}
        untestable.append(
            f"{task}: not testable (ICL {text['icl']} does not beat the {name} baseline {text['baseline']}; "
            f"paired difference {text['difference']} %)"
        )
    return testable, untestable


def speedup_claim(results: Results, model: str, paper_text: str) -> Claim:
    number, finding = "5d", "Compression: Hidden_anchor speeds inference up"
    rows = results.seed_rows.get("compress")
    needed = {"task", "model", "method", "seed", "speedup"}
    if rows is None or not needed <= set(rows.columns):
        return Claim(
            number,
            finding,
            model,
            paper_text,
            reason="no compress.csv with a speedup column"
            if rows is None or "speedup" not in rows.columns
            else f"compress.csv lacks {sorted(needed - set(rows.columns))}",
        )
    anchor = rows[(rows["model"].astype(str) == model) & (rows["method"] == "hidden_anchor")]
    checks = []
    for task in sorted(anchor["task"].astype(str).unique(), key=task_key):
        per_seed = anchor[anchor["task"] == task].groupby("seed")["speedup"].mean()
        checks.append(
            greater("speed-up > 1", task, over_seeds(per_seed.to_numpy()), Estimate.exact(1.0), "speed-up", "")
        )
    return Claim(
        number,
        finding,
        model,
        paper_text,
        tuple(checks),
        reason="" if checks else f"compress.csv has no hidden_anchor rows of {model}",
    )
