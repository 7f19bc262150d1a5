"""One prompt's flow on SmolLM2-135M: the saliency matrix matches the experiment and shows the anchors."""

from __future__ import annotations

import numpy as np

from anchorlens.experiments.saliency import (
    fresh_demonstration_prompts,
    saliency_of_batch,
)
from anchorlens.flow import prompt_flow
from anchorlens.plots import plot_flow
from anchorlens.prompts import make_batch, prompt_settings
from tests.unit.test_flow import close_within_1e6  # the unit tier's helpers


def test_smollm2_sst2_prompt_flow_matches_the_experiment_and_shows_the_anchors(smol_model):
    prompt = fresh_demonstration_prompts(
        smol_model.tokenizer, "sst2", 42, n_test=1, shots_per_class=1, **prompt_settings(smol_model)
    )[0]
    flow = prompt_flow(smol_model, prompt)
    expected = saliency_of_batch(smol_model, make_batch([prompt]))[0].double().numpy()
    mine = np.stack([flow.S_wp.numpy(), flow.S_pq.numpy(), flow.S_ww.numpy()], -1)
    assert close_within_1e6(mine, expected)
    third = smol_model.cfg.n_layers // 3
    # The paper's picture on this prompt: label words feed the target far more in the deep third than in the
    # shallow one, and text feeds label words more than the rest flows in the shallow third.
    assert flow.S_pq[-third:].mean() > 10 * flow.S_pq[:third].mean()
    assert flow.S_wp[:third].mean() > flow.S_ww[:third].mean()
    figure = plot_flow(flow)
    assert len(figure.layout.updatemenus[0].buttons) == 3 + smol_model.cfg.n_layers
