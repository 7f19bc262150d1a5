"""What a run command prints: the experiment's answer as text, with 95% intervals, never a spread of NaN.

Each run command prints the summary means with the 95% intervals (seed-level t, floored by the inputs' error) of
the result's ``summary_with_ci()`` (over seeds; over the test inputs alone with one seed), then any summary
value those intervals do not cover (compression's timing) as the mean and standard deviation over seeds, "one
seed" where a standard deviation needs two. `anchorlens heads` prints its answer: the top heads of each flow
and the causal check's verdict per k.
"""

from __future__ import annotations

import math
from collections.abc import Collection

import pandas as pd

from anchorlens.experiments.common import ExperimentResult, whole_layer_rows

#: What one seed leaves where a spread over seeds is asked for.
ONE_SEED = "one seed"
#: Summary columns named after a per-example value of another name (the summary's accuracy is the mean of the
#: per-example ``correct``).
SUMMARY_ALIASES = {"accuracy": "correct"}
INTERVAL_NOTE = (
    "mean [95% interval] over seeds (seed-level t, floored by the test inputs' error; "
    "with one seed, over the test inputs)"
)


def _float(value: float) -> str:
    """Three decimals, or three significant digits for a value too small for them (a tiny model's saliency)."""
    return f"{value:.3g}" if 0 < abs(value) < 0.001 else f"{value:.3f}"


def _number(value: object) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return _float(value) if isinstance(value, float) else str(value)


def interval_table(summary_with_ci: pd.DataFrame) -> pd.DataFrame:
    """The long ``summary_with_ci`` as one row per task, model and key, one ``mean [low, high]`` column per
    metric, and the seeds and test inputs the means rest on (whole layers only: per-head rows are in the CSV)."""
    frame = whole_layer_rows(summary_with_ci)
    keys = [column for column in frame.columns if column not in _SUMMARY_VALUES and column != "metric"]
    text = frame.assign(
        cell=[
            f"{_number(mean)} [{_number(low)}, {_number(high)}]"
            for mean, low, high in zip(frame["mean"], frame["ci_low"], frame["ci_high"])
        ]
    )
    wide = text.pivot(index=keys, columns="metric", values="cell")
    wide = wide[list(dict.fromkeys(frame["metric"]))]  # metrics in the summary's order
    shown_as = {value: summary_name for summary_name, value in SUMMARY_ALIASES.items()}
    wide = wide.rename(columns=shown_as)  # per-example `correct` averages to the summary's `accuracy`
    counts = frame.groupby(keys, sort=False)[["n_seeds", "n_examples"]].max()
    table = wide.join(counts.rename(columns={"n_seeds": "seeds", "n_examples": "inputs"}))
    order = frame[keys].drop_duplicates()
    return table.reindex(pd.MultiIndex.from_frame(order) if len(keys) > 1 else order[keys[0]]).reset_index()


_SUMMARY_VALUES = ("mean", "ci_low", "ci_high", "n_seeds", "n_examples")


def _flat(summary: pd.DataFrame) -> pd.DataFrame:
    """A summary with ``(metric, stat)`` column pairs flattened to ``metric_stat`` (as the others name them)."""
    if isinstance(summary.columns, pd.MultiIndex):
        summary = summary.copy()
        summary.columns = [f"{a}_{b}" if b else str(a) for a, b in summary.columns]
    return summary


def spread_table(summary: pd.DataFrame, covered: Collection[str] = ()) -> pd.DataFrame:
    """`summary` without the metrics in `covered` (printed with intervals already), each ``*_std`` that is NaN
    shown as "one seed": a standard deviation over seeds needs two."""
    frame = _flat(summary)
    dropped = [
        column
        for column in frame.columns
        if any(
            column.endswith(suffix) and SUMMARY_ALIASES.get(column[: -len(suffix)], column[: -len(suffix)]) in covered
            for suffix in ("_mean", "_std")
        )
    ]
    frame = frame.drop(columns=dropped)
    shown = frame.astype(object)
    for column in frame.columns:
        mean = column.removesuffix("_std") + "_mean"
        if column.endswith("_std") and mean in frame.columns:
            # NaN beside a mean: one seed (a spread needs two); NaN beside no mean: nothing measured ("-").
            shown[column] = [
                ONE_SEED if pd.isna(spread) and not pd.isna(centre) else spread
                for spread, centre in zip(frame[column], frame[mean])
            ]
    return shown


def _text(frame: pd.DataFrame) -> str:
    return frame.to_string(index=False, float_format=_float, na_rep="-")


def answer(result: ExperimentResult) -> str:
    """The text a run command prints for `result` (module docstring)."""
    from anchorlens.experiments.heads import HeadsResult

    if isinstance(result, HeadsResult):
        return heads_answer(result)
    with_ci = result.summary_with_ci()
    summary = result.summary()
    parts = []
    covered: set[str] = set()
    if not with_ci.empty:
        covered = set(with_ci["metric"])
        parts += [INTERVAL_NOTE + ":", _text(interval_table(with_ci))]
    if not any(str(column).endswith("std") for column in _flat(summary).columns):
        # A summary of other statistics than seed means (diagnosis: correlations and p-values): shown whole.
        return "\n".join([*parts, *([""] if parts else []), "summary:", _text(_flat(summary))])
    rest = spread_table(summary, covered)
    values = [column for column in rest.columns if column.endswith(("_mean", "_std"))]
    if values or with_ci.empty:
        if parts:
            parts += ["", "mean and standard deviation over seeds:"]
        parts.append(_text(rest))
    return "\n".join(parts)


def heads_answer(result) -> str:
    """`anchorlens heads`: the top heads of each flow (seed means) and the causal check's verdict table."""
    from anchorlens.experiments.heads import FLOW_NAMES, FLOWS

    k_largest = max(result.config.top_k) if hasattr(result.config, "top_k") else 10
    parts = []
    for flow in FLOWS:
        top = result.top_heads(flow, n=min(k_largest, 10))
        parts += [f"top heads by {FLOW_NAMES[flow]}, seed means:", _text(top), ""]
    check = result.causal_check()
    parts.append(
        "causal check: loyalty with the top k heads blocked vs k random heads; gap = random - top with its 95% "
        "interval; top_costs_more: yes (interval above 0), no: less (below 0), not shown (contains 0):"
    )
    if check.empty:
        parts.append("no per-example rows: no check (rerun into a fresh --out folder)")
        return "\n".join(parts)
    check = check.sort_values(["task", "model", "flow", "k", "metric"], key=_flows_first, kind="stable")
    shown = pd.DataFrame(
        {
            **{key: check[key] for key in ("task", "model", "flow", "k", "metric")},
            "top": [f"{_number(m)} [{_number(lo)}, {_number(hi)}]" for m, lo, hi in _triples(check, "top")],
            "random": [f"{_number(m)} [{_number(lo)}, {_number(hi)}]" for m, lo, hi in _triples(check, "random")],
            "gap": [f"{_number(m)} [{_number(lo)}, {_number(hi)}]" for m, lo, hi in _triples(check, "gap")],
            "top_costs_more": check["top_costs_more"],
            "inputs": check["n_examples"],
        }
    )
    parts.append(_text(shown))
    return "\n".join(parts)


def _flows_first(column: pd.Series) -> pd.Series:
    """Sort key: flows in `FLOWS` order (wp, then pq), every other column as it is."""
    from anchorlens.experiments.heads import FLOWS

    return column.map(FLOWS.index) if column.name == "flow" else column


def _triples(check: pd.DataFrame, name: str):
    return zip(check[f"{name}_mean"], check[f"{name}_ci_low"], check[f"{name}_ci_high"])
