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

import argparse
import difflib
import io
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from anchorlens import paper
from anchorlens.errors import AnchorlensError, DataFileError
from anchorlens.experiments import saved_files
from anchorlens.experiments.auroc import cumulative_r
from anchorlens.experiments.saliency import REGIONS, flow_differences
from anchorlens.registry import in_paper_order
from anchorlens.stats import LEVEL, means_with_ci, seed_interval, task_average_with_ci

HOLDS, FAILS, UNCLEAR, NO_INTERVAL = "holds", "fails", "unclear", "no interval"
#: An R_l check where the AUROC does not clearly rise: R_l is then no share of a rise, so the check cannot decide.
NO_RISE = "no rise"
#: A check whose interval rests on fewer than MIN_SEEDS_TO_DECIDE seeds.
FEW_SEEDS = "few seeds"
REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_SHOWN = "reproduced", "partly", "not reproduced", "not shown"
#: The row of the average over tasks: shown as a headline, never counted as a task.
AVG = "Avg"

#: "≈ 0.5" and "≈ 0.8" of Fig. 5, read as within 0.1.
AUROC_SHALLOW_BELOW = 0.6
AUROC_DEEP_ABOVE = 0.7
#: Seeds a check's interval must rest on to decide it, for any task and check: with one seed the interval is
#: the test inputs' alone and says nothing of how another demonstration set moves the value, so such a check
#: is unclear (never failing, never holding). A rule about power, not about a task.
MIN_SEEDS_TO_DECIDE = 2
#: Significance level of the diagnosis correlation's permutation test.
P_VALUE_BELOW = 0.05
MAIN_K = 5

START, END = "<!-- claims:start -->", "<!-- claims:end -->"
SUMMARY_COLUMNS = ("task", "model", "metric", "mean", "ci_low", "ci_high")
#: The paper's experiments in the order of its sections (the registry declares them).
EXPERIMENTS = in_paper_order()
#: The diagnosis correlation and its permutation p-value, as `DiagnoseResult.summary` names them (first pair
#: present is used): a metric pair of diagnose_summary.csv, else columns of the summary of diagnose.csv.
CORRELATIONS = (("pearson", "p_pearson"), ("spearman", "p_spearman"))
#: Columns read as text (a metric named "true" would otherwise become a boolean).
TEXT_COLUMNS = ("task", "model", "metric", "condition", "method", "class_a", "class_b")
#: Accuracy is `correct` (per-example 0/1) in the summaries; older tables call it `accuracy`.
ACCURACY_METRICS = ("correct", "accuracy")
COMPRESSED = ("text_anchor", "hidden_random", "hidden_random_top", "hidden_anchor")
#: Experiments whose compared arms are measured on the same test inputs, and the per-example column naming the
#: arm: their checks are judged on the paired difference when ``<experiment>_examples.parquet`` is present.
PAIRED_ARMS = {"isolation": "condition", "reweight": "method", "compress": "method"}
#: The saliency comparisons of findings 1a-1c, each judged on the paired difference of the two flows.
FLOW_COMPARISONS = (("S_wp", "S_pq"), ("S_wp", "S_ww"), ("S_pq", "S_wp"), ("S_pq", "S_ww"))


# ------------------------------------------------------------------------------------------------ estimates


@dataclass(frozen=True)
class Estimate:
    """A summary mean and its interval (NaN bounds: no interval), and the seeds it rests on where known."""

    mean: float
    low: float
    high: float
    seeds: int | None = None

    @classmethod
    def exact(cls, value: float) -> Estimate:
        """A value judged as it is (a threshold, or a statistic reported without an interval)."""
        return cls(value, value, value)

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    def shifted(self, by: float) -> Estimate:
        return Estimate(self.mean + by, self.low + by, self.high + by, self.seeds)

    def text(self, scale: float = 1.0, digits: int = 2) -> str:
        if not math.isfinite(self.mean):
            return "n/a"
        largest = max(abs(value * scale) for value in (self.mean, self.low, self.high) if math.isfinite(value))
        # Values that all round to 0 at `digits` (e.g. a flow of 1e-5) keep two significant digits instead.
        form = ".2g" if 0 < largest < 0.5 * 10**-digits else f".{digits}f"
        mean = f"{self.mean * scale:{form}}"
        if self.low == self.high == self.mean:
            return mean
        if not self.has_interval:
            return f"{mean} (no interval)"
        return f"{mean} [{self.low * scale:{form}}, {self.high * scale:{form}}]"


