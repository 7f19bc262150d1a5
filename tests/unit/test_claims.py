"""anchorlens.claims (the package behind analyses/claims.py): the verdict rules on small synthetic summaries, the
README block modes, and the repository README's claims block against the committed results."""

from __future__ import annotations

import re
import shlex
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anchorlens import claims, paper
from anchorlens.errors import DataFileError
from anchorlens.experiments.saliency import SaliencyConfig, SaliencyResult
from anchorlens.stats import means_with_ci

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"
#: The folders the README's claims block is generated from.
README_FOLDERS = ("docs/results/smollm2-135m", "docs/results/gemma-3-270m")
#: The page holding the full claims (every check that does not hold); the README links to it.
RESULTS_PAGE = "docs/results.md"


MODEL = "tiny-model"


def around(mean: float, half: float = 0.02) -> tuple[float, float, float]:
    return mean, mean - half, mean + half


def write_summary(folder: Path, experiment: str, rows: list[dict]) -> None:
    """rows: {task, <keys>, metric, value: (mean, low, high)} → the long summary ExperimentResult.save writes."""
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for row in rows:
        row = dict(row)
        mean, low, high = row.pop("value")
        records.append(
            {"model": MODEL, "n_seeds": 3, "n_examples": 600, **row, "mean": mean, "ci_low": low, "ci_high": high}
        )
    frame = pd.DataFrame(records)
    keys = [
        c
        for c in frame.columns
        if c not in ("task", "model", "metric", "mean", "ci_low", "ci_high", "n_seeds", "n_examples")
    ]
    frame[["task", "model", *keys, "metric", "mean", "ci_low", "ci_high", "n_seeds", "n_examples"]].to_csv(
        folder / f"{experiment}_summary.csv", index=False
    )


def judged(folder: Path) -> dict[str, claims.Claim]:
    return {claim.number: claim for claim in claims.all_claims(claims.Results.read([folder]))}


# ----------------------------------------------------------------------------------------------- saliency


def saliency_rows(tasks=("sst2", "trec"), n_layers=9, low_pq_layers=()):
    """S_wp largest in the first third, S_pq in the last; S_pq below S_ww in `low_pq_layers` of sst2."""
    rows = []
    for task in tasks:
        for layer in range(n_layers):
            if layer < n_layers // 3:
                values = {"S_wp": 0.6, "S_pq": 0.25, "S_ww": 0.15}
            elif layer >= n_layers - n_layers // 3:
                values = {"S_wp": 0.1, "S_pq": 0.85, "S_ww": 0.05}
            else:
                values = {"S_wp": 0.4, "S_pq": 0.45, "S_ww": 0.15}
            if task == "sst2" and layer in low_pq_layers:
                values = {"S_wp": 0.6, "S_pq": 0.1, "S_ww": 0.3}
            rows += [{"task": task, "layer": layer, "metric": m, "value": around(v)} for m, v in values.items()]
    return rows


def test_saliency_per_layer_rule_exposes_early_layers_where_s_pq_is_below_s_ww(tmp_path):
    # The overclaim the rule must catch: third-averages had S_pq above S_ww while layers 0-1 had it below.
    write_summary(tmp_path, "saliency", saliency_rows(low_pq_layers=(0, 1)))
    found = judged(tmp_path)
    assert found["1a"].verdict == claims.REPRODUCED  # S_wp still dominates there
    assert found["1b"].verdict == claims.REPRODUCED
    # "mostly above S_ww": 15 of sst2's 17 checks hold, so the task holds, and the two failures are listed
    assert found["1c"].verdict == claims.REPRODUCED
    listed = claims.exceptions(found["1c"])
    last = "the last layer: only the target's attention row reaches the loss, so S_wp is 0 by construction"
    assert listed == [
        "S_pq > S_ww fails: sst2 layers 0-1 (worst layer 0: S_pq 0.100 [0.080, 0.120] vs S_ww 0.300 [0.280, 0.320])",
        f"not judged: layer 8, S_wp > S_ww ({last})",
    ]
    assert found["1c"].holds == "2/2 tasks"  # counted by task, not by layer
    assert found["1b"].skipped == (f"layer 8, S_pq > S_wp ({last})",)


def test_s_wp_at_the_last_layer_is_not_compared(tmp_path):
    """S_wp is 0 in the last layer by construction: a 0 there must neither fail 1c nor prop up 1b."""
    rows = saliency_rows()
    for row in rows:
        if row["layer"] == 8 and row["metric"] == "S_wp":
            row["value"] = (0.0, 0.0, 0.0)
    write_summary(tmp_path, "saliency", rows)
    found = judged(tmp_path)
    assert found["1c"].verdict == claims.REPRODUCED
    assert all(check.layer != 8 or "S_wp" not in check.test for n in ("1b", "1c") for check in found[n].checks)


def flow_examples(n_layers: int = 9) -> pd.DataFrame:
    """Per-example saliency rows where each seed's demonstrations set S_ww (2, 3 or 4 times the other flows),
    which moves the normalised S_wp and S_pq alike; S_wp is above S_pq on every input in shallow layers and
    below it in deep ones."""
    generator = np.random.default_rng(5)
    rows = []
    for seed, s_ww in zip((42, 43, 44), (2.0, 3.0, 4.0)):
        for example in range(30):
            for layer in range(n_layers):
                base = generator.uniform(0.9, 1.1)
                lead = 0.15 if layer < n_layers // 3 else -0.15 if layer >= n_layers - n_layers // 3 else 0.0
                values = {"S_wp": base + lead, "S_pq": base, "S_ww": s_ww * generator.uniform(0.95, 1.05)}
                rows.append(
                    {"task": "sst2", "model": MODEL, "seed": seed, "example": example, "layer": layer, **values}
                )
    return pd.DataFrame(rows)


def test_saliency_flows_are_judged_on_their_paired_difference(tmp_path):
    examples = flow_examples()
    summary = SaliencyResult(pd.DataFrame(), SaliencyConfig(), examples).summary_with_ci()  # as `save` writes it
    summary.to_csv(tmp_path / "saliency_summary.csv", index=False)

    def wp_against_pq(found):
        return [
            check for n in ("1a", "1b") for check in found[n].checks if set(check.test.split(" > ")) == {"S_wp", "S_pq"}
        ]

    unpaired = wp_against_pq(judged(tmp_path))
    assert len(unpaired) == 3 + 2  # shallow layers 0-2; deep 6-7 (S_wp is not compared in the last layer)
    assert {check.outcome for check in unpaired} == {claims.UNCLEAR}  # each flow's interval is wide
    examples.to_parquet(tmp_path / "saliency_examples.parquet")
    paired = wp_against_pq(judged(tmp_path))
    assert {check.outcome for check in paired} == {claims.HOLDS}
    assert all("paired difference" in check.detail and check.margin > 0 for check in paired)
    per_head = pd.concat([examples.assign(head=pd.NA), examples.assign(head=0, S_wp=0.0)], ignore_index=True)
    per_head.to_parquet(tmp_path / "saliency_examples.parquet")  # a --per-head run: its head rows are left out
    assert [check.detail for check in wp_against_pq(judged(tmp_path))] == [check.detail for check in paired]
    examples.drop(columns="S_ww").to_parquet(tmp_path / "saliency_examples.parquet")
    with pytest.raises(DataFileError, match=r"lacks the columns \['S_ww'\]; rerun `anchorlens saliency`"):
        judged(tmp_path)


def test_values_that_round_to_zero_keep_two_significant_digits():
    assert claims.Estimate(-0.00017, -0.00019, -0.00015).text(digits=3) == "-0.00017 [-0.00019, -0.00015]"
    assert claims.Estimate(0.004, 0.0035, 0.0041).text(digits=3) == "0.004 [0.004, 0.004]"
    assert claims.Estimate(0.0, 0.0, 0.0).text(digits=3) == "0.000"


def test_the_block_says_what_each_verdict_rests_on(tmp_path):
    """Seeds x test inputs per seed per task, from the summaries' n_seeds and n_examples: a partly regenerated
    folder's verdicts say what they stand on, in both the full and the README's form."""
    write_summary(tmp_path, "saliency", saliency_rows(tasks=("trec", "sst2")))
    summary = pd.read_csv(tmp_path / "saliency_summary.csv")
    summary.loc[summary["task"] == "trec", ["n_seeds", "n_examples"]] = (1, 200)
    summary.to_csv(tmp_path / "saliency_summary.csv", index=False)
    for experiment in ("compress", "auroc"):  # the same numbers on the same tasks: listed together
        rows = [{"task": task, "layer": 0, "metric": "m", "value": around(0.5)} for task in ("sst2", "trec")]
        write_summary(tmp_path, experiment, rows)
    results = claims.Results.read([tmp_path])
    covered = claims.coverage(results)
    assert covered == [f"- {MODEL}: saliency: 3×200 sst2, 1×200 trec; auroc, compress: 3×200 sst2 trec"]
    found = claims.all_claims(results)
    for printed in (claims.render(found, "cmd", covered), claims.render_short(found, "cmd", "full.md", covered)):
        assert printed.rstrip().endswith(covered[0])
    (tmp_path / "empty").mkdir()
    assert claims.coverage(claims.Results.read([tmp_path / "empty"])) == ["- empty: no summary yet"]


