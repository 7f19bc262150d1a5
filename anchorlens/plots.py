"""Figures from results: each function takes a result and returns a plotly figure (nothing is computed here
that the result does not hold, beyond seed means and the result's own intervals).

Every figure names its axes with their units, shows the values (and their interval) on hover, and says in its
subtitle what its error bars or bands are: the 95% seed-level interval (`anchorlens.stats`) of the result's
``summary_with_ci()`` where the result holds per-example rows, else ±1 standard deviation over seeds where
there are at least two seeds, else none ("one seed: no interval"). A bar is never drawn from a single value.
`save_figure` writes self-contained HTML (plotly.js inlined), which opens offline, or HTML that shares one
``plotly.min.js`` beside it (what a results folder holds), or a static PNG, SVG or PDF where kaleido is installed.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from anchorlens.errors import InvalidConfigError
from anchorlens.experiments.auroc import AurocResult
from anchorlens.experiments.common import ExperimentResult, whole_layer_rows
from anchorlens.experiments.compress import METHODS as COMPRESS_METHODS
from anchorlens.experiments.compress import METRICS as COMPRESS_METRICS
from anchorlens.experiments.compress import CompressResult
from anchorlens.experiments.diagnose import DiagnoseResult
from anchorlens.experiments.heads import FLOW_NAMES, HeadsResult
from anchorlens.experiments.isolation import CONDITIONS, IsolationResult
from anchorlens.experiments.reweight import METHODS as REWEIGHT_METHODS
from anchorlens.experiments.reweight import ReweightResult
from anchorlens.experiments.saliency import REGIONS, SaliencyResult
from anchorlens.flow import PromptFlow, layer_views, prompt_flow, region_masks
from anchorlens.model_classes import Model
from anchorlens.paper import COMPRESS_METHOD_LABELS, COMPRESS_SPEEDUP, REWEIGHT_METHOD_LABELS, task_rank
from anchorlens.prompts import Prompt

__all__ = [
    "diagnose_svg",
    "plot_auroc",
    "plot_compress",
    "plot_compress_by_task",
    "plot_diagnose",
    "plot_flow",
    "plot_heads",
    "plot_isolation",
    "plot_isolation_by_k",
    "plot_reweight",
    "plot_saliency",
    "save_figure",
]

COLORS = {"S_wp": "#1f77b4", "S_pq": "#d62728", "S_ww": "#2ca02c"}
# Fig. 6 in both forms, the plotly figure and the static SVG
DIAGNOSE_COLORSCALE = "YlGnBu"
DIAGNOSE_PANELS = ("predicted (label-key distance)", "true (AUROC)")
#: Fig. 4's conditions as a reader reads them: which tokens' rows are isolated, and in which layers.
CONDITION_LABELS = {
    "label_first": "label words, first k layers (shallow)",
    "label_last": "label words, last k layers (deep)",
    "random_first": "random words, first k layers",
    "random_last": "random words, last k layers",
}
CONDITION_STYLES = {
    "label_first": {"color": "#1f77b4", "dash": "solid"},
    "label_last": {"color": "#d62728", "dash": "solid"},
    "random_first": {"color": "#1f77b4", "dash": "dot"},
    "random_last": {"color": "#d62728", "dash": "dot"},
}
LOYALTY_COLORS = {"label_loyalty": "#1f77b4", "word_loyalty": "#ff7f0e", "accuracy": "#2ca02c"}
NO_INTERVAL = "one seed: no interval"


def _titles(frame) -> list[str]:
    return [f"{task} ({model})" for task, model in frame[["task", "model"]].drop_duplicates().itertuples(index=False)]


def _title(text: str, caption: str) -> dict:
    """A layout title with the figure's caption (what its error bars are) as the subtitle."""
    return {"text": text, "subtitle": {"text": caption}, "x": 0.0, "xanchor": "left"}


# ------------------------------------------------------------------------------------------------ intervals


def _with_intervals(
    result: ExperimentResult,
    rows: pd.DataFrame,
    keys: Sequence[str],
    metrics: Mapping[str, str],
    *,
    scale: float = 1.0,
    digits: int = 3,
    intervals: bool = True,
) -> pd.DataFrame:
    """Per task, model, `keys` and metric: the seed mean of the seed-row column and its interval.

    `metrics` maps each seed-row column to its metric in ``result.summary_with_ci()`` (``accuracy`` →
    ``correct``). Returns the long table ``task, model, <keys>, metric, mean, low, high, kind, hover``: `kind` is
    ``"ci"`` (95% seed-level interval, floored by the test inputs' error, from the result's per-example rows),
    ``"std"`` (mean ± 1 std over seeds, where there are no per-example rows and at least two seeds) or
    ``"none"`` (one seed and no per-example rows: no interval, low and high NaN); `hover` says it in words.
    Values are multiplied by `scale` (100 for %). `intervals=False` skips those intervals."""
    group = ["task", "model", *keys]
    long = rows.melt(id_vars=group, value_vars=list(metrics), var_name="metric", value_name="value")
    table = (
        long.groupby([*group, "metric"], sort=False)["value"].agg(mean="mean", std="std", n_seeds="count").reset_index()
    )
    bootstrap = pd.DataFrame()
    if intervals and not result.examples.empty and any(metrics.values()):
        if "head" in result.examples.columns:  # the figures draw whole layers: no per-head bootstrap (slow)
            result = dataclasses.replace(result, examples=whole_layer_rows(result.examples))
        bootstrap = result.summary_with_ci()
    if not bootstrap.empty:
        column_of = {name: column for column, name in metrics.items() if name}
        bootstrap = bootstrap[bootstrap["metric"].isin(list(column_of))]
        bootstrap = bootstrap.assign(metric=bootstrap["metric"].map(column_of))
        bootstrap = bootstrap[[*group, "metric", "ci_low", "ci_high", "n_seeds", "n_examples"]].rename(
            columns={"n_seeds": "ci_seeds"}
        )
        table = table.merge(bootstrap, on=[*group, "metric"], how="left")
    else:
        table = table.assign(ci_low=np.nan, ci_high=np.nan, ci_seeds=np.nan, n_examples=np.nan)
    has_ci = table["ci_low"].notna() & table["ci_high"].notna()
    spread = ~has_ci & (table["n_seeds"] >= 2) & table["std"].notna()
    table["kind"] = np.where(has_ci, "ci", np.where(spread, "std", "none"))
    table["low"] = np.where(has_ci, table["ci_low"], np.where(spread, table["mean"] - table["std"], np.nan))
    table["high"] = np.where(has_ci, table["ci_high"], np.where(spread, table["mean"] + table["std"], np.nan))
    for column in ("mean", "low", "high"):
        table[column] = table[column] * scale

    def hover(row) -> str:
        if row.kind == "ci":
            seeds = int(row.ci_seeds)
            return (
                f"95% interval {row.low:.{digits}f} to {row.high:.{digits}f} ({seeds} seed{'s' * (seeds > 1)}, "
                f"{int(row.n_examples)} test inputs)"
            )
        if row.kind == "std":
            return f"±1 std over {int(row.n_seeds)} seeds: {row.low:.{digits}f} to {row.high:.{digits}f}"
        return "no interval (one seed)"

    table["hover"] = [hover(row) for row in table.itertuples(index=False)] if len(table) else []
    return table[[*group, "metric", "mean", "low", "high", "kind", "n_seeds", "ci_seeds", "hover"]]


