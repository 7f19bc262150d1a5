"""Verdict rules: the verdict words, how one check is judged, how checks are counted by task, the
thresholds, and the estimate every check compares (the interval method is `anchorlens.stats`'s). Set before
looking at the results; the package docstring (`anchorlens.claims`) states them in full."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from anchorlens.registry import EXPERIMENTS as DECLARED
from anchorlens.registry import in_paper_order
from anchorlens.stats import LEVEL, seed_interval

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
PAIRED_ARMS: dict[str, str] = {name: arm for name in EXPERIMENTS if (arm := DECLARED[name].paired_arm) is not None}
#: The saliency comparisons of findings 1a-1c, each judged on the paired difference of the two flows.
FLOW_COMPARISONS = (("S_wp", "S_pq"), ("S_wp", "S_ww"), ("S_pq", "S_wp"), ("S_pq", "S_ww"))


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


def over_seeds(values: Sequence[float] | np.ndarray, level: float = LEVEL) -> Estimate:
    """Mean over seeds of per-seed values with their seed-level t-interval (`anchorlens.stats.seed_interval`
    without an input floor, as the values come without their inputs; no interval from a single seed)."""
    array = np.asarray(values, dtype=float)
    array = array[np.isfinite(array)]
    if array.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    low, high = seed_interval(array, 0.0, level)
    return Estimate(float(array.mean()), low, high, int(array.size))


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


def ranges(numbers: Iterable[int]) -> str:
    """[0, 1, 2, 4] -> "0-2, 4"."""
    ordered = sorted(set(numbers))
    spans, start = [], ordered[0]
    for previous, current in zip(ordered, [*ordered[1:], None]):
        if current is None or current != previous + 1:
            spans.append(f"{start}" if start == previous else f"{start}-{previous}")
            start = current if current is not None else start
    return ", ".join(spans)
