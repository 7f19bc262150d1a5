"""Anchor-only compression (SPEC §5): the pruned cache reproduces the full prompt exactly where it should, keeps
original positions, and the experiment's baselines, rows, resuming and determinism."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from anchorlens.errors import InvalidConfigError
from anchorlens.experiments.compress import (
    DRAW_STREAM,
    METHODS,
    CompressConfig,
    CompressResult,
    anchor_positions,
    best_draw,
    build_anchor_cache,
    draw_positions,
    draw_predictions,
    evaluate_seed,
    final_residuals_of_draws,
    random_positions,
    run_compress,
    seed_prompts,
    text_anchor_prompt,
)
from anchorlens.forward import final_logits, run_to_target
from anchorlens.hooks import scores_hook_name
from anchorlens.kv_cache import (
    CacheStack,
    cache_demonstrations,
    pad_queries,
    query_tokens,
    run_queries_with_caches,
    run_query_with_cache,
)
from anchorlens.plots import plot_compress
from anchorlens.prompts import Role, build_prompt, make_batch, task_prompts
from anchorlens.tasks import get_task

DEMOS = [("a dull , lifeless film ", 0), ("warm and funny , with a big heart ", 1), ("tedious ", 0)]
QUERIES = ("fine ", "a long and tedious exercise in style over substance ", "yes ")
TINY = dict(seeds=(3,), n_test=5, batch_size=2, random_draws=3)


def gemma_like(tokenizer):
    """Rotary with a local layer (own rotary base, a window shorter than the prompts) and a global one, in the
    installed transformer-lens's default class."""
    from anchorlens.model_classes import default_model_class

    if default_model_class() == "bridge":
        return gemma_like_bridge(tokenizer)
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=2,
        d_model=32,
        n_heads=4,
        d_head=8,
        d_mlp=64,
        n_ctx=512,
        d_vocab=len(tokenizer),
        seed=1,
        act_fn="gelu",
        normalization_type="RMS",
        positional_embedding_type="rotary",
        rotary_dim=8,
        rotary_base=1_000_000,
        rotary_base_local=10_000,
        use_local_attn=True,
        attn_types=["local", "global"],
        window_size=12,
        n_key_value_heads=2,
        default_prepend_bos=True,
    )
    model = HookedTransformer(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.set_tokenizer(tokenizer)
    return model.eval()


def gemma_like_bridge(tokenizer):
    """The same as a Hugging Face Gemma-3 with random weights, wrapped as a TransformerBridge."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from anchorlens.models import model_from_hugging_face

    torch.manual_seed(1)
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=512,
        sliding_window=12,
        layer_types=["sliding_attention", "full_attention"],
        rope_parameters={
            "full_attention": {"rope_type": "default", "rope_theta": 1_000_000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
        },
        query_pre_attn_scalar=8,
        initializer_range=0.8 / 32**0.5,
        bos_token_id=tokenizer.bos_token_id or 0,
        eos_token_id=tokenizer.eos_token_id or 0,
        pad_token_id=tokenizer.pad_token_id or 0,
    )
    return model_from_hugging_face(Gemma3ForCausalLM(config), tokenizer, prepend_bos=True, device="cpu")


@pytest.fixture(scope="module")
def gemma_model_tiny(smol_tokenizer):
    return gemma_like(smol_tokenizer)


def prompts_for(model, queries=QUERIES):
    bos = bool(model.cfg.default_prepend_bos)
    return [build_prompt(model.tokenizer, "sst2", DEMOS, q, prepend_bos=bos) for q in queries]


def full_logits(model, prompts, fwd_hooks=()):
    with torch.no_grad():
        return run_to_target(model, make_batch(prompts, pad_token_id=model.tokenizer.pad_token_id), fwd_hooks)


def compressed_logits(model, prompts, keep=None):
    """All queries in one right-padded batch against one cache."""
    cache = build_anchor_cache(model, prompts[0], keep)
    tokens, lengths = pad_queries(
        [query_tokens(p, cache) for p in prompts], pad_token_id=model.tokenizer.pad_token_id, device="cpu"
    )
    with torch.no_grad():
        return run_query_with_cache(model, cache, tokens, lengths), cache


def query_blocked_from_dropped(prompts, kept):
    """The reference: the full prompt where query rows may not attend to the dropped demonstration positions."""
    end = prompts[0].demonstration_length
    dropped = torch.tensor([p not in set(kept) for p in range(end)])
    seq = max(p.length for p in prompts)
    blocked = torch.zeros(seq, seq, dtype=torch.bool)
    blocked[end:, :end] = dropped[None]

    def hook(scores, hook):
        return scores.masked_fill(blocked, torch.finfo(scores.dtype).min)

    return hook


# ------------------------------------------------------------------------------------------------ the key test


@pytest.mark.parametrize("name", ["gpt2_like", "llama_like", "gemma_model_tiny"])
def test_keeping_every_position_equals_the_full_prompt(name, request):
    model = request.getfixturevalue(name)
    prompts = prompts_for(model)
    everything = range(prompts[0].demonstration_length)
    compressed, cache = compressed_logits(model, prompts, everything)
    assert cache.n_kept == cache.demonstration_length
    torch.testing.assert_close(compressed, full_logits(model, prompts), atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["gpt2_like", "llama_like", "gemma_model_tiny"])
def test_keeping_anchors_equals_masking_the_dropped_positions_at_original_positions(name, request):
    model = request.getfixturevalue(name)
    prompts = prompts_for(model)
    compressed, cache = compressed_logits(model, prompts)
    assert cache.positions == anchor_positions(prompts[0]) and cache.n_kept < cache.demonstration_length
    hook = query_blocked_from_dropped(prompts, cache.positions)
    reference = full_logits(model, prompts, [(scores_hook_name(layer), hook) for layer in range(model.cfg.n_layers)])
    assert not torch.allclose(compressed, full_logits(model, prompts), atol=1e-3)  # dropping text matters
    torch.testing.assert_close(compressed, reference, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["gpt2_like", "llama_like"])
def test_keeping_only_label_words_keeps_the_query_at_its_original_positions(name, request):
    """With the last demonstration token dropped, the query's first position is several steps after the last
    kept one: the query must still start at the demonstration length."""
    model = request.getfixturevalue(name)
    prompts = prompts_for(model)
    labels = prompts[0].demonstration_label_positions
    compressed, cache = compressed_logits(model, prompts, labels)
    assert cache.query_start_gap() > 1
    hook = query_blocked_from_dropped(prompts, labels)
    reference = full_logits(model, prompts, [(scores_hook_name(layer), hook) for layer in range(model.cfg.n_layers)])
    torch.testing.assert_close(compressed, reference, atol=1e-4, rtol=0)


def test_renumbered_positions_would_be_caught(llama_like, gpt2_like):
    """The reference above can fail: the same cache with the query placed right after the kept positions (the
    positions a naive pruned cache gives) differs from it."""
    for model in (llama_like, gpt2_like):
        prompts = prompts_for(model)
        cache = build_anchor_cache(model, prompts[0])
        renumbered = type(cache)(
            cache.keys, cache.values, tuple(range(cache.n_kept)), cache.demonstration_tokens[: cache.n_kept]
        )
        tokens = torch.tensor([query_tokens(prompts[0], cache)])
        with torch.no_grad():
            naive = run_query_with_cache(model, renumbered, tokens)
            kept = run_query_with_cache(model, cache, tokens)
        hook = query_blocked_from_dropped(prompts[:1], cache.positions)
        reference = full_logits(
            model, prompts[:1], [(scores_hook_name(layer), hook) for layer in range(model.cfg.n_layers)]
        )
        torch.testing.assert_close(kept, reference, atol=1e-4, rtol=0)
        assert (naive - reference).abs().max() > 1e-3


def test_batched_queries_equal_one_at_a_time(llama_like):
    prompts = prompts_for(llama_like)
    batched, cache = compressed_logits(llama_like, prompts)
    with torch.no_grad():
        alone = torch.cat(
            [run_query_with_cache(llama_like, cache, torch.tensor([query_tokens(p, cache)])) for p in prompts]
        )
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)


def test_cache_is_reused_unchanged(gpt2_like):
    prompts = prompts_for(gpt2_like)
    cache = build_anchor_cache(gpt2_like, prompts[0])
    before = [k.clone() for k in cache.keys]
    tokens = torch.tensor([query_tokens(prompts[1], cache)])
    with torch.no_grad():
        first = run_query_with_cache(gpt2_like, cache, tokens)
        second = run_query_with_cache(gpt2_like, cache, tokens)
    assert torch.equal(first, second) and all(torch.equal(a, b) for a, b in zip(before, cache.keys))


def test_other_demonstrations_are_refused(gpt2_like):
    cache = build_anchor_cache(gpt2_like, prompts_for(gpt2_like)[0])
    other = build_prompt(gpt2_like.tokenizer, "sst2", DEMOS[:2], "fine ", prepend_bos=False)
    with pytest.raises(ValueError, match="cached demonstrations"):
        query_tokens(other, cache)


# ------------------------------------------------------------------------------------- random draws, batched


def draw_caches(model, prompts, seed=0, n_draws=4):
    full = cache_demonstrations(model, prompts[0].token_ids[: prompts[0].demonstration_length])
    return [full.keep(draw_positions(prompts[0], seed, draw)) for draw in range(n_draws)]


@pytest.mark.parametrize("name", ["gpt2_like", "llama_like", "gemma_model_tiny"])
def test_draws_run_together_equal_each_draw_alone(name, request):
    """Every draw's cache as a block of batch rows in one pass gives each draw's own numbers (to 1e-5), with
    each draw's own original positions (and, on the Gemma-like model, its own sliding-window reach)."""
    model = request.getfixturevalue(name)
    prompts = prompts_for(model)
    caches = draw_caches(model, prompts)
    assert len({cache.positions for cache in caches}) > 1  # the draws keep different positions
    tokens, lengths = pad_queries(
        [query_tokens(p, caches[0]) for p in prompts], pad_token_id=model.tokenizer.pad_token_id, device="cpu"
    )
    with torch.no_grad():
        together = run_queries_with_caches(model, CacheStack.of(caches), tokens, lengths)
        alone = torch.stack([run_query_with_cache(model, cache, tokens, lengths) for cache in caches])
    assert together.shape == alone.shape == (len(caches), len(prompts), model.cfg.d_vocab)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)
    assert max((alone[0] - a).abs().max() for a in alone[1:]) > 1e-3  # the comparison can fail: draws differ