def _caption(tables: Sequence[pd.DataFrame], what: str = "error bars") -> str:
    """What the intervals of `tables` (from `_with_intervals`) are, in one line: e.g. "error bars: 95%
    interval over seeds (t, floored by the test inputs' error)", or "one seed: no interval"."""
    table = pd.concat(tables, ignore_index=True)
    kinds = set(table["kind"])
    parts = []
    if "ci" in kinds:
        one_seed = (table.loc[table["kind"] == "ci", "ci_seeds"] <= 1).all()
        parts.append(
            "95% interval over the test inputs of one seed (no spread over seeds)"
            if one_seed
            else "95% interval over seeds (t, floored by the test inputs' error)"
        )
    if "std" in kinds:
        parts.append("±1 std over seeds")
    if not parts:
        return NO_INTERVAL
    described = f"{what}: {'; '.join(parts)}"
    return f"{described}; elsewhere {NO_INTERVAL}" if "none" in kinds else described


def _error_bars(part: pd.DataFrame) -> dict:
    """The ``error_y`` of a trace from `_with_intervals` rows: asymmetric, and none at all where no row has an
    interval (a zero-height bar would read as a measured zero spread)."""
    if not np.isfinite(part["low"].to_numpy(float)).any():
        return {}
    mean = part["mean"].to_numpy(float)
    return {
        "error_y": {
            "type": "data",
            "symmetric": False,
            "array": part["high"].to_numpy(float) - mean,
            "arrayminus": mean - part["low"].to_numpy(float),
            "thickness": 1,
        }
    }


def _rows(table: pd.DataFrame, **where) -> pd.DataFrame:
    """The rows of `table` whose columns equal the given values."""
    mask = np.ones(len(table), dtype=bool)
    for column, value in where.items():
        mask &= (table[column] == value).to_numpy()
    return table[mask]


# ----------------------------------------------------------------------------------------------- the figures


def plot_saliency(result: SaliencyResult) -> go.Figure:
    """Paper Fig. 3: normalised S_wp, S_pq, S_ww per layer (seed mean with its interval as a band), one panel
    per task."""
    frame = whole_layer_rows(result.frame)  # a per_head result also holds one row per head
    table = _with_intervals(result, frame, ["layer"], {region: region for region in REGIONS})
    keys = table[["task", "model"]].drop_duplicates().values.tolist()
    figure = make_subplots(rows=1, cols=len(keys), subplot_titles=_titles(table), shared_yaxes=True)
    for column, (task, model) in enumerate(keys, start=1):
        for region in REGIONS:
            part = _rows(table, task=task, model=model, metric=region).sort_values("layer")
            layers = part["layer"].to_numpy()
            figure.add_trace(
                go.Scatter(
                    x=layers,
                    y=part["mean"].to_numpy(float),
                    name=region,
                    line={"color": COLORS[region]},
                    legendgroup=region,
                    showlegend=column == 1,
                    customdata=part[["hover"]].to_numpy(),
                    hovertemplate=f"{task} ({model})<br>layer %{{x}}<br>{region} = %{{y:.3f}} of the layer's "
                    f"saliency<br>%{{customdata[0]}}<extra>{region}</extra>",
                ),
                row=1,
                col=column,
            )
            banded = part[np.isfinite(part["low"].to_numpy(float))]
            if banded.empty:
                continue
            figure.add_trace(
                go.Scatter(
                    x=list(banded["layer"]) + list(banded["layer"][::-1]),
                    y=list(banded["high"]) + list(banded["low"][::-1]),
                    fill="toself",
                    fillcolor=COLORS[region],
                    opacity=0.15,
                    line={"width": 0},
                    hoverinfo="skip",
                    legendgroup=region,
                    showlegend=False,
                ),
                row=1,
                col=column,
            )
        figure.update_xaxes(title_text="layer", row=1, col=column)
    figure.update_yaxes(title_text="share of the layer's saliency, S / (S_wp + S_pq + S_ww)", row=1, col=1)
    figure.update_layout(
        title=_title(
            "Saliency information flow: text→label (S_wp), label→target (S_pq), other (S_ww); "
            "S = mean of |Σ_h A ⊙ ∂L/∂A| over the region's entries",
            _caption([table], "bands"),
        ),
        template="plotly_white",
        height=420,
        width=max(560, 330 * len(keys)),
        margin={"t": 110},
    )
    return figure


def _isolation_table(result: IsolationResult) -> pd.DataFrame:
    return _with_intervals(
        result,
        result.frame,
        ["k", "condition"],
        {"label_loyalty": "label_loyalty", "word_loyalty": "word_loyalty"},
        scale=100,
        digits=1,
    )


def plot_isolation(result: IsolationResult, k: int | None = None) -> go.Figure:
    """Paper Fig. 4: label and word loyalty per condition (seed mean with its interval), one panel per task, for
    one k (default 5 where the result has it). `plot_isolation_by_k` shows every k."""
    frame = result.frame
    available = sorted(int(value) for value in frame["k"].unique())
    if k is None:
        k = 5 if 5 in available else available[0]
    elif k not in available:
        raise InvalidConfigError(
            f"this isolation result has no k = {k}; it holds k = {', '.join(map(str, available))}: pass one of them"
        )
    table = _isolation_table(result)
    table = table[table["k"] == k]
    keys = table[["task", "model"]].drop_duplicates().values.tolist()
    figure = make_subplots(rows=1, cols=len(keys), subplot_titles=_titles(table), shared_yaxes=True)
    for column, (task, model) in enumerate(keys, start=1):
        for metric in ("label_loyalty", "word_loyalty"):
            part = _rows(table, task=task, model=model, metric=metric).set_index("condition").reindex(CONDITIONS)
            name = metric.replace("_", " ")
            figure.add_trace(
                go.Bar(
                    x=list(CONDITIONS),
                    y=part["mean"].to_numpy(float),
                    **_error_bars(part),
                    name=name,
                    marker_color=LOYALTY_COLORS[metric],
                    legendgroup=metric,
                    showlegend=column == 1,
                    customdata=np.column_stack([[CONDITION_LABELS[c] for c in CONDITIONS], part["hover"].fillna("")]),
                    hovertemplate=f"{task} ({model}), k = {k}<br>%{{customdata[0]}}<br>{name} = %{{y:.1f}}%"
                    "<br>%{customdata[1]}<extra></extra>",
                ),
                row=1,
                col=column,
            )
        figure.update_xaxes(
            title_text="isolated rows (label or random words; first or last k layers)", row=1, col=column
        )
    figure.update_yaxes(title_text="loyalty to the unblocked model (%)", range=[0, 105], row=1, col=1)
    figure.update_layout(
        title=_title(
            f"Isolating label words vs random words in the first / last {k} layers", _caption([table], "error bars")
        ),
        barmode="group",
        template="plotly_white",
        height=440,
        width=max(560, 360 * len(keys)),
        margin={"t": 110},
    )
    return figure


