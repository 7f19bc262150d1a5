"""A pruned key/value cache of a prompt's demonstrations, queried at original positions (SPEC §5).

Used by anchor-only compression (`anchorlens.experiments.compress`) and by re-weighting's prefix cache
(`anchorlens.experiments.reweight`).

Design: a pruned key/value cache, not cached residual streams
------------------------------------------------------------
Attention is the only way earlier positions reach the query, and it reads them only through their keys and
values, so keeping a position's per-layer key and value keeps everything it contributes. Caching residual
streams instead would make the query run recompute keys and values (and the MLPs) of the kept positions in
every layer for every test input; a key/value cache makes the query side cost only the query's own tokens.
It is TransformerLens's own `TransformerLensKeyValueCache`: one plain forward of the demonstration tokens
fills it (`cache_demonstrations`), `AnchorCache.keep` selects the kept positions (index selection on the
per-layer tensors), and the query runs through `model.run_with_hooks(..., past_kv_cache=...)` with the cache
frozen, so it is reused unchanged for every test input (`run_query_with_cache`). Batches of queries share one
cache, expanded (a view, no copy) to the batch size; queries are right-padded.

Several caches of the same demonstrations with the same number of kept positions (compression's random
draws) run together as a `CacheStack` (`run_queries_with_caches`): each cache becomes a block of batch rows
holding the same query batch, so one forward pass serves every cache. Rows never attend to each other, so
the numbers are those of one cache at a time.

Original positions
------------------
With a cache TransformerLens always derives position ids from an attention mask, ``cumsum(mask) - 1`` over
the cached positions followed by the new ones (`utilities.get_offset_position_ids`): rotary models rotate
the cached keys (stored before rotary) and the new queries with those ids in every layer, and learned
positional embeddings (GPT-2) are read at those ids by ``PosEmbed``. The cache's mask therefore holds the
*gaps* between consecutive kept positions instead of ones (kept positions 0, 1, 5 give the mask 1, 1, 4), and
the query's mask starts with the gap from the last kept position to the query's first original position.
So every cached key is rotated with its own original position and the query with its original positions,
with each layer's own rotary table (Gemma's local layers have their own base, ``cfg.rotary_base_local``),
and a GPT-2-like query gets ``W_pos`` at its original positions; the cached keys and values of a learned-
position model already hold their positions from the demonstration run. No position is renumbered and no
model code is replaced; attention masking only asks the mask to be non-zero where attended. Padding is 0.
The mask is per batch row, so caches with different kept positions can share a pass.

On a TransformerBridge (transformer-lens 4.x's only class, and 3.9's second one) the cache is the one the bridge
really uses: Hugging Face's own `transformers.DynamicCache`, which the bridge's attention extends with the new
keys and values in every layer. Hugging Face caches keys *after* rotary, so a kept key keeps the rotation of its
original position without any mask arithmetic; the query gets its original positions as explicit
``position_ids`` and an all-ones mask over the kept positions (padding 0). The cache is built without a model
config, so sliding-window layers keep every position (Hugging Face's own cache would drop all but the last
window of a long prompt). `cache_demonstrations` checks that the bridge filled the cache in every layer: with
transformers 5.24 and later a bridge of transformer-lens <= 4.3 does not (the attention receives the cache
under a name it does not read), which would silently drop every cached position, so it is refused instead.

Two things TransformerLens computes from cache *indices* rather than position ids are handled or refused:
a sliding window (local layers) gets a score hook that applies the window to the original positions,
needed only when the prompt is longer than the window; dynamic NTK rotary scaling and log-n attention
scaling (Qwen-1), ALiBi and shortformer positions are refused. The key tests
(`tests/experiments/test_compress.py`) check that keeping every position reproduces the full prompt's
logits and that keeping the anchors equals the full prompt with the query's attention to the dropped
positions masked out, on rotary and learned-position models.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from einops import rearrange, repeat
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import TransformerLensKeyValueCache, TransformerLensKeyValueCacheEntry

from anchorlens.errors import InvalidConfigError, UnsupportedModelError
from anchorlens.forward import bridge_final_residual, final_logits
from anchorlens.hooks import Hook, scores_hook_name
from anchorlens.model_classes import Model, is_bridge
from anchorlens.prompts import Prompt


@dataclass(frozen=True)
class AnchorCache:
    """Per-layer keys and values of the demonstrations at the kept positions only (keys before rotary on a
    HookedTransformer, after rotary on a TransformerBridge, as each class caches them).

    ``positions`` are the kept positions' original position ids (increasing); the query starts at position
    ``demonstration_length``, right after the demonstrations, whatever was dropped.
    """

    keys: tuple[Float[Tensor, "1 kept kv_head d_head"], ...]
    values: tuple[Float[Tensor, "1 kept kv_head d_head"], ...]
    positions: tuple[int, ...]
    demonstration_tokens: tuple[int, ...]

    @property
    def demonstration_length(self) -> int:
        return len(self.demonstration_tokens)

    @property
    def n_kept(self) -> int:
        return len(self.positions)

    def keep(self, positions: Sequence[int]) -> AnchorCache:
        """The same cache restricted to `positions` (original ids, each already in this cache)."""
        wanted = sorted(set(int(p) for p in positions))
        index_of = {position: index for index, position in enumerate(self.positions)}
        missing = [p for p in wanted if p not in index_of]
        if missing:
            raise InvalidConfigError(
                f"positions {missing[:5]} are not in this cache (it holds {self.n_kept} positions "
                f"of a {self.demonstration_length}-token demonstration part)"
            )
        index = torch.tensor([index_of[p] for p in wanted], dtype=torch.long, device=self.keys[0].device)
        return AnchorCache(
            keys=tuple(k.index_select(1, index) for k in self.keys),
            values=tuple(v.index_select(1, index) for v in self.values),
            positions=tuple(wanted),
            demonstration_tokens=self.demonstration_tokens,
        )

    def position_gaps(self) -> Int[Tensor, " kept"]:
        """The mask whose ``cumsum - 1`` is the kept positions: how TransformerLens is told original ids."""
        positions = torch.tensor((-1,) + self.positions, dtype=torch.long, device=self.keys[0].device)
        return positions.diff()

    def query_start_gap(self) -> int:
        """Mask value of the query's first token: the step from the last kept position to the query start."""
        last = self.positions[-1] if self.positions else -1
        return self.demonstration_length - last

    def key_value_cache(self, batch_size: int) -> TransformerLensKeyValueCache:
        """A frozen TransformerLens cache for a batch (expanded views: all queries share the demonstrations)."""
        return CacheStack.of([self]).key_value_cache(batch_size)