def test_draw_passes_split_by_rows_change_no_number(llama_like, monkeypatch):
    prompts = prompts_for(llama_like)
    caches = draw_caches(llama_like, prompts, n_draws=5)
    pad = llama_like.tokenizer.pad_token_id
    queries = [
        pad_queries([query_tokens(p, caches[0]) for p in prompts[:2]], pad_token_id=pad, device="cpu"),
        pad_queries([query_tokens(prompts[2], caches[0])], pad_token_id=pad, device="cpu"),
    ]
    one_pass = final_residuals_of_draws(llama_like, caches, queries)
    monkeypatch.setattr("anchorlens.experiments.compress.DRAW_ROWS_PER_PASS", 4)  # 2 draws of 2 queries a pass
    split = final_residuals_of_draws(llama_like, caches, queries)
    torch.testing.assert_close(split, one_pass, atol=1e-5, rtol=0)
    assert one_pass.shape == (5, 3, llama_like.cfg.d_model)
    with torch.no_grad():
        alone = torch.cat([run_query_with_cache(llama_like, caches[3], *q, readout=final_logits) for q in queries])
        torch.testing.assert_close(final_logits(llama_like, one_pass[3]), alone, atol=1e-5, rtol=0)


def test_a_draw_is_keyed_by_seed_and_draw_only(smol_tokenizer):
    prompt = build_prompt(smol_tokenizer, "sst2", DEMOS, "fine ", prepend_bos=False)
    forward = [draw_positions(prompt, 42, draw) for draw in range(6)]
    assert [draw_positions(prompt, 42, draw) for draw in reversed(range(6))] == forward[::-1]
    assert forward[3] == random_positions(prompt, np.random.default_rng([42, 3, DRAW_STREAM]))
    # Draw 0 does not reuse the generator that shuffled the seed's test set (numpy drops trailing zero keys).
    assert any(
        draw_positions(prompt, seed, 0) != random_positions(prompt, np.random.default_rng(seed)) for seed in range(5)
    )
    assert len(set(forward)) > 1 and forward != [draw_positions(prompt, 43, d) for d in range(6)]