def test_coverage_of_an_auroc_defined_on_no_seed(tmp_path):
    rows = [{**row, "n_seeds": 0, "n_examples": 0} if row["task"] == "sst2" else row for row in auroc_rows()]
    write_summary(tmp_path, "auroc", rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        covered = claims.coverage(claims.Results.read([tmp_path]))
    assert covered == [f"- {MODEL}: auroc: no seed defined: sst2, 3×200 trec"]


def test_saliency_thirds_follow_the_models_depth(tmp_path):
    write_summary(tmp_path, "saliency", saliency_rows(n_layers=30))
    checks = judged(tmp_path)["1a"].checks
    assert sorted({check.layer for check in checks}) == list(range(10))
    assert {check.layer for check in judged(tmp_path)["1b"].checks} == set(range(20, 30))


def test_overlapping_intervals_are_never_reproduced(tmp_path):
    # S_wp 0.40 vs S_pq 0.38 in every shallow layer, intervals ±0.02: they overlap, nothing is decided.
    rows = saliency_rows(tasks=("sst2",))
    for row in rows:
        if row["layer"] < 3 and row["metric"] in ("S_wp", "S_pq"):
            row["value"] = around(0.40 if row["metric"] == "S_wp" else 0.38)
    write_summary(tmp_path, "saliency", rows)
    claim = judged(tmp_path)["1a"]
    outcomes = {(check.test, check.outcome) for check in claim.checks}
    assert outcomes == {("S_wp > S_pq", claims.UNCLEAR), ("S_wp > S_ww", claims.HOLDS)}
    assert claim.verdict == claims.PARTLY and claim.holds == "0/1 task, 1 partly"  # S_wp > S_ww holds
    assert "unclear (intervals overlap): sst2 layers 0-2" in claims.exceptions(claim)[0]


def test_most_checks_failing_fails_mostly_above(tmp_path):
    """1c says "mostly": a task where most of its layers have S_pq below S_ww fails it, not only partly."""
    write_summary(tmp_path, "saliency", saliency_rows(tasks=("sst2",), low_pq_layers=range(9)))
    claim = judged(tmp_path)["1c"]
    assert claim.outcomes == {"sst2": claims.FAILS} and claim.verdict == claims.NOT_REPRODUCED


def test_a_failure_at_one_layer_in_every_task_is_named(tmp_path):
    """Gemma-3's 1a: S_pq above S_wp at one shallow layer of every task (a full reversal). Counted by task it
    is partly; the repeated layer is named first, in the full and the short form."""
    rows = saliency_rows(tasks=("sst2", "trec", "agnews"))
    for row in rows:
        if row["layer"] == 2:
            row["value"] = around({"S_wp": 0.05, "S_pq": 0.9, "S_ww": 0.0}[row["metric"]])
    write_summary(tmp_path, "saliency", rows)
    claim = judged(tmp_path)["1a"]
    assert claim.verdict == claims.PARTLY and claim.holds == "0/3 tasks, 3 partly"
    repeated = "S_wp > S_pq fails at layer 2 in 3 tasks (sst2, trec, agnews)"
    assert claims.exceptions(claim)[0] == f"repeated across tasks: {repeated}"
    short = "S_wp > S_pq fails at layer 2 in 3 tasks"  # the short form leaves the tasks to the full form
    assert f"**partly**, 0/3 tasks, 3 partly ({short})" in claims.render_short([claim], "cmd", "full.md")
    assert claims.repeated_failures(judged(tmp_path)["1b"].checks) == []


# ------------------------------------------------------------------------------------------ the four verdicts


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ([claims.HOLDS] * 4, claims.REPRODUCED),
        ([claims.HOLDS] * 2 + [claims.FAILS, claims.UNCLEAR], claims.PARTLY),
        ([claims.HOLDS] + [claims.UNCLEAR] * 3, claims.PARTLY),  # unclear tasks count neither way
        ([claims.PARTLY, claims.FAILS], claims.PARTLY),
        ([claims.HOLDS, claims.FAILS, claims.FAILS], claims.NOT_REPRODUCED),
        ([claims.FAILS] + [claims.UNCLEAR] * 3, claims.NOT_REPRODUCED),
        ([claims.FAILS] * 4, claims.NOT_REPRODUCED),
        ([], claims.NOT_SHOWN),
        ([claims.UNCLEAR] * 3, claims.NOT_SHOWN),  # nothing decidable: not a negative finding
    ],
)
def test_verdict_rule(outcomes, expected):
    assert claims.verdict({f"task{i}": outcome for i, outcome in enumerate(outcomes)}) == expected


@pytest.mark.parametrize(
    ("outcomes", "rule", "expected"),
    [
        ([claims.HOLDS] * 3, "every", claims.HOLDS),
        ([claims.HOLDS, claims.HOLDS, claims.UNCLEAR], "every", claims.PARTLY),
        ([claims.HOLDS, claims.FAILS, claims.FAILS], "every", claims.FAILS),
        ([claims.HOLDS, claims.FAILS], "every", claims.PARTLY),
        ([claims.UNCLEAR, claims.NO_INTERVAL, claims.FEW_SEEDS, claims.NO_RISE], "every", claims.UNCLEAR),
        ([claims.HOLDS, claims.HOLDS, claims.FAILS], "most", claims.HOLDS),
        ([claims.HOLDS, claims.UNCLEAR], "most", claims.PARTLY),
    ],
)
def test_a_tasks_outcome_from_its_checks(outcomes, rule, expected):
    checks = [claims.Check("a > b", "sst2", outcome, 0.0, "", layer=i) for i, outcome in enumerate(outcomes)]
    checks.append(claims.Check("a > b", "Avg", claims.FAILS, 0.0, ""))  # the Avg is no task
    assert claims.task_outcomes(checks, rule) == {"sst2": expected}


def test_an_interval_on_one_seed_decides_nothing():
    """A rule about power, for every task: one seed says nothing of another demonstration set."""
    one_seed = claims.Estimate(0.9, 0.85, 0.95, seeds=1)
    check = claims.greater("a > b", "sst2", one_seed, claims.Estimate.exact(0.5), "a", "b")
    assert check.outcome == claims.FEW_SEEDS and check.detail.endswith("1 seed, fewer than 2")
    two_seeds = claims.Estimate(0.9, 0.85, 0.95, seeds=2)
    assert claims.greater("a > b", "sst2", two_seeds, claims.Estimate.exact(0.5), "a", "b").outcome == claims.HOLDS


@pytest.mark.parametrize(
    ("a", "b", "outcome"),
    [
        (around(0.5), around(0.4), claims.HOLDS),
        (around(0.4), around(0.5), claims.FAILS),
        (around(0.5), around(0.47), claims.UNCLEAR),  # 0.48 < 0.49: the intervals overlap
        ((0.5, float("nan"), float("nan")), around(0.1), claims.NO_INTERVAL),  # nothing is decided
    ],
)
def test_greater_needs_separated_intervals(a, b, outcome):
    assert claims.greater("a > b", "sst2", claims.Estimate(*a), claims.Estimate(*b), "a", "b").outcome == outcome


def test_a_threshold_inside_the_interval_is_unclear():
    auroc = claims.Estimate(0.72, 0.68, 0.76)  # the mean clears 0.7, the interval does not
    check = claims.greater("AUROC > 0.7", "sst2", auroc, claims.Estimate.exact(0.7), "AUROC", "")
    assert check.outcome == claims.UNCLEAR and check.detail == "AUROC 0.72 [0.68, 0.76] vs 0.70"


# ------------------------------------------------------------------------------------------------ isolation


def isolation_rows(ks=(5,), random_first_label=0.9):
    rows = []
    for task in ("sst2", "trec"):
        for k in ks:
            for condition, label, word in (
                ("label_first", 0.5, 0.1),
                ("label_last", 0.95, 0.9),
                ("random_first", random_first_label, 0.8),
                ("random_last", 1.0, 0.99),
            ):
                rows.append(
                    {
                        "task": task,
                        "k": k,
                        "condition": condition,
                        "metric": "label_loyalty",
                        "value": around(label if condition != "random_first" or task == "sst2" else 0.9),
                    }
                )
                rows.append(
                    {"task": task, "k": k, "condition": condition, "metric": "word_loyalty", "value": around(word)}
                )
    return rows


def test_isolation_has_one_row_per_k_main_k_first(tmp_path):
    write_summary(tmp_path, "isolation", isolation_rows(ks=(1, 5, 7)))
    numbers = [
        claim.number for claim in claims.all_claims(claims.Results.read([tmp_path])) if claim.number.startswith("2")
    ]
    assert numbers == ["2 (k=5)", "2 (k=1)", "2 (k=7)"]
    assert judged(tmp_path)["2 (k=5)"].verdict == claims.REPRODUCED


def test_isolation_random_words_as_harmful_as_label_words_is_an_exception(tmp_path):
    # On sst2 random_first label loyalty 0.51 vs label_first 0.50: not "more than random non-label words".
    write_summary(tmp_path, "isolation", isolation_rows(random_first_label=0.51))
    claim = judged(tmp_path)["2 (k=5)"]
    assert claim.verdict == claims.PARTLY and claim.holds == "1/2 tasks, 1 partly"
    assert claims.exceptions(claim) == [
        "label loyalty: random_first > label_first unclear (intervals overlap): sst2 "
        "(random_first 0.51 [0.49, 0.53] vs label_first 0.50 [0.48, 0.52])"
    ]