@dataclass(frozen=True)
class CacheStack:
    """Several `AnchorCache`s of the same demonstrations, each keeping the same number of positions, stacked
    so that one forward pass runs a query batch against every one of them (`run_queries_with_caches`)."""

    keys: tuple[Float[Tensor, "cache kept kv_head d_head"], ...]
    values: tuple[Float[Tensor, "cache kept kv_head d_head"], ...]
    #: Original position ids of each cache's kept positions (increasing along a row).
    positions: Int[Tensor, "cache kept"]
    demonstration_tokens: tuple[int, ...]

    @classmethod
    def of(cls, caches: Sequence[AnchorCache]) -> CacheStack:
        if not caches:
            raise ValueError("a cache stack needs at least one cache")
        first = caches[0]
        if any(c.demonstration_tokens != first.demonstration_tokens for c in caches):
            raise ValueError("stacked caches must hold the same demonstrations")
        if any(c.n_kept != first.n_kept for c in caches):
            counts = sorted({c.n_kept for c in caches})
            raise ValueError(f"stacked caches must keep equally many positions, got {counts}")
        device = first.keys[0].device if first.keys else torch.device("cpu")
        if len(caches) == 1:  # no copy: the stack of one cache is that cache's tensors
            keys, values = first.keys, first.values
        else:
            keys = tuple(torch.cat(layer) for layer in zip(*(c.keys for c in caches)))
            values = tuple(torch.cat(layer) for layer in zip(*(c.values for c in caches)))
        positions = torch.tensor([c.positions for c in caches], dtype=torch.long, device=device)
        return cls(keys, values, positions.reshape(len(caches), first.n_kept), first.demonstration_tokens)

    @property
    def n_caches(self) -> int:
        return int(self.positions.shape[0])

    @property
    def n_kept(self) -> int:
        return int(self.positions.shape[1])

    @property
    def demonstration_length(self) -> int:
        return len(self.demonstration_tokens)

    def position_gaps(self) -> Int[Tensor, "cache kept"]:
        """Per cache, the mask whose ``cumsum - 1`` is its kept positions (see the module docstring)."""
        start = torch.full((self.n_caches, 1), -1, dtype=torch.long, device=self.positions.device)
        return torch.cat([start, self.positions], dim=1).diff(dim=1)

    def query_start_gaps(self) -> Int[Tensor, " cache"]:
        """Per cache, the mask value of the query's first token (from its last kept position to the query)."""
        if self.n_kept == 0:
            return torch.full(
                (self.n_caches,), self.demonstration_length + 1, dtype=torch.long, device=self.positions.device
            )
        return self.demonstration_length - self.positions[:, -1]

    def key_value_cache(self, queries_per_cache: int) -> TransformerLensKeyValueCache:
        """A frozen TransformerLens cache whose rows are cache-major: rows ``c * queries_per_cache ...`` hold
        cache c. A single cache stays an expanded view (no copy); several are copied once per pass."""

        def rows(tensor: Tensor) -> Tensor:
            return repeat(tensor, "cache ... -> (cache batch) ...", batch=queries_per_cache)

        entries = [
            TransformerLensKeyValueCacheEntry(rows(k), rows(v), frozen=True) for k, v in zip(self.keys, self.values)
        ]
        mask = rows(self.position_gaps())
        return TransformerLensKeyValueCache(entries=entries, previous_attention_mask=mask, frozen=True)


