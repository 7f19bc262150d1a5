"""Running a model on prompts: logits at each prompt's target, and the final norm and unembedding alone.

The prompt side (`anchorlens.prompts`) only computes token positions; everything that executes the model
on them lives here, for both TransformerLens model classes (`anchorlens.model_classes`). Hooks are passed in
as ``(hook name, function)`` pairs and act during the run.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from anchorlens.errors import HookError, InvalidConfigError
from anchorlens.model_classes import Model, check_hook_names, is_bridge, require_hooked_transformer
from anchorlens.prompts import PromptBatch


def run_to_target(
    model: Model,
    batch: PromptBatch,
    fwd_hooks: Sequence = (),
    *,
    start_at_layer: int | None = None,
    residual: Float[Tensor, "batch seq d_model"] | None = None,
) -> Float[Tensor, "batch vocab"]:
    """Logits at each prompt's target only, with hooks applied.

    The final norm and unembedding run on one row per prompt instead of every position: for a 262k-token
    vocabulary (Gemma) that is most of a forward pass saved. Equal to full logits at the targets because both
    act on each position alone. With `start_at_layer` the pass starts from `residual`, the stream before that
    layer taken from an earlier run: edits confined to later layers need not recompute the earlier ones
    (HookedTransformer only). On a TransformerBridge, Hugging Face unembeds only the target positions.

    Args:
        model: a loaded HookedTransformer or TransformerBridge.
        batch: the prompts (`make_batch`), on the model's device.
        fwd_hooks: ``(hook name, function)`` pairs acting during the run (`isolation_hooks`, `reweight_hooks`,
            a recorder's ``hooks()``).
        start_at_layer: start the pass at this layer, from `residual` (HookedTransformer only).
        residual: the residual stream before `start_at_layer`, [batch, seq, d_model].

    Returns:
        [batch, vocab]: the full-vocabulary logits at each prompt's target; `label_logits` takes the C label
        columns.

    Examples:
        >>> import anchorlens as al
        >>> model = al.random_model()
        >>> batch = al.make_batch(al.task_prompts(model, "sst2", 42, n_test=2)[1])
        >>> tuple(al.run_to_target(model, batch).shape) == (2, model.cfg.d_vocab)
        True
    """
    if (start_at_layer is None) != (residual is None):
        raise InvalidConfigError(
            "start_at_layer and residual go together: pass the residual stream entering layer start_at_layer "
            "(e.g. a cached blocks.{L}.hook_resid_pre), or neither to run from the embeddings"
        )
    if start_at_layer is not None:
        require_hooked_transformer(
            model,
            "starting a forward pass at a layer (start_at_layer)",
            "a TransformerBridge lets Hugging Face run every layer",
        )
    if is_bridge(model):  # no final residual to stop at: Hugging Face unembeds only the target positions
        return bridge_logits_at(model, batch.tokens, batch.target_positions, fwd_hooks)
    check_hook_names(model, fwd_hooks)  # a missing name is otherwise a bare KeyError from TransformerLens
    source = batch.tokens if residual is None else residual
    residual = model.run_with_hooks(
        source, fwd_hooks=list(fwd_hooks), start_at_layer=start_at_layer, stop_at_layer=model.cfg.n_layers
    )
    rows = torch.arange(batch.size, device=residual.device)
    return final_logits(model, residual[rows, batch.target_positions.to(residual.device)])


def final_logits(
    model: Model, residual: Float[Tensor, "batch d_model"], label_token_ids: Int[Tensor, " class"] | None = None
) -> Float[Tensor, "batch vocab"] | Float[Tensor, "batch class"]:
    """Final norm, unembedding and logit soft-cap of one residual-stream row per prompt.

    With `label_token_ids`, only those columns of the unembedding (the same numbers as indexing the full
    logits, without the full-vocabulary product, which for one token of Gemma's 262k-token vocabulary costs
    more than all the layers; ``unembed.hook_out`` then does not run).
    """
    final = residual[:, None]
    if model.cfg.normalization_type is not None:
        final = model.ln_final(final)
    final = final[:, 0]
    unembed = model.unembed
    if label_token_ids is None:
        # The product with W_U as stored, then the module's own hook point: TransformerLens's forward would
        # copy the transposed W_U into a contiguous tensor on every call (670 MB for Gemma; one CPU thread, batch
        # 8: 0.65 s a call with the copy, 0.22 s without). Same numbers, same hook.
        logits = unembed.hook_out(final @ unembed.W_U + unembed.b_U)
    else:
        ids = label_token_ids.to(unembed.W_U.device)
        logits = final @ unembed.W_U[:, ids] + unembed.b_U[ids]
    soft_cap = getattr(model.cfg, "output_logits_soft_cap", 0.0) or 0.0
    if soft_cap > 0:
        logits = soft_cap * torch.tanh(logits / soft_cap)
    return logits


def final_label_logits(
    model: Model, residual: Float[Tensor, "batch d_model"], label_token_ids: Int[Tensor, " class"]
) -> Float[Tensor, "batch class"]:
    """`final_logits` at the label tokens only (see there)."""
    return final_logits(model, residual, label_token_ids)


#: `_keeps_logits_of_positions` per model, held weakly (forgotten when the model is freed): the signature is read
#: once per model, not per batch, and nothing is written onto the user's model.
_KEEPS_LOGITS_OF_POSITIONS: weakref.WeakKeyDictionary[Model, bool] = weakref.WeakKeyDictionary()


def _keeps_logits_of_positions(model: Model) -> bool:
    """Whether the wrapped Hugging Face model takes ``logits_to_keep`` (unembed only the positions asked for)."""
    cached = _KEEPS_LOGITS_OF_POSITIONS.get(model)
    if cached is None:
        forward = getattr(getattr(model, "original_model", None), "forward", None)
        cached = forward is not None and "logits_to_keep" in inspect.signature(forward).parameters
        _KEEPS_LOGITS_OF_POSITIONS[model] = cached
    return cached


def bridge_logits_at(
    model: Model, tokens: Int[Tensor, "batch seq"], positions: Int[Tensor, " batch"], fwd_hooks: Sequence = ()
) -> Float[Tensor, "batch vocab"]:
    """A TransformerBridge's full-vocabulary logits at one position per row, ``[batch, vocab]``, hooks applied.

    Hugging Face unembeds only the requested positions (``logits_to_keep``), so a 262k-token vocabulary
    (Gemma) is not multiplied out at every position; the numbers are those of the full logits.
    """
    return _bridge_logits_of_rows(model, tokens, positions, fwd_hooks)


def _bridge_logits_of_rows(model: Model, source: Tensor, positions: Tensor, fwd_hooks: Sequence) -> Tensor:
    """`bridge_logits_at` from token ids [batch, seq] or input embeddings [batch, seq, d_model] (the bridge
    passes a float input to Hugging Face as ``inputs_embeds``)."""
    check_hook_names(model, fwd_hooks)
    positions = positions.to(source.device)
    wanted = torch.unique(positions)  # sorted
    kwargs = {"logits_to_keep": wanted} if _keeps_logits_of_positions(model) else {}
    logits = model.run_with_hooks(source, fwd_hooks=list(fwd_hooks), **kwargs)
    rows = torch.arange(source.shape[0], device=logits.device)
    if kwargs and logits.shape[1] == wanted.numel():
        return logits[rows, torch.searchsorted(wanted, positions).to(logits.device)]
    if logits.shape[1] == source.shape[1]:
        return logits[rows, positions.to(logits.device)]
    raise HookError(
        f"the TransformerBridge returned logits of shape {tuple(logits.shape)} for an input of shape "
        f"{tuple(source.shape)}; expected one row per token or per requested position"
    )


class _FinalResidualReached(Exception):
    """Raised by `bridge_final_residual`'s hook: the rest of the pass (final norm, unembedding) is not needed."""


def bridge_final_residual(
    model: Model, tokens: Int[Tensor, "batch seq"], fwd_hooks: Sequence = (), **forward_kwargs
) -> Float[Tensor, "batch seq d_model"]:
    """A TransformerBridge's residual stream after the last layer (what its final norm receives), hooks applied.

    The pass stops there: a bridge cannot stop after the last layer (``stop_at_layer`` equal to the layer count
    runs the unembedding), and for a 262k-token vocabulary the unembedding of every row costs more than the
    layers. ``forward_kwargs`` go to the bridge's forward (``past_key_values``, ``attention_mask``,
    ``position_ids``).
    """
    name = "ln_final.hook_in" if "ln_final.hook_in" in model.hook_dict else f"blocks.{model.cfg.n_layers - 1}.hook_out"
    check_hook_names(model, [*fwd_hooks, (name, None)])
    captured: list[Tensor] = []

    def capture(residual: Tensor, hook) -> Tensor:
        captured.append(residual)
        raise _FinalResidualReached

    try:
        model.run_with_hooks(tokens, fwd_hooks=[*fwd_hooks, (name, capture)], **forward_kwargs)
    except _FinalResidualReached:
        pass
    if not captured:
        raise HookError(f"the TransformerBridge never ran {name!r}, so its final residual stream cannot be read")
    return captured[0]


def final_residual(
    model: Model, tokens: Int[Tensor, "batch seq"], fwd_hooks: Sequence = ()
) -> Float[Tensor, "batch seq d_model"]:
    """The residual stream after the last layer (what the final norm receives) at every position, hooks applied,
    on either model class: `final_logits` of a row of it is the model's logits there.

    >>> import torch, anchorlens as al
    >>> from transformers import GPT2Config, GPT2LMHeadModel
    >>> tokenizer = al.load_tokenizer("smollm2-135m")
    >>> config = GPT2Config(n_layer=1, n_embd=16, n_head=2, n_positions=64, vocab_size=len(tokenizer))
    >>> model = al.model_from_hugging_face(GPT2LMHeadModel(config), tokenizer)
    >>> tokens = torch.tensor([[1, 2, 3]])
    >>> with torch.no_grad():
    ...     logits = final_logits(model, final_residual(model, tokens)[:, -1])
    ...     torch.allclose(logits, model(tokens)[:, -1], atol=1e-5)
    True
    """
    if is_bridge(model):
        return bridge_final_residual(model, tokens, fwd_hooks)
    return model.run_with_hooks(tokens, fwd_hooks=list(fwd_hooks), stop_at_layer=model.cfg.n_layers)


def logits_from_embeddings(
    model: Model, batch: PromptBatch, embedded: Float[Tensor, "batch seq d_model"], fwd_hooks: Sequence = ()
) -> Float[Tensor, "batch vocab"]:
    """Logits at each prompt's target from the token embeddings (a leaf a gradient can reach), hooks applied.

    On a HookedTransformer `embedded` is the residual entering layer 0 (``model(tokens, stop_at_layer=0)``,
    positional embeddings included); on a bridge it is the Hugging Face input embeddings
    (`input_embeddings`), passed as ``inputs_embeds``.
    """
    if is_bridge(model):
        return _bridge_logits_of_rows(model, embedded, batch.target_positions, fwd_hooks)
    return run_to_target(model, batch, fwd_hooks, start_at_layer=0, residual=embedded)


def input_embeddings(model: Model, tokens: Int[Tensor, "batch seq"]) -> Float[Tensor, "batch seq d_model"]:
    """What `logits_from_embeddings` starts from: the residual entering layer 0 on a HookedTransformer, the
    Hugging Face input embeddings on a bridge (positions are added inside the model there)."""
    with torch.no_grad():
        if is_bridge(model):
            # getattr: torch types a module's attributes as tensors or modules, not as the method it is here.
            embed = getattr(model.original_model, "get_input_embeddings")()  # noqa: B009
            return embed(tokens)
        return model(tokens, stop_at_layer=0)