def test_best_draw_is_the_most_loyal_and_the_lowest_on_a_tie():
    reference = torch.tensor([0, 1, 1, 0])
    predictions = torch.tensor([[0, 0, 0, 0], [0, 1, 1, 1], [1, 1, 1, 0], [0, 1, 1, 0]])
    assert best_draw(predictions, reference) == 3
    assert best_draw(predictions[:3], reference) == 1  # draws 1 and 2 agree on 3 inputs: the lower wins


# ------------------------------------------------------------------------------------------- kept positions


def test_anchor_positions_are_formatting_labels_and_separators(smol_tokenizer):
    prompt = build_prompt(smol_tokenizer, "sst2", DEMOS, "fine ", prepend_bos=False)
    end = prompt.demonstration_length
    kept = anchor_positions(prompt)
    assert prompt.roles[end] == Role.QUERY_FORMAT and prompt.roles[end - 1] == Role.SEPARATOR
    assert set(prompt.demonstration_label_positions) <= set(kept)
    assert {prompt.roles[p] for p in kept} == {Role.FORMAT, Role.LABEL, Role.SEPARATOR}
    assert set(range(end)) - set(kept) == {p for p in range(end) if prompt.roles[p] == Role.TEXT}


TREC_DEMOS = [("What does CPR stand for ?", 0), ("Who killed Lincoln ?", 3), ("Where is Tempelhof Airport ?", 4)]