def check_supported(model: Model) -> None:
    """Refuse models whose positions would be computed from cache indices (wrong after pruning)."""
    cfg = model.cfg
    if cfg.positional_embedding_type not in ("standard", "rotary"):
        raise InvalidConfigError(
            f"compression supports learned ('standard') and rotary positions; this model uses "
            f"{cfg.positional_embedding_type!r}, whose positions could not be kept original"
        )
    for flag in ("use_dynamic_ntk_rope", "use_logn_attn"):
        if getattr(cfg, flag, False):
            raise InvalidConfigError(
                f"compression does not support models with {flag}: TransformerLens scales "
                "them by the cache length, which pruning changes"
            )


def demonstration_length(prompt: Prompt) -> int:
    """Deprecated: read ``prompt.demonstration_length`` (`Prompt.demonstration_length`), found once when the
    prompt is made. Tokens before the query: the demonstrations and the newline after the last one."""
    warnings.warn(
        "anchorlens.kv_cache.demonstration_length(prompt) is deprecated: read prompt.demonstration_length",
        FutureWarning,
        stacklevel=2,
    )
    return prompt.demonstration_length


def cache_demonstrations(model: Model, demonstration_tokens: Sequence[int]) -> AnchorCache:
    """One forward pass of the demonstration tokens, keeping every position's keys and values in every layer.

    Args:
        model: a loaded model with learned or rotary positions (`check_supported`).
        demonstration_tokens: the token ids of a prompt's demonstration part (``prompt.token_ids[:n]``).

    Returns:
        `AnchorCache` of every position: per layer keys and values [1, kept, kv_head, d_head];
        ``keep(positions)`` prunes it.

    Examples:
        >>> import anchorlens as al
        >>> model = al.random_model()
        >>> prompt = al.task_prompts(model, "sst2", 42, n_test=1)[1][0]
        >>> cache = al.cache_demonstrations(model, prompt.token_ids[: prompt.demonstration_length])
        >>> len(cache.positions) == prompt.demonstration_length, tuple(cache.keys[0].shape[2:])  # [kv_head, d_head]
        (True, (2, 8))
    """
    check_supported(model)
    device = next(model.parameters()).device
    tokens = torch.tensor([list(demonstration_tokens)], dtype=torch.long, device=device)
    if is_bridge(model):
        return _bridge_cache_demonstrations(model, tokens)
    cache = TransformerLensKeyValueCache.init_cache(model.cfg, device, batch_size=1)
    with torch.no_grad():
        # An explicit all-ones mask: TransformerLens would otherwise treat pad-id tokens at the end as padding.
        model(tokens, past_kv_cache=cache, attention_mask=torch.ones_like(tokens), stop_at_layer=model.cfg.n_layers)
    return AnchorCache(
        keys=tuple(entry.past_keys for entry in cache.entries),
        values=tuple(entry.past_values for entry in cache.entries),
        positions=tuple(range(len(demonstration_tokens))),
        demonstration_tokens=tuple(int(t) for t in demonstration_tokens),
    )


def _hugging_face_cache():
    from transformers import DynamicCache

    # No config: every layer keeps every position (a config would make sliding-window layers drop old ones).
    return DynamicCache()


