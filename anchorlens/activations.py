"""Activations at the anchors: what a run leaves at each class's label words and at the target.

An analysis that caches activations (TransformerLens's ``model.run_with_cache``) usually wants them at two
places of every prompt: the label words p of the demonstrations, grouped by class, and the target q. The
positions come from the `PromptBatch`, never from the tokens.

* `label_means` -- each class's label positions averaged, ``[batch, class, *rest]`` (one demonstration per
  class: that demonstration's label word; several: their mean, as the diagnosis's label keys);
* `target_rows` -- the target's row, ``[batch, *rest]``;
* `anchor_activations` -- both for every layer of an `ActivationCache`: ``[layer, batch, class, *rest]`` and
  ``[layer, batch, *rest]`` (``*rest`` is ``d_model`` for the residual stream, ``head, d_head`` for keys,
  queries and values).

The error diagnosis (`anchorlens.experiments.diagnose`) gathers its label keys and target queries inside hooks
with the same two functions. Compression (`anchorlens.experiments.compress`) keeps something else: whole
key/value cache entries of every layer at individual positions (formatting tokens, label words, newlines;
`anchorlens.kv_cache.AnchorCache.keep`), neither averaged by class nor at the target, so it selects positions
rather than gathering with these.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

import torch
from einops import einsum
from jaxtyping import Float
from torch import Tensor

from anchorlens.errors import HookError, InvalidConfigError
from anchorlens.prompts import PromptBatch

if TYPE_CHECKING:
    from transformer_lens import ActivationCache


def _check_rows(activation: Tensor, batch: PromptBatch, what: str) -> None:
    if activation.ndim < 2 or activation.shape[0] != batch.size or activation.shape[1] != batch.seq_len:
        raise HookError(
            f"{what} has shape {tuple(activation.shape)}, not [batch, position, ...] = [{batch.size}, "
            f"{batch.seq_len}, ...] of this batch; cache the batch's own tokens (model.run_with_cache(batch.tokens)) "
            "without remove_batch_dim"
        )


def label_means(activation: Float[Tensor, "batch seq *rest"], batch: PromptBatch) -> Float[Tensor, "batch class *rest"]:
    """Each class's label positions of each prompt averaged: ``[batch, class, *rest]``.

    Args:
        activation: one layer's activation of the batch's tokens, ``[batch, seq, *rest]``.
        batch: the prompts (their label positions by class, ``batch.label_mask``).

    Returns:
        ``[batch, class, *rest]`` in class-id order; zero for a class with no demonstration in a prompt.
    """
    _check_rows(activation, batch, "the activation")
    mask = batch.label_mask.to(device=activation.device, dtype=activation.dtype)
    counts = mask.sum(-1, keepdim=True).clamp(min=1)
    flat = activation.reshape(*activation.shape[:2], -1)
    summed = einsum(mask, flat, "batch label seq, batch seq rest -> batch label rest")
    return (summed / counts).reshape(*summed.shape[:2], *activation.shape[2:])


def target_rows(activation: Float[Tensor, "batch seq *rest"], batch: PromptBatch) -> Float[Tensor, " batch *rest"]:
    """Each prompt's activation at its target position q: ``[batch, *rest]``."""
    _check_rows(activation, batch, "the activation")
    rows = torch.arange(activation.shape[0], device=activation.device)
    return activation[rows, batch.target_positions.to(activation.device)]


class AnchorActivations(NamedTuple):
    """`anchor_activations`' result: unpacks as ``labels, target = ...``."""

    #: Each class's label positions averaged, per layer: ``[layer, batch, class, *rest]``.
    labels: Float[Tensor, "layer batch class *rest"]
    #: The target's row, per layer: ``[layer, batch, *rest]``.
    target: Float[Tensor, "layer batch *rest"]


def hook_name(hook: str, layer: int) -> str:
    """The full hook name of `hook` in `layer`: a TransformerLens short name (``"resid_post"``, ``"k"``,
    ``"attn_out"``, ...), or a full name with ``{layer}`` (``"blocks.{layer}.hook_resid_post"``)."""
    if "{layer}" in hook:
        return hook.format(layer=layer)
    from transformer_lens.utilities import get_act_name  # both supported lines (3.9, 4.x) have it here

    return get_act_name(hook, layer)


def anchor_activations(
    cache: ActivationCache, batch: PromptBatch, hook: str = "resid_post", *, layers: Iterable[int] | None = None
) -> AnchorActivations:
    """Gather a TransformerLens `ActivationCache` at the label positions and the target of every prompt.

    Args:
        cache: what ``model.run_with_cache(batch.tokens)`` returns (a ``names_filter`` may keep only `hook`).
        batch: the prompts that ran (their label positions and targets).
        hook: which activation: a TransformerLens short name (``"resid_post"``, ``"resid_pre"``, ``"attn_out"``,
            ``"mlp_out"``, ``"k"``, ``"q"``, ``"v"``, ``"z"``) or a full name with ``{layer}``.
        layers: the layers to gather (default every layer of the model).

    Returns:
        `AnchorActivations` ``(labels, target)``: ``labels`` ``[layer, batch, class, *rest]`` (each class's
        label positions averaged, `label_means`) and ``target`` ``[layer, batch, *rest]`` (`target_rows`);
        ``*rest`` is ``d_model`` for the residual stream, ``head, d_head`` for keys, queries and values.

    Examples:
        >>> import anchorlens as al
        >>> model = al.random_model()
        >>> batch = al.make_batch(al.task_prompts(model, "sst2", 42, n_test=2)[1])
        >>> labels, target = al.anchor_activations(model.run_with_cache(batch.tokens)[1], batch)
        >>> tuple(labels.shape), tuple(target.shape)  # [layer, batch, class, d_model], [layer, batch, d_model]
        ((2, 2, 2, 32), (2, 2, 32))
    """
    n_layers = int(cache.model.cfg.n_layers)
    chosen = list(range(n_layers)) if layers is None else [int(layer) for layer in layers]
    if not chosen or any(not 0 <= layer < n_layers for layer in chosen):
        raise InvalidConfigError(f"layers must be one or more of 0..{n_layers - 1}, got {layers!r}")
    gathered_labels, gathered_targets = [], []
    for layer in chosen:
        name = hook_name(hook, layer)
        if name not in cache.cache_dict:
            raise HookError(
                f"the activation cache holds no {name!r}; run model.run_with_cache(batch.tokens) with a names_filter "
                f"that keeps it (or none), or choose a hook it holds, e.g. {next(iter(cache.cache_dict), '')!r}"
            )
        activation = cache.cache_dict[name]
        _check_rows(activation, batch, f"the cached {name!r}")
        gathered_labels.append(label_means(activation, batch))
        gathered_targets.append(target_rows(activation, batch))
    return AnchorActivations(torch.stack(gathered_labels), torch.stack(gathered_targets))