def plot_isolation_by_k(result: IsolationResult) -> go.Figure:
    """Fig. 4 across k: label loyalty (top row) and word loyalty (bottom row) against the number k of isolated
    layers, one line per condition (label words or random words, first or last k layers), one column per task;
    seed means with their intervals."""
    table = _isolation_table(result)
    keys = table[["task", "model"]].drop_duplicates().values.tolist()
    ks = sorted(int(value) for value in table["k"].unique())
    figure = make_subplots(
        rows=2,
        cols=len(keys),
        subplot_titles=[f"{kind}: {title}" for kind in ("label loyalty", "word loyalty") for title in _titles(table)],
        shared_xaxes=True,
        shared_yaxes=True,
        vertical_spacing=0.14,
    )
    for column, (task, model) in enumerate(keys, start=1):
        for row, metric in enumerate(("label_loyalty", "word_loyalty"), start=1):
            name = metric.replace("_", " ")
            for condition in CONDITIONS:
                part = _rows(table, task=task, model=model, metric=metric, condition=condition).sort_values("k")
                if part.empty:
                    continue
                style = CONDITION_STYLES[condition]
                figure.add_trace(
                    go.Scatter(
                        x=part["k"].to_numpy(),
                        y=part["mean"].to_numpy(float),
                        mode="lines+markers",
                        **_error_bars(part),
                        name=CONDITION_LABELS[condition],
                        line=style,
                        marker={"color": style["color"]},
                        legendgroup=condition,
                        showlegend=column == 1 and row == 1,
                        customdata=part[["hover"]].to_numpy(),
                        hovertemplate=f"{task} ({model})<br>{CONDITION_LABELS[condition]}<br>k = %{{x}}<br>{name} = "
                        "%{y:.1f}%<br>%{customdata[0]}<extra></extra>",
                    ),
                    row=row,
                    col=column,
                )
            figure.update_yaxes(range=[0, 105], row=row, col=column)
        figure.update_xaxes(title_text="k (isolated layers)", tickvals=ks, row=2, col=column)
        figure.update_xaxes(tickvals=ks, row=1, col=column)
    figure.update_yaxes(title_text="label loyalty (%)", row=1, col=1)
    figure.update_yaxes(title_text="word loyalty (%)", row=2, col=1)
    figure.update_layout(
        title=_title(
            "Isolating label words vs random words across k: the first k layers (shallow) against the last k (deep)",
            _caption([table], "error bars"),
        ),
        template="plotly_white",
        height=680,
        width=max(620, 380 * len(keys)),
        margin={"t": 110},
    )
    return figure


def plot_auroc(result: AurocResult) -> go.Figure:
    """Paper Fig. 5: AUROC_l of target→label attention against the prediction, and R_l, per task (seed means
    with their intervals; R_l's interval comes only from the per-example rows, as it is one curve's value)."""
    summary = result.summary()
    frame = whole_layer_rows(result.frame)
    table = _with_intervals(result, frame, ["layer"], {"auroc": "auroc", "R": "R"})
    # R_l is computed from the seed-mean curve: every seed row holds the same value, so a std over seeds says
    # nothing. Only the per-example rows (each seed's curve, and R's linearisation over seeds) give it an interval.
    r_rows = table["metric"] == "R"
    table.loc[r_rows & (table["kind"] == "std"), ["low", "high"]] = np.nan
    table.loc[r_rows & (table["kind"] == "std"), ["kind", "hover"]] = [
        "none",
        "no interval (R_l of the seed-mean curve)",
    ]
    figure = make_subplots(rows=1, cols=2, subplot_titles=("AUROC_l", "R_l"))
    for task, model in summary[["task", "model"]].drop_duplicates().itertuples(index=False):
        part = summary[(summary["task"] == task) & (summary["model"] == model)].sort_values("layer")
        name = f"{task} ({model})"
        for column, (metric, values) in enumerate((("auroc", part["auroc_mean"]), ("R", part["R"])), start=1):
            spread = _rows(table, task=task, model=model, metric=metric).set_index("layer").reindex(part["layer"])
            label = "AUROC_l" if metric == "auroc" else "R_l"
            figure.add_trace(
                go.Scatter(
                    x=part["layer"],
                    y=values,
                    name=name,
                    legendgroup=name,
                    showlegend=column == 1,
                    **_error_bars(spread),
                    customdata=spread[["hover"]].fillna("").to_numpy(),
                    hovertemplate=f"{name}<br>layer %{{x}}<br>{label} = %{{y:.3f}}<br>%{{customdata[0]}}"
                    "<extra></extra>",
                ),
                row=1,
                col=column,
            )
    caption = f"AUROC_l {_caption([table[~r_rows]])}"
    if (table.loc[r_rows, "kind"] == "none").all() and (table.loc[~r_rows, "kind"] != "none").any():
        caption += "; R_l: no interval (one curve's value: only the bootstrap of per-example rows gives it one)"
    else:
        caption += f"; R_l {_caption([table[r_rows]])}"
    figure.add_hline(y=0.5, line_dash="dot", line_color="grey", row=1, col=1)
    figure.update_xaxes(title_text="layer")
    figure.update_yaxes(title_text="AUROC of target→label attention vs the prediction (0.5 = chance)", row=1, col=1)
    figure.update_yaxes(title_text="R_l: share of Σ (AUROC − 0.5) reached by layer l", row=1, col=2)
    figure.update_layout(
        title=_title("Target→label-word attention predicts the output in deep layers", caption),
        template="plotly_white",
        height=440,
        width=1000,
        margin={"t": 110},
    )
    return figure