# ---------------------------------------------------------------------------------------------------- AUROC


def auroc_rows(n_layers=12, flat_task="sst2"):
    """trec is 0.5 in layers 0-3, then rises to 0.85 at the last layer; `flat_task` stays at 0.52 until the last
    layer (the Gemma-3 SST-2 case)."""
    rows = []
    for layer in range(n_layers):
        rising = 0.5 + 0.35 * max(layer - 4, 0) / (n_layers - 5)
        rows.append({"task": "trec", "layer": layer, "metric": "auroc", "value": around(rising)})
        flat = 0.85 if layer == n_layers - 1 else 0.52
        rows.append({"task": flat_task, "layer": layer, "metric": "auroc", "value": around(flat)})
    return rows


def auroc_seed_rows(per_seed: dict[str, list[list[float]]]) -> pd.DataFrame:
    """auroc.csv as `run_auroc` writes it: {task: one AUROC curve over layers per seed}."""
    return pd.DataFrame(
        [
            {"task": task, "model": MODEL, "seed": 42 + seed, "layer": layer, "auroc": value}
            for task, curves in per_seed.items()
            for seed, curve in enumerate(curves)
            for layer, value in enumerate(curve)
        ]
    )


def test_auroc_is_judged_per_task_and_exposes_a_flat_task(tmp_path):
    write_summary(tmp_path, "auroc", auroc_rows())
    found = judged(tmp_path)
    assert found["3a"].verdict == claims.REPRODUCED
    assert found["3b"].verdict == claims.NOT_SHOWN  # no seed rows: no layer can be chosen on other seeds
    assert found["3b"].skipped[0].startswith("sst2 (no per-seed AUROC of the deep layers")
    # R at layer 3 against the uniform share 4/12: trec has not risen yet (0), sst2's 0.08 of 0.57 is 0.14
    assert found["3c"].verdict == claims.REPRODUCED
    r = next(check for check in found["3c"].checks if check.task == "trec")
    assert r.test == "R < 0.33 (uniform rise) at the last shallow layer"
    assert r.detail.startswith("R 0.") and "[" not in r.detail  # judged on its value: no interval


def test_deep_auroc_is_tested_at_a_layer_chosen_on_other_seeds(tmp_path):
    """3b reads "reaches ≈ 0.8 in some deep layer": each seed's AUROC at the deep layer the other seeds pick.
    trec's layer 10 is high on every seed (holds); on agnews each seed has its own lucky layer, which the
    other seeds do not pick, so held out it falls to 0.55 (fails), though every seed's best layer is 0.9."""
    write_summary(tmp_path, "auroc", auroc_rows(flat_task="agnews"))
    flat = [0.5] * 8
    lucky = {0: 9, 1: 10, 2: 11}  # agnews: seed s peaks at its own layer
    curves = {
        "trec": [flat + [0.6, 0.6, 0.85 + 0.01 * seed, 0.6] for seed in range(3)],
        "agnews": [flat + [0.9 if layer == lucky[seed] else 0.55 for layer in range(8, 12)] for seed in range(3)],
    }
    auroc_seed_rows(curves).to_csv(tmp_path / "auroc.csv", index=False)
    claim = judged(tmp_path)["3b"]
    outcomes = {check.task: check.outcome for check in claim.checks}
    assert outcomes == {"trec": claims.HOLDS, "agnews": claims.FAILS}
    trec = next(check for check in claim.checks if check.task == "trec")
    assert "held-out AUROC (layer 10) 0.86 [" in trec.detail
    agnews = next(check for check in claim.checks if check.task == "agnews")
    assert "(layers 9-10) 0.55 vs 0.70" in agnews.detail  # each seed's pick is another seed's lucky layer
    assert claim.verdict == claims.PARTLY and claim.finding.endswith("in a deep layer chosen on other seeds")


def test_a_task_whose_auroc_rests_on_one_seed_counts_neither_way(tmp_path):
    """A model that predicts one class on every input of most seeds leaves the AUROC defined on one seed: its
    checks rest on one seed and decide nothing (a rule about power, not a named task)."""
    rows = [
        {**row, "n_seeds": 1, "n_examples": 200} if row["task"] == "sst2" else row
        for row in auroc_rows(flat_task="sst2")
    ]
    write_summary(tmp_path, "auroc", rows)
    found = judged(tmp_path)
    sst2 = [check for check in found["3a"].checks if check.task == "sst2"]
    assert sst2 and {check.outcome for check in sst2} == {claims.FEW_SEEDS}
    assert found["3a"].outcomes == {"trec": claims.HOLDS, "sst2": claims.UNCLEAR}
    assert found["3a"].verdict == claims.PARTLY
    assert "cannot be judged (fewer than 2 seeds): sst2 layers 0-3" in "\n".join(claims.exceptions(found["3a"]))


def test_r_metric_with_an_interval_is_used(tmp_path):
    rows = auroc_rows()
    rows.append({"task": "trec", "layer": 3, "metric": "R", "value": (0.45, 0.40, 0.55)})
    write_summary(tmp_path, "auroc", rows)
    r = next(check for check in judged(tmp_path)["3c"].checks if check.task == "trec")
    assert r.outcome == claims.FAILS and "R 0.45 [0.40, 0.55]" in r.detail  # above the uniform 0.33


@pytest.mark.parametrize(
    ("shallow", "later", "outcome"),
    [
        (0.8, 0.8, claims.UNCLEAR),  # a uniform rise: R = 4/12 at layer 3 (its interval holds the uniform share)
        (0.8, 0.7, claims.FAILS),  # R = 1.2 / 2.8 = 0.43: below the old 0.5, above the uniform share
        (0.55, 0.8, claims.HOLDS),  # R = 0.2 / 2.6 = 0.08
    ],
)
def test_r_is_tested_against_the_uniform_share(tmp_path, shallow, later, outcome):
    rows = [
        {"task": "trec", "layer": layer, "metric": "auroc", "value": around(shallow if layer < 4 else later)}
        for layer in range(12)
    ]
    if shallow == later:  # a uniform rise's R with the interval the summary gives it
        rows.append({"task": "trec", "layer": 3, "metric": "R", "value": around(1 / 3)})
    write_summary(tmp_path, "auroc", rows)
    claim = judged(tmp_path)["3c"]
    assert [check.outcome for check in claim.checks] == [outcome]
    assert claim.verdict == {claims.HOLDS: claims.REPRODUCED, claims.FAILS: claims.NOT_REPRODUCED}.get(
        outcome, claims.NOT_SHOWN
    )


def test_r_cannot_be_judged_where_the_total_excess_over_half_reaches_zero(tmp_path):
    """R_l divides by the whole curve's excess over 0.5: where that excess's interval reaches 0 (an AUROC near
    0.5 throughout) R_l swings without bound and is no share of a rise, so the check decides nothing there."""
    rows = auroc_rows()
    rows.append({"task": "trec", "layer": 3, "metric": "R", "value": (3.54, -4.14, 4.77)})  # SmolLM2's AG News
    rows.append({"task": "trec", "layer": 11, "metric": "excess", "value": (0.05, -0.4, 0.6)})
    rows.append({"task": "sst2", "layer": 11, "metric": "excess", "value": (0.7, 0.5, 0.9)})
    write_summary(tmp_path, "auroc", rows)
    claim = judged(tmp_path)["3c"]
    outcomes = {check.task: check.outcome for check in claim.checks}
    assert outcomes == {"sst2": claims.HOLDS, "trec": claims.NO_RISE} and claim.verdict == claims.PARTLY
    assert claim.ours == "weakest, sst2 layer 3: R 0.14 vs 0.33"  # the weakest decided check: trec has none
    assert claims.exceptions(claim) == [
        "R < 0.33 (uniform rise) at the last shallow layer cannot be judged (the AUROC does not clearly rise): trec"
        " (total excess of the AUROC over 0.5 0.05 [-0.40, 0.60], so R_l is no share of a rise)"
    ]


# --------------------------------------------------------------------------------------------- re-weighting


def reweight_rows(accuracies: dict[str, dict[str, float]], half: float = 0.03):
    return [
        {"task": task, "method": method, "metric": "correct", "value": around(value, half)}
        for method, per_task in accuracies.items()
        for task, value in per_task.items()
    ]