#: Hidden_anchor's kept tokens, decoded, for DEMOS (SST-2) and TREC_DEMOS: per demonstration the template's fixed
#: pieces, the label word (all its tokens) and the newline; never a word of the text (" What", " a") nor the
#: lone space an SST-2 sentence ends with.
SST2_SMOL = ["Review", ":", "\n", "Sent", "iment", ":"]
SST2_GEMMA = ["Review", ":", "\n", "Sentiment", ":"]
TREC_ANSWER = ["Question", ":", "\n", "Answer", " Type", ":"]
KEPT_TOKENS = {
    ("smol_tokenizer", "sst2"): [
        *SST2_SMOL,
        " Negative",
        "\n",
        *SST2_SMOL,
        " Positive",
        "\n",
        *SST2_SMOL,
        " Negative",
        "\n",
    ],
    ("gemma_tokenizer", "sst2"): [
        "<bos>",
        *SST2_GEMMA,
        " Negative",
        "\n",
        *SST2_GEMMA,
        " Positive",
        "\n",
        *SST2_GEMMA,
        " Negative",
        "\n",
    ],
    ("smol_tokenizer", "trec"): [
        *TREC_ANSWER,
        " Ab",
        "brev",
        "iation",
        "\n",
        *TREC_ANSWER,
        " Person",
        "\n",
        *TREC_ANSWER,
        " Location",
        "\n",
    ],
    ("gemma_tokenizer", "trec"): [
        "<bos>",
        *TREC_ANSWER,
        " Ab",
        "breviation",
        "\n",
        *TREC_ANSWER,
        " Person",
        "\n",
        *TREC_ANSWER,
        " Location",
        "\n",
    ],
}


def decoded(tokenizer, prompt, positions):
    return [tokenizer.decode([prompt.token_ids[p]]) for p in positions]


def literal_prompt(tokenizer_name, task, request):
    tokenizer = request.getfixturevalue(tokenizer_name)
    demos, query = (DEMOS, "fine ") if task == "sst2" else (TREC_DEMOS, "What is DSL ?")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ' Abbreviation' is several tokens
        prompt = build_prompt(tokenizer, task, demos, query, prepend_bos=tokenizer_name == "gemma_tokenizer")
    return tokenizer, prompt


@pytest.mark.parametrize("tokenizer_name", ["smol_tokenizer", "gemma_tokenizer"])
@pytest.mark.parametrize("task", ["sst2", "trec"])
def test_hidden_anchor_keeps_exactly_template_label_and_newline_tokens(tokenizer_name, task, request):
    tokenizer, prompt = literal_prompt(tokenizer_name, task, request)
    kept = anchor_positions(prompt)
    assert decoded(tokenizer, prompt, kept) == KEPT_TOKENS[tokenizer_name, task]
    # The first word of every demonstration (a class cue on TREC) carries the template's space and is dropped.
    dropped = set(decoded(tokenizer, prompt, set(range(prompt.demonstration_length)) - set(kept)))
    assert ({" What", " Who", " Where"} if task == "trec" else {" a", " warm", " tedious", " "}) <= dropped