def plot_diagnose(result: DiagnoseResult) -> go.Figure:
    """Paper Fig. 6: predicted confusion (label-key distances) beside true confusion (AUROC), one row per task;
    seed means, with the true confusion's 95% interval on hover where the result has per-example rows
    (the predicted one has none: `DiagnoseResult.summary_with_ci`)."""
    keys = result.frame[["task", "model"]].drop_duplicates().values.tolist()
    titles = [f"{kind}: {task} ({model})" for task, model in keys for kind in DIAGNOSE_PANELS]
    figure = make_subplots(
        rows=len(keys), cols=2, subplot_titles=titles, horizontal_spacing=0.18, vertical_spacing=0.3 / max(1, len(keys))
    )
    bootstrap = result.summary_with_ci() if not result.examples.empty else pd.DataFrame()
    n_seeds = result.frame["seed"].nunique() if "seed" in result.frame.columns else 1
    for row, (task, model) in enumerate(keys, start=1):
        for column, matrix in enumerate(result.matrices(task, model), start=1):
            names = [str(name) for name in matrix.index]
            hover = np.full(matrix.shape, "no interval (the key geometry is not resampled)", dtype=object)
            if column == 2:
                found = (
                    _rows(bootstrap, task=task, model=model, metric="true").set_index(["class_a", "class_b"])
                    if not bootstrap.empty
                    else pd.DataFrame()
                )
                for i, a in enumerate(names):
                    for j, b in enumerate(names):
                        if a == b:
                            hover[i, j] = "a class against itself (1 by definition)"
                        elif (a, b) in found.index and np.isfinite(found.loc[(a, b), "ci_low"]):
                            low, high = found.loc[(a, b), ["ci_low", "ci_high"]]
                            hover[i, j] = f"95% interval {low:.2f} to {high:.2f}"
                        else:
                            hover[i, j] = "no interval" + (" (one seed)" if n_seeds < 2 else "")
            figure.add_trace(
                go.Heatmap(
                    z=matrix.values,
                    x=names,
                    y=names,
                    zmin=0,
                    zmax=1,
                    colorscale=DIAGNOSE_COLORSCALE,
                    text=matrix.round(2).values,
                    texttemplate="%{text}",
                    showscale=row == 1 and column == 2,
                    colorbar={"title": {"text": "separation (1 = none confused)"}},
                    customdata=hover,
                    hovertemplate=f"{task} ({model}), {DIAGNOSE_PANELS[column - 1]}<br>class a %{{y}}, class b "
                    "%{x}<br>value %{z:.3f}<br>%{customdata}<extra></extra>",
                ),
                row=row,
                col=column,
            )
            figure.update_yaxes(title_text="class a", autorange="reversed", row=row, col=column)
            figure.update_xaxes(title_text="class b", row=row, col=column)
    if bootstrap.empty:
        caption = f"seed means; {NO_INTERVAL}" if n_seeds < 2 else "seed means; no per-example rows, so no interval"
    else:
        over = "the test inputs of one seed" if bootstrap["n_seeds"].max() <= 1 else "seeds"
        caption = f"seed means; hover gives the true confusion's 95% interval over {over}"
    figure.update_layout(
        title=_title("Error diagnosis: near 1 = well separated, small = confused", caption),
        template="plotly_white",
        height=400 * len(keys) + 60,
        width=950,
        margin={"t": 110},
    )
    return figure


def _in_paper_order(tasks) -> list[str]:
    return sorted(dict.fromkeys(tasks), key=task_rank)


def plot_reweight(result: ReweightResult) -> go.Figure:
    """Grouped bars: accuracy (%) per task and method, seed mean with its interval."""
    table = _with_intervals(result, result.frame, ["method"], {"accuracy": "correct"}, scale=100, digits=1)
    several_models = table["model"].nunique() > 1
    table["where"] = table["task"] + (" (" + table["model"] + ")" if several_models else "")
    in_paper_order = table.sort_values("task", key=lambda tasks: tasks.map(task_rank), kind="stable")
    places = list(dict.fromkeys(in_paper_order["where"]))
    figure = go.Figure()
    for method in [m for m in REWEIGHT_METHODS if m in set(table["method"])]:
        part = table[table["method"] == method].set_index("where").reindex(places)
        label = REWEIGHT_METHOD_LABELS[method]
        figure.add_trace(
            go.Bar(
                x=places,
                y=part["mean"].to_numpy(float),
                name=label,
                **_error_bars(part),
                customdata=part[["hover"]].fillna("").to_numpy(),
                hovertemplate=f"%{{x}}<br>{label}<br>accuracy %{{y:.1f}}%<br>%{{customdata[0]}}<extra></extra>",
            )
        )
    figure.update_xaxes(title_text="task")
    figure.update_yaxes(title_text="accuracy (% of test inputs)", range=[0, 105])
    figure.update_layout(
        title=_title("Anchor re-weighting vs vanilla ICL and contextual calibration", _caption([table])),
        barmode="group",
        template="plotly_white",
        height=460,
        width=max(640, 220 * len(places)),
        margin={"t": 110},
    )
    return figure


COMPRESS_EXAMPLE_METRICS = {"label_loyalty": "label_loyalty", "word_loyalty": "word_loyalty", "accuracy": "correct"}


