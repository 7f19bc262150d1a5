"""Hook recipes: plain TransformerLens hook functions ``fn(tensor, hook)`` built by small factories.

Each factory closes over positions (from a `PromptBatch`) and parameters and returns ``(hook_name, fn)``
pairs, so recipes compose in one ``model.run_with_hooks(tokens, fwd_hooks=a + b + c)`` or in the
`hooked` context manager, which always removes them. Only the shared hook names
``blocks.{l}.attn.hook_attn_scores`` (pre-softmax) and ``blocks.{l}.attn.hook_pattern`` (post-softmax)
are used, so every recipe runs on a `HookedTransformer` and on a `TransformerBridge` alike
(`anchorlens.model_classes`; `verify_attention_hooks` proves on each model that the hooks act). Recorders
reduce inside the hook, so a prompt leaves a few numbers per layer, never a full attention map.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Literal, cast, get_args

import torch
from einops import einsum
from jaxtyping import Bool, Float, Int
from torch import Tensor

from anchorlens.errors import HookError, InvalidConfigError
from anchorlens.model_classes import Model, check_hook_names, describe
from anchorlens.prompts import PromptBatch
from anchorlens.random_streams import probe_generator

HookFn = Callable[[Tensor, object], Tensor | None]
Hook = tuple[str, HookFn]


def pattern_hook_name(layer: int) -> str:
    return f"blocks.{layer}.attn.hook_pattern"


def scores_hook_name(layer: int) -> str:
    return f"blocks.{layer}.attn.hook_attn_scores"


def _layers(model: Model, layers: Iterable[int] | None) -> list[int]:
    n_layers = model.cfg.n_layers
    chosen = list(range(n_layers)) if layers is None else sorted(set(int(layer) for layer in layers))
    bad = [layer for layer in chosen if not 0 <= layer < n_layers]
    if bad:
        raise InvalidConfigError(f"layers {bad} do not exist; the model has layers 0..{n_layers - 1}")
    return chosen


_LOAD_HINT = (
    "load the model with anchorlens.load_model(name) (a TransformerBridge with eager attention, or with "
    "transformer-lens 3.9 model_class='hooked' for a HookedTransformer)"
)


def require_attention_hooks(model: Model) -> None:
    """Fail loudly when the model lacks the attention hook points every recipe relies on."""
    if not hasattr(model, "hook_dict") or not hasattr(getattr(model, "cfg", None), "n_layers"):
        raise HookError(
            f"this model's attention cannot be hooked: a {describe(model)} is not a TransformerLens model (it has "
            f"no hook points); {_LOAD_HINT}"
        )
    names = set(model.hook_dict)
    missing = [
        name
        for layer in range(model.cfg.n_layers)
        for name in (pattern_hook_name(layer), scores_hook_name(layer))
        if name not in names
    ]
    if missing:
        raise HookError(
            f"this {describe(model)}'s attention cannot be hooked: {len(missing)} hook points are missing (e.g. "
            f"{missing[0]!r}). anchorlens needs hook_attn_scores and hook_pattern in every layer; {_LOAD_HINT}"
        )


@contextmanager
def hooked(model: Model, fwd_hooks: Sequence[Hook] = (), bwd_hooks: Sequence[Hook] = ()) -> Iterator[object]:
    """Apply hooks for the block's duration; they are removed on exit, also on error.

    A hook name the model lacks is an error (a TransformerBridge would otherwise skip it silently).

    Args:
        model: a loaded HookedTransformer or TransformerBridge.
        fwd_hooks: ``(hook name, function)`` pairs run in the forward pass (e.g. `isolation_hooks`).
        bwd_hooks: ``(hook name, function)`` pairs run in the backward pass.

    Yields:
        The model with the hooks attached (``with hooked(model, hooks) as hooked_model: ...``).

    Examples:
        >>> import torch, anchorlens as al
        >>> model, shapes = al.random_model(), []
        >>> record = ("blocks.0.attn.hook_pattern", lambda pattern, hook: shapes.append(tuple(pattern.shape)))
        >>> with al.hooked(model, [record]), torch.no_grad():
        ...     _ = model(torch.tensor([[1, 2, 3]]))
        >>> shapes  # [batch, head, query, key]
        [(1, 4, 3, 3)]
    """
    check_hook_names(model, list(fwd_hooks) + list(bwd_hooks))
    with model.hooks(fwd_hooks=list(fwd_hooks), bwd_hooks=list(bwd_hooks)) as hooked_model:
        yield hooked_model


@contextmanager
def frozen_parameters(model: Model) -> Iterator[None]:
    """Turn off parameter gradients (restored on exit): saliency needs ∂L/∂A only, not weight gradients.

    Args:
        model: a loaded HookedTransformer or TransformerBridge.

    Yields:
        No value; use it as ``with frozen_parameters(model): ...``. Every parameter's ``requires_grad`` is
        back as it was afterwards, also on error.

    Examples:
        >>> import anchorlens as al
        >>> model = al.random_model()
        >>> with al.frozen_parameters(model):
        ...     print(any(parameter.requires_grad for parameter in model.parameters()))
        False
        >>> all(parameter.requires_grad for parameter in model.parameters())
        True
    """
    previous = [(parameter, parameter.requires_grad) for parameter in model.parameters()]
    try:
        for parameter, _ in previous:
            parameter.requires_grad_(False)
        yield
    finally:
        for parameter, flag in previous:
            parameter.requires_grad_(flag)


# ---------------------------------------------------------------------------------------------- isolation


def block_earlier_mask(batch: PromptBatch, rows: Sequence[Sequence[int]]) -> Bool[Tensor, "batch query key"]:
    """True at [b, p, j] for every given row position p of prompt b and every j < p (self kept).

    Args:
        batch: the prompts (their padded length).
        rows: per prompt, the positions whose rows are blocked (e.g. ``p.demonstration_label_positions``).

    Returns:
        [batch, query, key] boolean mask, for `isolation_hooks`.

    Examples:
        >>> import anchorlens as al
        >>> _, prompts = al.task_prompts(al.load_tokenizer("smollm2-135m"), "sst2", 42, n_test=1, prepend_bos=False)
        >>> batch = al.make_batch(prompts)
        >>> label = prompts[0].demonstration_label_positions[0]
        >>> mask = al.block_earlier_mask(batch, [[label]])
        >>> bool(mask[0, label, :label].all()), bool(mask[0, label, label:].any()), int(mask.sum()) == label
        (True, False, True)
    """
    seq = batch.seq_len
    is_row = batch.position_mask(rows)  # [batch, query]
    earlier = torch.ones(seq, seq, dtype=torch.bool, device=is_row.device).tril(-1)  # j < p
    return is_row[:, :, None] & earlier[None]


def isolate_hook(blocked: Bool[Tensor, "batch query key"]) -> HookFn:
    """On hook_attn_scores: give blocked entries the most negative score, so softmax makes them exactly 0."""

    def hook(scores: Float[Tensor, "batch head query key"], hook) -> Tensor:
        mask = blocked.to(scores.device)[:, None]
        return scores.masked_fill(mask, torch.finfo(scores.dtype).min)

    return hook


def isolation_hooks(blocked_by_layer: Mapping[int, Bool[Tensor, "batch query key"]]) -> list[Hook]:
    """Isolation in chosen layers; each layer may have its own mask (random controls redraw per layer).

    Args:
        blocked_by_layer: layer → [batch, query, key] mask of the entries to block (`block_earlier_mask`).

    Returns:
        ``(hook name, function)`` pairs on each layer's ``hook_attn_scores``: a blocked entry gets the most
        negative score, so its attention after softmax is exactly 0. Pass them as ``fwd_hooks``.

    Examples:
        >>> import torch, anchorlens as al
        >>> blocked = torch.zeros(1, 5, 5, dtype=torch.bool)  # [batch, query, key]: True where attention is cut
        >>> [name for name, _ in al.isolation_hooks({0: blocked, 1: blocked})]
        ['blocks.0.attn.hook_attn_scores', 'blocks.1.attn.hook_attn_scores']
    """
    return [(scores_hook_name(layer), isolate_hook(mask)) for layer, mask in sorted(blocked_by_layer.items())]


def target_to_label_mask(batch: PromptBatch) -> Bool[Tensor, "batch query key"]:
    """True at [b, q_b, p] for the target q_b of prompt b and each of its demonstration label positions p: the
    entries that carry label → target flow (S_pq). Blocking them leaves the target row its other keys."""
    is_label = batch.position_mask([p.demonstration_label_positions for p in batch.prompts])  # [batch, key]
    targets = batch.target_positions.to(is_label.device)
    is_target = torch.arange(batch.seq_len, device=is_label.device)[None, :] == targets[:, None]  # [batch, query]
    return is_target[:, :, None] & is_label[:, None, :]


def isolate_heads_hook(blocked: Bool[Tensor, "batch query key"], heads: Bool[Tensor, "batch head"]) -> HookFn:
    """`isolate_hook` in chosen heads only: on hook_attn_scores, the entries `blocked` of prompt b get the most
    negative score in the heads where ``heads[b, h]`` is True; other heads are untouched. Each prompt may have
    its own heads (random controls draw them per test input)."""

    def hook(scores: Float[Tensor, "batch head query key"], hook) -> Tensor:
        if heads.shape != scores.shape[:2]:
            raise HookError(
                f"isolate_heads_hook was made for {tuple(heads.shape)} (batch, head), but the attention scores are "
                f"{tuple(scores.shape)} [batch, head, query, key]; build the head mask from this batch and model"
            )
        mask = heads.to(scores.device)[:, :, None, None] & blocked.to(scores.device)[:, None]
        return scores.masked_fill(mask, torch.finfo(scores.dtype).min)

    return hook


def head_isolation_hooks(
    blocked: Bool[Tensor, "batch query key"], heads_by_layer: Mapping[int, Bool[Tensor, "batch head"]]
) -> list[Hook]:
    """`isolate_heads_hook` in each layer that has a head chosen (layers whose mask is all False get no hook)."""
    return [
        (scores_hook_name(layer), isolate_heads_hook(blocked, heads))
        for layer, heads in sorted(heads_by_layer.items())
        if bool(heads.any())
    ]


# --------------------------------------------------------------------------------------------- re-weighting

#: How β enters attention: "pattern" scales the post-softmax pattern (paper), "scores" adds to the pre-softmax scores.
ReweightVariant = Literal["pattern", "scores"]
REWEIGHT_VARIANTS: tuple[str, ...] = get_args(ReweightVariant)


def check_variant(variant: object, option: str = "") -> ReweightVariant:
    """`variant` if it is a `ReweightVariant`, else a one-line error; `option` names where a user set it (a CLI
    flag). Every place a variant enters (config, hooks, saved and loaded β) checks it here."""
    if variant not in REWEIGHT_VARIANTS:
        where = f" ({option})" if option else ""
        raise InvalidConfigError(f"unknown re-weighting variant{where} {variant!r}; use 'pattern' (paper) or 'scores'")
    return cast(ReweightVariant, variant)  # one of REWEIGHT_VARIANTS: checked just above


def _shape_text(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("?" if size is None else str(size) for size in shape) + ")"


def check_beta(
    beta: object,
    *,
    n_layers: int | None = None,
    n_heads: int | None = None,
    n_classes: int | None = None,
    source: str = "β",
) -> None:
    """Refuse a β that cannot mean what re-weighting applies it as: not a floating tensor, not exactly
    (layers, heads, classes) of the model and task (where they are known; torch broadcasting would otherwise
    re-weight only the first layers, or spread one head's values over all heads, without a word), or with a
    NaN or infinite entry. `source` names where β came from in the message (a file, "the fitted β")."""
    expected = _shape_text((n_layers, n_heads, n_classes))
    fix = (
        "a β fits only the model and task it was fitted on: fit one for this model and task "
        "(`anchorlens reweight`, or fit_beta) or load the β file made for them"
    )
    if not isinstance(beta, Tensor):
        raise InvalidConfigError(
            f"{source} must be a torch tensor of shape (layers, heads, classes) = {expected}, got a "
            f"{type(beta).__name__}; load a saved β with anchorlens.experiments.reweight.load_beta"
        )
    if not beta.is_floating_point():
        raise InvalidConfigError(
            f"{source} has dtype {beta.dtype}, but β is a floating-point tensor (save_beta writes float32): "
            "convert it with beta.float()"
        )
    got = tuple(beta.shape)
    wanted = (n_layers, n_heads, n_classes)
    if len(got) != 3 or any(want is not None and size != want for size, want in zip(got, wanted)):
        raise InvalidConfigError(
            f"{source} has shape {_shape_text(got)}, expected (layers, heads, classes) = {expected}; {fix}"
        )
    finite = torch.isfinite(beta.detach())
    if not bool(finite.all()):
        bad = (~finite).nonzero()
        raise InvalidConfigError(
            f"{source} has {len(bad)} non-finite {'entry' if len(bad) == 1 else 'entries'} (NaN or ±inf), the first "
            f"at (layer, head, class) = {tuple(bad[0].tolist())}; refit β (a lower --learning-rate keeps the "
            "training finite)"
        )


def _check_beta_for(beta: object, model: Model | None, n_classes: int) -> None:
    """`check_beta` against `model` when given (layers and heads) and the prompts' class count."""
    cfg = getattr(model, "cfg", None)
    check_beta(
        beta, n_layers=getattr(cfg, "n_layers", None), n_heads=getattr(cfg, "n_heads", None), n_classes=n_classes
    )


def _reweighted(
    tensor: Float[Tensor, "batch head query key"],
    beta: Float[Tensor, "head class"],
    label_mask: Bool[Tensor, "batch class key"] | Float[Tensor, "batch class key"],
    at_target: Bool[Tensor, "batch query"] | None,
    variant: str,
) -> Float[Tensor, "batch head query key"]:
    """`tensor` with the rows marked in `at_target` (every row when None) re-weighted towards the label keys."""
    if tensor.shape[1] != beta.shape[0]:
        raise HookError(
            f"β has {beta.shape[0]} head{'' if beta.shape[0] == 1 else 's'} per layer but this layer's attention "
            f"has {tensor.shape[1]}; a β fits only the model it was fitted on: fit one for this model or pass "
            "model= to reweight_hooks to check it"
        )
    mask = label_mask.to(device=tensor.device, dtype=tensor.dtype)
    beta = beta.to(device=tensor.device, dtype=tensor.dtype)
    per_key = einsum(beta, mask, "head label, batch label key -> batch head key")[:, :, None, :]
    if at_target is None:
        edited = tensor * per_key.exp() if variant == "pattern" else tensor + per_key
    else:
        # `where`, not a 0/1 product: an overflowing exp(β) must not turn the untouched rows into 0 · inf = NaN.
        at = at_target.to(device=tensor.device, dtype=torch.bool)[:, None, :, None]
        if variant == "pattern":
            edited = tensor * torch.where(at, per_key.exp(), torch.ones((), dtype=tensor.dtype, device=tensor.device))
        else:
            edited = tensor + torch.where(at, per_key, torch.zeros((), dtype=tensor.dtype, device=tensor.device))
    check_finite_reweighting(edited, beta, tensor, variant)
    return edited


class NonFiniteReweightingError(InvalidConfigError):
    """Re-weighting made the attention (or the logits after it) NaN or infinite: β is too large for the model's
    dtype, which a lower learning rate avoids. Never a prediction: every place re-weighting runs refuses."""


def beta_too_large(beta: Tensor, where: str, dtype: torch.dtype) -> NonFiniteReweightingError:
    """The one-line error of a re-weighting whose numbers stopped being finite (`NonFiniteReweightingError`)."""
    largest = float(beta.detach().abs().max()) if beta.numel() else 0.0
    limit = float(torch.log(torch.tensor(torch.finfo(dtype).max, dtype=torch.float64)))
    return NonFiniteReweightingError(
        f"re-weighting made {where} non-finite (NaN or ±inf): β is too large for this model's {dtype} "
        f"(largest |β| {largest:.3g}; exp(β) overflows above {limit:.1f}), so no prediction is made; refit β with "
        "a lower --learning-rate (paper 0.01) or fewer --epochs"
    )


def check_finite_reweighting(edited: Tensor, beta: Tensor, original: Tensor, variant: str) -> None:
    """Refuse a re-weighted attention tensor with a NaN or ±inf entry its input did not have: an overflowing
    exp(β) (or β added to the scores) would otherwise flow on to NaN logits and a prediction of class 0.
    Masked pre-softmax scores are -inf by design, so only new non-finite entries count."""
    new = ~torch.isfinite(edited) & torch.isfinite(original)
    if variant == "pattern":
        new = new | torch.isnan(edited)  # a pattern is never -inf; a NaN that came in is a NaN all the same
    if bool(new.any()):
        raise beta_too_large(beta, "the attention", edited.dtype)


def reweight_hook(
    beta: Float[Tensor, "head class"],
    batch: PromptBatch,
    variant: ReweightVariant = "pattern",
) -> HookFn:
    """Scale the target row's attention to each class's label positions by exp(β[h, c]).

    ``variant="pattern"`` (the paper's form, on hook_pattern): Â(q, p_c) = exp(β) · A(q, p_c), all other entries
    unchanged and no renormalisation. ``variant="scores"`` (on hook_attn_scores) adds β to those pre-softmax
    scores instead, which renormalises the row: the same only when nothing else in the row matters.
    The edit is a product with a tensor of ones except at the target rows, so β receives gradients.

    Generation: keys beyond the batch's positions are tokens generated after the prompt. Every row from the
    target on predicts a next token, so each is re-weighted like the target (towards the same label keys):
    with a key/value cache a step has one query row (the newest token) over all earlier keys, without one the
    whole sequence is recomputed, and both give the same logits. Generation needs each prompt's target to be
    its last token (no right padding), else the generated tokens would follow the padding.
    """
    seq = batch.seq_len
    targets = batch.target_positions.cpu()
    ends_at_target = bool((targets == seq - 1).all())

    def hook(tensor: Float[Tensor, "batch head query key"], hook) -> Tensor:
        rows, keys = tensor.shape[-2], tensor.shape[-1]
        if tensor.shape[0] != batch.size or keys < seq or rows > keys:
            raise HookError(
                f"reweight_hook was made for a batch of {batch.size} prompts of {seq} tokens, but the attention is "
                f"{tuple(tensor.shape)} [batch, head, query, key]; run the batch's tokens (optionally followed by "
                "generated tokens) with this hook"
            )
        if keys > seq and not ends_at_target:
            padded = int((targets != seq - 1).nonzero()[0, 0])
            raise HookError(
                f"generating after a right-padded batch: prompt {padded}'s target is position "
                f"{int(targets[padded])}, not the last of {seq}, so generated tokens would follow padding; "
                "generate one prompt at a time (or from prompts of equal length)"
            )
        # Query row i sits at position keys - rows + i (a cached step's rows come after the cached keys).
        positions = torch.arange(keys - rows, keys, device=tensor.device)
        at_target = (positions[None, :] == targets.to(tensor.device)[:, None]) | (positions[None, :] >= seq)
        mask = batch.label_mask
        if keys > seq:  # generated tokens are never label words
            mask = torch.nn.functional.pad(mask.to(tensor.dtype), (0, keys - seq))
        return _reweighted(tensor, beta, mask, at_target, variant)

    return hook


def target_row_reweight_hook(
    beta: Float[Tensor, "head class"],
    label_mask: Bool[Tensor, "batch class key"],
    variant: ReweightVariant = "pattern",
    target_rows: Int[Tensor, " batch"] | None = None,
) -> HookFn:
    """`reweight_hook` for a run whose earlier positions come from a key/value cache, so that query rows and key
    columns no longer share indices: `label_mask` covers the keys (cached positions, then the query's own), and
    the target is query row `target_rows[b]`, or the only query row when `target_rows` is None (β fitting
    reuses one frozen cache of each training prompt's prefix for every step; evaluation caches the
    demonstrations all test inputs share).

    β touches only the target row, so the cached rows are exactly those of a full run under the same β.
    """

    def hook(tensor: Float[Tensor, "batch head query key"], hook) -> Tensor:
        if tensor.shape[-1] != label_mask.shape[-1] or (target_rows is None and tensor.shape[-2] != 1):
            expected = "one query row" if target_rows is None else "query rows"
            raise HookError(
                f"target_row_reweight_hook expects {expected} over {label_mask.shape[-1]} keys, got "
                f"{tuple(tensor.shape)}; run the query against the cached prefix the label mask was made for"
            )
        if target_rows is None:
            return _reweighted(tensor, beta, label_mask, None, variant)
        rows = torch.arange(tensor.shape[-2], device=tensor.device)
        at_target = rows[None, :] == target_rows.to(tensor.device)[:, None]
        return _reweighted(tensor, beta, label_mask, at_target, variant)

    return hook


def reweight_hooks(
    beta: Float[Tensor, "layer head class"],
    batch: PromptBatch,
    variant: ReweightVariant = "pattern",
    layers: Iterable[int] | None = None,
    *,
    model: Model | None = None,
) -> list[Hook]:
    """Every layer's `reweight_hook` (or those in `layers`), β indexed by layer.

    β is checked here: floating, finite, and exactly (layers, heads, classes) of `model` and the batch's
    classes. Pass `model`: without it only the classes are checked here and the heads when the hooks run,
    so a β with too few layers would re-weight only those.

    The hooks also work during generation, with or without a key/value cache (`reweight_hook`).

    Args:
        beta: [layer, head, class], e.g. from `fit_beta` or `load_beta`.
        batch: the prompts the hooks are for (their targets and label positions).
        variant: ``"pattern"`` (exp(β) times the attention after softmax, the paper's) or ``"scores"`` (β added
            before the softmax).
        layers: the layers to re-weight (default all).
        model: the model, to check β's layers and heads against it.

    Returns:
        ``(hook name, function)`` pairs on ``hook_pattern`` (or ``hook_attn_scores``) of each layer; pass them as
        ``fwd_hooks``.

    Examples:
        >>> import torch, anchorlens as al
        >>> model = al.random_model()
        >>> batch = al.make_batch(al.task_prompts(model, "sst2", 42, n_test=2)[1])
        >>> beta = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, 2)  # [layer, head, class]
        >>> reweighted = al.run_to_target(model, batch, al.reweight_hooks(beta, batch))
        >>> torch.allclose(reweighted, al.run_to_target(model, batch))  # exp(0) = 1 leaves the attention as it is
        True
    """
    check_variant(variant)
    _check_beta_for(beta, model, batch.label_mask.shape[1])
    name = pattern_hook_name if variant == "pattern" else scores_hook_name
    chosen = _beta_layers(beta, model, layers)
    return [(name(layer), reweight_hook(beta[layer], batch, variant)) for layer in chosen]


def _beta_layers(beta: Tensor, model: Model | None, layers: Iterable[int] | None) -> list[int]:
    if model is not None:
        return _layers(model, layers)
    chosen = list(range(beta.shape[0])) if layers is None else sorted(set(int(layer) for layer in layers))
    bad = [layer for layer in chosen if not 0 <= layer < beta.shape[0]]
    if bad:
        raise InvalidConfigError(f"layers {bad} are not in β, which has layers 0..{beta.shape[0] - 1}")
    return chosen


def target_row_reweight_hooks(
    beta: Float[Tensor, "layer head class"],
    label_mask: Bool[Tensor, "batch class key"],
    variant: ReweightVariant = "pattern",
    target_rows: Int[Tensor, " batch"] | None = None,
    *,
    model: Model | None = None,
) -> list[Hook]:
    """Every layer's `target_row_reweight_hook` (see there: queries run against a cached prefix); β checked as
    in `reweight_hooks`."""
    check_variant(variant)
    _check_beta_for(beta, model, label_mask.shape[1])
    name = pattern_hook_name if variant == "pattern" else scores_hook_name
    return [
        (name(layer), target_row_reweight_hook(beta[layer], label_mask, variant, target_rows))
        for layer in range(beta.shape[0])
    ]


# ----------------------------------------------------------------------------------------------- recorders


class LabelAttentionRecorder:
    """Records A_l(q, p_c): the target's post-softmax attention to each class's label positions, summed over
    that class's demonstrations, per head. ``values`` is [batch, layer, head, class]: always per head (the
    paper's A_l is ``values.sum(2)``; per-head AUROC reads it as it is)."""

    def __init__(self, model: Model, batch: PromptBatch, layers: Iterable[int] | None = None):
        self.batch = batch
        self.layers = _layers(model, layers)
        self._by_layer: dict[int, Tensor] = {}

    def _hook(self, layer: int) -> HookFn:
        def hook(pattern: Float[Tensor, "batch head query key"], hook) -> None:
            rows = torch.arange(pattern.shape[0], device=pattern.device)
            target_row = pattern[rows, :, self.batch.target_positions.to(pattern.device)]  # [batch, head, key]
            label_mask = self.batch.label_mask.to(device=pattern.device, dtype=pattern.dtype)
            summed = einsum(target_row, label_mask, "batch head key, batch label key -> batch head label")
            self._by_layer[layer] = summed.detach()

        return hook

    def hooks(self) -> list[Hook]:
        return [(pattern_hook_name(layer), self._hook(layer)) for layer in self.layers]

    @property
    def values(self) -> Float[Tensor, "batch layer head class"]:
        if len(self._by_layer) != len(self.layers):
            raise HookError(
                "the label-attention hooks did not fire in every layer; run the model with recorder.hooks()"
            )
        return torch.stack([self._by_layer[layer] for layer in self.layers], dim=1)


class SaliencyRecorder:
    """Reduces the saliency I_l = |Σ_h A_{h,l} ⊙ ∂L/∂A_{h,l}| inside the backward pass.

    ``region_weights[b, r]`` is a [query, key] weight map per region r (0/1 masks for S_wp, S_pq, S_ww); the
    recorder keeps Σ_{i,j} I_l[i, j] · weight[b, r, i, j] per layer, [batch, layer, region]. With
    ``abs_per_head`` it uses Σ_h |A ⊙ ∂L/∂A| instead. Under `frozen_parameters` no weight gradient is
    computed: the graph starts at the first recorded pattern.

    ``per_head=True`` keeps every head apart: a head's saliency is I_{l,h} = |A_{h,l} ⊙ ∂L/∂A_{h,l}|, and
    ``values`` is [batch, layer, head, region]. The paper sums the heads before the absolute value; a head is
    one term of that sum, so per head the two orders coincide (``abs_per_head`` changes nothing). Summed over
    heads, the per-head values are the ``abs_per_head=True`` layer values, not the paper's |Σ_h ...|.
    """

    def __init__(
        self,
        model: Model,
        region_weights: Float[Tensor, "batch region query key"],
        *,
        abs_per_head: bool = False,
        per_head: bool = False,
        layers: Iterable[int] | None = None,
    ):
        self.region_weights = region_weights
        self.abs_per_head = abs_per_head
        self.per_head = per_head
        self.layers = _layers(model, layers)
        self._by_layer: dict[int, Tensor] = {}

    def _reduce(self, layer: int, pattern: Tensor) -> Callable[[Tensor], None]:
        # The closure must hold the values without the graph: holding `pattern` itself makes a cycle through
        # its gradient hook that Python's collector cannot see, and every batch's autograd graph leaked (RSS
        # grew by about 200 MB a batch on SmolLM2 and 200 TREC prompts reached 16.8 GB).
        values = pattern.detach()

        def on_grad(grad: Tensor) -> None:
            product = values * grad  # [batch, head, query, key]
            weights = self.region_weights.to(device=product.device, dtype=product.dtype)
            if self.per_head:
                summed = einsum(
                    product.abs(), weights, "batch head query key, batch region query key -> batch head region"
                )
            else:
                saliency = product.abs().sum(1) if self.abs_per_head else product.sum(1).abs()
                summed = einsum(saliency, weights, "batch query key, batch region query key -> batch region")
            self._by_layer[layer] = summed.detach()

        return on_grad

    def _hook(self, layer: int) -> HookFn:
        def hook(pattern: Float[Tensor, "batch head query key"], hook) -> Tensor:
            if not pattern.requires_grad:
                # Frozen parameters: nothing upstream needs a gradient, so the first recorded pattern can be
                # the graph's leaf. Later patterns depend on it and stay in the graph: ∂L/∂A of an early
                # layer must also flow through the queries and keys of later layers.
                pattern = pattern.detach().requires_grad_(True)
            pattern.register_hook(self._reduce(layer, pattern))
            return pattern

        return hook

    def hooks(self) -> list[Hook]:
        return [(pattern_hook_name(layer), self._hook(layer)) for layer in self.layers]

    @property
    def values(self) -> Float[Tensor, "batch layer region"] | Float[Tensor, "batch layer head region"]:
        """[batch, layer, region], or [batch, layer, head, region] with ``per_head``."""
        if len(self._by_layer) != len(self.layers):
            raise HookError(
                "saliency gradients did not reach every attention pattern; call loss.backward() after a forward "
                "pass run with recorder.hooks()"
            )
        return torch.stack([self._by_layer[layer] for layer in self.layers], dim=1)


# ----------------------------------------------------------------------------------------------- canaries


#: The models `verify_attention_hooks` has passed, held weakly (a model is forgotten when it is freed): the
#: check runs once per model and process, and nothing is written onto the user's model.
_VERIFIED: weakref.WeakSet[Model] = weakref.WeakSet()


def verify_attention_hooks(model: Model, *, again: bool = False) -> None:
    """Prove on a short input that the attention hooks act, in every layer (once per model and process).

    Three checks, each a `HookError` naming the model class and the fix when it fails:

    1. every layer's ``hook_attn_scores`` and ``hook_pattern`` exist and run in a forward pass, on
       ``[batch, head, query, key]`` tensors;
    2. isolating every row from earlier tokens on ``hook_attn_scores`` changes the logits;
    3. a gradient from the logits reaches an edit made in each layer's ``hook_attn_scores`` and in each layer's
       ``hook_pattern`` (so what a hook returns is what the layer uses, and saliency's ∂L/∂A arrives).

    A model whose hook points exist but are bypassed (fused attention, a wrapper that ignores hooks, a hook
    point run on a copy) would otherwise make every intervention a silent no-op.

    Args:
        model: a loaded HookedTransformer or TransformerBridge.
        again: check a model that passed before once more (e.g. after its attention was replaced); by default a
            model that passed in this process is not checked again.

    Raises:
        HookError: a check failed (the message names the model class and the fix).

    Examples:
        >>> import anchorlens as al
        >>> al.verify_attention_hooks(al.random_model())  # silent; a HookError naming the fix where a hook does not act
    """
    require_attention_hooks(model)  # first: what is not a TransformerLens model (nor weakly referable) stops here
    if not again and model in _VERIFIED:
        return
    kind = describe(model)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    device = next(model.parameters()).device
    tokens = torch.arange(1, 7, device=device)[None] % model.cfg.d_vocab
    seq = tokens.shape[1]
    names = [name for layer in range(n_layers) for name in (scores_hook_name(layer), pattern_hook_name(layer))]

    shapes: dict[str, tuple[int, ...]] = {}

    def record(tensor: Tensor, hook) -> None:
        shapes[hook.name] = tuple(tensor.shape)

    with torch.no_grad():
        plain = model.run_with_hooks(tokens, fwd_hooks=[(name, record) for name in names])
    silent = [name for name in names if name not in shapes]
    if silent:
        raise HookError(
            f"the hook point {silent[0]!r} of this {kind} exists but did not run in a forward pass"
            + (f" ({len(silent)} such hook points)" if len(silent) > 1 else "")
            + f": its attention bypasses the TransformerLens hooks (fused or replaced attention?); {_LOAD_HINT}"
        )
    wrong = {name: shape for name, shape in shapes.items() if shape != (1, n_heads, seq, seq)}
    if wrong:
        name, shape = next(iter(wrong.items()))
        raise HookError(
            f"{name!r} of this {kind} carries a tensor of shape {shape}, not [batch, head, query, key] = "
            f"{(1, n_heads, seq, seq)}; the anchorlens recipes would index it wrongly. {_LOAD_HINT}"
        )

    blocked = torch.ones(1, seq, seq, dtype=torch.bool, device=device).tril(-1)
    with torch.no_grad():
        blocked_everywhere = isolation_hooks({layer: blocked for layer in range(n_layers)})
        # TransformerLens types fwd_hooks as an invariant List[Tuple[str | Callable, Callable]], which no list of
        # (str, hook) pairs matches: its type is too narrow, not the hooks.
        edited = model.run_with_hooks(tokens, fwd_hooks=blocked_everywhere)  # type: ignore[arg-type]
    if torch.allclose(plain, edited):
        raise HookError(
            f"an edit of hook_attn_scores did not change the logits: this {kind}'s attention ignores what the "
            f"TransformerLens hooks return (fused attention?); {_LOAD_HINT}"
        )

    generator = probe_generator()
    direction = torch.randn(seq, seq, generator=generator).to(device)  # not constant along rows: softmax would drop it
    probes = {name: torch.zeros((), device=device, requires_grad=True) for name in names}

    def probe(tensor: Tensor, hook) -> Tensor:
        nudge = probes[hook.name] * direction.to(tensor.dtype)
        return tensor + nudge if hook.name.endswith("hook_attn_scores") else tensor * (1 + nudge)

    readout = torch.randn(model.cfg.d_vocab, generator=generator).to(device)
    with frozen_parameters(model), torch.enable_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=[(name, probe) for name in names])
        (logits[0, -1].float() @ readout[: logits.shape[-1]].float()).backward()
    unused = [
        name
        for name, value in probes.items()
        if value.grad is None or not bool(torch.isfinite(value.grad) & (value.grad != 0))
    ]
    if unused:
        raise HookError(
            f"an edit of {unused[0]!r} did not reach the logits of this {kind}"
            + (f" ({len(unused)} hook points like it)" if len(unused) > 1 else "")
            + ": the layer computes on without what the hook returned, so edits there would be silent no-ops "
            f"and saliency gradients would not arrive; {_LOAD_HINT}"
        )
    _VERIFIED.add(model)
