"""Figures build from results and show what the results hold."""

from __future__ import annotations

import numpy as np
import pandas as pd

from anchorlens.experiments import AurocResult, IsolationResult, SaliencyResult
from anchorlens.experiments.isolation import CONDITIONS
from anchorlens.plots import plot_auroc, plot_isolation, plot_saliency, save_figure


def _layers(extra: dict, seeds=(1, 2), layers=4) -> pd.DataFrame:
    rows = [{"task": "sst2", "model": "m", "seed": s, "layer": l, **{k: f(s, l) for k, f in extra.items()}}
            for s in seeds for l in range(layers)]
    return pd.DataFrame(rows)


def test_saliency_figure_has_three_curves_per_task(tmp_path):
    frame = _layers({"S_wp": lambda s, l: 0.5, "S_pq": lambda s, l: 0.3, "S_ww": lambda s, l: 0.2})
    figure = plot_saliency(SaliencyResult.from_frame(frame))
    lines = [trace for trace in figure.data if trace.showlegend]
    assert [trace.name for trace in lines] == ["S_wp", "S_pq", "S_ww"]
    assert np.allclose(lines[0].y, 0.5)
    assert save_figure(figure, tmp_path / "saliency")[0].endswith("saliency.html")


def test_isolation_figure_has_both_loyalties_per_condition():
    frame = pd.DataFrame([{"task": "sst2", "model": "m", "seed": 1, "k": 5, "condition": c, "label_loyalty": 0.5,
                           "word_loyalty": 0.25, "n": 3} for c in CONDITIONS])
    figure = plot_isolation(IsolationResult.from_frame(frame))
    assert [trace.name for trace in figure.data] == ["label loyalty", "word loyalty"]
    assert list(figure.data[0].x) == list(CONDITIONS) and np.allclose(figure.data[1].y, 25)


def test_auroc_figure_plots_auroc_and_r():
    frame = _layers({"auroc": lambda s, l: 0.5 + 0.1 * l})
    result = AurocResult.from_frame(frame)
    figure = plot_auroc(result)
    assert np.allclose(figure.data[0].y, [0.5, 0.6, 0.7, 0.8]) and np.isclose(figure.data[1].y[-1], 1.0)
