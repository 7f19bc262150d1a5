"""Figures build from results and show what the results hold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from anchorlens.experiments import AurocResult, DiagnoseResult, IsolationResult, SaliencyResult
from anchorlens.experiments.isolation import CONDITIONS
from anchorlens.plots import _ylgnbu, diagnose_svg, plot_auroc, plot_isolation, plot_saliency, save_figure


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