def test_reweight_average_and_per_task(tmp_path):
    write_summary(
        tmp_path,
        "reweight",
        reweight_rows(
            {
                "vanilla_1shot": {"sst2": 0.60, "trec": 0.50, "agnews": 0.70, "emoc": 0.30},
                "vanilla_5shot": {"sst2": 0.62, "trec": 0.60, "agnews": 0.72, "emoc": 0.31},
                "reweight": {"sst2": 0.80, "trec": 0.40, "agnews": 0.80, "emoc": 0.50},
            }
        ),
    )
    found = judged(tmp_path)
    one_shot = found["4a"]
    assert one_shot.verdict == claims.PARTLY and one_shot.holds == "3/4 tasks, 1 fails; Avg holds"
    assert claims.exceptions(one_shot) == [
        "reweight > vanilla_1shot fails: trec (reweight 40.0 [37.0, 43.0] vs vanilla_1shot 50.0 [47.0, 53.0])"
    ]
    # Avg 62.5 vs 52.5; half-width sqrt(4 * 3**2) / 4 = 1.5 points
    assert one_shot.ours == "Avg: reweight 62.5 [61.0, 64.0] vs vanilla_1shot 52.5 [51.0, 54.0]"
    assert paper.REWEIGHT_TABLE["reweight"]["Avg"] == 68.64 and one_shot.paper.startswith("68.64 vs 51.90")
    assert found["4b"].verdict == claims.PARTLY  # trec 0.40 < 0.60


def paired_examples(arms: tuple[str, str], column: str, gain: int = 8, **extra) -> pd.DataFrame:
    """Per-example rows of two arms on the same inputs: 3 seeds whose demonstrations move both arms alike (20%,
    50%, 80% correct), and the first arm right on `gain` more inputs of each seed's 100."""
    generator = np.random.default_rng(0)
    rows = []
    for task in ("sst2", "trec"):
        for seed, level in zip((42, 43, 44), (0.2, 0.5, 0.8)):
            base = (generator.random(100) < level).astype(float)
            better = base.copy()
            better[np.flatnonzero(base == 0)[:gain]] = 1.0
            for arm, values in zip(arms, (better, base)):
                rows += [
                    {"task": task, "model": MODEL, "seed": seed, column: arm, "example": i, "value": v, **extra}
                    for i, v in enumerate(values)
                ]
    return pd.DataFrame(rows)


def test_arms_on_the_same_inputs_are_judged_on_their_paired_difference(tmp_path):
    examples = paired_examples(("reweight", "vanilla_1shot"), "method").rename(columns={"value": "correct"})
    summary = means_with_ci(examples, ["task", "model", "method"], ["correct"])  # as the experiments do
    summary.to_csv(tmp_path / "reweight_summary.csv", index=False)
    unpaired = judged(tmp_path)["4a"]
    assert {check.outcome for check in unpaired.checks} == {claims.UNCLEAR}  # each arm's interval is wide
    examples.to_parquet(tmp_path / "reweight_examples.parquet")
    paired = judged(tmp_path)["4a"]
    assert paired.verdict == claims.REPRODUCED and paired.holds == "2/2 tasks; Avg holds"
    average = next(check for check in paired.checks if check.task == "Avg")
    assert "paired difference 8.0 [" in average.detail  # the Avg over the tasks' seeds, by the same method
    sst2 = next(check for check in paired.checks if check.task == "sst2")
    assert "paired difference 8.0 [" in sst2.detail  # 8 of each seed's 100 inputs turn correct
    assert sst2.margin > 0 and sst2.outcome == claims.HOLDS


def test_isolation_conditions_are_paired_within_their_k(tmp_path):
    frames = []
    for k, gain in ((5, 8), (3, 0)):
        one_k = paired_examples(("label_last", "label_first"), "condition", gain=gain, k=k)
        frames.append(one_k.assign(label_loyalty=one_k["value"], word_loyalty=one_k["value"]).drop(columns="value"))
    examples = pd.concat(frames, ignore_index=True)
    summary = means_with_ci(examples, ["task", "model", "k", "condition"], ["label_loyalty", "word_loyalty"])
    summary.to_csv(tmp_path / "isolation_summary.csv", index=False)
    examples.to_parquet(tmp_path / "isolation_examples.parquet")
    found = judged(tmp_path)
    assert found["2 (k=5)"].verdict == claims.REPRODUCED
    same = found["2 (k=3)"]  # no gain at k=3: a difference of exactly 0 is unclear, never holding
    assert {check.outcome for check in same.checks} == {claims.UNCLEAR}
    assert all(check.detail.endswith("paired difference 0.00") for check in same.checks)  # exactly 0
    assert all("unclear (the paired difference's interval holds 0)" in line for line in claims.exceptions(same))


def test_average_interval_adds_task_errors_in_quadrature():
    average = claims.average([claims.Estimate(0.5, 0.4, 0.55), claims.Estimate(0.7, 0.65, 0.8)])
    assert average.mean == pytest.approx(0.6)
    assert average.low == pytest.approx(0.6 - (0.1**2 + 0.05**2) ** 0.5 / 2)
    assert average.high == pytest.approx(0.6 + (0.05**2 + 0.1**2) ** 0.5 / 2)


# ---------------------------------------------------------------------------------------------- compression


def compress_rows():
    methods = {  # label loyalty, word loyalty, correct
        "icl": (1.0, 1.0, 0.60),
        "text_anchor": (0.55, 0.40, 0.45),
        "hidden_random": (0.50, 0.06, 0.40),
        "hidden_random_top": (0.60, 0.05, 0.44),
        "hidden_anchor": (0.80, 0.60, 0.57),
    }
    return [
        {"task": task, "method": method, "metric": metric, "value": around(value)}
        for task in ("sst2", "agnews")
        for method, values in methods.items()
        for metric, value in zip(("label_loyalty", "word_loyalty", "correct"), values)
    ]


def test_compression_findings(tmp_path):
    write_summary(tmp_path, "compress", compress_rows())
    pd.DataFrame(
        [
            {"task": task, "model": MODEL, "seed": seed, "method": "hidden_anchor", "speedup": speedup}
            for task, speedups in (("sst2", (1.05, 0.9, 1.1)), ("agnews", (2.4, 2.5, 2.6)))
            for seed, speedup in zip((42, 43, 44), speedups)
        ]
    ).to_csv(tmp_path / "compress.csv", index=False)
    found = judged(tmp_path)
    assert found["5a"].verdict == claims.REPRODUCED and found["5a"].holds == "2/2 tasks; Avg holds"
    assert found["5b"].verdict == claims.REPRODUCED
    # accuracy 57 against 45 / 40 / 44 for the other compressed contexts: kept more of ICL's 60 on both tasks
    # (no per-example rows, so nothing says ICL beats the no-demonstration baseline: every task is kept)
    assert found["5c"].verdict == claims.REPRODUCED and found["5c"].holds == "2/2 tasks; Avg holds"
    assert found["5c"].paper == "45.04 vs 38.77 / 39.96 / 41.72, ICL 51.90 % (GPT2-XL)"
    speedup = found["5d"]
    assert speedup.verdict == claims.PARTLY  # sst2's seeds 1.05, 0.9, 1.1 do not establish > 1
    assert [check.outcome for check in speedup.checks] == [claims.UNCLEAR, claims.HOLDS]


def compress_examples(icl: float, accuracies: dict[str, float]) -> pd.DataFrame:
    """Per-example compression rows of sst2 and agnews, 3 seeds x 200 inputs, gold classes balanced: ICL right
    on a share `icl` of the inputs of sst2 (agnews: 0.9), each compressed context on its `accuracies` share."""
    rows = []
    for task, n_classes in (("sst2", 2), ("agnews", 4)):
        for seed in (42, 43, 44):
            for example in range(200):
                gold = example % n_classes
                shares = {"icl": icl if task == "sst2" else 0.9, **accuracies}
                for method, share in shares.items():
                    right = (example + seed) % 100 < 100 * share
                    rows.append(
                        {"task": task, "model": MODEL, "seed": seed, "method": method, "example": example,
                         "gold": gold, "prediction": gold if right else (gold + 1) % n_classes,
                         "label_loyalty": 1.0, "word_loyalty": 1.0, "correct": float(right)}
                    )  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("icl", "accuracies", "tasks", "verdict"),
    [
        # ICL at chance on sst2 (50%, the most frequent class's share): nothing to keep there, not testable
        (0.5, {"text_anchor": 0.6, "hidden_random": 0.5, "hidden_random_top": 0.5, "hidden_anchor": 0.8}, ["agnews"],
         claims.REPRODUCED),
        # ICL above chance on both; Text_anchor keeps as much as Hidden_anchor: beats two of three, partly
        (0.9, {"text_anchor": 0.8, "hidden_random": 0.5, "hidden_random_top": 0.5, "hidden_anchor": 0.8},
         ["sst2", "agnews"], claims.PARTLY),
        # Hidden_anchor keeps less than every other compressed context: not reproduced
        (0.9, {"text_anchor": 0.9, "hidden_random": 0.6, "hidden_random_top": 0.6, "hidden_anchor": 0.3},
         ["sst2", "agnews"], claims.NOT_REPRODUCED),
    ],
)  # fmt: skip
def test_hidden_anchor_keeps_more_icl_accuracy_than_every_other_context(tmp_path, icl, accuracies, tasks, verdict):
    examples = compress_examples(icl, accuracies)
    means_with_ci(examples, ["task", "model", "method"], ["label_loyalty", "word_loyalty", "correct"]).to_csv(
        tmp_path / "compress_summary.csv", index=False
    )
    examples.to_parquet(tmp_path / "compress_examples.parquet")
    claim = judged(tmp_path)["5c"]
    assert sorted(claim.outcomes) == sorted(tasks) and claim.verdict == verdict
    if len(tasks) == 1:
        assert claim.skipped == (
            # every seed at 50%: the intervals are the inputs' floor, 0.5 z √(3 · 0.25 / 200) / 3 = 2.0 points
            "sst2: not testable (ICL 50.0 [48.0, 52.0] does not beat the most frequent class baseline 50.0 [48.0,"
            " 52.0]; paired difference 0.0 [-2.8, 2.8] %)",
        )


