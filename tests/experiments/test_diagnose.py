"""Error diagnosis (SPEC §6): the two confusion matrices on hand-made cases and a run on a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from anchorlens.experiments.diagnose import (
    DiagnoseConfig,
    keys_and_queries,
    predicted_confusion,
    run_diagnose,
    true_confusion,
)
from anchorlens.prompts import make_batch, prompt_settings, task_prompts


def test_predicted_confusion_follows_the_query_pca():
    generator = np.random.default_rng(0)
    queries = generator.normal(size=(50, 6)) * np.array([5, 3, 1, 0.1, 0.1, 0.1])
    keys = generator.normal(size=(3, 6))
    matrix = predicted_confusion(keys, queries, n_components=2)
    pca = PCA(n_components=2, random_state=42).fit(queries)
    projected = (keys @ pca.components_.T) * pca.singular_values_
    distance = lambda a, b: np.linalg.norm(projected[a] - projected[b])  # noqa: E731
    largest = max(distance(0, 1), distance(0, 2), distance(1, 2))
    assert matrix[0, 1] == pytest.approx(distance(0, 1) / largest)
    assert np.allclose(np.diag(matrix), 1) and np.allclose(matrix, matrix.T) and matrix.max() == pytest.approx(1)


def test_true_confusion_by_hand():
    probabilities = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.4, 0.5, 0.1]])
    gold = np.array([0, 0, 1, 1])
    matrix = true_confusion(probabilities, gold)
    assert matrix[0, 1] == 1.0 and matrix[1, 0] == 1.0  # p0/p1 ranks every gold-0 input above every gold-1 input
    assert np.isnan(matrix[0, 2]) and np.isnan(matrix[2, 1])  # class 2 has no test input
    gold_swapped = np.array([1, 1, 0, 0])
    assert true_confusion(probabilities, gold_swapped)[0, 1] == 0.0


def test_keys_are_the_same_in_every_prompt_and_queries_differ(llama_like):
    _, prompts = task_prompts(llama_like.tokenizer, "sst2", 42, n_test=3, **prompt_settings(llama_like))
    keys, queries, probabilities = keys_and_queries(llama_like, make_batch(prompts), layer=1)
    assert keys.shape == (3, 2, llama_like.cfg.n_heads * llama_like.cfg.d_head)
    assert torch.allclose(keys[0], keys[1], atol=1e-5) and torch.allclose(keys[0], keys[2], atol=1e-5)
    assert not torch.allclose(queries[0], queries[1])
    assert torch.allclose(probabilities.sum(-1), torch.ones(3))


def test_run_diagnose_rows_and_summary(gpt2_like):
    result = run_diagnose(gpt2_like, "trec", DiagnoseConfig(seeds=(1,), n_test=40, batch_size=8, layer=1),
                          progress=False)
    frame = result.to_frame()
    assert len(frame) == 36 and set(frame["layer"]) == {1}
    predicted, true = result.matrices("trec")
    assert list(predicted.index) == ["ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM"]
    assert np.allclose(np.diag(predicted.values), 1)
    summary = result.summary()
    assert set(summary.columns) >= {"pearson", "spearman", "most_confused_predicted", "most_confused_true"}


def test_layer_out_of_range(gpt2_like):
    from anchorlens.errors import InvalidConfigError

    with pytest.raises(InvalidConfigError, match="layer 99 does not exist; the model has layers 0..1"):
        run_diagnose(gpt2_like, "sst2", DiagnoseConfig(seeds=(1,), n_test=2, layer=99), progress=False)
