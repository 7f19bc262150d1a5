"""Anchor-only compression on SmolLM2-135M: the kept cache reproduces the full prompt where it should."""

from __future__ import annotations

import torch

from anchorlens.hooks import scores_hook_name
from tests.unit.experiments.test_compress import (  # the unit tier's helpers
    QUERIES,
    compressed_logits,
    full_logits,
    prompts_for,
    query_blocked_from_dropped,
)


def test_on_the_real_model(smol_model):
    prompts = prompts_for(smol_model, QUERIES[:2])
    compressed, _ = compressed_logits(smol_model, prompts, range(prompts[0].demonstration_length))
    torch.testing.assert_close(compressed, full_logits(smol_model, prompts), atol=1e-4, rtol=0)
    anchors, cache = compressed_logits(smol_model, prompts)
    hook = query_blocked_from_dropped(prompts, cache.positions)
    reference = full_logits(
        smol_model, prompts, [(scores_hook_name(layer), hook) for layer in range(smol_model.cfg.n_layers)]
    )
    torch.testing.assert_close(anchors, reference, atol=1e-4, rtol=0)
