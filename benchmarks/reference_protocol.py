"""The paper's saliency protocol as a timing baseline (issue 16.3), written from its description, not its code.

The reference implementation processes one prompt per pass: every prompt right-padded to the longest prompt
of the set, the full-vocabulary logits at every position, a loss on the label logits at the target, one
backward pass, and every layer's full attention-saliency matrix |Σ_h A ⊙ ∂L/∂A| formed and then reduced to
the three flows. anchorlens instead batches prompts of similar length, unembeds only the targets and reduces
each layer's saliency inside the backward hook. Both give the same S_wp / S_pq / S_ww (the padding sits after
the target, which a causal model never attends to), so the ratio of their throughputs is the speed-up a
researcher gets over the protocol the numbers come from.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from anchorlens.experiments.common import device_of, pad_token_id
from anchorlens.forward import input_embeddings
from anchorlens.hooks import frozen_parameters
from anchorlens.model_classes import is_bridge
from anchorlens.prompts import Prompt, label_loss, make_batch
from anchorlens.regions import region_weights


def reference_protocol_saliency(model, prompts: Sequence[Prompt]) -> torch.Tensor:
    """[prompt, layer, 3] S_wp, S_pq, S_ww the reference's way: batch size 1, padded to the longest prompt,
    full logits everywhere, full saliency matrices per layer."""
    device = device_of(model)
    longest = max(prompt.length for prompt in prompts)
    pad = pad_token_id(model)
    results = []
    for prompt in prompts:
        batch = make_batch([prompt], pad_token_id=pad, device=device)
        tokens = torch.full((1, longest), pad, dtype=torch.long, device=device)
        tokens[0, : prompt.length] = batch.tokens[0]
        patterns: list[torch.Tensor] = []

        def keep(pattern: torch.Tensor, hook, patterns: list[torch.Tensor] = patterns) -> torch.Tensor:
            pattern.retain_grad()
            patterns.append(pattern)
            return pattern

        hooks = [(f"blocks.{layer}.attn.hook_pattern", keep) for layer in range(model.cfg.n_layers)]
        with frozen_parameters(model):
            # The weights are frozen: the gradient flows from the embeddings up.
            embedded = input_embeddings(model, tokens).requires_grad_(True)
            # Full-vocabulary logits at every position, [1, longest, vocab], as the reference computes them.
            if is_bridge(model):
                logits = model.run_with_hooks(embedded, fwd_hooks=hooks)
            else:
                logits = model.run_with_hooks(embedded, start_at_layer=0, fwd_hooks=hooks)
            label_loss(logits, batch).backward()
        weights = region_weights(batch).to(device)  # [1, 3, query, key] over the prompt's own positions
        n = prompt.length
        per_layer = []
        for pattern in patterns:
            saliency = (pattern * pattern.grad).sum(1).abs()[:, :n, :n]  # the full matrix, as the reference forms it
            saliency = saliency * (1 - torch.eye(n, device=device))
            per_layer.append((weights[:, :, :n, :n] * saliency[:, None]).sum((-1, -2)))
        results.append(torch.stack(per_layer, 1)[0].detach().cpu())
    return torch.stack(results)