def _bridge_cache_demonstrations(model: Model, tokens: Int[Tensor, "1 seq"]) -> AnchorCache:
    """`cache_demonstrations` on a TransformerBridge: Hugging Face's cache, filled by the bridge's attention."""
    import transformers

    cache = _hugging_face_cache()
    with torch.no_grad():
        model(tokens, past_key_values=cache, attention_mask=torch.ones_like(tokens), logits_to_keep=1)
    n_layers, length = model.cfg.n_layers, int(tokens.shape[1])
    layers = list(getattr(cache, "layers", []))
    filled = [layer for layer in layers if getattr(layer, "keys", None) is not None]
    if len(filled) != n_layers or any(int(layer.keys.shape[-2]) != length for layer in filled):
        raise UnsupportedModelError(
            f"this TransformerBridge did not fill the key/value cache ({len(filled)} of {n_layers} layers hold "
            f"{length} positions): with transformers {transformers.__version__} its attention does not read the "
            "cache it is given, so a cached run would silently ignore the demonstrations. Install a transformers "
            "the bridge supports: pip install 'transformers>=5.0,<5.24'"
        )
    return AnchorCache(
        # Hugging Face's [1, kv_head, seq, d_head] as this module's [1, kept, kv_head, d_head].
        keys=tuple(rearrange(layer.keys, "1 kv_head seq d_head -> 1 seq kv_head d_head") for layer in filled),
        values=tuple(rearrange(layer.values, "1 kv_head seq d_head -> 1 seq kv_head d_head") for layer in filled),
        positions=tuple(range(length)),
        demonstration_tokens=tuple(int(t) for t in tokens[0].tolist()),
    )


def query_tokens(prompt: Prompt, cache: AnchorCache | CacheStack) -> tuple[int, ...]:
    """The prompt's tokens after the demonstrations, checked to follow exactly the cached demonstrations.

    Args:
        prompt: a prompt that starts with the cached demonstrations.
        cache: the cache its query will run against.

    Returns:
        The token ids from position ``cache.demonstration_length`` to the end (the query, target last).

    Examples:
        >>> import anchorlens as al
        >>> model = al.random_model()
        >>> prompt = al.task_prompts(model, "sst2", 42, n_test=1)[1][0]
        >>> cache = al.cache_demonstrations(model, prompt.token_ids[: prompt.demonstration_length])
        >>> al.query_tokens(prompt, cache) == prompt.token_ids[prompt.demonstration_length :]
        True
    """
    if prompt.token_ids[: cache.demonstration_length] != cache.demonstration_tokens:
        raise InvalidConfigError(
            "this prompt does not start with the cached demonstrations (other demonstrations, or a "
            "tokenization that merges the last demonstration into the query); cache this prompt's own "
            "demonstrations (cache_demonstrations) or group prompts by their demonstrations"
        )
    if prompt.length <= cache.demonstration_length:
        raise InvalidConfigError(
            "this prompt has no tokens after the cached demonstrations; a query needs at least its target token"
        )
    return prompt.token_ids[cache.demonstration_length :]


def pad_queries(
    queries: Sequence[Sequence[int]], *, pad_token_id: int, device
) -> tuple[Int[Tensor, "batch seq"], Int[Tensor, " batch"]]:
    """Right-padded query tokens [batch, seq] and their lengths."""
    lengths = torch.tensor([len(q) for q in queries], dtype=torch.long)
    tokens = torch.full((len(queries), int(lengths.max())), pad_token_id, dtype=torch.long)
    for row, query in enumerate(queries):
        tokens[row, : len(query)] = torch.tensor(list(query))
    return tokens.to(device), lengths.to(device)


def sliding_window_layers(model: Model) -> tuple[list[int], int | None]:
    """The layers whose attention sees only a window of recent positions, and the window (Gemma's local layers).

    A HookedTransformer marks them ``attn_type == "local"`` with ``cfg.window_size``; a bridge keeps Hugging
    Face's config, whose ``layer_types`` name them ``"sliding_attention"`` with ``sliding_window``."""
    if is_bridge(model):
        config = getattr(model.original_model, "config", None)
        types = list(getattr(config, "layer_types", None) or [])
        window = getattr(config, "sliding_window", None)
        return [i for i, kind in enumerate(types) if kind == "sliding_attention"], window
    local = [i for i, block in enumerate(model.blocks) if getattr(block.attn, "attn_type", "global") == "local"]
    return local, model.cfg.window_size


