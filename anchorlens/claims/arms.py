"""Checks between methods measured on the same test inputs (re-weighting's and compression's arms): per task
and on the average over tasks, on the paired difference where the per-example rows are at hand."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from anchorlens.claims.inputs import Results
from anchorlens.claims.rules import AVG, Check, Estimate, average, greater


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


def paired_arms(
    results: Results, experiment: str, model: str, better: str, metric: str
) -> tuple[Callable[[str], dict[str, Estimate]], Callable[[str, list[str]], Estimate | None]]:
    """`method_checks`'s `paired` and `paired_average` for `better` against another arm of `experiment` on
    `metric`: the per-task and the over-tasks intervals of the paired difference (`Results.paired`)."""

    def paired(other: str) -> dict[str, Estimate]:
        return results.paired(experiment, model, better, other, metric)

    def paired_average(other: str, tasks: list[str]) -> Estimate | None:
        return results.paired_average(experiment, model, better, other, metric, tasks)

    return paired, paired_average