def plot_compress(result: CompressResult) -> go.Figure:
    """Paper Table 2 as grouped bars per method: label loyalty, word loyalty and accuracy (%), the mean over
    tasks of each task's seed mean, one panel per model. Error bars: ±1 std over the per-task means where there
    are several tasks; with one task, that task's interval (`plot_compress_by_task` shows every task)."""
    frame = result.frame
    models = list(dict.fromkeys(frame["model"]))
    figure = make_subplots(rows=1, cols=len(models), subplot_titles=models, shared_yaxes=True)
    captions = []
    for column, model in enumerate(models, start=1):
        part = frame[frame["model"] == model]
        tasks = _in_paper_order(part["task"])
        if len(tasks) > 1:
            per_task = part.groupby(["task", "method"])[list(COMPRESS_METRICS)].mean().reset_index()
            stats = per_task.groupby("method")[list(COMPRESS_METRICS)].agg(["mean", "std"])
            table = pd.DataFrame(
                [
                    {
                        "method": method,
                        "metric": metric,
                        "mean": stats.loc[method, (metric, "mean")] * 100,
                        "low": (stats.loc[method, (metric, "mean")] - stats.loc[method, (metric, "std")]) * 100,
                        "high": (stats.loc[method, (metric, "mean")] + stats.loc[method, (metric, "std")]) * 100,
                    }
                    for method in stats.index
                    for metric in COMPRESS_METRICS
                ]
            )
            table["hover"] = [
                f"±1 std over {len(tasks)} tasks: {low:.1f} to {high:.1f}"
                for low, high in zip(table["low"], table["high"])
            ]
            captions.append(f"{model}: mean over {len(tasks)} tasks, error bars ±1 std over the tasks")
        else:
            table = _with_intervals(
                result, part, ["method"], COMPRESS_EXAMPLE_METRICS, scale=100, digits=1, intervals=True
            )
            captions.append(f"{model}: one task, {_caption([table])}")
        methods = [m for m in COMPRESS_METHODS if m in set(table["method"])]
        labels = [COMPRESS_METHOD_LABELS[m] for m in methods]
        for metric in COMPRESS_METRICS:
            rows = table[table["metric"] == metric].set_index("method").reindex(methods)
            name = metric.replace("_", " ")
            figure.add_trace(
                go.Bar(
                    x=labels,
                    y=rows["mean"].to_numpy(float),
                    **_error_bars(rows),
                    name=name,
                    marker_color=LOYALTY_COLORS[metric],
                    legendgroup=metric,
                    showlegend=column == 1,
                    customdata=rows[["hover"]].fillna("").to_numpy(),
                    hovertemplate=f"{model}, %{{x}}<br>{name} %{{y:.1f}}%<br>%{{customdata[0]}}<extra></extra>",
                ),
                row=1,
                col=column,
            )
        figure.update_xaxes(title_text="method (paper Table 2)", row=1, col=column)
    all_tasks = ", ".join(_in_paper_order(frame["task"]))
    figure.update_yaxes(title_text="% (loyalty vs full ICL; accuracy vs gold)", range=[0, 105], row=1, col=1)
    figure.update_layout(
        title=_title(f"Anchor-only context compression ({all_tasks})", "; ".join(captions)),
        barmode="group",
        template="plotly_white",
        height=460,
        width=max(640, 520 * len(models)),
        margin={"t": 110},
    )
    return figure


#: Symbols of the paper's Table 3 models in `plot_compress_by_task`.
PAPER_SPEEDUP_MARKERS = {"GPT2-XL": "diamond", "GPT-J": "star"}


def plot_compress_by_task(result: CompressResult) -> go.Figure:
    """Paper Tables 2-3 per task: accuracy (%) of every method per task (top row; seed means with their
    intervals), and the speed-up of Hidden_anchor per task (bottom row): ICL's query time per test input over
    Hidden_anchor's, as measured in this result (seed mean; ±1 std over seeds where there are several, as
    timings have no per-example rows), beside the paper's Table 3 numbers for GPT2-XL and GPT-J, drawn as
    markers and named as the paper's. One column per model."""
    frame = result.frame
    models = list(dict.fromkeys(frame["model"]))
    table = _with_intervals(result, frame, ["method"], {"accuracy": "correct"}, scale=100, digits=1)
    timed = frame[frame["method"] == "hidden_anchor"]
    has_timing = "speedup" in timed.columns and timed["speedup"].notna().any()
    speed = (
        _with_intervals(
            result, timed.dropna(subset=["speedup"]), ["method"], {"speedup": ""}, digits=2, intervals=False
        )
        if has_timing
        else pd.DataFrame(columns=["task", "model", "mean", "low", "high", "hover", "kind"])
    )
    figure = make_subplots(
        rows=2,
        cols=len(models),
        subplot_titles=[f"accuracy per task: {m}" for m in models] + [f"Hidden_anchor speed-up: {m}" for m in models],
        vertical_spacing=0.16,
    )
    for column, model in enumerate(models, start=1):
        tasks = _in_paper_order(frame.loc[frame["model"] == model, "task"])
        for method in [m for m in COMPRESS_METHODS if m in set(table["method"])]:
            part = _rows(table, model=model, method=method).set_index("task").reindex(tasks)
            label = COMPRESS_METHOD_LABELS[method]
            figure.add_trace(
                go.Bar(
                    x=tasks,
                    y=part["mean"].to_numpy(float),
                    **_error_bars(part),
                    name=label,
                    legendgroup=method,
                    showlegend=column == 1,
                    customdata=part[["hover"]].fillna("").to_numpy(),
                    hovertemplate=f"{model}, task %{{x}}<br>{label}: accuracy %{{y:.1f}}%<br>%{{customdata[0]}}"
                    "<extra></extra>",
                ),
                row=1,
                col=column,
            )
        measured = speed[speed["model"] == model].set_index("task").reindex(tasks)
        if has_timing:
            figure.add_trace(
                go.Bar(
                    x=tasks,
                    y=measured["mean"].to_numpy(float),
                    **_error_bars(measured),
                    name="Hidden_anchor speed-up, measured here",
                    marker_color="#9467bd",
                    legendgroup="measured speed-up",
                    showlegend=column == 1,
                    customdata=measured[["hover"]].fillna("").to_numpy(),
                    hovertemplate=f"{model}, task %{{x}}<br>measured speed-up %{{y:.2f}}×<br>%{{customdata[0]}}"
                    "<extra></extra>",
                ),
                row=2,
                col=column,
            )
        for paper_model, values in COMPRESS_SPEEDUP.items():
            shown = [task for task in tasks if task in values]
            if not shown:
                continue
            label = f"paper Table 3, {paper_model} (not measured here)"
            figure.add_trace(
                go.Scatter(
                    x=shown,
                    y=[values[task] for task in shown],
                    mode="markers",
                    marker={"symbol": PAPER_SPEEDUP_MARKERS.get(paper_model, "circle"), "size": 11, "color": "black"},
                    name=label,
                    legendgroup=label,
                    showlegend=column == 1,
                    hovertemplate=f"task %{{x}}<br>the paper's Hidden_anchor speed-up on {paper_model}: %{{y}}×"
                    "<br>(Wang et al. 2023, Table 3; not measured here)<extra></extra>",
                ),
                row=2,
                col=column,
            )
        figure.add_hline(y=1, line_dash="dot", line_color="grey", row=2, col=column)
        figure.update_yaxes(title_text="accuracy (% of test inputs)", range=[0, 105], row=1, col=column)
        figure.update_yaxes(title_text="speed-up (ICL seconds per input ÷ Hidden_anchor's)", row=2, col=column)
        figure.update_xaxes(title_text="task", row=1, col=column)
        figure.update_xaxes(title_text="task", row=2, col=column)
    timing_caption = (
        f"speed-up — {_caption([speed])}"
        if has_timing
        else "speed-up — no timings in this result: only the paper's numbers, marked as the paper's"
    )
    figure.update_layout(
        title=_title(
            "Anchor-only context compression per task: accuracy (Table 2) and Hidden_anchor speed-up (Table 3)",
            f"accuracy — {_caption([table])}; {timing_caption}",
        ),
        barmode="group",
        template="plotly_white",
        height=760,
        width=max(700, 620 * len(models)),
        margin={"t": 110},
    )
    return figure


