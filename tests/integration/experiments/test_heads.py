"""Head-level anchors on SmolLM2-135M: the heads are ranked and blocking them acts."""

from __future__ import annotations

import pytest

from anchorlens.experiments.heads import (
    HeadsConfig,
    run_heads,
)


@pytest.mark.smoke
def test_a_real_model_ranks_its_heads_and_the_block_acts(smol_model):
    """SmolLM2 (grouped-query attention, 30 layers x 9 heads): blocking the 10 top label -> target heads changes
    the target's logits (word loyalty below 1 somewhere), and the table ranks all 270 heads."""
    config = HeadsConfig(seeds=(42,), n_test=4, batch_size=4, top_k=(10,), random_draws=1)
    result = run_heads(smol_model, "sst2", config, progress=False)
    assert len(result.to_frame()) == 30 * 9
    top = result.examples[(result.examples["condition"] == "top") & (result.examples["flow"] == "pq")]
    assert (top["word_loyalty"] < 1).any()