def average(estimates: Sequence[Estimate]) -> Estimate:
    """Mean of per-task means where only the tasks' summaries are at hand (no per-example rows): each side of its
    interval adds the tasks' half-widths as independent errors. With per-example rows the Avg is
    `anchorlens.stats.task_average_with_ci` instead (`Results.paired_average`), the summaries' own method."""
    mean = float(np.mean([e.mean for e in estimates]))
    below = math.sqrt(sum((e.mean - e.low) ** 2 for e in estimates)) / len(estimates)
    above = math.sqrt(sum((e.high - e.mean) ** 2 for e in estimates)) / len(estimates)
    return Estimate(mean, mean - below, mean + above)


def over_seeds(values: Sequence[float], level: float = LEVEL) -> Estimate:
    """Mean over seeds of per-seed values with their seed-level t-interval (`anchorlens.stats.seed_interval`
    without an input floor, as the values come without their inputs; no interval from a single seed)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    low, high = seed_interval(values, 0.0, level)
    return Estimate(float(values.mean()), low, high, int(values.size))


# --------------------------------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class Check:
    """One comparison: `test` (e.g. "S_pq > S_ww") on one task (and layer), and how it came out."""

    test: str
    task: str
    outcome: str
    #: a.ci_low - b.ci_high: > 0 holds; the smallest one is the finding's weakest case.
    margin: float
    detail: str
    layer: int | None = None
    #: the detail without the two sides' own intervals, where a paired difference decides (the README's form)
    brief: str = ""
    #: why an unclear check is unclear, where it is not that two intervals overlap
    unclear_why: str = ""

    @property
    def where(self) -> str:
        return self.task if self.layer is None else f"{self.task} layer {self.layer}"


def greater(
    test: str,
    task: str,
    a: Estimate,
    b: Estimate,
    a_name: str,
    b_name: str,
    *,
    layer: int | None = None,
    scale: float = 1.0,
    digits: int = 2,
    b_first: bool = False,
    difference: Estimate | None = None,
    a_brief_name: str | None = None,
) -> Check:
    """Does `a` lie above `b`? Holds / fails only when the intervals are apart (module docstring).
    `b_first` shows b first in the detail (a threshold reads best second). With `difference` (a − b measured
    on the same test inputs, with its own interval) the check is judged on it instead: holds when its interval
    lies above 0, fails when below. An interval on fewer than MIN_SEEDS_TO_DECIDE seeds decides nothing."""
    a_text = f"{a_name} {a.text(scale, digits)}".strip()
    b_text = f"{b_name} {b.text(scale, digits)}".strip()
    detail = f"{b_text} vs {a_text}" if b_first else f"{a_text} vs {b_text}"
    judged_on = [difference] if difference is not None and difference.has_interval else [a, b]
    seeds = [e.seeds for e in judged_on if e.seeds is not None]
    if seeds and min(seeds) < MIN_SEEDS_TO_DECIDE:
        fewest = min(seeds)
        detail += f"; {fewest} seed{'s' if fewest != 1 else ''}, fewer than {MIN_SEEDS_TO_DECIDE}"
        return Check(test, task, FEW_SEEDS, -math.inf, detail, layer)
    if difference is not None and difference.has_interval and math.isfinite(difference.mean):
        paired = f", paired difference {difference.text(scale, digits)}"
        a_mean = f"{a_brief_name or a_name} {Estimate.exact(a.mean).text(scale, digits)}".strip()
        b_mean = f"{b_name} {Estimate.exact(b.mean).text(scale, digits)}".strip()
        brief = (f"{b_mean} vs {a_mean}" if b_first else f"{a_mean} vs {b_mean}") + paired
        outcome = HOLDS if difference.low > 0 else FAILS if difference.high < 0 else UNCLEAR
        return Check(test, task, outcome, difference.low, detail + paired, layer, brief)
    if not (a.has_interval and b.has_interval and math.isfinite(a.mean) and math.isfinite(b.mean)):
        return Check(test, task, NO_INTERVAL, -math.inf, detail, layer)
    margin = a.low - b.high
    outcome = HOLDS if margin > 0 else FAILS if a.high < b.low else UNCLEAR
    return Check(test, task, outcome, margin, detail, layer)


def task_outcomes(checks: Sequence[Check], rule: str = "every") -> dict[str, str]:
    """Per task (the unit resampled independently; the Avg is no task), from its checks (its layers and
    comparisons): HOLDS when every check holds (rule "most", for a finding that says "mostly": more than half);
    FAILS when more of its checks fail than hold; PARTLY when some hold, at least as many as fail; UNCLEAR when
    none holds or fails. A check that is unclear, has no interval, rests on too few seeds or cannot be judged
    (no rise) counts as neither holding nor failing."""
    by_task: dict[str, list[str]] = {}
    for check in checks:
        if check.task != AVG:
            by_task.setdefault(check.task, []).append(check.outcome)
    judged = {}
    for task, outcomes in by_task.items():
        holding, failing = outcomes.count(HOLDS), outcomes.count(FAILS)
        enough = 2 * holding > len(outcomes) if rule == "most" else holding == len(outcomes)
        if enough:
            judged[task] = HOLDS
        elif failing > holding:
            judged[task] = FAILS
        else:
            judged[task] = PARTLY if holding else UNCLEAR
    return judged


def verdict(outcomes: dict[str, str]) -> str:
    """The finding's verdict from its tasks' outcomes (`task_outcomes`): **reproduced** when every task holds;
    **not shown** when no task holds, holds partly or fails (nothing to check, or nothing decidable); **not
    reproduced** when more tasks fail than hold wholly or partly; else **partly**."""
    counts = {state: sum(outcome == state for outcome in outcomes.values()) for state in (HOLDS, PARTLY, FAILS)}
    if not any(counts.values()):
        return NOT_SHOWN
    if counts[HOLDS] == len(outcomes):
        return REPRODUCED
    return NOT_REPRODUCED if counts[FAILS] > counts[HOLDS] + counts[PARTLY] else PARTLY


def repeated_failures(checks: Sequence[Check], name_tasks: bool = True) -> list[str]:
    """Failing checks of one test at one layer in two tasks or more, most tasks first: one cause seen several
    times, which a count of tasks would hide (e.g. every task reversed at one layer). `name_tasks`: list them."""
    tasks_of_failure: dict[tuple[str, int], list[str]] = {}
    for check in checks:
        if check.outcome == FAILS and check.layer is not None and check.task != AVG:
            tasks_of_failure.setdefault((check.test, check.layer), []).append(check.task)
    repeated = sorted(
        ((test, layer, tasks) for (test, layer), tasks in tasks_of_failure.items() if len(tasks) > 1),
        key=lambda found: -len(found[2]),
    )
    return [
        f"{test} fails at layer {layer} in {len(tasks)} tasks" + (f" ({', '.join(tasks)})" if name_tasks else "")
        for test, layer, tasks in repeated
    ]


@dataclass(frozen=True)
class Claim:
    """A finding judged on one model."""

    number: str
    finding: str
    model: str
    paper: str
    checks: tuple[Check, ...] = ()
    #: why there is nothing to check (for a verdict of not shown)
    reason: str = ""
    #: the check whose numbers stand for ours (e.g. the Avg); the weakest check when None
    headline: Check | None = None
    #: tasks that could not be judged at all, with why (listed under the table, not counted)
    skipped: tuple[str, ...] = ()
    #: how a task's checks make its outcome (`task_outcomes`): "every" or "most"
    rule: str = "every"

    @property
    def outcomes(self) -> dict[str, str]:
        return task_outcomes(self.checks, self.rule)

    @property
    def verdict(self) -> str:
        return verdict(self.outcomes)

    @property
    def ours(self) -> str:
        if not self.checks:
            return f"not shown: {self.reason}"
        if self.headline is not None:
            return f"{self.headline.where}: {self.headline.detail}"
        weakest = self.weakest
        assert weakest is not None  # there are checks
        return f"weakest, {weakest.where}: {weakest.detail}"

    @property
    def ours_brief(self) -> str:
        """`ours` without the compared sides' own intervals where a paired difference decides."""
        shown = self.headline if self.headline is not None else self.weakest
        if shown is None or not shown.brief:
            return self.ours
        return (
            f"{shown.where}: {shown.brief}" if self.headline is not None else f"weakest, {shown.where}: {shown.brief}"
        )

    @property
    def weakest(self) -> Check | None:
        """The decided check with the smallest margin (a check that cannot be judged, on one seed or without a
        rise, has no margin to show), else the first check."""
        decided = [check for check in self.checks if math.isfinite(check.margin)]
        return min(decided, key=lambda check: check.margin) if decided else (self.checks[0] if self.checks else None)

    @property
    def holds(self) -> str:
        """Tasks holding of tasks judged, those holding partly and failing, and the Avg's: "2/4 tasks, 1 partly,
        1 fails; Avg holds"."""
        if not self.checks:
            return "-"
        outcomes = self.outcomes
        holding, partly, failing = (sum(o == state for o in outcomes.values()) for state in (HOLDS, PARTLY, FAILS))
        text = f"{holding}/{len(outcomes)} task{'s' if len(outcomes) != 1 else ''}"
        text += f", {partly} partly" if partly else ""
        text += f", {failing} fail{'s' if failing == 1 else ''}" if failing else ""
        averages = [check.outcome for check in self.checks if check.task == AVG]
        if averages:
            state = HOLDS if all(o == HOLDS for o in averages) else FAILS if FAILS in averages else UNCLEAR
            text += f"; Avg {state}"
        return text


