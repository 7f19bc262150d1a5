"""The public API on a real offline model: every analysis on your own prompts with SmolLM2-135M."""

from __future__ import annotations

import anchorlens as al
from tests.unit.test_api import own_prompts  # the unit tier's helpers


def test_your_own_prompts_on_smollm2(smol_model):
    """Prompts written by hand on the real model: every analysis runs on them, and the label words carry the
    deep layers' flow into the target as the paper finds."""
    prompts = own_prompts(smol_model)
    flow = al.saliency(smol_model, prompts)
    assert len(flow) == 3 * smol_model.cfg.n_layers
    deep = flow[flow["layer"] >= 2 * smol_model.cfg.n_layers // 3]
    assert deep["S_pq"].mean() > deep["S_ww"].mean()
    loyalty = al.isolation(smol_model, prompts, k=5, condition=("label_first", "label_last"))
    assert set(loyalty["condition"]) == {"label_first", "label_last"}
    keys = al.anchor_keys(smol_model, prompts)
    assert keys.keys.shape == (3, 2, smol_model.cfg.n_heads * smol_model.cfg.d_head)
    compressed = al.compress(smol_model, prompts, "hidden_anchor", timing_repeats=1)
    assert (compressed["kept_tokens"] < compressed["demo_tokens"]).all()