def _ylgnbu(value: float) -> str:
    """Hex colour of a value in [0, 1] on plotly's own scale, so the SVG and the plotly figure colour alike."""
    from plotly.colors import sample_colorscale, unlabel_rgb

    rgb = unlabel_rgb(sample_colorscale(DIAGNOSE_COLORSCALE, [min(max(float(value), 0.0), 1.0)])[0])
    return "#" + "".join(f"{round(channel):02x}" for channel in rgb)


def diagnose_svg(result: DiagnoseResult, task: str, model: str | None = None, cell: int = 52) -> str:
    """Paper Fig. 6 as a static SVG: predicted beside true confusion of one task, seed means, values printed in
    the cells. It needs no browser (plotly's PNG export needs kaleido and Chrome), so it renders where HTML does
    not, e.g. in a README on GitHub."""
    from html import escape

    matrices = result.matrices(task, model)
    names = [str(name) for name in matrices[0].index]
    if matrices[0].isna().all().all():
        raise InvalidConfigError(
            f"no diagnosis rows for task {task!r}"
            + (f" and model {model!r}" if model else "")
            + "; pass a task and model the result holds"
        )
    margin, top, gap, size = 70, 84, 40, cell * len(names)
    heading = f"Fig. 6, {task}" + (f" ({model})" if model else "") + ": near 1 = well separated, small = confused"
    # about 7 px a character at 13 px: a two-class task still fits its heading
    width, height = max(2 * (margin + size) + gap, 7 * len(heading) + 20), top + size + 16
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="13">{escape(heading)}</text>',
    ]
    for panel, (kind, matrix) in enumerate(zip(DIAGNOSE_PANELS, matrices)):
        left = margin + panel * (margin + size + gap)
        parts.append(f'<text x="{left + size / 2}" y="{top - 30}" text-anchor="middle" font-size="12">{kind}</text>')
        for i, name in enumerate(names):
            parts.append(
                f'<text x="{left + (i + 0.5) * cell}" y="{top - 8}" text-anchor="middle">{escape(name)}</text>'
            )
            parts.append(
                f'<text x="{left - 6}" y="{top + (i + 0.5) * cell + 4}" text-anchor="end">{escape(name)}</text>'
            )
            for j in range(len(names)):
                value = float(matrix.iloc[i, j])
                x, y = left + j * cell, top + i * cell
                missing = value != value  # NaN: a class pair without inputs stays grey and blank, not coloured as 0
                fill = "#d9d9d9" if missing else _ylgnbu(value)
                label = "" if missing else f"{value:.2f}"
                ink = "white" if value > 0.6 else "black"  # dark cells get light text
                parts.append(
                    f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{fill}" stroke="white">'
                    f"<title>{escape(name)} / {escape(names[j])}: {label or 'no inputs'}</title></rect>"
                )
                parts.append(
                    f'<text x="{x + cell / 2}" y="{y + cell / 2 + 4}" text-anchor="middle" fill="{ink}">{label}</text>'
                )
    parts.append("</svg>")
    return "\n".join(parts)


#: The formats `save_figure` writes: HTML (interactive, the default) and the static ones kaleido renders.
FIGURE_FORMATS = ("html", "png", "svg", "pdf")
STATIC_FORMATS = ("png", "svg", "pdf")
#: The one copy of plotly.js beside the figures of a results folder (`save_figure(..., plotlyjs="beside")`).
PLOTLY_JS = "plotly.min.js"


def static_export_problem(format: str) -> str | None:
    """Why figures cannot be written as `format` here (one line saying how to fix it), or None if they can."""
    import importlib.util

    if format not in FIGURE_FORMATS:
        return f"unknown figure format {format!r}; use one of {', '.join(FIGURE_FORMATS)}"
    if format in STATIC_FORMATS and importlib.util.find_spec("kaleido") is None:
        return (
            f"writing {format} figures needs plotly's static exporter kaleido, which is not installed: "
            "pip install -U kaleido, then run plotly_get_chrome once (kaleido renders with Chrome); the HTML "
            "figures need neither"
        )
    return None


def _write_plotly_js(folder) -> None:
    """plotly.js as `PLOTLY_JS` in `folder`, written only when missing or of another plotly version."""
    from plotly.offline import get_plotlyjs

    from anchorlens.files import atomic_write_text

    path = Path(folder) / PLOTLY_JS
    bundle = get_plotlyjs()
    if path.is_file() and not path.is_symlink() and path.read_text(encoding="utf-8", errors="replace") == bundle:
        return
    atomic_write_text(path, bundle)


def save_figure(
    figure: go.Figure, path_without_suffix: str | Path, *, format: str = "html", plotlyjs: str = "inline"
) -> list[str]:
    """Write `figure` atomically as ``<path>.<format>`` and return the paths written.

    Args:
        figure: a plotly figure (any ``plot_*`` of `anchorlens.plots`).
        path_without_suffix: the file's path; the suffix is the format's.
        format: ``"html"`` (interactive, the default) or ``"png"``, ``"svg"``, ``"pdf"`` (static, rendered by
            kaleido; without it, a one-line `InvalidConfigError` says how to install it).
        plotlyjs: for HTML, ``"inline"`` (one self-contained file, plotly.js inside, about 5 MB) or
            ``"beside"`` (the file references ``plotly.min.js`` in its folder, written once there: what a
            results folder holds, so its figures share one copy and still open offline).
    """
    from anchorlens.files import atomic_write_bytes, atomic_write_text

    problem = static_export_problem(format)
    if problem is not None:
        raise InvalidConfigError(problem)
    if plotlyjs not in ("inline", "beside"):
        raise InvalidConfigError(f"unknown plotlyjs {plotlyjs!r}; use 'inline' (self-contained) or 'beside'")
    base = Path(path_without_suffix)
    path = base.with_suffix(f".{format}")
    if format == "html":
        if plotlyjs == "beside":
            _write_plotly_js(base.parent)
        include = True if plotlyjs == "inline" else PLOTLY_JS
        # plotly names the figure's div with a random id unless given one: a fixed id keeps a rerun's file
        # byte-identical, so a results folder under git changes only where a number does
        div_id = "anchorlens-" + re.sub(r"[^A-Za-z0-9_-]", "-", base.name)
        atomic_write_text(path, figure.to_html(include_plotlyjs=include, full_html=True, div_id=div_id))
        return [str(path)]
    try:
        image = figure.to_image(format=format, scale=2 if format == "png" else 1)
    except Exception as error:  # kaleido present but unable to render (most often: no Chrome)
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InvalidConfigError(
            f"kaleido could not write {path} ({first}); run plotly_get_chrome once, or pip install -U kaleido"
        ) from None
    atomic_write_bytes(path, image)
    return [str(path)]