def test_5c_at_chance_everywhere_is_not_testable(tmp_path):
    examples = compress_examples(0.5, {m: 0.5 for m in claims.COMPRESSED})
    examples.loc[examples["method"] == "icl", "correct"] = (examples["gold"] == 0).astype(float)  # one class
    means_with_ci(examples, ["task", "model", "method"], ["label_loyalty", "word_loyalty", "correct"]).to_csv(
        tmp_path / "compress_summary.csv", index=False
    )
    examples.to_parquet(tmp_path / "compress_examples.parquet")
    claim = judged(tmp_path)["5c"]
    assert not claim.checks and claim.verdict == claims.NOT_SHOWN
    assert claim.ours == "not shown: not testable on any task (ICL does not beat the no-demonstration baseline)"
    assert [line.split(":")[0] for line in claim.skipped] == ["sst2", "agnews"]


def test_a_speedup_from_one_seed_is_not_shown_not_a_failure(tmp_path):
    """One seed gives a speed-up without an interval: the finding cannot be judged, which is not the same as
    "not reproduced" (what the rule said before, at 3.5x against the paper's 1.1-2.9x)."""
    write_summary(tmp_path, "compress", compress_rows())
    rows = [
        {"task": t, "model": MODEL, "seed": 42, "method": "hidden_anchor", "speedup": 3.5} for t in ("sst2", "trec")
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "compress.csv", index=False)
    claim = judged(tmp_path)["5d"]
    assert claim.verdict == claims.NOT_SHOWN and claim.holds == "0/2 tasks"
    assert claims.exceptions(claim) == [
        f"speed-up > 1 cannot be judged (fewer than 2 seeds): {task} (speed-up 3.50 (no interval) vs 1.00; 1 seed,"
        " fewer than 2)"
        for task in ("sst2", "trec")
    ]


def test_speedup_without_seed_rows_is_not_shown(tmp_path):
    write_summary(tmp_path, "compress", compress_rows())
    claim = judged(tmp_path)["5d"]
    assert claim.verdict == claims.NOT_SHOWN and claim.ours == "not shown: no compress.csv with a speedup column"


# ------------------------------------------------------------------------------------------------ diagnosis


def diagnose_seed_rows(task: str, distance, true=None, seeds=(42, 43)) -> pd.DataFrame:
    """Seed rows as `run_diagnose` writes them: predicted and true confusion of every ordered class pair;
    `true(i, j, seed)` defaults to 0.5 + distance / 2 (a correlation of 1)."""
    from anchorlens.tasks import get_task

    names = get_task(task).class_names
    true = true or (lambda i, j, seed: 0.5 + distance(i, j) / 2)
    return pd.DataFrame(
        [
            {
                "task": task,
                "model": MODEL,
                "seed": seed,
                "layer": 1,
                "class_a": a,
                "class_b": b,
                "predicted": 1.0 if i == j else distance(i, j),
                "true": 1.0 if i == j else true(min(i, j), max(i, j), seed),
                "n": 50,
            }
            for seed in seeds
            for i, a in enumerate(names)
            for j, b in enumerate(names)
        ]
    )


#: AG News (4 classes, 6 pairs): pair (i, j) → predicted distance, and a true confusion that correlates with it
#: at 0.15 (positive on every seed, yet 12 of the 24 relabellings correlate as much: p = 0.5).
PAIRS_PREDICTED = {(0, 1): 0.2, (0, 2): 0.4, (0, 3): 0.6, (1, 2): 0.3, (1, 3): 0.5, (2, 3): 0.7}
PAIRS_WEAK = {(0, 1): 0.3, (0, 2): 0.35, (0, 3): 0.5, (1, 2): 0.6, (1, 3): 0.45, (2, 3): 0.4}


@pytest.mark.parametrize(
    ("true", "outcome", "verdict"),
    [
        (lambda i, j, seed: PAIRS_WEAK[(i, j)] + 0.002 * seed * (i == 0), claims.UNCLEAR, claims.NOT_SHOWN),
        (lambda i, j, seed: 1 - PAIRS_PREDICTED[(i, j)] + 0.01 * (seed - 42) * j, claims.FAILS, claims.NOT_REPRODUCED),
        (
            lambda i, j, seed: 0.5 + PAIRS_PREDICTED[(i, j)] / 2 + 0.01 * (seed - 42) * j,
            claims.HOLDS,
            claims.REPRODUCED,
        ),
    ],
)
def test_diagnosis_holds_fails_or_is_not_shown(tmp_path, true, outcome, verdict):
    """Holds when the seeds place the correlation above 0 and the permutation test confirms it; fails only when
    the seeds place it below 0; a positive correlation the test cannot confirm (the README's TREC 0.41,
    p = 0.146) is not shown, never a failure. The smallest reachable p-value is stated: 1/24 for 4 classes."""
    distance = lambda i, j: PAIRS_PREDICTED[(min(i, j), max(i, j))]  # noqa: E731
    diagnose_seed_rows("agnews", distance, true, seeds=(42, 43, 44)).to_csv(tmp_path / "diagnose.csv", index=False)
    claim = judged(tmp_path)["6"]
    assert [check.outcome for check in claim.checks] == [outcome] and claim.verdict == verdict
    assert "(smallest reachable 0.042)" in claim.checks[0].detail and "pearson over seeds" in claim.checks[0].detail
    if outcome == claims.UNCLEAR:
        assert "p = 0.500" in claim.checks[0].detail and claim.checks[0].detail.split("over seeds ")[1].startswith("0.")


def test_diagnosis_from_the_seed_rows(tmp_path):
    # The summary holds only the true confusion per pair: the correlation comes from the seed rows.
    write_summary(
        tmp_path,
        "diagnose",
        [{"task": "trec", "class_a": "ABBR", "class_b": "ENTY", "metric": "true", "value": around(0.6)}],
    )
    rows = pd.concat(
        [diagnose_seed_rows("trec", lambda i, j: 0.1 * (i + j + 1)), diagnose_seed_rows("sst2", lambda i, j: 0.5)]
    )
    rows.to_csv(tmp_path / "diagnose.csv", index=False)
    claim = judged(tmp_path)["6"]
    assert [check.task for check in claim.checks] == ["trec"]
    assert claim.verdict == claims.REPRODUCED  # true = 0.5 + predicted / 2: correlation 1, smallest p of 720
    assert claim.checks[0].detail == (
        "pearson over seeds 1.00; seed-mean matrices 1.00, permutation p = 0.001 (smallest reachable 0.001)"
    )
    assert claims.exceptions(claim) == [
        "not judged: sst2 (no correlation: fewer than 3 class pairs, or a constant matrix)"
    ]
    # What it rests on: the seed rows' inputs per seed (n), not the summary's pair counts (n_examples 600 here).
    assert claims.coverage(claims.Results.read([tmp_path])) == [f"- {MODEL}: diagnose: 2×50 sst2 trec"]


# --------------------------------------------------------------------------------------- missing and bad input


def test_missing_experiments_are_not_shown_with_the_reason(tmp_path):
    write_summary(tmp_path / "run", "saliency", saliency_rows())
    found = claims.all_claims(claims.Results.read([tmp_path / "run"]))
    missing = {claim.number: claim.ours for claim in found if claim.verdict == claims.NOT_SHOWN}
    assert set(missing) == {"2 (k=5)", "3a", "3b", "3c", "4a", "4b", "5a", "5b", "5c", "5d", "6"}
    assert missing["3a"] == f"not shown: no auroc_summary.csv for {MODEL} in {tmp_path / 'run'}"


def test_a_folder_without_summaries_stands_for_its_model(tmp_path):
    (tmp_path / "gemma-3-270m").mkdir()
    found = claims.all_claims(claims.Results.read([tmp_path / "gemma-3-270m"]))
    assert {claim.model for claim in found} == {"gemma-3-270m"}
    assert {claim.verdict for claim in found} == {claims.NOT_SHOWN}


def test_a_folder_with_only_seed_rows_takes_the_model_name_from_them(tmp_path):
    # A results folder written before summaries existed: the speed-up is still judged, under the recorded name.
    pd.DataFrame(
        [
            {
                "task": "sst2",
                "model": "org/some-model",
                "seed": seed,
                "method": "hidden_anchor",
                "speedup": 2.0 + seed / 100,
            }
            for seed in (42, 43, 44)
        ]
    ).to_csv(tmp_path / "compress.csv", index=False)
    found = claims.all_claims(claims.Results.read([tmp_path]))
    assert {claim.model for claim in found} == {"org/some-model"}
    assert next(claim for claim in found if claim.number == "5d").verdict == claims.REPRODUCED


def test_a_missing_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(DataFileError, match="no results folder .*; pass folders written by"):
        claims.Results.read([tmp_path / "typo"])