@pytest.mark.parametrize("tokenizer_name", ["smol_tokenizer", "gemma_tokenizer"])
@pytest.mark.parametrize("task", ["sst2", "trec"])
def test_formatting_tokens_are_the_templates_fixed_pieces_and_disjoint_from_text(tokenizer_name, task, request):
    tokenizer, prompt = literal_prompt(tokenizer_name, task, request)
    prefix, middle, _ = get_task(task).template_parts()
    formatting, text = set(prompt.formatting_positions), set(prompt.demonstration_text_positions)
    assert not formatting & text and not set(anchor_positions(prompt)) & text
    end = prompt.demonstration_length
    assert formatting | text | set(prompt.demonstration_label_positions) == set(range(end))
    for demonstration in range(len(prompt.demonstration_labels)):
        pieces = [
            p
            for p in sorted(formatting)
            if prompt.demonstration_of_token[p] == demonstration and prompt.roles[p] == Role.FORMAT
        ]
        # "Review: " + text + "\nSentiment:": the template's space went into the text's first token.
        assert "".join(decoded(tokenizer, prompt, pieces)) == prefix.rstrip() + middle


@pytest.mark.parametrize("tokenizer_name", ["smol_tokenizer", "gemma_tokenizer"])
@pytest.mark.parametrize("task", ["sst2", "trec", "agnews", "emoc"])
def test_kept_tokens_of_the_seed_prompts_spell_the_template_without_text(tokenizer_name, task, request):
    """On the experiment's own prompts (seeds 42-44): the kept tokens read back as the demonstrations' template,
    label word and newline only, so no demonstration text reaches Hidden_anchor."""
    tokenizer = request.getfixturevalue(tokenizer_name)
    bos = tokenizer_name == "gemma_tokenizer"
    definition = get_task(task)
    prefix, middle, _ = definition.template_parts()
    for seed in (42, 43, 44):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            demonstrations, (prompt,) = task_prompts(tokenizer, task, seed, n_test=1, prepend_bos=bos)
        expected = (tokenizer.bos_token if bos else "") + "".join(
            prefix.rstrip() + middle + definition.label_words[d.label] + "\n" for d in demonstrations
        )
        assert "".join(decoded(tokenizer, prompt, anchor_positions(prompt))) == expected


def test_hidden_random_replaces_exactly_the_label_positions(smol_tokenizer):
    prompt = build_prompt(smol_tokenizer, "sst2", DEMOS, "fine ", prepend_bos=False)
    anchors = set(anchor_positions(prompt))
    generator = np.random.default_rng(0)
    seen = set()
    for _ in range(20):
        drawn = set(random_positions(prompt, generator))
        assert anchors - drawn == set(prompt.demonstration_label_positions)
        added = sorted(drawn - anchors)
        assert len(added) == len(DEMOS)
        for label_position, text_position in zip(prompt.demonstration_label_positions, added):
            assert prompt.roles[text_position] == Role.TEXT
            assert prompt.demonstration_of_token[text_position] == prompt.demonstration_of_token[label_position]
        seen.add(tuple(added))
    assert len(seen) > 1  # draws differ