# ---------------------------------------------------------------------------------------- one prompt's flow

FLOW_LINK_NAMES = {"S_wp": "into label words (S_wp)", "S_pq": "label words → target (S_pq)", "S_ww": "other (S_ww)"}
ROLE_COLORS = {
    "text": "#7f7f7f",
    "query text": "#17becf",
    "formatting": "#bcbd22",
    "label word": "#ff7f0e",
    "target": "#9467bd",
}
#: Links of a view are drawn in this many width classes (one trace each): a trace has one line width.
FLOW_WIDTH_CLASSES = 5
_ARC_POINTS = 17


def _flow_token_text(token: str) -> str:
    """A token as a tick label: newlines visible, HTML escaped (plotly renders tick text as HTML)."""
    from html import escape

    return escape(token.replace("\n", "↵")) or "∅"


def _flow_arcs(sources, targets) -> tuple:
    """x and y of half-ellipse arcs from each source position up and over to its target, NaN between arcs (a
    break in the line; NumPy arrays keep plotly's validation fast)."""
    import numpy as np

    t = np.append(np.linspace(0.0, 1.0, _ARC_POINTS), np.nan)  # the NaN ends each arc
    span = (np.asarray(targets) - np.asarray(sources)).astype(float)[:, None]
    xs = np.asarray(sources, dtype=float)[:, None] + span * t
    ys = span / 2 * np.sin(np.pi * t)
    return xs.reshape(-1), ys.reshape(-1)


def plot_flow(
    model_or_flow: Model | PromptFlow,
    prompt: Prompt | None = None,
    *,
    layers: Mapping[str, Iterable[int]] | Iterable[int | Iterable[int]] | int | None = None,
    top_links: int = 30,
) -> go.Figure:
    """One prompt's information flow (paper Fig. 1/2 from the model): tokens along the axis, saliency as links.

    ``plot_flow(model, prompt)`` computes `anchorlens.flow.prompt_flow` (one forward and one backward pass);
    ``plot_flow(flow)`` draws a `PromptFlow` already computed. Each link is an arc from an earlier token (key)
    to a later one (query) whose width and opacity grow with I_l there, averaged over the selected layers;
    blue: text and formatting into each label word (the entries S_wp averages), red: each label word into the
    target (S_pq), green: the strongest other entries (S_ww). Per view and kind at most `top_links` links, the
    strongest; widths are relative to the view's strongest link (hover gives each value), and the legend gives
    each kind's mean over its whole set (S_wp, S_pq, S_ww averaged over the view's layers).

    `layers` chooses the selectable layer ranges (a dropdown; see `anchorlens.flow.layer_views`): None gives the
    shallow, middle and deep thirds, then every layer alone; or a list of layers and ranges
    (``[range(0, 10), 25]``), or a mapping name → layers. The first range is shown first. Hover on a token
    gives its position, string and role (from the prompt's tracked positions), on a link's apex its value.

    Args:
        model_or_flow: a loaded model (with `prompt`), or a `PromptFlow` already computed.
        prompt: the prompt to draw, with a gold label (only with a model).
        layers: the selectable layer ranges (above); None for the shallow, middle and deep thirds, then every
            layer alone.
        top_links: the most links drawn per view and kind, the strongest.

    Returns:
        A plotly figure (`anchorlens.plots.save_figure` writes it as self-contained HTML).

    Examples:
        >>> import anchorlens as al
        >>> model = al.random_model()
        >>> figure = al.plot_flow(model, al.task_prompts(model, "sst2", 42, n_test=1)[1][0])
        >>> type(figure).__name__
        'Figure'
    """
    import numpy as np

    if isinstance(model_or_flow, PromptFlow):
        if prompt is not None:
            raise InvalidConfigError(
                "plot_flow got a PromptFlow and a prompt; pass either plot_flow(model, prompt) or plot_flow(flow)"
            )
        flow = model_or_flow
    else:
        if prompt is None:
            raise InvalidConfigError(
                "plot_flow needs the prompt to draw: plot_flow(model, prompt), or plot_flow(flow) with a PromptFlow"
            )
        flow = prompt_flow(model_or_flow, prompt)
    if isinstance(top_links, bool) or not isinstance(top_links, (int, np.integer)) or top_links < 1:
        raise InvalidConfigError(f"top_links must be a whole number of at least 1, got {top_links!r}; e.g. 30")
    views = layer_views(flow.n_layers, layers)
    masks = region_masks(flow.prompt).numpy()
    seq = flow.prompt.length
    texts = [_flow_token_text(token) for token in flow.tokens]
    gold, predicted = flow.label_words[flow.gold], flow.label_words[flow.prediction]

    def describe(position: int) -> str:
        return f"{position} “{texts[position]}” ({flow.roles[position]})"

    # Plain dicts validated once by go.Figure: go.Scatter and add_trace would validate each twice.
    traces: list[dict[str, object]] = []
    for role, color in ROLE_COLORS.items():
        positions = [position for position, name in enumerate(flow.roles) if name == role]
        if not positions:
            continue
        hover = [f"token {describe(position)}" for position in positions]
        if role == "target":
            hover = [
                f"{text}<br>gold “{_flow_token_text(gold)}”, predicted “{_flow_token_text(predicted)}”"
                for text in hover
            ]
        traces.append(
            dict(
                type="scatter",
                x=positions,
                y=[0] * len(positions),
                mode="markers",
                marker={"symbol": "square", "size": 9, "color": color},
                name=role,
                legendgroup="roles",
                legendgrouptitle={"text": "token role"},
                hovertext=hover,
                hoverinfo="text",
                meta="tokens",
            )
        )
    n_token_traces = len(traces)

    view_of_trace: list[str] = []
    highest = 1.0
    for view_index, (view, view_layers) in enumerate(views.items()):
        mean = flow.mean_over(view_layers).numpy()
        region_means = {region: float(getattr(flow, region)[list(view_layers)].mean()) for region in FLOW_LINK_NAMES}
        chosen = {}
        for region, mask in zip(FLOW_LINK_NAMES, masks):
            targets, sources = np.nonzero(mask)
            values = mean[targets, sources]
            order = np.argsort(-values, kind="stable")[:top_links]
            order = order[values[order] > 0]  # a zero entry is no flow
            chosen[region] = (sources[order], targets[order], values[order])
        strongest = max((values.max() for _, _, values in chosen.values() if len(values)), default=0.0)
        for region, (sources, targets, values) in chosen.items():
            if not len(values):
                continue
            color = COLORS[region]
            width_class = np.minimum((values / strongest * FLOW_WIDTH_CLASSES).astype(int), FLOW_WIDTH_CLASSES - 1)
            for level in range(FLOW_WIDTH_CLASSES):
                members = np.flatnonzero(width_class == level)
                if not len(members):
                    continue
                xs, ys = _flow_arcs(sources[members], targets[members])
                share = (level + 1) / FLOW_WIDTH_CLASSES
                traces.append(
                    dict(
                        type="scatter",
                        x=xs,
                        y=ys,
                        mode="lines",
                        line={"color": color, "width": 0.5 + 7.5 * share},
                        opacity=(0.25 + 0.65 * share) * (0.5 if region == "S_ww" else 1.0),  # the rest recedes
                        hoverinfo="skip",
                        legendgroup=region,
                        showlegend=False,
                        visible=view_index == 0,
                        meta=view,
                    )
                )
                view_of_trace.append(view)
            highest = max(highest, float((targets - sources).max()) / 2)
            traces.append(
                dict(
                    type="scatter",
                    x=(sources + targets) / 2,
                    y=(targets - sources) / 2,
                    mode="markers",
                    marker={"color": color, "size": 6},
                    name=f"{FLOW_LINK_NAMES[region]}, mean {region_means[region]:.3g}",
                    legendgroup=region,
                    hovertext=[
                        f"{view}, {FLOW_LINK_NAMES[region]}<br>from {describe(int(source))}<br>"
                        f"to {describe(int(target))}<br>I = {value:.3g}"
                        for source, target, value in zip(sources, targets, values)
                    ],
                    hoverinfo="text",
                    visible=view_index == 0,
                    meta=view,
                )
            )
            view_of_trace.append(view)

    buttons = [
        {
            "label": view,
            "method": "update",
            "args": [{"visible": [True] * n_token_traces + [owner == view for owner in view_of_trace]}],
        }
        for view in views
    ]
    figure = go.Figure(data=traces)
    figure.update_layout(
        title=(
            f"Information flow of one {flow.prompt.task_name} prompt: I_l = |Σ_h A ⊙ ∂L/∂A|, mean over the chosen "
            f"layers (gold “{_flow_token_text(gold)}”, predicted “{_flow_token_text(predicted)}”)"
        ),
        template="plotly_white",
        height=560,
        width=max(900, 16 * seq),
        updatemenus=[
            {
                "buttons": buttons,
                "active": 0,
                "direction": "down",
                "x": 0.0,
                "xanchor": "left",
                "y": 1.12,
                "yanchor": "top",
            }
        ],
        hovermode="closest",
        legend={"tracegroupgap": 12},
    )
    figure.update_xaxes(
        title_text="token (position in the prompt); each link runs from an earlier token to a later one",
        tickvals=list(range(seq)),
        ticktext=texts,
        tickangle=-90,
        tickfont={"size": 9},
        range=[-1, seq],
        showgrid=False,
    )
    figure.update_yaxes(
        title_text="link span (tokens ÷ 2); width ∝ saliency",
        range=[-0.5, highest * 1.08 + 0.5],
        zeroline=False,
        showgrid=False,
    )
    return figure


