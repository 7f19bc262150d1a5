"""Figures build from results and show what the results hold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from anchorlens.errors import InvalidConfigError
from anchorlens.experiments import (
    AurocResult,
    CompressResult,
    DiagnoseResult,
    IsolationResult,
    ReweightResult,
    SaliencyResult,
)
from anchorlens.experiments.isolation import CONDITIONS
from anchorlens.paper import COMPRESS_SPEEDUP
from anchorlens.plots import (
    NO_INTERVAL,
    _ylgnbu,
    diagnose_svg,
    plot_auroc,
    plot_compress,
    plot_compress_by_task,
    plot_diagnose,
    plot_isolation,
    plot_isolation_by_k,
    plot_reweight,
    plot_saliency,
    save_figure,
)


def _layers(extra: dict, seeds=(1, 2), layers=4) -> pd.DataFrame:
    rows = [
        {"task": "sst2", "model": "m", "seed": seed, "layer": layer, **{k: f(seed, layer) for k, f in extra.items()}}
        for seed in seeds
        for layer in range(layers)
    ]
    return pd.DataFrame(rows)


def test_saliency_figure_has_three_curves_per_task(tmp_path):
    frame = _layers({"S_wp": lambda seed, layer: 0.5, "S_pq": lambda seed, layer: 0.3, "S_ww": lambda seed, layer: 0.2})
    figure = plot_saliency(SaliencyResult.from_frame(frame))
    lines = [trace for trace in figure.data if trace.showlegend]
    assert [trace.name for trace in lines] == ["S_wp", "S_pq", "S_ww"]
    assert np.allclose(lines[0].y, 0.5)
    assert save_figure(figure, tmp_path / "saliency")[0].endswith("saliency.html")


def test_isolation_figure_has_both_loyalties_per_condition():
    frame = pd.DataFrame(
        [
            {
                "task": "sst2",
                "model": "m",
                "seed": 1,
                "k": 5,
                "condition": c,
                "label_loyalty": 0.5,
                "word_loyalty": 0.25,
                "n": 3,
            }
            for c in CONDITIONS
        ]
    )
    figure = plot_isolation(IsolationResult.from_frame(frame))
    assert [trace.name for trace in figure.data] == ["label loyalty", "word loyalty"]
    assert list(figure.data[0].x) == list(CONDITIONS) and np.allclose(figure.data[1].y, 25)


def test_auroc_figure_plots_auroc_and_r():
    frame = _layers({"auroc": lambda seed, layer: 0.5 + 0.1 * layer})
    result = AurocResult.from_frame(frame)
    figure = plot_auroc(result)
    assert np.allclose(figure.data[0].y, [0.5, 0.6, 0.7, 0.8]) and np.isclose(figure.data[1].y[-1], 1.0)


def _diagnosis(task="trec", seeds=(1, 2)) -> DiagnoseResult:
    from anchorlens.tasks import get_task

    names = list(get_task(task).class_names)
    rows = [
        {
            "task": task,
            "model": "m",
            "seed": seed,
            "layer": 2,
            "class_a": a,
            "class_b": b,
            "predicted": 1.0 if a == b else 0.1 * (i + j) / len(names) + 0.05 * seed,
            "true": 1.0 if a == b else 0.5,
            "n": 10,
        }
        for seed in seeds
        for i, a in enumerate(names)
        for j, b in enumerate(names)
    ]
    return DiagnoseResult.from_frame(pd.DataFrame(rows))


def test_diagnose_svg_draws_both_seed_mean_matrices():
    from xml.etree import ElementTree

    result = _diagnosis()
    names = list(result.matrices("trec")[0].index)
    svg = ElementTree.fromstring(diagnose_svg(result, "trec", "m"))
    cells = [rect for rect in svg.iter("{http://www.w3.org/2000/svg}rect") if rect.find("{*}title") is not None]
    assert len(cells) == 2 * len(names) ** 2
    titles = [rect.find("{*}title").text for rect in cells]
    # seed mean of predicted for (ABBR, ENTY): 0.1 * 1 / 6 + 0.05 * 1.5
    assert titles[1] == f"{names[0]} / {names[1]}: {0.1 / 6 + 0.075:.2f}"
    assert titles[len(names) ** 2 + 1] == f"{names[0]} / {names[1]}: 0.50"
    fills = {rect.find("{*}title").text.split(": ")[1]: rect.get("fill") for rect in cells}
    assert fills["1.00"] != fills["0.50"]  # the colour follows the value


def test_diagnose_svg_colour_scale_ends_and_bad_task():
    assert _ylgnbu(0.0) == "#ffffd9" and _ylgnbu(1.0) == "#081d58" and _ylgnbu(2.0) == _ylgnbu(1.0)
    with pytest.raises(ValueError, match="no diagnosis rows for task 'trec'"):
        diagnose_svg(_diagnosis("sst2"), "trec")


# ------------------------------------------------------------------------ intervals, axes, hover, HTML (issue 14.5)


def _isolation_examples(seeds=(1,), ks=(1, 3, 5, 7), tasks=("sst2",), n=8) -> pd.DataFrame:
    """Per-example isolation rows whose loyalty falls with k for label words in the first k layers."""
    rng = np.random.default_rng(0)
    rows = []
    for task in tasks:
        for seed in seeds:
            for k in ks:
                for condition in CONDITIONS:
                    drop = 0.1 * k if condition == "label_first" else 0.02
                    for example in range(n):
                        rows.append(
                            {
                                "task": task,
                                "model": "m",
                                "seed": seed,
                                "example": example,
                                "k": k,
                                "condition": condition,
                                "label_loyalty": float(rng.random() > drop),
                                "word_loyalty": float(np.clip(1 - drop + rng.normal(0, 0.1), 0, 1)),
                            }
                        )
    return pd.DataFrame(rows)


def _isolation_result(seeds=(1,), ks=(1, 3, 5, 7), with_examples=True, tasks=("sst2",)) -> IsolationResult:
    examples = _isolation_examples(seeds, ks, tasks)
    rows = (
        examples.groupby(["task", "model", "seed", "k", "condition"], as_index=False)[["label_loyalty", "word_loyalty"]]
        .mean()
        .assign(n=8)
    )
    return IsolationResult.from_frame(rows, examples=examples if with_examples else None)


def _compress_result(seeds=(1,), tasks=("sst2", "trec"), timed=True, with_examples=False) -> CompressResult:
    from anchorlens.experiments.compress import METHODS

    rows, examples = [], []
    for task in tasks:
        for seed in seeds:
            for index, method in enumerate(METHODS):
                seconds = 0.01 if method == "icl" else 0.004 + 0.001 * seed
                rows.append(
                    {
                        "task": task,
                        "model": "m",
                        "seed": seed,
                        "method": method,
                        "label_loyalty": 1.0 - 0.1 * index,
                        "word_loyalty": 1.0 - 0.15 * index,
                        "accuracy": 0.5 + 0.05 * index + 0.01 * seed,
                        "seconds_per_input": seconds if timed and "random" not in method else np.nan,
                        "speedup": 0.01 / seconds if timed and "random" not in method else np.nan,
                        "n": 4,
                        "demo_tokens": 40,
                        "kept_tokens": 12,
                    }
                )
                examples += [
                    {
                        "task": task,
                        "model": "m",
                        "seed": seed,
                        "method": method,
                        "example": example,
                        "label_loyalty": 1.0 - 0.1 * index,
                        "word_loyalty": 1.0 - 0.15 * index,
                        "correct": float(example < 2 + (index % 2)),
                    }
                    for example in range(4)
                ]
    return CompressResult.from_frame(pd.DataFrame(rows), examples=pd.DataFrame(examples) if with_examples else None)


def _reweight_result(seeds=(1,)) -> ReweightResult:
    rows = [
        {"task": task, "model": "m", "seed": seed, "method": method, "accuracy": 0.6 + 0.1 * seed, "n": 10}
        for task in ("sst2", "trec")
        for seed in seeds
        for method in ("vanilla_1shot", "reweight")
    ]
    return ReweightResult.from_frame(pd.DataFrame(rows))


def _one_seed_figures():
    saliency = SaliencyResult.from_frame(
        _layers(
            {"S_wp": lambda seed, layer: 0.5, "S_pq": lambda seed, layer: 0.3, "S_ww": lambda seed, layer: 0.2},
            seeds=(1,),
        )
    )
    return {
        "saliency": plot_saliency(saliency),
        "isolation": plot_isolation(_isolation_result(with_examples=False)),
        "isolation_by_k": plot_isolation_by_k(_isolation_result(with_examples=False)),
        "auroc": plot_auroc(
            AurocResult.from_frame(_layers({"auroc": lambda seed, layer: 0.5 + 0.1 * layer}, seeds=(1,)))
        ),
        "reweight": plot_reweight(_reweight_result()),
        "compress": plot_compress(_compress_result(tasks=("sst2",))),
        "compress_by_task": plot_compress_by_task(_compress_result()),
        "diagnose": plot_diagnose(_diagnosis(seeds=(1,))),
    }


def test_a_one_seed_result_draws_no_error_bar_and_says_so():
    """Issue 14.5: one seed used to draw zero-height error bars (a std of one value, ``fillna(0)``) and a
    zero-width saliency band, read as a measured zero spread."""
    for name, figure in _one_seed_figures().items():
        for trace in figure.data:
            error = getattr(trace, "error_y", None)
            assert error is None or error.array is None, f"{name}: {trace.name} has error bars from one seed"
        if name == "saliency":
            assert len(figure.data) == 3  # three curves, no band around them
        assert NO_INTERVAL in figure.layout.title.subtitle.text, name


def test_two_seeds_without_examples_draw_one_std_over_seeds():
    result = _reweight_result(seeds=(1, 2))
    figure = plot_reweight(result)
    # accuracy 70% and 80%: ±1 std = 7.07 points each side
    assert np.allclose(figure.data[0].error_y.array, np.std([70, 80], ddof=1))
    assert np.allclose(figure.data[0].error_y.arrayminus, np.std([70, 80], ddof=1))
    assert "±1 std over seeds" in figure.layout.title.subtitle.text


def test_error_bars_are_the_seed_level_interval_when_the_result_has_examples():
    result = _isolation_result(seeds=(1, 2))
    interval = result.summary_with_ci().set_index(["k", "condition", "metric"])
    figure = plot_isolation(result, k=5)
    bars = figure.data[0]  # label loyalty, k = 5, per condition
    assert bars.name == "label loyalty"
    for position, condition in enumerate(CONDITIONS):
        row = interval.loc[(5, condition, "label_loyalty")]
        assert bars.y[position] == pytest.approx(row["mean"] * 100)
        assert bars.error_y.array[position] == pytest.approx((row["ci_high"] - row["mean"]) * 100)
        assert bars.error_y.arrayminus[position] == pytest.approx((row["mean"] - row["ci_low"]) * 100)
    assert "95% interval over seeds (t, floored by the test inputs' error)" in figure.layout.title.subtitle.text
    assert "95% interval" in bars.customdata[0][1]
    with pytest.raises(InvalidConfigError, match="has no k = 9; it holds k = 1, 3, 5, 7"):
        plot_isolation(result, k=9)


def test_one_seed_with_examples_draws_the_interval_over_its_test_inputs():
    figure = plot_isolation(_isolation_result(seeds=(1,)), k=7)
    assert figure.data[0].error_y.array is not None
    assert "over the test inputs of one seed" in figure.layout.title.subtitle.text


def test_isolation_across_k_has_a_line_per_condition_and_both_loyalties():
    result = _isolation_result(seeds=(1, 2), tasks=("sst2", "trec"))
    figure = plot_isolation_by_k(result)
    shown = [trace.name for trace in figure.data if trace.showlegend]
    assert shown == [
        "label words, first k layers (shallow)",
        "label words, last k layers (deep)",
        "random words, first k layers",
        "random words, last k layers",
    ]
    assert len(figure.data) == 2 * 2 * 4  # tasks x loyalties x conditions
    first = figure.data[0]  # sst2, label loyalty, label_first
    assert list(first.x) == [1, 3, 5, 7]
    means = result.frame.query("task == 'sst2' and condition == 'label_first'").groupby("k")["label_loyalty"].mean()
    assert np.allclose(first.y, means.to_numpy() * 100)
    assert first.error_y.array is not None
    assert figure.layout.xaxis3.title.text == "k (isolated layers)"
    assert figure.layout.yaxis.title.text == "label loyalty (%)" and figure.layout.yaxis3.title.text == (
        "word loyalty (%)"
    )


def test_compression_per_task_shows_measured_and_paper_speedups_apart():
    result = _compress_result(seeds=(1, 2), with_examples=True)
    figure = plot_compress_by_task(result)
    accuracy = {trace.name: trace for trace in figure.data if trace.type == "bar" and trace.yaxis == "y"}
    assert list(accuracy) == ["ICL", "Text_anchor", "Hidden_random", "Hidden_random-top", "Hidden_anchor"]
    assert list(accuracy["ICL"].x) == ["sst2", "trec"] and accuracy["ICL"].error_y.array is not None
    measured = next(trace for trace in figure.data if trace.name == "Hidden_anchor speed-up, measured here")
    speedups = result.frame.query("method == 'hidden_anchor'").groupby("task")["speedup"].mean()
    assert np.allclose(measured.y, speedups.loc[["sst2", "trec"]].to_numpy())
    assert measured.error_y.array is not None  # two seeds: ±1 std of the timing
    paper = next(trace for trace in figure.data if trace.name == "paper Table 3, GPT2-XL (not measured here)")
    assert list(paper.y) == [COMPRESS_SPEEDUP["GPT2-XL"]["sst2"], COMPRESS_SPEEDUP["GPT2-XL"]["trec"]]
    assert "not measured here" in paper.hovertemplate

    untimed = plot_compress_by_task(_compress_result(timed=False))
    assert not any("measured" in str(trace.name) and "not" not in str(trace.name) for trace in untimed.data)
    assert "no timings in this result: only the paper's numbers" in untimed.layout.title.subtitle.text


def _figures_with_intervals():
    saliency_examples = pd.DataFrame(
        [
            {"task": "sst2", "model": "m", "seed": seed, "example": e, "gold": 0, "layer": layer, "prediction": 0}
            | {"S_wp": 1.0 + e, "S_pq": 2.0 + layer, "S_ww": 0.5}
            for seed in (1, 2)
            for e in range(4)
            for layer in range(3)
        ]
    )
    saliency_rows = (
        saliency_examples.groupby(["task", "model", "seed", "layer"], as_index=False)[["S_wp", "S_pq", "S_ww"]]
        .mean()
        .assign(n=4)
    )
    total = saliency_rows[["S_wp", "S_pq", "S_ww"]].sum(axis=1)
    for region in ("S_wp", "S_pq", "S_ww"):
        saliency_rows[region] = saliency_rows[region] / total
    return {
        "saliency": plot_saliency(SaliencyResult.from_frame(saliency_rows, examples=saliency_examples)),
        "isolation": plot_isolation(_isolation_result(seeds=(1, 2))),
        "isolation_by_k": plot_isolation_by_k(_isolation_result(seeds=(1, 2))),
        "auroc": plot_auroc(
            AurocResult.from_frame(_layers({"auroc": lambda seed, layer: 0.5 + 0.1 * layer + 0.01 * seed}))
        ),
        "reweight": plot_reweight(_reweight_result(seeds=(1, 2))),
        "compress": plot_compress(_compress_result(seeds=(1, 2))),
        "compress_by_task": plot_compress_by_task(_compress_result(seeds=(1, 2), with_examples=True)),
        "diagnose": plot_diagnose(_diagnosis()),
    }


def _titled(layout: dict, axis: str) -> bool:
    """Whether a layout axis (``"xaxis2"``) has a title, itself or through the axis it is shared with."""
    settings = layout.get(axis, {})
    # a shared axis (make_subplots' shared_xaxes / shared_yaxes) carries its title on the one it matches
    shared = settings.get("matches")
    own = (settings.get("title") or {}).get("text")
    return bool(own) or (shared is not None and _titled(layout, shared.replace("x", "xaxis").replace("y", "yaxis")))


@pytest.mark.parametrize("which", ["one seed", "intervals"])
def test_every_figure_names_its_axes_and_shows_values_on_hover(which):
    """Issue 14.5: every axis that holds data has a title, and every trace a reader can hover names its
    value and its interval (plot_auroc, plot_reweight and plot_compress had no hover text of their own)."""
    figures = _one_seed_figures() if which == "one seed" else _figures_with_intervals()
    for name, figure in figures.items():
        layout = figure.layout.to_plotly_json()
        for trace in figure.data:
            for axis in ((trace.xaxis or "x").replace("x", "xaxis"), (trace.yaxis or "y").replace("y", "yaxis")):
                assert _titled(layout, axis), f"{name}: {trace.name} is drawn on {axis}, which has no title"
        assert figure.layout.title.subtitle.text, f"{name} does not say what its intervals are"
        for trace in figure.data:
            if trace.hoverinfo == "skip":
                continue
            template = trace.hovertemplate or ""
            assert "%{y" in template or "%{z" in template, f"{name}: {trace.name} shows no value on hover"
            if trace.type in ("bar", "scatter") and name != "compress_by_task" or trace.type == "heatmap":
                assert "%{customdata" in template, f"{name}: {trace.name} shows no interval on hover"


def test_saved_html_is_self_contained(tmp_path):
    """The HTML opens offline: plotly.js is inlined, and no script is fetched from the web (a CDN link)."""
    import re

    written = save_figure(plot_isolation_by_k(_isolation_result()), tmp_path / "isolation_by_k")
    html = (tmp_path / "isolation_by_k.html").read_text(encoding="utf-8")
    assert written[0] == str(tmp_path / "isolation_by_k.html")
    # the plotly.js bundle (its licence banner, then megabytes of code) inline in a script element
    assert re.search(r"<script>\s*/\*\*\s*\* plotly\.js v\d", html) and len(html) > 1_000_000
    assert "Plotly.newPlot" in html
    # and no script loaded from elsewhere (include_plotlyjs="cdn" writes <script src="https://cdn.plot.ly/...">)
    assert not re.search(r"<script[^>]*\bsrc\s*=", html, flags=re.I)


def test_an_experiment_run_writes_every_figure_sharing_one_plotly_js(tmp_path, llama_like):
    """`run_experiment` writes the main figure and the extra ones (isolation across k), each loading the one
    plotly.min.js beside it: nothing is fetched from the web, and plotly.js is not repeated per figure."""
    import re

    from anchorlens.experiments import IsolationConfig
    from anchorlens.orchestrate import EXPERIMENTS, run_experiment
    from anchorlens.plots import PLOTLY_JS

    config = IsolationConfig(seeds=(1,), n_test=2, k=(1, 2), batch_size=2)
    run_experiment("isolation", llama_like, ["sst2"], config, tmp_path, progress=False)
    assert list(EXPERIMENTS["isolation"].figure_stems()) == ["isolation", "isolation_by_k"]
    for stem in ("isolation", "isolation_by_k"):
        html = (tmp_path / f"{stem}.html").read_text(encoding="utf-8")
        sources = re.findall(r"<script[^>]*\bsrc\s*=\s*\"([^\"]*)\"", html, flags=re.I)
        assert "Plotly.newPlot" in html and sources == [PLOTLY_JS] and len(html) < 500_000
    assert re.match(r"/\*\*\s*\* plotly\.js v\d", (tmp_path / PLOTLY_JS).read_text(encoding="utf-8"))
    assert sorted(path.name for path in tmp_path.glob("*.js")) == [PLOTLY_JS]


def test_a_static_format_without_kaleido_is_one_line(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "kaleido" else real(name, *a))
    with pytest.raises(InvalidConfigError, match=r"needs plotly's static exporter kaleido.*pip install -U kaleido"):
        save_figure(plot_isolation_by_k(_isolation_result()), tmp_path / "figure", format="png")
    assert not list(tmp_path.iterdir())
    with pytest.raises(InvalidConfigError, match="unknown figure format 'gif'"):
        save_figure(plot_isolation_by_k(_isolation_result()), tmp_path / "figure", format="gif")


@pytest.mark.parametrize("format", ["png", "svg", "pdf"])
def test_a_static_format_is_written_where_kaleido_renders(tmp_path, monkeypatch, format):
    """Where kaleido is installed the figure's `to_image` bytes are written as <path>.<format> (kaleido itself
    is not a test dependency: its rendering is stood in for)."""
    import importlib.util

    import plotly.graph_objects as go

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "kaleido" else real(name, *a))
    asked = []
    monkeypatch.setattr(go.Figure, "to_image", lambda self, format, scale: asked.append(format) or b"IMAGE")
    written = save_figure(plot_isolation_by_k(_isolation_result()), tmp_path / "figure", format=format)
    assert written == [str(tmp_path / f"figure.{format}")] and asked == [format]
    assert (tmp_path / f"figure.{format}").read_bytes() == b"IMAGE"
