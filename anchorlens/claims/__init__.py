"""Judge the paper's findings on our results: one row per finding and model, with the paper's number, ours with
its 95% interval, and a verdict decided by the rules below, never by hand.

    python analyses/claims.py docs/results/smollm2-135m docs/results/gemma-3-270m
    python analyses/claims.py docs/results/smollm2-135m docs/results/gemma-3-270m --check docs/results.md
    python analyses/claims.py docs/results/smollm2-135m docs/results/gemma-3-270m --write docs/results.md
    python analyses/claims.py docs/results/smollm2-135m docs/results/gemma-3-270m --short docs/results.md \\
        --write README.md

Input: each folder's ``<experiment>_summary.csv`` (long form: ``task, model, <keys>, metric, mean, ci_low,
ci_high, n_seeds, n_examples``, written by ``ExperimentResult.save``) and the seed rows of ``compress.csv`` (the
speed-up), ``diagnose.csv`` (the correlation, per seed and of the seed means) and ``auroc.csv`` (3b's layer
chosen on other seeds); the per-example
rows of saliency, isolation, re-weighting and compression (the paired checks below); and ``auroc_examples.parquet``, from
which the full form says how the model's own ICL predictions spread over the classes. In a folder a run made,
these files are read only once they match the record written beside them (``<experiment>.record.json``: each
file's sha256, the parts it was made of, the settings); files that do not (cut, edited, another run's or model's
copied in) are recomputed from the folder's verified parts with a warning, never judged as they are
(`anchorlens.experiments.saved_files`). The results
page (docs/results.md) embeds the printed text, and the README its short form (``--short``: a row per finding, a
column per model), each between ``<!-- claims:start -->`` and ``<!-- claims:end -->``; ``--check`` exits 1
with a diff when that block differs from what is printed now, ``--write`` replaces it.

How one check is judged. "A > B" holds when A's interval lies wholly above B's (``A.ci_low > B.ci_high``),
fails when it lies wholly below (``A.ci_high < B.ci_low``), and is unclear when the intervals overlap. A
threshold t is an interval of width 0. The intervals are the summaries' (`anchorlens.stats`: a seed-level
t-interval floored by the test inputs' error, 93-98% coverage at 3 and 5 seeds in docs/coverage.md). Where A and
B are two arms of one experiment measured on the same test inputs (isolation conditions; re-weighting and
compression methods) and the folder holds the per-example rows (``<experiment>_examples.parquet``), the check is
judged on the paired difference A − B instead, by the same method (`anchorlens.stats.means_with_ci` of the
per-input differences): it holds when that interval lies above 0, fails when below, and is unclear when it
holds 0. Pairing matters: a seed's demonstrations move both arms alike, which widens each arm's own interval
but not their difference's. Saliency's flows (S_wp, S_pq, S_ww) are likewise measured on the same prompts: with
``saliency_examples.parquet`` present, "S_wp > S_pq" in a layer is judged on the interval of the difference of
the two normalised flows (`anchorlens.experiments.saliency.flow_differences`). A check whose interval rests on
fewer than ``MIN_SEEDS_TO_DECIDE`` (2) seeds is unclear whatever it reads: one seed says nothing of another
demonstration set (a rule about power, for every task).

Shallow layers are the first third of a model's layers, deep layers the last third (``n_layers // 3`` each,
at least 1), as in ``SaliencyResult.depth_summary``. "Avg" is the mean of the per-task means; with per-example
rows its interval is the same method over tasks (`anchorlens.stats.task_average_with_ci`: each seed's values
averaged over the tasks, seeds paired by order), else the tasks' half-widths added as independent errors.

Counting. The unit is the task, the data set resampled independently; layers and comparisons within a task
are not independent checks. A task **holds** when every one of its checks holds (finding 1c, "mostly above":
more than half), **fails** when more of its checks fail than hold, holds **partly** when some hold and no
fewer than fail, and is unclear when none holds or fails. The Avg is shown beside the tasks, never counted as
one. A check that is unclear, has no interval, rests on one seed or cannot be judged counts neither as holding
nor as failing.

Verdict of a finding, from its tasks (set before looking at the results): **reproduced** when every task
holds; **not shown** when no task holds, holds partly or fails (the checks are too weak to decide, or there is
nothing to check: experiment, metric or method missing, with the reason); **not reproduced** when more tasks
fail than hold wholly or partly; **partly** otherwise. Every check that does not hold is listed under the
table, and a failure at the same layer in two tasks or more is named first ("repeated across tasks").

| # | finding (paper) | checks (each task; each layer where one is named) |
|---|---|---|
| 1a | S_wp dominates shallow layers (§2.1, Fig. 3) | each shallow layer: S_wp > S_pq and S_wp > S_ww |
| 1b | S_pq dominates deep layers (Fig. 3) | each deep layer: S_pq > S_wp and S_pq > S_ww |
| 1c | S_wp and S_pq mostly above S_ww (Fig. 3) | each layer: S_wp > S_ww and S_pq > S_ww; a task holds when most of them hold. In 1a-1c, S_wp is not compared in the last layer, where it is 0 by construction (only the target's attention row reaches the loss); the skip is listed |
| 2 | isolating label words in the first k layers costs most loyalty (§2.2, Fig. 4; one row per k, k = 5 first) | label and word loyalty: label_first < label_last and label_first < random_first |
| 3a | AUROC ≈ 0.5 in shallow layers (§2.3, Fig. 5) | each shallow layer: AUROC < 0.6 (≈ 0.5 read as within 0.1) |
| 3b | AUROC reaches ≈ 0.8 in deep layers (Fig. 5) | what is tested: the AUROC clears 0.7 (0.8 less 0.1) at a deep layer chosen on other seeds. Per seed, the deep layer with the highest mean AUROC over the other seeds (leave one seed out; seed rows of auroc.csv), and this seed's AUROC there; the held-out values' t-interval over seeds > 0.7. Picking the best of many noisy layers and testing it on the same seeds would favour noise |
| 3c | R_l rises mainly in middle and deep layers (Fig. 5) | R at the last shallow layer < the uniform share (shallow layers / layers: R_l of a curve that rises by the same step in every layer), R from the summary's interval if it has one, else from the mean AUROC curve, judged on its value. A task whose total excess over 0.5 (the summary's ``excess`` at the last layer, R_l's denominator) has an interval reaching 0 cannot be judged, since R_l is then no share of a rise |
| 4a | re-weighting beats vanilla 1-shot ICL (§3.1, Table 1) | each task (and Avg): accuracy reweight > vanilla_1shot |
| 4b | re-weighting beats vanilla 5-shot ICL (Table 1) | each task (and Avg): accuracy reweight > vanilla_5shot |
| 5a | Hidden_anchor is the most loyal compressed context (§3.2, Table 2) | each task (and Avg): label loyalty hidden_anchor > text_anchor, hidden_random, hidden_random_top |
| 5b | Hidden_anchor beats Hidden_random(-top) on word loyalty (Table 2) | each task (and Avg): word loyalty hidden_anchor > hidden_random, hidden_random_top |
| 5c | Hidden_anchor keeps more of ICL's accuracy than every other compressed context (Table 2: 45.04 vs 38.77 / 39.96 / 41.72, ICL 51.90) | each testable task (and their Avg): accuracy hidden_anchor > text_anchor, hidden_random, hidden_random_top. Testable: ICL's accuracy lies above the no-demonstration baseline (a zero_shot arm if the rows hold one, else the seed's most frequent gold class for every input; paired interval above 0); elsewhere ICL adds nothing to keep, and the task is listed as not testable |
| 5d | Hidden_anchor speeds inference up (Table 3) | each task: speed-up > 1 (seed rows of compress.csv: mean with its t-interval over seeds; from one seed it cannot be judged) |
| 6 | predicted confusion matches the true one (§3.3, Fig. 6) | each task: holds when the Pearson correlation of the predicted and true confusion (off-diagonal pairs) has its t-interval over seeds above 0 and the seed-mean matrices' one-sided permutation p-value (class labels relabelled) is below 0.05; fails only when the interval lies below 0 (the data contradict); else unclear. The smallest reachable p-value is one over the relabellings, 1/C! for C classes: 1/24 ≈ 0.042 for 4, so 3 classes (1/6) can never reach 0.05 and say so. A task with fewer than 3 class pairs is listed as not judged |
"""  # noqa: E501 (the table's rows are one line each)

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from anchorlens.claims.blocks import check_block, split_block, write_block
from anchorlens.claims.command import main
from anchorlens.claims.inputs import Results, prediction_spread, read_predictions
from anchorlens.claims.report import FINDINGS, all_claims, coverage, exceptions, render, render_short
from anchorlens.claims.rules import (
    AVG,
    COMPRESSED,
    END,
    FAILS,
    FEW_SEEDS,
    HOLDS,
    NO_INTERVAL,
    NO_RISE,
    NOT_REPRODUCED,
    NOT_SHOWN,
    PARTLY,
    REPRODUCED,
    START,
    UNCLEAR,
    Check,
    Claim,
    Estimate,
    average,
    greater,
    ranges,
    repeated_failures,
    task_outcomes,
    verdict,
)
from anchorlens.errors import DataFileError