def test_a_summary_without_its_columns_is_an_error(tmp_path):
    pd.DataFrame({"task": ["sst2"], "model": [MODEL], "layer": [0], "S_wp": [0.5]}).to_csv(
        tmp_path / "saliency_summary.csv", index=False
    )
    with pytest.raises(DataFileError, match="lacks the summary columns .*rerun the experiment"):
        claims.Results.read([tmp_path])
    (tmp_path / "saliency_summary.csv").write_text("")
    with pytest.raises(DataFileError, match="is not a readable CSV .*rerun the experiment"):
        claims.Results.read([tmp_path])


def test_the_same_model_in_two_folders_is_refused(tmp_path):
    write_summary(tmp_path / "a", "saliency", saliency_rows())
    write_summary(tmp_path / "b", "saliency", saliency_rows())
    with pytest.raises(DataFileError, match="two folders hold saliency results of model tiny-model"):
        claims.Results.read([tmp_path / "a", tmp_path / "b"])


# ------------------------------------------------------------------------------------------------- output


def test_rows_go_finding_by_finding_then_model(tmp_path):
    write_summary(tmp_path / "one", "saliency", saliency_rows())
    (tmp_path / "other-model").mkdir()
    found = claims.all_claims(claims.Results.read([tmp_path / "one", tmp_path / "other-model"]))
    assert [(c.number, c.model) for c in found[:4]] == [
        ("1a", MODEL),
        ("1a", "other-model"),
        ("1b", MODEL),
        ("1b", "other-model"),
    ]


def test_ranges():
    assert claims.ranges([4, 0, 1, 2, 7, 8]) == "0-2, 4, 7-8"
    assert claims.ranges([3]) == "3"


