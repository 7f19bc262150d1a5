"""Attention AUROC and R_l (SPEC §3) against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from anchorlens.experiments.auroc import AurocConfig, cumulative_r, layer_auroc, run_auroc, with_r


def test_binary_auroc_scores_attention_to_the_second_class():
    attention = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.3], [0.2, 0.4]])
    assert layer_auroc(attention, np.array([0, 0, 1, 1])) == 1.0
    assert layer_auroc(attention, np.array([1, 1, 0, 0])) == 0.0


def test_multiclass_keeps_predicted_classes_and_renormalises():
    generator = np.random.default_rng(0)
    attention = generator.random((40, 4))
    predicted = generator.choice([0, 2, 3], size=40)  # class 1 never predicted: dropped
    kept = attention[:, [0, 2, 3]]
    kept = kept / kept.sum(1, keepdims=True)
    targets = np.searchsorted([0, 2, 3], predicted)
    assert layer_auroc(attention, predicted) == pytest.approx(roc_auc_score(targets, kept, multi_class="ovo"))


def test_a_single_predicted_class_leaves_auroc_undefined():
    assert np.isnan(layer_auroc(np.ones((5, 2)), np.zeros(5, dtype=int)))


def test_cumulative_r_by_hand():
    assert np.allclose(cumulative_r(np.array([0.5, 0.6, 0.8])), [0.0, 0.25, 1.0])
    assert np.allclose(cumulative_r(np.array([np.nan, 0.7, 0.7])), [0.0, 0.5, 1.0])


def test_r_comes_from_the_seed_averaged_curve():
    frame = pd.DataFrame({"task": "t", "model": "m", "seed": [1, 1, 2, 2], "layer": [0, 1, 0, 1],
                          "auroc": [0.6, 0.7, 0.8, 0.9]})
    r = with_r(frame).set_index(["seed", "layer"])["R"]
    # Seed means 0.7 and 0.8 -> excess 0.2, 0.3 -> R 0.4, 1.0 on every seed's rows.
    assert r.loc[(1, 0)] == pytest.approx(0.4) and r.loc[(2, 0)] == pytest.approx(0.4)
    assert r.loc[(2, 1)] == pytest.approx(1.0)


def test_run_auroc_on_a_tiny_model(llama_like):
    result = run_auroc(llama_like, "trec", AurocConfig(seeds=(1, 2), n_test=12, batch_size=4),
                       progress=False)
    frame = result.to_frame()
    assert list(frame.columns[:4]) == ["task", "model", "seed", "layer"]
    assert len(frame) == 2 * llama_like.cfg.n_layers
    valid = frame["auroc"].dropna()
    assert valid.between(0, 1).all()
    assert set(result.summary().columns) >= {"auroc_mean", "auroc_std", "R"}