def judge(folders: Sequence[str | Path]) -> list[Claim]:
    """Every finding for every model of `folders` (results folders, one model each), judged by the rules above:
    what ``python analyses/claims.py FOLDER..`` prints, as `Claim` objects (``claim.verdict``, ``claim.checks``).

    >>> judge(["docs/results/typo"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    anchorlens.errors.DataFileError: no results folder docs/results/typo; ...
    """
    return all_claims(Results.read([str(folder) for folder in folders]))


__all__ = [
    "AVG",
    "COMPRESSED",
    "END",
    "FAILS",
    "FEW_SEEDS",
    "FINDINGS",
    "HOLDS",
    "NOT_REPRODUCED",
    "NOT_SHOWN",
    "NO_INTERVAL",
    "NO_RISE",
    "PARTLY",
    "REPRODUCED",
    "START",
    "UNCLEAR",
    "Check",
    "Claim",
    "DataFileError",
    "Estimate",
    "Results",
    "all_claims",
    "average",
    "check_block",
    "coverage",
    "exceptions",
    "greater",
    "judge",
    "main",
    "prediction_spread",
    "ranges",
    "read_predictions",
    "render",
    "render_short",
    "repeated_failures",
    "split_block",
    "task_outcomes",
    "verdict",
    "write_block",
]
