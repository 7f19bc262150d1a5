"""Figures from results: each function takes a result and returns a plotly figure (nothing is computed here
that the result does not hold, beyond seed means)."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from anchorlens.errors import InvalidConfigError
from anchorlens.experiments.auroc import AurocResult
from anchorlens.experiments.common import whole_layer_rows
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
from anchorlens.paper import COMPRESS_METHOD_LABELS, REWEIGHT_METHOD_LABELS, task_rank

__all__ = [
    "diagnose_svg",
    "plot_auroc",
    "plot_compress",
    "plot_diagnose",
    "plot_flow",
    "plot_heads",
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
    frame = whole_layer_rows(result.frame)  # a per_head result also holds one row per head
    summary = frame.groupby(["task", "model", "layer"])[list(REGIONS)].agg(["mean", "std"]).reset_index()
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
    model_or_flow,
    prompt=None,
    *,
    layers=None,
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
                        "title": {"text": "AUROC" if name == "auroc" else f"mean {name}"},
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
        title="Head-level anchors: which heads carry text→label and label→target flow, and whose attention "
        "predicts the output",
        template="plotly_white",
        height=max(420, 400 * len(keys)),
        width=1250,
    )
    return figure