def test_hidden_random_drops_the_rest_of_multi_token_label_words(smol_tokenizer):
    """' Abbreviation' is 3 SmolLM2 tokens: its later pieces would leak the label if a random draw kept them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prompt = build_prompt(
            smol_tokenizer,
            "trec",
            [("What does CPR stand for ?", 0), ("Who is he ?", 3)],
            "Where is it ?",
            prepend_bos=False,
        )
    rest = set(prompt.positions_with(Role.LABEL_REST))
    assert len(rest) == 2 and rest <= set(anchor_positions(prompt))
    drawn = set(random_positions(prompt, np.random.default_rng(0)))
    assert not drawn & rest and not drawn & set(prompt.demonstration_label_positions)


def test_text_anchor_prompt_text_is_the_papers(smol_tokenizer):
    demos = [("a dull film ", 0), ("warm and funny ", 1)]
    prompt = text_anchor_prompt(smol_tokenizer, "sst2", demos, "x", prepend_bos=False)
    assert prompt.text == "Review:\nSentiment: Negative\nReview:\nSentiment: Positive\nReview: x\nSentiment:"
    full = build_prompt(smol_tokenizer, "sst2", demos, "x", prepend_bos=False)
    assert prompt.token_ids[-len(query_tokens(full, cache_of_ids(full))) :] == query_tokens(full, cache_of_ids(full))
    assert [prompt.token_ids[p] for p in prompt.demonstration_label_positions] == [
        full.token_ids[p] for p in full.demonstration_label_positions
    ]


def cache_of_ids(prompt):
    """A stand-in cache holding only the demonstration tokens (enough for `query_tokens`)."""
    from anchorlens.kv_cache import AnchorCache

    end = prompt.demonstration_length
    return AnchorCache((), (), (), prompt.token_ids[:end])


# ----------------------------------------------------------------------------------------------- experiment


def test_config_is_validated():
    for field in ("word_top_k", "random_draws", "timing_repeats"):
        with pytest.raises(InvalidConfigError, match=field):
            CompressConfig(**{field: 0})
    assert "timing_repeats" not in CompressConfig().signature()


EXAMPLE_COLUMNS = [
    "task",
    "model",
    "seed",
    "method",
    "example",
    "gold",
    "prediction",
    "label_loyalty",
    "word_loyalty",
    "correct",
]


def test_run_rows_resume_and_determinism(tmp_path, gpt2_like, monkeypatch):
    config = CompressConfig(**TINY)
    first = run_compress(gpt2_like, "sst2", config, out=tmp_path, progress=False)
    frame = first.to_frame()
    assert list(frame.columns) == [
        "task",
        "model",
        "seed",
        "method",
        "label_loyalty",
        "word_loyalty",
        "accuracy",
        "seconds_per_input",
        "speedup",
        "n",
        "demo_tokens",
        "kept_tokens",
    ]
    assert list(frame["method"]) == list(METHODS) and (frame["n"] == 5).all()
    icl = frame.set_index("method").loc["icl"]
    assert icl["label_loyalty"] == 1 and icl["word_loyalty"] == 1 and icl["speedup"] == 1
    assert frame[["label_loyalty", "word_loyalty", "accuracy"]].stack().between(0, 1).all()
    rows = frame.set_index("method")
    timed = ["icl", "text_anchor", "hidden_anchor"]
    assert (rows.loc[timed, "seconds_per_input"] > 0).all() and (rows.loc[timed, "speedup"] > 0).all()
    # The draws run together, so no single draw is timed: their rows say so instead of showing another time.
    assert rows.loc[["hidden_random", "hidden_random_top"], ["seconds_per_input", "speedup"]].isna().all().all()
    assert rows.loc["hidden_random_top", "label_loyalty"] >= rows.loc["hidden_random", "label_loyalty"]
    assert rows.loc["hidden_anchor", "kept_tokens"] == rows.loc["hidden_random", "kept_tokens"] < icl["demo_tokens"]
    assert rows.loc["text_anchor", "kept_tokens"] < icl["demo_tokens"]
    assert (tmp_path / "parts" / "compress" / "sst2-seed3.csv").is_file()

    examples = first.examples
    assert list(examples.columns) == EXAMPLE_COLUMNS and len(examples) == 5 * len(METHODS)
    assert (examples.groupby("method", sort=False).size() == 5).all()
    from anchorlens.sampling import sample_test_set

    test_rows = sorted(e.index for e in sample_test_set("sst2", 3, n_test=5))
    for _, part in examples.groupby("method"):
        assert list(part["example"]) == test_rows  # the test rows' own indices, sorted
    means = examples.groupby("method")[["label_loyalty", "word_loyalty", "correct"]].mean()
    np.testing.assert_allclose(
        means.loc[list(METHODS)].to_numpy(),
        rows.loc[list(METHODS), ["label_loyalty", "word_loyalty", "accuracy"]].to_numpy(),
    )
    icl_examples = examples[examples["method"] == "icl"]
    assert (icl_examples["label_loyalty"] == 1).all() and (icl_examples["word_loyalty"] == 1).all()
    np.testing.assert_array_equal(examples["correct"], (examples["prediction"] == examples["gold"]).astype(float))
    summary = first.summary_with_ci()
    assert set(summary["method"]) == set(METHODS) and set(summary["metric"]) == {
        "label_loyalty",
        "word_loyalty",
        "correct",
    }
    assert (summary["n_examples"] == 5).all()

    timing = ["seconds_per_input", "speedup"]
    fresh = run_compress(gpt2_like, "sst2", config, progress=False)
    pd.testing.assert_frame_equal(fresh.to_frame().drop(columns=timing), frame.drop(columns=timing))
    pd.testing.assert_frame_equal(fresh.examples, examples)

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished seed was computed again")

    monkeypatch.setattr("anchorlens.experiments.compress.evaluate_seed", must_not_run)
    again = run_compress(gpt2_like, "sst2", config, out=tmp_path, progress=False)
    pd.testing.assert_frame_equal(again.to_frame(), frame, check_dtype=False)
    pd.testing.assert_frame_equal(again.examples, examples, check_dtype=False)

    result = CompressResult.from_folder(tmp_path)
    table = result.paper_table()
    assert list(table.index) == ["ICL", "Text_anchor", "Hidden_random", "Hidden_random-top", "Hidden_anchor"]
    assert table.loc["ICL", "label_loyalty"] == 100
    assert (table["tasks"] == 1).all()
    report = result.report_table().set_index("source")
    assert (report.loc["paper, GPT2-XL", "tasks"] == 4).all()  # so the one-task mean is not read as the paper's
    assert plot_compress(result).data


def test_hidden_random_rows_are_the_draws_run_one_at_a_time(llama_like):
    """Hidden_random is draw 0 and Hidden_random-top the most label-loyal draw, exactly as running each draw's
    cache alone over the seed's inputs gives them."""
    config = CompressConfig(**(TINY | {"random_draws": 4}))
    output = evaluate_seed(llama_like, get_task("sst2"), 3, config.for_model(llama_like))
    examples = output.examples.set_index(["method", "example"])
    prompts = [p for p, _ in seed_prompts(llama_like, get_task("sst2"), 3, config)]
    label_ids = list(prompts[0].label_token_ids)
    icl = full_logits(llama_like, prompts)[:, label_ids].argmax(-1)
    caches = draw_caches(llama_like, prompts, seed=3, n_draws=4)
    with torch.no_grad():
        alone = torch.stack(
            [
                torch.cat(
                    [run_query_with_cache(llama_like, cache, torch.tensor([query_tokens(p, cache)])) for p in prompts]
                )
                for cache in caches
            ]
        )
    predictions = alone[:, :, label_ids].argmax(-1)
    loyal = (predictions == icl).sum(1).tolist()
    best = loyal.index(max(loyal))
    for method, draw in (("hidden_random", 0), ("hidden_random_top", best)):
        got = [examples.loc[(method, p.example_index), "prediction"] for p in prompts]
        assert got == predictions[draw].tolist()
    top = examples.xs("hidden_random_top", level="method")
    assert top["label_loyalty"].sum() == max(loyal)
    together = draw_predictions(
        llama_like,
        final_residuals_of_draws(
            llama_like,
            caches,
            [
                pad_queries(
                    [query_tokens(p, caches[0]) for p in prompts],
                    pad_token_id=llama_like.tokenizer.pad_token_id,
                    device="cpu",
                )
            ],
        ),
        torch.tensor(label_ids),
    )
    assert torch.equal(together, predictions)


