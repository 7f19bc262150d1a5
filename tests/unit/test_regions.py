"""The saliency regions of a prompt: one definition (`anchorlens.regions`) for the saliency and heads experiments
and for `anchorlens.flow`, giving the weight maps the experiments used before, exactly."""

from __future__ import annotations

import pytest
import torch

from anchorlens.prompts import Role, build_prompt, make_batch
from anchorlens.regions import REGIONS, region_masks, region_weights


def _weights_as_before(batch, exclude_bos: bool) -> torch.Tensor:
    """`anchorlens.experiments.saliency.region_weights` as it was written before the regions moved."""
    seq = batch.seq_len
    weights = torch.zeros(batch.size, 3, seq, seq)
    lower = torch.ones(seq, seq).tril(-1)
    for row, prompt in enumerate(batch.prompts):
        q = prompt.target_position
        wp, pq = torch.zeros(seq, seq), torch.zeros(seq, seq)
        for p in prompt.demonstration_label_positions:
            wp[p, :p] = 1
            pq[q, p] = 1
        ww = lower.clone()
        ww[q + 1 :] = 0
        ww = ww - wp - pq
        if exclude_bos:
            for bos in prompt.positions_with(Role.BOS):
                wp[:, bos] = 0
                ww[:, bos] = 0
        for index, mask in enumerate((wp, pq, ww)):
            weights[row, index] = mask / mask.sum().clamp(min=1)
    return weights


@pytest.mark.parametrize("prepend_bos", [False, True])
@pytest.mark.parametrize("exclude_bos", [False, True])
def test_region_weights_are_bit_for_bit_what_they_were(smol_tokenizer, prepend_bos, exclude_bos):
    demos = [("a dull , lifeless film ", 0), ("warm and funny ", 1), ("a mess ", 0)]
    prompts = [  # different lengths, so the shorter prompt's rows and columns past its end are padding
        build_prompt(smol_tokenizer, "sst2", demos, text, label, prepend_bos=prepend_bos)
        for text, label in [("the best film of the year , by far ", 1), ("tedious ", 0)]
    ]
    batch = make_batch(prompts)
    assert prompts[0].length != prompts[1].length
    assert torch.equal(region_weights(batch, exclude_bos=exclude_bos), _weights_as_before(batch, exclude_bos))


def test_region_masks_are_the_three_sets(smol_tokenizer):
    demos = [("a dull , lifeless film ", 0), ("warm and funny ", 1)]
    prompt = build_prompt(smol_tokenizer, "sst2", demos, "tedious ", 0, prepend_bos=False)
    masks = region_masks(prompt)
    q, labels = prompt.target_position, prompt.demonstration_label_positions
    assert masks.shape == (len(REGIONS), prompt.length, prompt.length)
    assert {(int(i), int(j)) for i, j in masks[0].nonzero()} == {(p, j) for p in labels for j in range(p)}
    assert {(int(i), int(j)) for i, j in masks[1].nonzero()} == {(q, p) for p in labels}
    every = {(i, j) for i in range(q + 1) for j in range(i)}
    assert {(int(i), int(j)) for i, j in masks[2].nonzero()} == every - {(p, j) for p in labels for j in range(p)} - {
        (q, p) for p in labels
    }


def test_the_old_names_are_the_regions():
    from anchorlens import flow
    from anchorlens.experiments import saliency

    assert saliency.REGIONS is flow.REGIONS is REGIONS == ("S_wp", "S_pq", "S_ww")
    assert saliency.region_weights is region_weights and flow.region_masks is region_masks
