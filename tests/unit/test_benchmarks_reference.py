"""The reference-protocol baseline of the benchmark computes the same saliency as anchorlens's fast path."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from reference_protocol import reference_protocol_saliency  # noqa: E402

from anchorlens.experiments.common import batches  # noqa: E402
from anchorlens.experiments.saliency import fresh_demonstration_prompts, saliency_of_batch  # noqa: E402
from anchorlens.prompts import prompt_settings  # noqa: E402


def test_reference_protocol_equals_the_batched_fast_path(gpt2_like):
    """Batch size 1, padded to the longest prompt, full logits everywhere, full saliency matrices: the same
    S_wp, S_pq, S_ww as batched prompts of similar length unembedded at the target only."""
    prompts = fresh_demonstration_prompts(
        gpt2_like.tokenizer, "sst2", seed=3, n_test=5, shots_per_class=1, **prompt_settings(gpt2_like)
    )
    reference = reference_protocol_saliency(gpt2_like, prompts)
    by_index = {}
    for batch in batches(gpt2_like, prompts, 4):
        for prompt, values in zip(batch.prompts, saliency_of_batch(gpt2_like, batch)):
            by_index[id(prompt)] = values
    fast = torch.stack([by_index[id(prompt)] for prompt in prompts])
    assert reference.shape == fast.shape == (5, gpt2_like.cfg.n_layers, 3)
    assert bool((fast > 0).any())
    torch.testing.assert_close(reference, fast, rtol=1e-4, atol=1e-7)
