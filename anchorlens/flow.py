"""One prompt's information flow, seen whole: every layer's full saliency matrix I_l (paper §2.1, Fig. 1/2).

The saliency experiment reduces I_l = |Σ_h A_{h,l} ⊙ ∂L/∂A_{h,l}| to three means inside the backward pass and
keeps no map. For a single prompt the whole [layer, query, key] matrix is small (30 layers of 100 × 100 tokens
is 1.2 MB), so `prompt_flow` keeps it: which text tokens feed which label word, and how much each label word
feeds the target. Same loss (cross-entropy over the C label logits at the target against the gold class), same
hook points (``hook_pattern``), same forward (`run_to_target`) and frozen parameters as the experiment, so the
three means of a `PromptFlow` are the experiment's values for that prompt at batch size 1.

Roles come from the prompt's tracked positions, never from the token strings: ``label word`` (p, the first
token of a demonstration's label word), ``target`` (q), ``text`` (demonstration text), ``query text`` and
``formatting`` (template words, newlines, later tokens of a multi-token label word, BOS).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from anchorlens.errors import HookError, InvalidConfigError, PromptTooLongError, TokenizationError
from anchorlens.forward import run_to_target
from anchorlens.hooks import Hook, frozen_parameters, pattern_hook_name, verify_attention_hooks
from anchorlens.model_classes import Model, warn_if_value_biases_folded
from anchorlens.prompts import Prompt, Role, label_logits, label_loss, make_batch

# The regions are a fact of the prompt (`anchorlens.regions`); their names here keep working.
from anchorlens.regions import REGIONS as REGIONS
from anchorlens.regions import region_masks as region_masks

#: What a token is, as the figure and the tidy rows name it.
ROLE_NAMES = ("text", "query text", "label word", "formatting", "target")
_ROLE_OF = {
    Role.TEXT: "text",
    Role.QUERY_TEXT: "query text",
    Role.LABEL: "label word",
    Role.FORMAT: "formatting",
    Role.QUERY_FORMAT: "formatting",
    Role.SEPARATOR: "formatting",
    Role.LABEL_REST: "formatting",
    Role.BOS: "formatting",
}


def role_names(prompt: Prompt) -> tuple[str, ...]:
    """Each token's role name (`ROLE_NAMES`), from the prompt's tracked roles and target position."""
    return tuple(
        "target" if position == prompt.target_position else _ROLE_OF[role] for position, role in enumerate(prompt.roles)
    )


@dataclass(frozen=True, eq=False)
class PromptFlow:
    """The saliency flow of one prompt: I_l for every layer, the tokens and their roles, and the three means.

    ``saliency[l, i, j]`` is I_l[i, j], the flow from key position j into query position i in layer l (zero on
    and above the diagonal). ``S_wp``, ``S_pq``, ``S_ww`` are the per-layer means over the SPEC §1 sets (NaN for
    a set the prompt does not have, e.g. S_wp and S_pq without demonstrations).
    """

    prompt: Prompt
    #: Each token decoded alone (spaces and newlines kept).
    tokens: tuple[str, ...]
    #: Each token's role name (`ROLE_NAMES`).
    roles: tuple[str, ...]
    saliency: Float[Tensor, "layer query key"]
    S_wp: Float[Tensor, " layer"]
    S_pq: Float[Tensor, " layer"]
    S_ww: Float[Tensor, " layer"]
    #: The first token of each class's label word, decoded (class-id order).
    label_words: tuple[str, ...]
    #: Gold class of the query (the loss's target) and the class the model predicts.
    gold: int
    prediction: int
    #: False: |Σ_h A ⊙ ∂L/∂A| (the paper); True: Σ_h |A ⊙ ∂L/∂A|.
    abs_per_head: bool = False

    @property
    def n_layers(self) -> int:
        return int(self.saliency.shape[0])

    def region_means(self) -> pd.DataFrame:
        """One row per layer: ``layer, S_wp, S_pq, S_ww`` (un-normalised, as the experiment's per-example rows)."""
        return pd.DataFrame(
            {
                "layer": np.arange(self.n_layers),
                "S_wp": self.S_wp.double().numpy(),
                "S_pq": self.S_pq.double().numpy(),
                "S_ww": self.S_ww.double().numpy(),
            }
        )

    def mean_over(self, layers: Iterable[int]) -> Float[Tensor, "query key"]:
        """I averaged over `layers` (what the figure draws for a layer range)."""
        chosen = _checked_layers(list(layers), self.n_layers)
        if not chosen:
            raise InvalidConfigError("mean_over needs at least one layer; pass e.g. range(flow.n_layers)")
        return self.saliency[chosen].double().mean(0)

    def to_frame(self) -> pd.DataFrame:
        """Tidy rows, one per layer and causal pair (target query position > source key position):
        ``layer, source, target, source_token, target_token, source_role, target_role, saliency, region``
        (region: which of S_wp, S_pq, S_ww the entry counts towards)."""
        seq = self.prompt.length
        target, source = np.tril_indices(seq, -1)
        masks = region_masks(self.prompt).numpy()[:, target, source]  # [3, pair]
        region = np.select(list(masks), list(REGIONS), default="")
        tokens, roles = np.asarray(self.tokens, dtype=object), np.asarray(self.roles, dtype=object)
        n_pairs = len(target)
        layer = np.repeat(np.arange(self.n_layers), n_pairs)
        return pd.DataFrame(
            {
                "layer": layer,
                "source": np.tile(source, self.n_layers),
                "target": np.tile(target, self.n_layers),
                "source_token": np.tile(tokens[source], self.n_layers),
                "target_token": np.tile(tokens[target], self.n_layers),
                "source_role": np.tile(roles[source], self.n_layers),
                "target_role": np.tile(roles[target], self.n_layers),
                "saliency": self.saliency[:, target, source].double().numpy().reshape(-1),
                "region": np.tile(region, self.n_layers),
            }
        )


class SaliencyMapRecorder:
    """Keeps the full I_l = |Σ_h A_{h,l} ⊙ ∂L/∂A_{h,l}| of every layer, [batch, layer, query, key].

    `anchorlens.hooks.SaliencyRecorder` reduces I_l to region sums inside the backward pass so that long runs
    hold no map; one prompt's flow needs the map itself. The gradient is taken exactly as there: the first
    recorded pattern becomes the graph's leaf under frozen parameters, later patterns stay in the graph (∂L/∂A of
    an early layer also flows through later layers' queries and keys), and the gradient hook closes over the
    detached values, never the pattern (a pattern held by its own hook is a cycle the collector cannot see).
    """

    def __init__(self, model: Model, *, abs_per_head: bool = False):
        self.abs_per_head = abs_per_head
        self.n_layers = int(model.cfg.n_layers)
        self._by_layer: dict[int, Tensor] = {}

    def _keep(self, layer: int, pattern: Tensor) -> Callable[[Tensor], None]:
        values = pattern.detach()

        def on_grad(grad: Tensor) -> None:
            product = values * grad  # [batch, head, query, key]
            saliency = product.abs().sum(1) if self.abs_per_head else product.sum(1).abs()
            self._by_layer[layer] = saliency.detach()

        return on_grad

    def _hook(self, layer: int) -> Callable[[Tensor, object], Tensor]:
        def hook(pattern: Float[Tensor, "batch head query key"], hook) -> Tensor:
            if not pattern.requires_grad:
                pattern = pattern.detach().requires_grad_(True)
            pattern.register_hook(self._keep(layer, pattern))
            return pattern

        return hook

    def hooks(self) -> list[Hook]:
        return [(pattern_hook_name(layer), self._hook(layer)) for layer in range(self.n_layers)]

    @property
    def values(self) -> Float[Tensor, "batch layer query key"]:
        if len(self._by_layer) != self.n_layers:
            raise HookError(
                "saliency gradients did not reach every attention pattern; call loss.backward() after a forward "
                "pass run with recorder.hooks()"
            )
        return torch.stack([self._by_layer[layer] for layer in range(self.n_layers)], dim=1)


def _check_prompt(model: Model, prompt: Prompt) -> None:
    if not isinstance(prompt, Prompt):
        raise InvalidConfigError(
            f"prompt_flow takes one Prompt, got a {type(prompt).__name__}; build one with anchorlens.build_prompt "
            "(for several prompts, call prompt_flow once per prompt)"
        )
    if prompt.query_label is None:
        raise InvalidConfigError(
            "this prompt has no gold label, and the saliency loss is the cross-entropy of the gold label word at "
            "the target; build it with build_prompt(..., query_label=<class id>)"
        )
    n_ctx = int(model.cfg.n_ctx)
    if prompt.length > n_ctx:
        raise PromptTooLongError(
            f"the prompt is {prompt.length} tokens, longer than the model's context of {n_ctx}; build it with "
            "fewer or shorter demonstrations (build_prompt(..., max_length=model.cfg.n_ctx) checks this)"
        )
    d_vocab = int(model.cfg.d_vocab)
    largest = max(prompt.token_ids + prompt.label_token_ids)
    if largest >= d_vocab:
        raise TokenizationError(
            f"the prompt holds token id {largest}, outside this model's vocabulary of {d_vocab}: it was built with "
            "another tokenizer; build it with model.tokenizer"
        )


def prompt_flow(model: Model, prompt: Prompt, *, abs_per_head: bool = False) -> PromptFlow:
    """Every layer's saliency matrix I_l for one prompt, from one forward and one backward pass.

    The loss is the cross-entropy over the C label logits at the target against the prompt's gold class; model
    parameters are frozen for the pass (no weight gradients; restored after). Runs under gradients even inside
    ``torch.no_grad()``.

    Args:
        model: a loaded HookedTransformer or TransformerBridge (its parameters are left unchanged).
        prompt: one prompt with a gold label (``query_label``): the loss is its gold label word's cross-entropy.
        abs_per_head: Σ_h |A ⊙ ∂L/∂A| instead of the paper's |Σ_h A ⊙ ∂L/∂A|.

    Returns:
        `PromptFlow` on the CPU: tokens, roles, ``saliency`` [layer, query, key] (float32, diagonal 0) and the
        per-layer means ``S_wp``, ``S_pq``, ``S_ww`` [layer] (float64), the label words, gold class and
        prediction; ``to_frame()`` gives tidy rows, `anchorlens.plots.plot_flow` draws it.

    Examples:
        >>> import anchorlens as al
        >>> model = al.random_model()
        >>> flow = al.prompt_flow(model, al.task_prompts(model, "sst2", 42, n_test=1)[1][0])
        >>> flow.saliency.shape[0], flow.saliency.shape[1] == flow.saliency.shape[2]  # [layer, query, key]
        (2, True)
    """
    _check_prompt(model, prompt)
    verify_attention_hooks(model)
    warn_if_value_biases_folded(model)
    device = next(model.parameters()).device
    batch = make_batch([prompt], device=device)
    recorder = SaliencyMapRecorder(model, abs_per_head=abs_per_head)
    with frozen_parameters(model), torch.enable_grad():
        logits = run_to_target(model, batch, recorder.hooks())
        label_loss(logits, batch, reduction="sum").backward()
    prediction = int(label_logits(logits.detach(), batch).argmax(-1)[0])
    saliency = recorder.values[0].float().cpu()  # [layer, query, key]
    # The diagonal is no flow between tokens (SPEC §1).
    saliency = saliency.masked_fill(torch.eye(prompt.length, dtype=torch.bool), 0.0)
    masks = region_masks(prompt)
    counts = masks.sum((-1, -2)).double()
    sums = torch.einsum("lqk,rqk->lr", saliency.double(), masks.double())
    means = sums / counts  # NaN where a set is empty
    tokenizer = model.tokenizer
    # _check_prompt refused a prompt without a gold label; the model tokenized the prompt, so it has a tokenizer.
    assert tokenizer is not None and prompt.query_label is not None
    return PromptFlow(
        prompt=prompt,
        tokens=tuple(tokenizer.batch_decode([[token_id] for token_id in prompt.token_ids])),
        roles=role_names(prompt),
        saliency=saliency,
        S_wp=means[:, 0],
        S_pq=means[:, 1],
        S_ww=means[:, 2],
        label_words=tuple(tokenizer.batch_decode([[token_id] for token_id in prompt.label_token_ids])),
        gold=int(prompt.query_label),
        prediction=prediction,
        abs_per_head=abs_per_head,
    )


def _checked_layers(layers: list, n_layers: int) -> list[int]:
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= layer < n_layers:
            raise InvalidConfigError(
                f"layer {layer!r} is not in this model, which has layers 0..{n_layers - 1}; choose layers between 0 "
                f"and {n_layers - 1} (or layers=None for the shallow, middle and deep thirds and every layer)"
            )
    return sorted(set(int(layer) for layer in layers))


def _range_name(layers: list[int]) -> str:
    if len(layers) == 1:
        return f"layer {layers[0]}"
    if layers == list(range(layers[0], layers[-1] + 1)):
        return f"layers {layers[0]}–{layers[-1]}"
    return "layers " + ", ".join(str(layer) for layer in layers)


def layer_views(
    n_layers: int, layers: Mapping[str, Iterable[int]] | Iterable[int | Iterable[int]] | int | None = None
) -> dict[str, tuple[int, ...]]:
    """The layer ranges a flow figure offers, name → layers (each range is averaged into one view).

    None: the shallow, middle and deep thirds (a third is ``max(n_layers // 3, 1)`` layers, as the saliency
    experiment's depth summary), then every layer alone. A mapping is taken as given; otherwise each item is a
    layer (a view of its own) or an iterable of layers (one range).
    """
    if layers is None:
        third = max(n_layers // 3, 1)
        thirds = {
            "shallow": range(third),
            "middle": range(third, n_layers - third),
            "deep": range(n_layers - third, n_layers),
        }
        defaults = {f"{name} ({_range_name(list(chosen))})": tuple(chosen) for name, chosen in thirds.items() if chosen}
        defaults.update({f"layer {layer}": (layer,) for layer in range(n_layers)})
        return defaults
    items: list[tuple[str | None, list]]  # (the range's name, or None to name it by its layers; its layers)
    if isinstance(layers, Mapping):
        items = [(str(name), list(chosen)) for name, chosen in layers.items()]
    else:
        items = [(None, list(item) if _is_range(item) else [item]) for item in _items(layers)]
    views: dict[str, tuple[int, ...]] = {}
    for name, chosen in items:
        checked = _checked_layers(chosen, n_layers)
        if not checked:
            raise InvalidConfigError(
                f"the layer range {name or chosen!r} is empty; give each range at least one layer in 0..{n_layers - 1}"
            )
        views[name or _range_name(checked)] = tuple(checked)
    if not views:
        raise InvalidConfigError(f"layers selects no layer range; pass layers in 0..{n_layers - 1} or layers=None")
    return views


def _is_range(item) -> bool:
    return isinstance(item, Iterable) and not isinstance(item, str)


def _items(layers) -> list:
    if isinstance(layers, (int, np.integer)):
        return [layers]
    if isinstance(layers, str) or not isinstance(layers, Iterable):
        raise InvalidConfigError(
            f"layers must be layer numbers, ranges of them or a mapping name → layers, got {layers!r}; e.g. "
            "layers=[range(0, 4), 10] or layers=None"
        )
    return list(layers)