# ---------------------------------------------------------------------------------------------------- input


def task_key(task: str) -> tuple[int, str]:
    """Tasks in the paper's column order (`anchorlens.paper.task_rank`); others follow alphabetically."""
    return (paper.task_rank(task), task)


@dataclass
class Results:
    """The summaries of every folder, by experiment, and which folder each model came from."""

    folders: list[Path]
    summaries: dict[str, pd.DataFrame] = field(default_factory=dict)
    seed_rows: dict[str, pd.DataFrame] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    folders_of: dict[str, list[Path]] = field(default_factory=dict)
    #: one row per (task, model, seed, example) of the AUROC runs: the model's own ICL prediction
    predictions: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: per-example rows of the experiments in PAIRED_ARMS, for the paired checks
    examples: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: whole-layer per-example saliency rows, for the paired flow checks
    flows: pd.DataFrame = field(default_factory=pd.DataFrame)
    _paired_cache: dict[tuple, dict[str, Estimate]] = field(default_factory=dict, repr=False)
    _flow_cache: dict[str, dict[tuple[str, int, str], Estimate]] = field(default_factory=dict, repr=False)

    @classmethod
    def read(cls, folders: Iterable[str | Path]) -> Results:
        results = cls([Path(folder) for folder in folders])
        for folder in results.folders:
            if not folder.is_dir():
                raise DataFileError(
                    f"no results folder {folder}; pass folders written by `anchorlens <experiment> "
                    "--out DIR` or the analyses scripts, e.g. docs/results/smollm2-135m"
                )
            found_model = False
            files = {name: data for experiment in EXPERIMENTS for name, data in saved_files(folder, experiment).items()}
            for experiment in EXPERIMENTS:
                summary = read_summary(folder / f"{experiment}_summary.csv", files)
                if summary is not None and not summary.empty:
                    results.add(experiment, summary, folder)
                    found_model = True
            seed_models = []
            for experiment in ("compress", "diagnose", "auroc"):  # seed rows: speed-up, correlation, 3b held out
                rows = files.get(f"{experiment}.csv")
                if rows is not None:
                    frame = pd.read_csv(io.BytesIO(rows), dtype={column: str for column in TEXT_COLUMNS})
                    results.seed_rows[experiment] = pd.concat(
                        [results.seed_rows.get(experiment, pd.DataFrame()), frame], ignore_index=True
                    )
                    seed_models += list(frame["model"].unique()) if "model" in frame.columns else []
            for experiment in PAIRED_ARMS:
                rows = read_examples(folder / f"{experiment}_examples.parquet", experiment, files)
                if rows is not None:
                    results.examples[experiment] = pd.concat(
                        [results.examples.get(experiment, pd.DataFrame()), rows], ignore_index=True
                    )
            flows = read_flows(folder / "saliency_examples.parquet", files)
            if flows is not None:
                results.flows = pd.concat([results.flows, flows], ignore_index=True)
            predictions = read_predictions(folder / "auroc_examples.parquet", files)
            if predictions is not None:
                results.predictions = pd.concat([results.predictions, predictions], ignore_index=True)
            if not found_model:  # no summary names the model: the seed rows do, else the folder stands for it
                for model in dict.fromkeys(seed_models or [folder.name]):
                    results.note_model(model, folder)
        return results

    def add(self, experiment: str, summary: pd.DataFrame, folder: Path) -> None:
        for model in summary["model"].astype(str).unique():
            self.note_model(model, folder)
        combined = pd.concat([self.summaries.get(experiment, pd.DataFrame()), summary], ignore_index=True)
        keys = [c for c in combined.columns if c not in ("mean", "ci_low", "ci_high", "n_seeds", "n_examples")]
        duplicated = combined.duplicated(subset=keys)
        if duplicated.any():
            row = combined[duplicated].iloc[0]
            raise DataFileError(
                f"two folders hold {experiment} results of model {row['model']}, task {row['task']} "
                f"(the second is {folder}); pass each model's folder once"
            )
        self.summaries[experiment] = combined

    def note_model(self, model: str, folder: Path) -> None:
        if model not in self.models:
            self.models.append(model)
        if folder not in self.folders_of.setdefault(model, []):
            self.folders_of[model].append(folder)

    def paired(
        self, experiment: str, model: str, better: str, other: str, metric: str, **where: object
    ) -> dict[str, Estimate]:
        """Per task: the mean of `better` − `other` on `metric` over the test inputs both arms were measured on
        (same seed and example), with its two-level bootstrap interval over seeds and test inputs; `where`
        selects rows (e.g. ``k=5``). Empty without per-example rows."""
        key = (experiment, model, better, other, metric, tuple(sorted(where.items())))
        if key not in self._paired_cache:
            self._paired_cache[key] = self._paired(experiment, model, better, other, metric, where)
        return self._paired_cache[key]

    def _paired(
        self, experiment: str, model: str, better: str, other: str, metric: str, where: dict[str, object]
    ) -> dict[str, Estimate]:
        wide = self.differences(experiment, model, better, other, metric, **where)
        if wide is None:
            return {}
        summary = means_with_ci(wide, ["task", "model"], ["difference"])
        return {
            str(row.task): Estimate(float(row.mean), float(row.ci_low), float(row.ci_high), int(row.n_seeds))
            for row in summary.itertuples(index=False)
        }

    def differences(
        self, experiment: str, model: str, better: str, other: str, metric: str, **where: object
    ) -> pd.DataFrame | None:
        """Per-input rows ``task, model, seed, example, <better>, <other>, difference`` of `better` − `other` on
        `metric` over the test inputs both arms were measured on; None without per-example rows."""
        examples = self.examples.get(experiment)
        arm = PAIRED_ARMS[experiment]
        if examples is None or metric not in examples.columns:
            return None
        rows = examples[(examples["model"] == model) & examples[arm].isin([better, other])]
        for column, value in where.items():
            rows = rows[rows[column] == value]
        if rows.empty:
            return None
        keys = ["task", "model", "seed", "example"]
        wide = rows.set_index([*keys, arm])[metric].unstack(arm)
        if better not in wide.columns or other not in wide.columns:
            return None
        wide = wide.dropna(subset=[better, other])
        return wide.assign(difference=wide[better] - wide[other]).reset_index()

    def paired_average(
        self, experiment: str, model: str, better: str, other: str, metric: str, tasks: Sequence[str]
    ) -> Estimate | None:
        """The Avg over `tasks` of `better` − `other` (`anchorlens.stats.task_average_with_ci`: seeds paired
        across tasks by their order), or None without per-example rows of every task or with differing numbers
        of seeds."""
        wide = self.differences(experiment, model, better, other, metric)
        if wide is None:
            return None
        wide = wide[wide["task"].isin(list(tasks))]
        if set(wide["task"]) != set(tasks):
            return None
        try:
            mean, low, high = task_average_with_ci(wide, "difference")
        except ValueError:  # the tasks hold different numbers of seeds: the summaries' combination instead
            return None
        return Estimate(mean, low, high, int(wide.groupby("task")["seed"].nunique().min()))

    def flow_differences(self, model: str) -> dict[tuple[str, int, str], Estimate]:
        """(task, layer, "A - B") → the difference of two normalised saliency flows with its interval, for each
        comparison of findings 1a-1c (`FLOW_COMPARISONS`). Empty without per-example saliency rows."""
        if model not in self._flow_cache:
            rows = self.flows[self.flows["model"] == model] if not self.flows.empty else self.flows
            differences = flow_differences(rows, FLOW_COMPARISONS) if not rows.empty else pd.DataFrame()
            self._flow_cache[model] = {
                (str(row.task), int(row.layer), str(row.metric)): Estimate(
                    float(row.mean), float(row.ci_low), float(row.ci_high), int(row.n_seeds)
                )
                for row in differences.itertuples(index=False)
            }
        return self._flow_cache[model]

    def of(self, experiment: str, model: str) -> tuple[pd.DataFrame, str]:
        """The model's summary of `experiment`, or an empty frame and why it is missing."""
        summary = self.summaries.get(experiment)
        part = summary[summary["model"].astype(str) == model] if summary is not None else pd.DataFrame()
        if part.empty:
            where = " or ".join(str(folder) for folder in self.folders_of.get(model, self.folders))
            return part, f"no {experiment}_summary.csv for {model} in {where}"
        return part, ""