def _local_window_hooks(model: Model, stack: CacheStack, query_length: int, queries_per_cache: int) -> list[Hook]:
    """Sliding-window layers: block keys whose ORIGINAL distance from the query reaches the window.

    TransformerLens applies the window to cache indices, which pruning brings closer; the window only bites
    once the prompt is longer than it, and then this hook restores the original reach (per cache: each has its
    own kept positions)."""
    local, window = sliding_window_layers(model)
    if not local or window is None or stack.demonstration_length + query_length <= window:
        return []
    device = stack.positions.device
    query_positions = stack.demonstration_length + torch.arange(query_length, device=device)
    key_positions = torch.cat([stack.positions, query_positions[None].expand(stack.n_caches, -1)], dim=1)
    blocked = (query_positions[None, :, None] - key_positions[:, None, :]) >= window  # [cache, query, key]
    blocked = blocked.repeat_interleave(queries_per_cache, dim=0)[:, None]  # [(cache batch), 1 (head), query, key]

    def hook(scores: Float[Tensor, "batch head query key"], hook) -> Tensor:
        return scores.masked_fill(blocked.to(scores.device), torch.finfo(scores.dtype).min)

    return [(scores_hook_name(layer), hook) for layer in local]


def rotary_table_size(model: Model) -> int | float:
    """Positions the model's rotary tables cover (infinite for other position types, and on a bridge, where
    Hugging Face computes the rotation of each position id as it comes)."""
    if model.cfg.positional_embedding_type != "rotary" or is_bridge(model):
        return float("inf")
    return min(int(block.attn.rotary_cos.shape[0]) for block in model.blocks)


def _check_rotary_table(model: Model, last_position: int) -> None:
    """TransformerLens grows its rotary table by cache index; original positions may lie beyond it."""
    size = rotary_table_size(model)
    if last_position >= size:
        raise InvalidConfigError(
            f"original position {last_position} is beyond the model's rotary table ({size} rows); run "
            "one full prompt of that length through the model first, which extends it"
        )


def run_queries_with_caches(
    model: Model,
    stack: CacheStack,
    tokens: Int[Tensor, "batch seq"],
    lengths: Int[Tensor, " batch"] | None = None,
    fwd_hooks: Sequence[Hook] = (),
    readout: Callable[[Model, Tensor], Tensor] = final_logits,
) -> Float[Tensor, "cache batch ..."]:
    """Every query against every cache of `stack` in one forward pass: ``readout`` of the last query token's
    residual stream, per cache and query.

    `tokens` are right-padded queries (the prompt tokens after the demonstrations) with their `lengths`
    (default: all full); each query runs at its original positions, ``demonstration_length + i``, and attends
    only to its own cache's kept positions. `readout` maps the last token's residual stream to what is
    returned (default the full logits; pass ``lambda model, residual: residual`` for the stream itself).
    `fwd_hooks` see the cache-major batch of ``n_caches * batch`` rows.
    """
    batch_size, width = tokens.shape
    device = tokens.device
    lengths = torch.full((batch_size,), width, device=device) if lengths is None else lengths.to(device)
    _check_rotary_table(model, stack.demonstration_length + width - 1)
    rows = stack.n_caches * batch_size
    # Batch rows are cache-major, (cache batch): every cache holds the whole query batch.
    filled = (torch.arange(width, device=device)[None] < lengths[:, None]).long()
    hooks = list(fwd_hooks) + _local_window_hooks(model, stack, width, batch_size)
    if is_bridge(model):
        residual = _bridge_query_residual(model, stack, tokens, filled, hooks)
    else:
        residual = _hooked_query_residual(model, stack, tokens, filled, hooks)
    last = repeat(lengths.to(residual.device) - 1, "batch -> (cache batch)", cache=stack.n_caches)
    out = readout(model, residual[torch.arange(rows, device=residual.device), last])
    return rearrange(out, "(cache batch) ... -> cache batch ...", cache=stack.n_caches)