def test_printed_table_and_exceptions(tmp_path, capsys):
    write_summary(tmp_path, "saliency", saliency_rows(low_pq_layers=(0,)))
    assert claims.main([str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"Generated by `python analyses/claims.py {tmp_path}`")
    assert "| # | finding | model | paper | ours, 95% CI | checks holding | verdict |" in printed
    assert (
        f"| 1c | Saliency: S_wp and S_pq mostly above S_ww | {MODEL} | both mostly above S_ww (Fig. 3) | weakest, "
        "sst2 layer 0: S_pq 0.100 [0.080, 0.120] vs S_ww 0.300 [0.280, 0.320] | 2/2 tasks | **reproduced** |"
    ) in printed
    assert f"- **1c, {MODEL}** (reproduced):\n  - S_pq > S_ww fails: sst2 layer 0 (S_pq 0.100" in printed


# ------------------------------------------------------------------------------------------- README block


def readme_with_block(path: Path, block: str = "stale\n") -> Path:
    path.write_text(f"# Title\n\nIntro.\n\n{claims.START}\n{block}{claims.END}\n\n## After\n")
    return path


def test_write_then_check_round_trip(tmp_path, capsys):
    write_summary(tmp_path / "run", "saliency", saliency_rows())
    readme = readme_with_block(tmp_path / "README.md")
    assert claims.main([str(tmp_path / "run"), "--check", str(readme)]) == 1
    out = capsys.readouterr().out
    assert "-stale" in out and "+| # | finding" in out and f"--write {readme}" in out
    assert claims.main([str(tmp_path / "run"), "--write", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# Title\n\nIntro.\n\n<!-- claims:start -->\nGenerated by")
    assert text.endswith("<!-- claims:end -->\n\n## After\n") and "stale" not in text
    capsys.readouterr()
    assert claims.main([str(tmp_path / "run"), "--check", str(readme)]) == 0
    assert "up to date" in capsys.readouterr().out
    # A hand edit inside the block is caught.
    readme.write_text(text.replace("**reproduced**", "**partly**", 1))
    assert claims.main([str(tmp_path / "run"), "--check", str(readme)]) == 1


def test_readme_without_markers_is_refused(tmp_path, capsys):
    write_summary(tmp_path / "run", "saliency", saliency_rows())
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n")
    assert claims.main([str(tmp_path / "run"), "--check", str(readme)]) == 2
    assert "needs exactly one '<!-- claims:start -->' line" in capsys.readouterr().err
    assert claims.main([str(tmp_path / "run"), "--write", str(tmp_path / "missing.md")]) == 2
    assert "no file" in capsys.readouterr().err


def test_repository_claims_blocks_match_the_results(monkeypatch, capsys):
    """The README's short block and the results page's full block are what the committed results give now."""
    monkeypatch.chdir(ROOT)  # the block names the folders as typed, relative to the repository
    assert claims.main([*README_FOLDERS, "--check", RESULTS_PAGE]) == 0, capsys.readouterr().out
    assert claims.main([*README_FOLDERS, "--short", RESULTS_PAGE, "--check", "README.md"]) == 0, capsys.readouterr().out


def test_short_form_has_a_row_per_finding_and_a_column_per_model(tmp_path, capsys):
    write_summary(tmp_path, "saliency", saliency_rows(low_pq_layers=(0,)))
    assert claims.main([str(tmp_path), "--short", "docs/results.md"]) == 0
    printed = capsys.readouterr().out
    assert f"| # | finding | paper | {MODEL} |" in printed and "[results.md](docs/results.md)" in printed
    assert (
        "| 1c | Saliency: S_wp and S_pq mostly above S_ww | both mostly above S_ww (Fig. 3) | **reproduced**, 2/2 "
        "tasks; sst2 layer 0: S_pq 0.100 [0.080, 0.120] vs S_ww 0.300 [0.280, 0.320] |"
    ) in printed
    assert "| 4a | Re-weighting beats vanilla 1-shot ICL | 68.64 vs 51.90 % (Avg, Table 1) | **not shown** |" in printed
    assert "Checks that do not hold" not in printed  # those are in the full form only


# ---------------------------------------------------------------------- the summaries the experiments write


def test_reads_the_summaries_the_experiments_save(tmp_path):
    """Contract with `ExperimentResult.save`: per-example rows in the experiments' own schema, summarised and
    written by them, are read and judged (a renamed column or metric would make these undefined)."""
    import numpy as np

    from anchorlens.experiments import AurocResult, IsolationResult, ReweightResult, SaliencyResult
    from anchorlens.experiments.auroc import auroc_from_examples

    rng = np.random.default_rng(0)
    seeds, examples, layers = (42, 43, 44), range(60), range(6)
    base = [
        {"task": "sst2", "model": MODEL, "seed": seed, "example": example, "gold": example % 2}
        for seed in seeds
        for example in examples
    ]
    saliency = pd.DataFrame(
        [
            {
                **row,
                "layer": layer,
                "prediction": row["gold"],
                "S_wp": (3.0 if layer < 2 else 0.1) + rng.random() * 0.1,
                "S_pq": (0.5 if layer < 2 else 3.0) + rng.random() * 0.1,
                "S_ww": 0.2 + rng.random() * 0.1,
            }
            for row in base
            for layer in layers
        ]
    )
    isolation = pd.DataFrame(
        [
            {
                **row,
                "k": 1,
                "condition": condition,
                "base_prediction": row["gold"],
                "prediction": row["gold"],
                "label_loyalty": float(condition != "label_first" or rng.random() < 0.3),
                "word_loyalty": 0.1 + 0.05 * rng.random() if condition == "label_first" else 0.9 + 0.05 * rng.random(),
            }
            for row in base
            for condition in ("label_first", "label_last", "random_first", "random_last")
        ]
    )
    reweight = pd.DataFrame(
        [
            {**row, "method": method, "prediction": row["gold"], "correct": float(rng.random() < accuracy)}
            for row in base
            for method, accuracy in (("vanilla_1shot", 0.5), ("vanilla_5shot", 0.5), ("reweight", 0.95))
        ]
    )
    auroc = pd.DataFrame(
        [
            {
                **row,
                "layer": layer,
                "prediction": row["gold"],
                "att_0": rng.random() + (2.0 * (row["gold"] == 0) if layer >= 4 else 0.0),
                "att_1": rng.random() + (2.0 * (row["gold"] == 1) if layer >= 4 else 0.0),
            }
            for row in base
            for layer in layers
        ]
    )
    for result_class, frame in (
        (SaliencyResult, saliency),
        (IsolationResult, isolation),
        (ReweightResult, reweight),
    ):
        result_class(frame, result_class.config_class(), frame).save(tmp_path)
    AurocResult(auroc_from_examples(auroc), AurocResult.config_class(), auroc).save(tmp_path)  # seed rows: 3b
    found = judged(tmp_path)
    assert found["1a"].verdict == found["1b"].verdict == claims.REPRODUCED
    assert found["2 (k=1)"].verdict == claims.REPRODUCED
    assert found["4a"].verdict == found["4b"].verdict == claims.REPRODUCED
    assert found["3b"].verdict == claims.REPRODUCED  # layers 4-5 separate the classes perfectly
    assert found["3c"].checks and found["3c"].verdict == claims.REPRODUCED  # no rise before layer 4


def test_short_form_keeps_isolation_at_the_main_k_only(tmp_path, capsys):
    write_summary(tmp_path, "isolation", isolation_rows(ks=(1, 5)))
    assert claims.main([str(tmp_path)]) == 0
    full = capsys.readouterr().out
    assert "| 2 (k=5) |" in full and "| 2 (k=1) |" in full
    assert claims.main([str(tmp_path), "--short", "docs/results.md"]) == 0
    short = capsys.readouterr().out
    assert "| 2 (k=5) |" in short and "| 2 (k=1) |" not in short and "isolation at k other than 5" in short


def test_prediction_spread_says_where_the_model_predicts_one_class(tmp_path):
    """From the AUROC run's per-example rows: per seed, the share of the seed's most frequent prediction (mean
    over seeds), and the seeds with a single predicted class; the full form shows it, the short form does not."""
    write_summary(tmp_path, "auroc", auroc_rows())
    predictions = {  # (task, seed): predicted classes of 4 inputs
        ("sst2", 1): [1, 1, 1, 1],
        ("sst2", 2): [0, 1, 1, 1],
        ("trec", 1): [0, 1, 2, 3],
        ("trec", 2): [5, 5, 2, 3],
    }
    rows = [
        {"task": task, "model": MODEL, "seed": seed, "example": example, "gold": 0, "layer": layer,
         "prediction": predicted, "att_0": 0.1}
        for (task, seed), classes in predictions.items()
        for example, predicted in enumerate(classes)
        for layer in range(2)
    ]  # fmt: skip
    pd.DataFrame(rows).to_parquet(tmp_path / "auroc_examples.parquet")
    results = claims.Results.read([tmp_path])
    assert claims.prediction_spread(results) == [f"- {MODEL}: sst2 87.5%, one class only at 1 of 2 seeds; trec 37.5%"]
    found = claims.all_claims(results)
    assert "sst2 87.5%" in claims.render(found, "cmd", spread=claims.prediction_spread(results))
    assert "sst2 87.5%" not in claims.render_short(found, "cmd", "docs/results.md")
    # A --per-head run adds one row per head beside each whole-layer row: read, they are left out.
    whole = pd.DataFrame(rows).assign(head=pd.NA)
    heads = pd.concat([whole.assign(head=head, prediction=9) for head in range(3)], ignore_index=True)
    pd.concat([whole, heads], ignore_index=True).to_parquet(tmp_path / "auroc_examples.parquet")
    assert len(claims.read_predictions(tmp_path / "auroc_examples.parquet")) == len(predictions) * 4
    assert claims.prediction_spread(claims.Results.read([tmp_path])) == claims.prediction_spread(results)


def test_a_damaged_auroc_examples_file_is_a_one_line_error(tmp_path):
    write_summary(tmp_path, "auroc", auroc_rows())
    (tmp_path / "auroc_examples.parquet").write_bytes(b"not parquet")
    with pytest.raises(claims.DataFileError, match="rerun `anchorlens auroc`"):
        claims.Results.read([tmp_path])


# ------------------------------------------------------------------------------- provenance of the parts


def write_part_record(folder, experiment: str, task: str, seed: int, provenance: dict | None) -> None:
    """A part record as `ResultStore.write_part` names it, with or without a provenance block."""
    import json

    record = {"experiment": experiment, "task": task, "seed": seed, "signature": {"model": MODEL}}
    if provenance is not None:
        record["provenance"] = provenance
    path = folder / "parts" / experiment / f"{task}-seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def test_the_provenance_table_groups_parts_by_where_they_ran(tmp_path):
    from anchorlens.claims import provenance

    cpu = {"device": "cpu (x86_64)", "model_class": "hooked", "torch": "2.13.0", "transformer_lens": "3.9.0"}
    gpu = {**cpu, "device": "cuda (NVIDIA H200)", "torch": None, "source": "backfilled from git history: x"}
    for seed in (42, 43, 44):
        write_part_record(tmp_path / MODEL, "isolation", "trec", seed, {**cpu, "threads": 1})
    write_part_record(tmp_path / MODEL, "isolation", "sst2", 45, gpu)
    write_part_record(tmp_path / MODEL, "isolation", "sst2", 46, None)
    printed = provenance.render_provenance([tmp_path / MODEL], tmp_path / "no-records", "cmd")
    assert f"| {MODEL} | isolation | cpu (x86_64) | hooked | 2.13.0 | 3.9.0 | 1 | trec 42-44 |" in printed
    assert f"| {MODEL} | isolation | cuda (NVIDIA H200) | hooked | not recorded | 3.9.0 | not recorded | sst2 45 |" in (
        printed
    )
    # A part without a provenance block is shown as such, never given the others' device.
    assert (
        f"| {MODEL} | isolation | not recorded | not recorded | not recorded | not recorded | not recorded | sst2 46 |"
        in (printed)
    )
    assert "Of 5 part records, 3 carry the provenance their run wrote and 1 a block backfilled" in printed
    assert "; 1 have none." in printed
    # Two devices and no record comparing them: how closely they agree is not stated.
    assert "No committed record compares parts computed on different devices" in printed
    assert f"- {MODEL}: no committed record compares its parts across devices or model classes." in printed


def test_the_provenance_block_states_a_recorded_comparison(tmp_path):
    import json

    from anchorlens.claims import provenance

    write_part_record(tmp_path / MODEL, "saliency", "sst2", 42, {"device": "cpu (x86_64)", "model_class": "hooked"})
    record = {
        "model": MODEL,
        "model_class": "bridge",
        "compared_with": "docs/results/x",
        "versions": {"transformer-lens": "4.3.0", "torch": "2.13.0+cpu"},
        "parts": {"saliency:sst2:42": {"rows": 10, "S_wp": {"max_abs_diff": 3e-7}, "predictions_differing": 2}},
    }
    (tmp_path / f"class-agreement-{MODEL}.json").write_text(json.dumps(record))
    printed = provenance.render_provenance([tmp_path / MODEL], tmp_path, "cmd")
    assert "recomputed with model class bridge on transformer-lens 4.3.0, torch 2.13.0+cpu" in printed
    assert "saliency sst2 42 (10 rows): largest absolute difference 3e-07, 2 predictions differing" in printed
    assert "different devices" not in printed  # one device: nothing to compare across devices


def test_every_committed_part_records_where_it_ran():
    """Each committed part record says its device, model class and transformer-lens version (written by its run,
    or backfilled from the git history with the commit that made it)."""
    from anchorlens.claims import provenance

    for folder in README_FOLDERS:
        rows = provenance.part_provenance(ROOT / folder)
        assert rows, folder
        for row in rows:
            assert row["device"] and row["model_class"] and row["transformer_lens"], row
            assert row["source"] is None or str(row["source"]).startswith("backfilled from git history: made by commit")


def test_a_second_folder_of_a_model_is_named_in_the_provenance_table(tmp_path):
    """A folder beside the default one (``--exclude-bos``) holds parts of the same model: its rows say which
    folder, and the model's comparison line is stated once."""
    from anchorlens.claims import provenance

    cpu = {"device": "cpu (x86_64)", "model_class": "hooked", "torch": "2.13.0", "transformer_lens": "3.9.0"}
    write_part_record(tmp_path / MODEL, "saliency", "sst2", 42, {**cpu, "threads": 1})
    write_part_record(tmp_path / f"{MODEL}-exclude-bos", "saliency", "sst2", 42, {**cpu, "threads": 1})
    printed = provenance.render_provenance(
        [tmp_path / MODEL, tmp_path / f"{MODEL}-exclude-bos"], tmp_path / "no-records", "cmd"
    )
    assert f"| {MODEL} | saliency | cpu (x86_64) | hooked | 2.13.0 | 3.9.0 | 1 | sst2 42 |" in printed
    assert f"| {MODEL} (folder {MODEL}-exclude-bos) | saliency | cpu (x86_64) | hooked |" in printed
    assert printed.count(f"- {MODEL}: no committed record") == 1


def block_command(script: str) -> list[str]:
    """The arguments of the command a generated block of docs/results.md names as its maker (the default folders
    first, then any second folders beside them): a check reruns exactly that command."""
    page = (ROOT / RESULTS_PAGE).read_text()
    command = re.search(rf"Generated by `python analyses/{script}\.py ([^`]+)`", page)
    assert command is not None, f"docs/results.md has no block made by analyses/{script}.py"
    arguments = shlex.split(command.group(1))
    assert arguments[: len(README_FOLDERS)] == list(README_FOLDERS)
    return arguments


def test_repository_provenance_block_matches_the_records(monkeypatch, capsys):
    from anchorlens.claims import provenance

    monkeypatch.chdir(ROOT)
    assert provenance.main([*block_command("provenance"), "--check", RESULTS_PAGE]) == 0, capsys.readouterr().out


# ------------------------------------------------------------------------- method choices (issue 28 §3)


def test_claim_2_at_the_papers_depth_fraction_beside_k_5(tmp_path):
    from anchorlens.claims import method_choices

    # 30 layers (the saliency rows give the depth): 5/48 of 30 is k = 3.
    write_summary(tmp_path / "a", "saliency", saliency_rows(n_layers=30))
    write_summary(tmp_path / "a", "isolation", isolation_rows(ks=(3, 5)))
    printed = method_choices.render_method_choices([tmp_path / "a"], [], "cmd")
    assert f"| {MODEL} | 30 | sst2 trec | reproduced, 2/2 tasks | 3 | reproduced, 2/2 tasks |" in printed
    # 18 layers: k = 2, which the rows lack, so claim 2 there is not shown with how to run it.
    write_summary(tmp_path / "b", "saliency", saliency_rows(n_layers=18))
    write_summary(tmp_path / "b", "isolation", isolation_rows(ks=(5,)))
    printed = method_choices.render_method_choices([tmp_path / "b"], [], "cmd")
    assert (
        f"| {MODEL} | 18 | sst2 trec | reproduced, 2/2 tasks | 2 | not shown: no isolation rows at k=2 (run "
        "isolation with --depth-fractions 0.1042, or --k 2 into a folder passed as --depth-fraction) |"
    ) in printed
    # A second folder holding k = 2 alone (`anchorlens isolation --k 2`) is judged beside the default's k = 5.
    write_summary(tmp_path / "b-k2", "isolation", isolation_rows(ks=(2,)))
    printed = method_choices.render_method_choices([tmp_path / "b"], [], "cmd", [tmp_path / "b-k2"])
    assert f"| {MODEL} | 18 | sst2 trec | reproduced, 2/2 tasks | 2 | reproduced, 2/2 tasks |" in printed
    # k = 2 on one task so far (a regeneration under way): k = 5 is judged on that task too, like with like.
    one_task = [row for row in isolation_rows(ks=(2,)) if row["task"] == "sst2"]
    write_summary(tmp_path / "b-k2-sst2", "isolation", one_task)
    printed = method_choices.render_method_choices([tmp_path / "b"], [], "cmd", [tmp_path / "b-k2-sst2"])
    assert f"| {MODEL} | 18 | sst2 | reproduced, 1/1 task | 2 | reproduced, 1/1 task |" in printed
    # A k both folders hold is two folders holding one result: refused, not averaged.
    write_summary(tmp_path / "b-k5", "isolation", isolation_rows(ks=(5,)))
    with pytest.raises(DataFileError, match="two folders hold isolation results"):
        method_choices.render_method_choices([tmp_path / "b"], [], "cmd", [tmp_path / "b-k5"])


def test_saliency_without_bos_reports_how_far_s_wp_and_the_verdicts_move(tmp_path):
    from anchorlens.claims import method_choices

    write_summary(tmp_path / "default", "saliency", saliency_rows())
    without = saliency_rows()
    for row in without:  # leaving BOS out lowers S_wp in the shallow layers below S_pq (above S_ww): 1a partly
        if row["metric"] == "S_wp" and row["layer"] < 3:
            row["value"] = (0.2, 0.18, 0.22)
    write_summary(tmp_path / "excluded", "saliency", without)
    printed = method_choices.render_method_choices([tmp_path / "default"], [tmp_path / "excluded"], "cmd")
    assert (
        f"| {MODEL} | 1a | sst2 trec | reproduced, 2/2 tasks | partly, 0/2 tasks, 2 partly | sst2 0.400, trec 0.400 |"
    ) in printed
    assert (
        f"| {MODEL} | 1b | sst2 trec | reproduced, 2/2 tasks | reproduced, 2/2 tasks | sst2 0.400, trec 0.400 |"
    ) in printed
    # A second folder holding one task so far: the default is judged on that task too.
    write_summary(tmp_path / "excluded-sst2", "saliency", [row for row in without if row["task"] == "sst2"])
    printed = method_choices.render_method_choices([tmp_path / "default"], [tmp_path / "excluded-sst2"], "cmd")
    assert f"| {MODEL} | 1a | sst2 | reproduced, 1/1 task | partly, 0/1 task, 1 partly | sst2 0.400 |" in printed
    # Without a second folder the comparison is not shown, never guessed.
    alone = method_choices.render_method_choices([tmp_path / "default"], [], "cmd")
    assert f"| {MODEL} | 1a | sst2 trec | reproduced, 2/2 tasks | not shown: no --exclude-bos saliency folder" in alone


def test_a_model_whose_prompts_have_no_bos_reads_the_same_without_it(tmp_path):
    """SmolLM2's prompts carry no BOS token (`OFFLINE_MODELS`): --exclude-bos has no column to leave out, so its
    verdicts are the default's, said as such rather than "not shown"."""
    from anchorlens.claims import method_choices

    rows = [{**row, "model": "smollm2-135m"} for row in saliency_rows()]
    write_summary(tmp_path / "default", "saliency", rows)
    printed = method_choices.render_method_choices([tmp_path / "default"], [], "cmd")
    assert (
        "| smollm2-135m | 1a | sst2 trec | reproduced, 2/2 tasks | the same: smollm2-135m's prompts have no BOS token "
        "| 0 (no BOS) |" in printed
    )


def test_results_on_tasks_keeps_one_models_rows_of_one_experiment_for_those_tasks():
    """`Results.on_tasks` narrows every table of the experiment (summaries, seed rows, per-example rows, flows)
    for the model, and leaves other models and other experiments whole."""
    from anchorlens.claims.inputs import Results

    def frame(models=(MODEL, "other")):
        return pd.DataFrame([{"model": m, "task": t, "seed": 42} for m in models for t in ("sst2", "trec", "emoc")])

    results = Results(
        folders=[],
        summaries={"saliency": frame(), "isolation": frame()},
        seed_rows={"saliency": frame()},
        examples={"isolation": frame()},
        flows=frame(),
    )
    narrowed = results.on_tasks("saliency", MODEL, ["trec"])
    kept = narrowed.summaries["saliency"]
    assert sorted(kept[kept["model"] == MODEL]["task"]) == ["trec"] and (kept["model"] == "other").sum() == 3
    assert sorted(narrowed.seed_rows["saliency"].query("model == @MODEL")["task"]) == ["trec"]
    assert sorted(narrowed.flows.query("model == @MODEL")["task"]) == ["trec"]
    assert len(narrowed.summaries["isolation"]) == 6 and len(narrowed.examples["isolation"]) == 6
    assert len(results.summaries["saliency"]) == 6  # the original is left as it was


def test_the_second_folders_a_regeneration_makes_follow_from_the_models_depth_and_bos():
    """`scripts/regenerate.sh` runs what `second_folder_commands` lists: Gemma-3 (18 layers, BOS) needs isolation at
    k = 2 and saliency without BOS; SmolLM2's k = 3 is among the default k and it has no BOS, so nothing."""
    from anchorlens.claims.method_choices import second_folder_commands
    from anchorlens.errors import UnknownModelError

    isolation, saliency = second_folder_commands("gemma-3-270m", "out/gemma-3-270m")
    assert isolation.startswith("isolation --task sst2 trec agnews emoc --model gemma-3-270m --n-test 200 --seeds ")
    assert isolation.endswith("--k 2 --out out/gemma-3-270m-depth-fraction")
    assert saliency.endswith("--exclude-bos --out out/gemma-3-270m-exclude-bos")
    assert second_folder_commands("smollm2-135m", "out/smollm2-135m") == []
    with pytest.raises(UnknownModelError, match="no offline model 'gpt2'"):
        second_folder_commands("gpt2", "out/gpt2")
    assert "second_folder_commands" in (ROOT / "scripts" / "regenerate.sh").read_text()


def test_repository_method_choices_block_matches_the_results(monkeypatch, capsys):
    from anchorlens.claims import method_choices

    monkeypatch.chdir(ROOT)
    arguments = block_command("method_choices")  # with the --exclude-bos and --depth-fraction folders it names
    assert method_choices.main([*arguments, "--check", RESULTS_PAGE]) == 0, capsys.readouterr().out


def test_all_claims_joins_one_group_module_per_experiment_in_the_papers_order():
    """Each group of findings lives in its own module, one per experiment, and `all_claims` asks them in the
    order of the paper's sections (the registry's order)."""
    from anchorlens.claims import auroc, compress, diagnose, isolation, report, reweight, saliency
    from anchorlens.registry import in_paper_order

    groups = (saliency, isolation, auroc, reweight, compress, diagnose)
    assert report.FINDINGS == tuple(getattr(group, f"{name}_claims") for group, name in zip(groups, in_paper_order()))
    assert [group.__name__.rpartition(".")[2] for group in groups] == list(in_paper_order())


def test_arms_compared_on_the_same_inputs_come_from_the_declarations():
    from anchorlens.claims import arms, rules
    from anchorlens.registry import EXPERIMENTS

    assert rules.PAIRED_ARMS == {"isolation": "condition", "reweight": "method", "compress": "method"}
    assert all(EXPERIMENTS[name].paired_arm == column for name, column in rules.PAIRED_ARMS.items())
    assert callable(arms.paired_arms) and callable(arms.method_checks)


def test_a_generated_block_is_checked_and_rewritten_between_its_markers(tmp_path, capsys):
    from anchorlens.claims import blocks
    from anchorlens.errors import DataFileError

    page = tmp_path / "page.md"
    page.write_text("intro\n<!-- x:start -->\nold\n<!-- x:end -->\noutro\n")
    assert blocks.check_block(page, "new", "x") == 1 and "+new" in capsys.readouterr().out
    blocks.write_block(page, "new", "x")
    assert page.read_text() == "intro\n<!-- x:start -->\nnew\n<!-- x:end -->\noutro\n"
    assert blocks.check_block(page, "new", "x") == 0
    page.write_text("no markers\n")
    with pytest.raises(DataFileError, match="needs exactly one"):
        blocks.check_block(page, "new", "x")
