"""The three regions of a prompt's saliency matrix I_l that the paper's flows average (paper §2.1; SPEC §1).

With label positions p_k and target q:

* S_wp: the entries (p_k, j), j < p_k -- text into label words;
* S_pq: the entries (q, p_k) -- label words into the target;
* S_ww: every other (i, j) with j < i ≤ q.

The diagonal is in none of them. `region_masks` gives them as boolean masks of one prompt (what
`anchorlens.flow` reads a whole matrix with), `region_weights` as weight maps of a batch (1/count on each set,
so a weighted sum of I_l is the set's mean: what the saliency and heads experiments reduce I_l with inside the
backward pass). Both are facts about the prompt's tracked positions alone.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from anchorlens.prompts import Prompt, PromptBatch, Role

#: The regions' names, in the order of the region axis of `region_masks` and `region_weights`.
REGIONS = ("S_wp", "S_pq", "S_ww")


def region_masks(prompt: Prompt) -> Bool[Tensor, "region=3 query key"]:
    """[3, query, key] boolean masks of the entries of I_l that S_wp, S_pq and S_ww average (SPEC §1).

    S_wp: (p_k, j) for every label position p_k and j < p_k; S_pq: (q, p_k); S_ww: every other (i, j) with
    j < i ≤ q. The diagonal is in none of them.
    """
    seq, q = prompt.length, prompt.target_position
    masks = torch.zeros(3, seq, seq, dtype=torch.bool)
    for p in prompt.demonstration_label_positions:
        masks[0, p, :p] = True
        masks[1, q, p] = True
    below = torch.ones(seq, seq, dtype=torch.bool).tril(-1)
    below[q + 1 :] = False
    masks[2] = below & ~masks[0] & ~masks[1]
    return masks


def region_weights(batch: PromptBatch, *, exclude_bos: bool = False) -> Float[Tensor, "batch region=3 query key"]:
    """Weight maps whose weighted sums of I_l are S_wp, S_pq, S_ww (each set's entries weigh 1/count).

    A model that prepends a BOS token (Gemma-3; not the paper's GPT-2) has one more key column, which S_wp and
    S_ww include by default: every row attends to it, often heavily (an attention sink). `exclude_bos` leaves
    that column out of both sets, so S_wp and S_ww are means over the same (i, j) pairs as on a model without
    BOS; S_pq (target → label words) never contains it."""
    seq = batch.seq_len
    weights = torch.zeros(batch.size, 3, seq, seq)
    for row, prompt in enumerate(batch.prompts):
        n = prompt.length  # rows and columns after it (padding) are outside every set
        masks = torch.zeros(3, seq, seq)
        masks[:, :n, :n] = region_masks(prompt)
        if exclude_bos:
            for bos in prompt.positions_with(Role.BOS):
                masks[[0, 2], :, bos] = 0
        weights[row] = masks / masks.sum((1, 2), keepdim=True).clamp(min=1)
    return weights.to(batch.tokens.device)