def file_data(path: Path, files: Mapping[str, bytes] | None) -> bytes | None:
    """The content to read for `path`: from `files` (file name → content, as `saved_files` verified or
    recomputed it) when given, else from the disk; None when there is none."""
    if files is not None:
        return files.get(path.name)
    return path.read_bytes() if path.is_file() else None


def read_summary(path: Path, files: Mapping[str, bytes] | None = None) -> pd.DataFrame | None:
    """A summary CSV, or None when the folder has none; a malformed one is an error."""
    data = file_data(path, files)
    if data is None:
        return None
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype={column: str for column in TEXT_COLUMNS})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataFileError(
            f"{path} is not a readable CSV ({error}); rerun the experiment into that folder to rewrite it"
        ) from error
    missing = [column for column in SUMMARY_COLUMNS if column not in frame.columns]
    if missing and not frame.empty:
        raise DataFileError(
            f"{path} lacks the summary columns {missing}; rerun the experiment into that folder "
            "(ExperimentResult.save writes the long summary)"
        )
    return frame if not missing else None


def read_rows(
    path: Path, experiment: str, needed: Sequence[str], files: Mapping[str, bytes] | None = None
) -> pd.DataFrame | None:
    """An experiment's per-example rows (``<experiment>_examples.parquet``) holding at least the `needed`
    columns, whole layers only (per-head rows of a ``--per-head`` run are left out), or None when the folder
    has none; a damaged file or a missing column is an error naming the fix."""
    data = file_data(path, files)
    if data is None:
        return None
    try:
        frame = pd.read_parquet(io.BytesIO(data))
    except (OSError, ValueError) as error:  # pyarrow: ArrowInvalid is a ValueError
        raise DataFileError(
            f"{path} is not a readable {experiment} examples file ({error}); rerun `anchorlens {experiment}` into "
            "that folder"
        ) from error
    missing = sorted(set(needed) - set(frame.columns))
    if missing:
        raise DataFileError(f"{path} lacks the columns {missing}; rerun `anchorlens {experiment}` into that folder")
    if "head" in frame.columns:
        frame = frame[frame["head"].isna()]
    return frame.astype({"task": str, "model": str}).reset_index(drop=True)