def test_hidden_anchor_row_matches_a_direct_evaluation(llama_like):
    """The run's Hidden_anchor loyalty equals what the public building blocks give on the same inputs."""
    from anchorlens.sampling import sample_demonstrations, sample_test_set

    config = CompressConfig(**TINY)
    result = run_compress(llama_like, "sst2", config, progress=False)
    frame = result.to_frame().set_index("method")
    demos, _ = sample_demonstrations("sst2", 3)
    tests = sample_test_set("sst2", 3, n_test=5)
    prompts = [build_prompt(llama_like.tokenizer, "sst2", demos, e.text, e.label, prepend_bos=False) for e in tests]
    cache = build_anchor_cache(llama_like, prompts[0])
    with torch.no_grad():
        hidden = torch.cat(
            [run_query_with_cache(llama_like, cache, torch.tensor([query_tokens(p, cache)])) for p in prompts]
        )
    icl = full_logits(llama_like, prompts)
    label_ids = list(prompts[0].label_token_ids)
    loyalty = (hidden[:, label_ids].argmax(-1) == icl[:, label_ids].argmax(-1)).double().mean().item()
    assert frame.loc["hidden_anchor", "label_loyalty"] == pytest.approx(loyalty)
    assert frame.loc["hidden_anchor", "kept_tokens"] == cache.n_kept
    # Per test input: the prediction and word loyalty of each example row are that input's own.
    rows = result.examples[result.examples["method"] == "hidden_anchor"].set_index("example")
    for row, example in enumerate(tests):
        assert rows.loc[example.index, "prediction"] == hidden[row, label_ids].argmax().item()
        assert rows.loc[example.index, "gold"] == example.label
        overlap = len(set(hidden[row].topk(5).indices.tolist()) & set(icl[row].topk(5).indices.tolist()))
        assert rows.loc[example.index, "word_loyalty"] == pytest.approx(overlap / (10 - overlap))