# ------------------------------------------------------------------------------------------- head-level anchors

#: The heatmaps of `plot_heads`: (column of the head table, panel title, colour scale).
HEAD_PANELS = (
    ("S_wp", f"{FLOW_NAMES['wp']} per head", "Blues"),
    ("S_pq", f"{FLOW_NAMES['pq']} per head", "Reds"),
    ("auroc", "AUROC of target→label attention per head", "RdBu_r"),
)


def plot_heads(result: HeadsResult) -> go.Figure:
    """Layer × head heatmaps of the head table (seed means): S_wp, S_pq (raw mean saliency of each head, its
    own colour scale) and the AUROC of each head's target→label attention against the prediction (0.5 =
    chance, white). One row of panels per task and model; hover shows layer, head, value and the head's rank."""
    columns = [column for column, _, _ in HEAD_PANELS]
    means = result.frame.groupby(["task", "model", "layer", "head"], as_index=False)[columns].mean()
    keys = means[["task", "model"]].drop_duplicates().values.tolist()
    titles = [f"{title}: {task} ({model})" for task, model in keys for _, title, _ in HEAD_PANELS]
    figure = make_subplots(
        rows=max(1, len(keys)),
        cols=len(HEAD_PANELS),
        subplot_titles=titles,
        horizontal_spacing=0.1,
        vertical_spacing=0.25 / max(1, len(keys)),
    )
    for row, (task, model) in enumerate(keys, start=1):
        part = means[(means["task"] == task) & (means["model"] == model)]
        for column, (name, _, colorscale) in enumerate(HEAD_PANELS, start=1):
            grid = part.pivot(index="layer", columns="head", values=name).sort_index()
            rank = grid.stack().rank(ascending=False, method="min").unstack().reindex_like(grid)
            limits = {"zmin": 0, "zmax": 1, "zmid": 0.5} if name == "auroc" else {"zmin": 0}
            domain = figure.get_subplot(row, column).xaxis.domain
            figure.add_trace(
                go.Heatmap(
                    z=grid.to_numpy(),
                    x=[int(head) for head in grid.columns],
                    y=[int(layer) for layer in grid.index],
                    customdata=rank.to_numpy(),
                    colorscale=colorscale,
                    **limits,
                    colorbar={
                        "title": {"text": "AUROC" if name == "auroc" else f"{name}: mean |A ⊙ ∂L/∂A|"},
                        "x": domain[1] + 0.01,
                        "len": 0.9 / max(1, len(keys)),
                        "y": 1 - (row - 0.5) / max(1, len(keys)),
                        "thickness": 12,
                    },
                    hovertemplate=f"layer %{{y}}, head %{{x}}<br>{name} = %{{z:.4g}}<br>rank %{{customdata:.0f}} of "
                    f"{grid.size}<extra>{task} ({model})</extra>",
                ),
                row=row,
                col=column,
            )
            figure.update_xaxes(title_text="head", dtick=1, row=row, col=column)
            figure.update_yaxes(title_text="layer", row=row, col=column)
    figure.update_layout(
        title=_title(
            "Head-level anchors: which heads carry text→label and label→target flow, and whose attention "
            "predicts the output",
            "seed means per head, no interval drawn; the causal check's intervals are in "
            "HeadsResult.summary_with_ci() and causal_check()",
        ),
        template="plotly_white",
        height=max(460, 400 * len(keys) + 60),
        width=1250,
        margin={"t": 110},
    )
    return figure