def read_examples(path: Path, experiment: str, files: Mapping[str, bytes] | None = None) -> pd.DataFrame | None:
    """The per-example rows of an experiment in PAIRED_ARMS (one per task, model, seed, example and arm)."""
    return read_rows(path, experiment, ["task", "model", "seed", "example", PAIRED_ARMS[experiment]], files)


def read_flows(path: Path, files: Mapping[str, bytes] | None = None) -> pd.DataFrame | None:
    """The per-example saliency rows: ``task, model, seed, example, layer, S_wp, S_pq, S_ww``."""
    needed = ["task", "model", "seed", "example", "layer", *REGIONS]
    frame = read_rows(path, "saliency", needed, files)
    return None if frame is None else frame[needed]


def read_predictions(path: Path, files: Mapping[str, bytes] | None = None) -> pd.DataFrame | None:
    """The model's own ICL prediction per test input (one row per task, model, seed and example) from the AUROC
    run's per-example rows, or None when the folder has none."""
    columns = ["task", "model", "seed", "example", "prediction"]
    frame = read_rows(path, "auroc", [*columns, "layer"], files)
    if frame is None:
        return None
    frame = frame[frame["layer"] == frame["layer"].min()]  # the prediction is the same at every layer
    return frame[columns].reset_index(drop=True)


