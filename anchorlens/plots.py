"""Figures from results: each function takes a result and returns a plotly figure (nothing is computed here
that the result does not hold, beyond seed means)."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from anchorlens.experiments.auroc import AurocResult
from anchorlens.experiments.compress import METHODS as COMPRESS_METHODS
from anchorlens.experiments.compress import METRICS as COMPRESS_METRICS
from anchorlens.experiments.compress import CompressResult
from anchorlens.experiments.diagnose import DiagnoseResult
from anchorlens.experiments.isolation import CONDITIONS, IsolationResult
from anchorlens.experiments.reweight import METHODS as REWEIGHT_METHODS
from anchorlens.experiments.reweight import ReweightResult
from anchorlens.experiments.saliency import REGIONS, SaliencyResult
from anchorlens.paper import COMPRESS_METHOD_LABELS, REWEIGHT_METHOD_LABELS, task_rank

__all__ = [
    "diagnose_svg",
    "plot_auroc",
    "plot_compress",
    "plot_diagnose",
    "plot_isolation",
    "plot_reweight",
    "plot_saliency",
    "save_figure",
]

COLORS = {"S_wp": "#1f77b4", "S_pq": "#d62728", "S_ww": "#2ca02c"}
# Fig. 6 in both forms, the plotly figure and the static SVG
DIAGNOSE_COLORSCALE = "YlGnBu"
DIAGNOSE_PANELS = ("predicted (label-key distance)", "true (AUROC)")


def _titles(frame) -> list[str]:
    return [f"{task} ({model})" for task, model in frame[["task", "model"]].drop_duplicates().itertuples(index=False)]


def plot_saliency(result: SaliencyResult) -> go.Figure:
    """Paper Fig. 3: normalised S_wp, S_pq, S_ww per layer (seed mean, ±1 std band), one panel per task."""
    summary = result.frame.groupby(["task", "model", "layer"])[list(REGIONS)].agg(["mean", "std"]).reset_index()
    keys = summary[["task", "model"]].drop_duplicates().values.tolist()
    figure = make_subplots(rows=1, cols=len(keys), subplot_titles=_titles(summary), shared_yaxes=True)
    for column, (task, model) in enumerate(keys, start=1):
        part = summary[(summary["task"] == task) & (summary["model"] == model)]
        for region in REGIONS:
            mean, std = part[(region, "mean")], part[(region, "std")].fillna(0)
            layers = part["layer"]
            figure.add_trace(
                go.Scatter(
                    x=layers,
                    y=mean,
                    name=region,
                    line={"color": COLORS[region]},
                    legendgroup=region,
                    showlegend=column == 1,
                ),
                row=1,
                col=column,
            )
            figure.add_trace(
                go.Scatter(
                    x=list(layers) + list(layers[::-1]),
                    y=list(mean + std) + list((mean - std)[::-1]),
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
    figure.update_yaxes(title_text="share of saliency (normalised per layer)", row=1, col=1)
    figure.update_layout(
        title="Saliency information flow: text→label (S_wp), label→target (S_pq), other (S_ww)",
        template="plotly_white",
        height=380,
        width=max(500, 330 * len(keys)),
    )
    return figure


def plot_isolation(result: IsolationResult, k: int | None = None) -> go.Figure:
    """Paper Fig. 4: label and word loyalty per condition (seed mean ± std), one panel per task, for one k."""
    frame = result.frame
    k = k if k is not None else (5 if 5 in set(frame["k"]) else int(frame["k"].iloc[0]))
    frame = frame[frame["k"] == k]
    summary = (
        frame.groupby(["task", "model", "condition"])[["label_loyalty", "word_loyalty"]]
        .agg(["mean", "std"])
        .reset_index()
    )
    keys = summary[["task", "model"]].drop_duplicates().values.tolist()
    figure = make_subplots(rows=1, cols=len(keys), subplot_titles=_titles(summary), shared_yaxes=True)
    for column, (task, model) in enumerate(keys, start=1):
        part = (
            summary[(summary["task"] == task) & (summary["model"] == model)].set_index("condition").reindex(CONDITIONS)
        )
        for metric, color in (("label_loyalty", "#1f77b4"), ("word_loyalty", "#ff7f0e")):
            figure.add_trace(
                go.Bar(
                    x=list(CONDITIONS),
                    y=part[(metric, "mean")] * 100,
                    error_y={"type": "data", "array": part[(metric, "std")].fillna(0) * 100},
                    name=metric.replace("_", " "),
                    marker_color=color,
                    legendgroup=metric,
                    showlegend=column == 1,
                ),
                row=1,
                col=column,
            )
    figure.update_yaxes(title_text="loyalty (%)", range=[0, 105], row=1, col=1)
    figure.update_layout(
        title=f"Isolating label words vs random words in the first / last {k} layers",
        barmode="group",
        template="plotly_white",
        height=400,
        width=max(500, 360 * len(keys)),
    )
    return figure


def plot_auroc(result: AurocResult) -> go.Figure:
    """Paper Fig. 5: AUROC_l of target→label attention against the prediction, and R_l, per task."""
    summary = result.summary()
    figure = make_subplots(rows=1, cols=2, subplot_titles=("AUROC_l", "R_l"))
    for task, model in summary[["task", "model"]].drop_duplicates().itertuples(index=False):
        part = summary[(summary["task"] == task) & (summary["model"] == model)]
        name = f"{task} ({model})"
        figure.add_trace(
            go.Scatter(
                x=part["layer"],
                y=part["auroc_mean"],
                name=name,
                legendgroup=name,
                error_y={"type": "data", "array": part["auroc_std"].fillna(0), "thickness": 0.8},
            ),
            row=1,
            col=1,
        )
        figure.add_trace(
            go.Scatter(x=part["layer"], y=part["R"], name=name, legendgroup=name, showlegend=False), row=1, col=2
        )
    figure.add_hline(y=0.5, line_dash="dot", line_color="grey", row=1, col=1)
    figure.update_xaxes(title_text="layer")
    figure.update_layout(
        title="Target→label-word attention predicts the output in deep layers",
        template="plotly_white",
        height=400,
        width=1000,
    )
    return figure


def plot_diagnose(result: DiagnoseResult) -> go.Figure:
    """Paper Fig. 6: predicted confusion (label-key distances) beside true confusion (AUROC), one row per task."""
    keys = result.frame[["task", "model"]].drop_duplicates().values.tolist()
    titles = [f"{kind}: {task} ({model})" for task, model in keys for kind in DIAGNOSE_PANELS]
    figure = make_subplots(
        rows=len(keys), cols=2, subplot_titles=titles, horizontal_spacing=0.18, vertical_spacing=0.3 / max(1, len(keys))
    )
    for row, (task, model) in enumerate(keys, start=1):
        for column, matrix in enumerate(result.matrices(task, model), start=1):
            figure.add_trace(
                go.Heatmap(
                    z=matrix.values,
                    x=list(matrix.columns),
                    y=list(matrix.index),
                    zmin=0,
                    zmax=1,
                    colorscale=DIAGNOSE_COLORSCALE,
                    text=matrix.round(2).values,
                    texttemplate="%{text}",
                    showscale=row == 1 and column == 2,
                ),
                row=row,
                col=column,
            )
            figure.update_yaxes(autorange="reversed", row=row, col=column)
    figure.update_layout(
        title="Error diagnosis: near 1 = well separated, small = confused",
        template="plotly_white",
        height=380 * len(keys),
        width=950,
    )
    return figure


def plot_reweight(result: ReweightResult) -> go.Figure:
    """Grouped bars: accuracy (%) per task and method, seed mean ± std."""
    summary = result.summary()
    several_models = summary["model"].nunique() > 1
    summary["where"] = summary["task"] + (" (" + summary["model"] + ")" if several_models else "")
    in_paper_order = summary.sort_values("task", key=lambda tasks: tasks.map(task_rank), kind="stable")
    places = list(dict.fromkeys(in_paper_order["where"]))
    figure = go.Figure()
    for method in [m for m in REWEIGHT_METHODS if m in set(summary["method"])]:
        part = summary[summary["method"] == method].set_index("where").reindex(places)
        figure.add_trace(
            go.Bar(
                x=places,
                y=part["accuracy_mean"] * 100,
                name=REWEIGHT_METHOD_LABELS[method],
                error_y={"type": "data", "array": part["accuracy_std"].fillna(0) * 100},
            )
        )
    figure.update_yaxes(title_text="accuracy (%)", range=[0, 105])
    figure.update_layout(
        title="Anchor re-weighting vs vanilla ICL and contextual calibration",
        barmode="group",
        template="plotly_white",
        height=420,
        width=max(600, 220 * len(places)),
    )
    return figure


def plot_compress(result: CompressResult) -> go.Figure:
    """Grouped bars per method: label loyalty, word loyalty and accuracy (%), averaged over seeds and tasks,
    one panel per model (error bars: std over the per-task means when several tasks, else over seeds)."""
    frame = result.frame
    models = list(dict.fromkeys(frame["model"]))
    figure = make_subplots(rows=1, cols=len(models), subplot_titles=models, shared_yaxes=True)
    colors = {"label_loyalty": "#1f77b4", "word_loyalty": "#ff7f0e", "accuracy": "#2ca02c"}
    for column, model in enumerate(models, start=1):
        part = frame[frame["model"] == model]
        spread_over = "task" if part["task"].nunique() > 1 else "seed"
        per_unit = part.groupby([spread_over, "method"])[list(COMPRESS_METRICS)].mean().reset_index()
        stats = per_unit.groupby("method")[list(COMPRESS_METRICS)].agg(["mean", "std"])
        methods = [m for m in COMPRESS_METHODS if m in stats.index]
        for metric in COMPRESS_METRICS:
            figure.add_trace(
                go.Bar(
                    x=[COMPRESS_METHOD_LABELS[m] for m in methods],
                    y=stats.loc[methods, (metric, "mean")] * 100,
                    error_y={"type": "data", "array": stats.loc[methods, (metric, "std")].fillna(0) * 100},
                    name=metric.replace("_", " "),
                    marker_color=colors[metric],
                    legendgroup=metric,
                    showlegend=column == 1,
                ),
                row=1,
                col=column,
            )
    tasks = ", ".join(dict.fromkeys(frame["task"]))
    figure.update_yaxes(title_text="% (vs full ICL; accuracy vs gold)", range=[0, 105], row=1, col=1)
    figure.update_layout(
        title=f"Anchor-only context compression ({tasks})",
        barmode="group",
        template="plotly_white",
        height=420,
        width=max(600, 520 * len(models)),
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
        raise ValueError(
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


def save_figure(figure: go.Figure, path_without_suffix) -> list[str]:
    """Write ``.html`` (always; self-contained, plotly.js inlined so it opens offline) and ``.png`` (when
    kaleido can render), each atomically; returns the written paths."""
    from pathlib import Path

    from anchorlens.files import atomic_write_bytes, atomic_write_text

    base = Path(path_without_suffix)
    written = [str(base.with_suffix(".html"))]
    atomic_write_text(written[0], figure.to_html(include_plotlyjs=True, full_html=True))
    try:
        image = figure.to_image(format="png", scale=2)
    except Exception:  # kaleido missing or without a browser: the HTML is still there
        return written
    atomic_write_bytes(base.with_suffix(".png"), image)
    written.append(str(base.with_suffix(".png")))
    return written
