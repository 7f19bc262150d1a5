"""Anchor re-weighting on Gemma-3-270m: cached evaluation past its sliding window."""

from __future__ import annotations

import torch

from anchorlens.experiments.reweight import (
    ReweightConfig,
    five_shot_demonstrations,
    label_probabilities,
    query_prompts,
    shared_demonstrations,
)
from anchorlens.prompts import prompt_settings
from anchorlens.sampling import sample_test_set
from anchorlens.tasks import get_task
from tests.unit.experiments.test_reweight import random_beta  # the unit tier's helpers


def test_cached_evaluation_on_gemma_beyond_its_sliding_window(gemma_model):
    """Gemma-3's local layers attend 512 tokens back; AGNews 5-shot prompts are longer, so the cached path
    must apply the window to original positions to equal the full prompts (vanilla and under β)."""
    task = get_task("agnews")
    config = ReweightConfig()
    prompts = query_prompts(
        gemma_model.tokenizer,
        task,
        five_shot_demonstrations(task, 42, config),
        sample_test_set(task, 42, n_test=2),
        **prompt_settings(gemma_model),
    )
    from anchorlens.kv_cache import sliding_window_layers

    assert min(p.length for p in prompts) > sliding_window_layers(gemma_model)[1]
    assert shared_demonstrations(gemma_model, prompts) is not None
    beta = random_beta(gemma_model, task.num_classes, seed=0).mul(0.5)
    for chosen in (None, beta):
        full, _ = label_probabilities(gemma_model, prompts, 2, chosen)
        cached, _ = label_probabilities(gemma_model, prompts, 2, chosen, prefix_cache=True)
        torch.testing.assert_close(cached, full, rtol=1e-4, atol=1e-4)