def prediction_spread(results: Results) -> list[str]:
    """One line per model: per task, the share of a seed's test inputs the model predicts as that seed's most
    frequent class under ICL (mean over the AUROC run's seeds), and the seeds on which it predicts a single
    class. A model that predicts one class keeps label loyalty high under any intervention that does not flip
    it, and leaves the AUROC undefined, so the verdicts read differently there."""
    frame = results.predictions
    if frame.empty:
        return []
    lines = []
    for model in results.models:
        mine = frame[frame["model"] == model]
        if mine.empty:
            continue
        cells = []
        for task in sorted(mine["task"].unique(), key=task_key):
            rows = mine[mine["task"] == task]
            # Per seed: each seed is its own demonstration set, and the class a context favours changes with it.
            by_seed = rows.groupby("seed")["prediction"]
            top = by_seed.agg(lambda predicted: predicted.value_counts(normalize=True).iloc[0])
            single = int((by_seed.nunique() == 1).sum())
            one_class = f", one class only at {single} of {len(top)} seeds" if single else ""
            cells.append(f"{task} {100 * top.mean():.1f}%{one_class}")
        lines.append(f"- {model}: " + "; ".join(cells))
    return lines


def spread_text(lines: Sequence[str]) -> list[str]:
    if not lines:
        return []
    return [
        "",
        "How the model's own ICL predictions spread: per task, the share of a seed's test inputs predicted as that"
        " seed's most frequent class, mean over the AUROC run's seeds (a model that predicts one class keeps label"
        " loyalty high under any intervention that does not flip it, and has no AUROC):",
        "",
        *lines,
    ]


def estimates(part: pd.DataFrame, keys: Sequence[str]) -> dict:
    """{(*keys, metric): Estimate} of a summary part."""
    out = {}
    for values in part.to_dict("records"):
        key = tuple(_plain(values[k]) for k in keys) + (values["metric"],)
        seeds = values.get("n_seeds")
        seeds = int(seeds) if seeds is not None and pd.notna(seeds) else None
        out[key] = Estimate(float(values["mean"]), float(values["ci_low"]), float(values["ci_high"]), seeds)
    return out