def _bridge_query_residual(
    model: Model,
    stack: CacheStack,
    tokens: Int[Tensor, "batch seq"],
    filled: Int[Tensor, "batch seq"],
    hooks: list[Hook],
) -> Tensor:  # [cache * batch, seq, d_model]: cache-major rows
    """The final residual stream of every query against every cache, on a TransformerBridge (Hugging Face's
    cache holding each cache's kept keys, already rotated at their original positions, and values)."""
    batch_size, width = tokens.shape
    device = tokens.device
    cache = _hugging_face_cache()
    for layer, (keys, values) in enumerate(zip(stack.keys, stack.values)):
        cache.update(
            repeat(
                keys.to(device), "cache kept kv_head d_head -> (cache batch) kv_head kept d_head", batch=batch_size
            ).contiguous(),
            repeat(
                values.to(device), "cache kept kv_head d_head -> (cache batch) kv_head kept d_head", batch=batch_size
            ).contiguous(),
            layer,
        )
    mask = torch.cat(
        [
            torch.ones(stack.n_caches * batch_size, stack.n_kept, dtype=torch.long, device=device),
            repeat(filled, "batch seq -> (cache batch) seq", cache=stack.n_caches),
        ],
        dim=1,
    )
    positions = stack.demonstration_length + torch.arange(width, device=device)
    return bridge_final_residual(
        model,
        repeat(tokens, "batch seq -> (cache batch) seq", cache=stack.n_caches),
        hooks,
        past_key_values=cache,
        attention_mask=mask,
        position_ids=repeat(positions, "seq -> batch seq", batch=stack.n_caches * batch_size),
    )


def _hooked_query_residual(
    model: Model,
    stack: CacheStack,
    tokens: Int[Tensor, "batch seq"],
    filled: Int[Tensor, "batch seq"],
    hooks: list[Hook],
) -> Tensor:  # [cache * batch, seq, d_model]: cache-major rows
    """The same on a HookedTransformer: TransformerLens's own cache, positions told through the mask's gaps."""
    batch_size, device = tokens.shape[0], tokens.device
    # A copy: `repeat` may return a view whose rows share memory (one query), and the first column is written.
    mask = repeat(filled, "batch seq -> (cache batch) seq", cache=stack.n_caches).clone()
    mask[:, 0] = repeat(stack.query_start_gaps().to(device), "cache -> (cache batch)", batch=batch_size)
    return model.run_with_hooks(
        repeat(tokens, "batch seq -> (cache batch) seq", cache=stack.n_caches),
        # TransformerLens types fwd_hooks as an invariant List[Tuple[str | Callable, Callable]], which no
        # list of (str, hook) pairs matches: its type is too narrow, not the hooks.
        fwd_hooks=hooks,  # type: ignore[arg-type]
        past_kv_cache=stack.key_value_cache(batch_size),
        attention_mask=mask,
        stop_at_layer=model.cfg.n_layers,
    )


def run_query_with_cache(
    model: Model,
    cache: AnchorCache,
    tokens: Int[Tensor, "batch seq"],
    lengths: Int[Tensor, " batch"] | None = None,
    fwd_hooks: Sequence[Hook] = (),
    readout: Callable[[Model, Tensor], Tensor] = final_logits,
) -> Float[Tensor, "batch ..."]:
    """Logits at each query's last token, the query attending to the cached positions only.

    `tokens` are right-padded queries (the prompt tokens after the demonstrations) with their `lengths`
    (default: all full); each query runs at its original positions, ``demonstration_length + i``.
    `readout` maps the last token's residual stream to what is returned (default the full logits).

    Args:
        model: the HookedTransformer or TransformerBridge the cache was made with.
        cache: the (pruned) demonstrations' keys and values (`cache_demonstrations`, `AnchorCache.keep`).
        tokens: right-padded query tokens, [batch, seq].
        lengths: each query's length, [batch] (default all ``seq``).
        fwd_hooks: ``(hook name, function)`` pairs acting during the query run; a query row i is position
            ``demonstration_length + i`` and the keys are the kept positions followed by the query's.
        readout: ``(model, residual [batch, d_model]) -> output``, applied at each query's last token.

    Returns:
        [batch, ...]: `readout` of each query's last token; by default the full-vocabulary logits [batch, vocab].

    Examples:
        >>> import torch, anchorlens as al
        >>> model = al.random_model()
        >>> prompt = al.task_prompts(model, "sst2", 42, n_test=1)[1][0]
        >>> cache = al.build_anchor_cache(model, prompt)  # the anchors of the demonstrations
        >>> logits = al.run_query_with_cache(model, cache, torch.tensor([al.query_tokens(prompt, cache)]))
        >>> tuple(logits.shape) == (1, model.cfg.d_vocab)
        True
    """
    return run_queries_with_caches(model, CacheStack.of([cache]), tokens, lengths, fwd_hooks, readout)[0]