def _plain(value):
    """Numbers read from CSV as floats (a layer of 3.0) become ints, so keys compare as written."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def first_present(metrics: Iterable[str], names: Sequence[str]) -> str | None:
    available = set(metrics)
    return next((name for name in names if name in available), None)


def tasks_of(part: pd.DataFrame) -> list[str]:
    return sorted(part["task"].astype(str).unique(), key=task_key)


def depth_layers(layers: Iterable[int]) -> tuple[list[int], list[int]]:
    """(shallow, deep) layers: the first and the last third of the model's layers (at least one each)."""
    layers = sorted(set(int(layer) for layer in layers))
    n_layers = max(layers) + 1
    third = max(n_layers // 3, 1)
    return [layer for layer in layers if layer < third], [layer for layer in layers if layer >= n_layers - third]


# ------------------------------------------------------------------------------------------------- findings


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


def method_checks(
    values: dict,
    tasks: list[str],
    metric: str,
    better: str,
    others: Sequence[str],
    *,
    shift: float = 0.0,
    scale: float = 100.0,
    digits: int = 1,
    paired: Callable[[str], dict[str, Estimate]] | None = None,
    paired_average: Callable[[str, list[str]], Estimate | None] | None = None,
) -> tuple[list[Check], Check | None]:
    """`better` > each of `others` on `metric`, per task and on the Avg of the tasks that have them all.
    Returns the checks and the Avg check against the strongest other method (the headline). `paired(other)`
    gives per task the difference `better` − `other` on the same test inputs; where it has every task
    compared, the checks are judged on it, and the Avg on `paired_average(other, tasks)` (the summaries'
    method over the tasks' per-input differences), else on `average` of the tasks' differences."""
    checks, averages = [], {}
    methods = [better, *others]
    complete = [t for t in tasks if all((t, m, metric) in values for m in methods)]

    def test(other: str) -> str:
        return f"{better} + {shift * scale:.2f} > {other}" if shift else f"{better} > {other}"

    differences = {other: paired(other) if paired else {} for other in others}
    differences = {other: d if all(t in d for t in complete) else {} for other, d in differences.items()}

    def compare(task: str, ours: Estimate, other: str, theirs: Estimate, difference: Estimate | None) -> Check:
        # With a shift, show our own value and the shifted one, so no number appears that was not measured.
        name = f"{better} {ours.text(scale, digits)} + {shift * scale:.2f} =" if shift else better
        brief_name = (
            f"{better} {Estimate.exact(ours.mean).text(scale, digits)} + {shift * scale:.2f} =" if shift else None
        )
        shifted = difference.shifted(shift) if difference is not None else None
        return greater(
            test(other),
            task,
            ours.shifted(shift),
            theirs,
            name,
            other,
            scale=scale,
            digits=digits,
            difference=shifted,
            a_brief_name=brief_name,
        )

    for task in complete:
        for other in others:
            difference = differences[other].get(task)
            checks.append(
                compare(task, values[(task, better, metric)], other, values[(task, other, metric)], difference)
            )
    if len(complete) >= 2:
        averages = {m: average([values[(t, m, metric)] for t in complete]) for m in methods}
        for other in others:
            mean_difference = None
            if differences[other]:
                mean_difference = paired_average(other, complete) if paired_average else None
                if mean_difference is None:
                    mean_difference = average([differences[other][t] for t in complete])
            checks.append(compare(AVG, averages[better], other, averages[other], mean_difference))
    headline = None
    if averages:
        strongest = max(others, key=lambda m: averages[m].mean)
        headline = next(c for c in checks if c.task == AVG and c.test == test(strongest))
    return checks, headline


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
        checks, headline = method_checks(
            values,
            tasks_of(part),
            metric,
            "reweight",
            [baseline],
            paired=lambda other, metric=metric: results.paired("reweight", model, "reweight", other, metric),
            paired_average=lambda other, tasks, metric=metric: results.paired_average(
                "reweight", model, "reweight", other, metric, tasks
            ),
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
        tasks, untestable = tasks_of(part), []
        if number == "5c":
            tasks, untestable = icl_above_baseline(results, model, tasks, metric)
        checks, headline = method_checks(
            values,
            tasks,
            metric,
            "hidden_anchor",
            others,
            paired=lambda other, metric=metric: results.paired("compress", model, "hidden_anchor", other, metric),
            paired_average=lambda other, tasks, metric=metric: results.paired_average(
                "compress", model, "hidden_anchor", other, metric, tasks
            ),
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


FINDINGS = (saliency_claims, isolation_claims, auroc_claims, reweight_claims, compress_claims, diagnose_claims)


def all_claims(results: Results) -> list[Claim]:
    """Every finding for every model, finding by finding (models in folder order)."""
    per_model = {model: [claim for judge in FINDINGS for claim in judge(results, model)] for model in results.models}
    numbers = list(dict.fromkeys(claim.number for claims in per_model.values() for claim in claims))
    return [
        claim for number in numbers for model in results.models for claim in per_model[model] if claim.number == number
    ]


# --------------------------------------------------------------------------------------------------- output


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


def ranges(numbers: Iterable[int]) -> str:
    """[0, 1, 2, 4] -> "0-2, 4"."""
    numbers = sorted(set(numbers))
    spans, start = [], numbers[0]
    for previous, current in zip(numbers, numbers[1:] + [None]):
        if current != previous + 1:
            spans.append(f"{start}" if start == previous else f"{start}-{previous}")
            start = current
    return ", ".join(spans)


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
            claim = by_model.get(model)
            if claim is None:
                cells.append("-")
            elif not claim.checks:
                cells.append(f"**{claim.verdict}**")  # the reason is in the full form
            else:  # the tasks are in the coverage lines; "weakest" is in the header
                # The most repeated failure across tasks (all of them are in the full form).
                failures = repeated_failures(claim.checks, name_tasks=False)
                repeated = f" ({failures[0]}{', and more' if len(failures) > 1 else ''})" if failures else ""
                cells.append(
                    f"**{claim.verdict}**, {claim.holds}{repeated}; {claim.ours_brief.removeprefix('weakest, ')}"
                )
        lines.append("| " + " | ".join(cell(text) for text in (number, first.finding, first.paper, *cells)) + " |")
    lines += coverage_text(covered)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- README block


def split_block(text: str, path: Path, name: str = "claims") -> tuple[str, str, str]:
    """(before and the start marker, the block, the end marker and after) of a README's `name` block."""
    start_marker, end_marker = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if text.count(start_marker) != 1 or text.count(end_marker) != 1:
        raise DataFileError(
            f"{path} needs exactly one '{start_marker}' line and one '{end_marker}' line around the {name} block "
            f"(found {text.count(start_marker)} and {text.count(end_marker)}); add them where it goes"
        )
    start = text.index(start_marker) + len(start_marker)
    end = text.index(end_marker)
    if end < start:
        raise DataFileError(f"{path} has '{end_marker}' before '{start_marker}'; put the start marker first")
    return text[:start], text[start:end], text[end:]


def check_block(path: Path, printed: str, name: str = "claims", script: str = "analyses/claims.py") -> int:
    """0 when the README's block is what is printed now, else 1 with a unified diff on stdout."""
    _, block, _ = split_block(read_text(path), path, name)
    if block.strip("\n") == printed.strip("\n"):
        print(f"{path}: the {name} block is up to date")
        return 0
    diff = difflib.unified_diff(
        block.strip("\n").splitlines(),
        printed.strip("\n").splitlines(),
        f"{path} ({name} block)",
        f"{script} (now)",
        lineterm="",
    )
    print("\n".join(diff))
    print(f"{path}: the {name} block differs from the results; run the same command with --write {path}")
    return 1


def write_block(path: Path, printed: str, name: str = "claims") -> None:
    before, _, after = split_block(read_text(path), path, name)
    path.write_text(before + "\n" + printed.strip("\n") + "\n" + after)


def read_text(path: Path) -> str:
    if not path.is_file():
        raise DataFileError(f"no file {path}; pass the README that holds the claims block, e.g. README.md")
    return path.read_text()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folders", nargs="+", help="results folders, e.g. docs/results/smollm2-135m")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", metavar="README", help="exit 1 (with a diff) when README's claims block is stale")
    mode.add_argument("--write", metavar="README", help="replace README's claims block with the claims printed now")
    parser.add_argument(
        "--short",
        metavar="FULL",
        help="one row per finding, a column per model, linking to FULL (the file holding the full form, "
        "e.g. docs/results.md) for the checks that do not hold: the README's form",
    )
    args = parser.parse_args(argv)
    command = " ".join(["python analyses/claims.py", *args.folders])
    try:
        results = Results.read(args.folders)
        found, covered = all_claims(results), coverage(results)
        printed = (
            render_short(found, command, args.short, covered)
            if args.short
            else render(found, command, covered, prediction_spread(results))
        )
        if args.check:
            return check_block(Path(args.check), printed)
        if args.write:
            write_block(Path(args.write), printed)
            print(f"{args.write}: claims block written")
            return 0
    except AnchorlensError as error:
        print(f"claims.py: error: {error}", file=sys.stderr)
        return 2
    print(printed, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
