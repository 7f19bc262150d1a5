"""Isolation and loyalty (SPEC §2): random controls, the restart shortcut, per-example rows, the run."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from anchorlens.errors import InvalidConfigError
from anchorlens.experiments.isolation import (
    CONDITIONS,
    IsolationConfig,
    IsolationResult,
    isolation_layers,
    k_at_depth_fractions,
    loyalty_of_settings,
    paper_settings,
    random_candidates,
    random_positions,
    random_rows,
    run_isolation,
    shared_prefixes,
)
from anchorlens.forward import run_to_target
from anchorlens.hooks import block_earlier_mask, isolation_hooks
from anchorlens.model_classes import has_hooked_transformer
from anchorlens.prompts import Role, build_prompt, label_logits, make_batch, prompt_settings, task_prompts

#: Restarting a pass at a layer (start_at_layer) is a HookedTransformer's: a bridge runs every layer anyway.
needs_hooked = pytest.mark.skipif(not has_hooked_transformer(), reason="transformer-lens 4.x has no HookedTransformer")

DEMOS = [("a dull , lifeless film ", 0), ("warm and funny ", 1), ("flat and slow ", 0), ("a joy to watch ", 1)]
QUERIES = ("fine ", "a long and tedious exercise ", "moving , if uneven ")


@pytest.fixture
def batch(smol_tokenizer):
    return make_batch(
        [
            build_prompt(smol_tokenizer, "sst2", DEMOS[:2], text, prepend_bos=False, example_index=i)
            for i, text in enumerate(QUERIES[:2])
        ]
    )


@pytest.fixture
def prompts_with_bos(smol_tokenizer):
    return [
        build_prompt(smol_tokenizer, "sst2", DEMOS, text, prepend_bos=True, example_index=10 + i)
        for i, text in enumerate(QUERIES)
    ]


def test_random_rows_avoid_labels_bos_target_and_the_token_before_it(prompts_with_bos):
    batch = make_batch(prompts_with_bos)
    drawn_anywhere = set()
    for seed in range(5):
        for layer in range(8):
            for prompt, rows in zip(batch.prompts, random_rows(batch, seed, layer)):
                q = prompt.target_position
                assert prompt.roles[0] == Role.BOS
                assert len(rows) == len(set(rows)) == len(prompt.demonstration_label_positions)
                assert not set(rows) & set(prompt.demonstration_label_positions)
                assert all(0 < r < q - 1 and prompt.roles[r] != Role.BOS for r in rows)
                drawn_anywhere.update((prompt.example_index, r) for r in rows)
    # The draws spread over the allowed positions rather than sticking to a few.
    for prompt in batch.prompts:
        allowed = set(random_candidates(prompt))
        assert allowed == {p for p in range(1, prompt.target_position - 1)} - set(prompt.demonstration_label_positions)
        assert len({r for e, r in drawn_anywhere if e == prompt.example_index}) > len(allowed) // 2


def test_draws_are_keyed_by_seed_example_and_layer_not_by_the_batch(prompts_with_bos):
    together = random_rows(make_batch(prompts_with_bos), seed=7, layer=3)
    alone = [random_rows(make_batch([p]), seed=7, layer=3)[0] for p in reversed(prompts_with_bos)][::-1]
    assert together == alone
    prompt = prompts_with_bos[0]
    assert random_positions(prompt, 7, 3) == random_positions(prompt, 7, 3)
    by_layer = {random_positions(prompt, 7, layer) for layer in range(12)}
    by_seed = {random_positions(prompt, seed, 3) for seed in range(12)}
    assert len(by_layer) > 1 and len(by_seed) > 1


def test_prompts_without_an_example_index_are_keyed_by_their_tokens(prompts_with_bos):
    unindexed = [replace(p, example_index=None) for p in prompts_with_bos]
    assert random_rows(make_batch(unindexed), 0, 1) == [random_rows(make_batch([p]), 0, 1)[0] for p in unindexed]
    assert len({random_positions(unindexed[0], 0, layer) for layer in range(12)}) > 1


def test_default_k_is_the_papers_1_3_5_7():
    assert IsolationConfig().k == (1, 3, 5, 7)
    with pytest.raises(InvalidConfigError, match="k repeats"):
        IsolationConfig(k=(1, 1))


def test_depth_fractions_give_k_beside_the_absolute_ones(gpt2_like):
    """Isolation's k is absolute: the paper's k = 5 is 5/48 of GPT2-XL's depth, 3 of SmolLM2's 30 layers and 2
    of Gemma-3's 18. A depth fraction runs round(f x layers) layers beside the given k (each k once)."""
    assert k_at_depth_fractions(48, [5 / 48]) == (5,)
    assert k_at_depth_fractions(30, [5 / 48]) == (3,) and k_at_depth_fractions(18, [5 / 48]) == (2,)
    assert k_at_depth_fractions(2, [0.1]) == (1,)  # at least one layer
    with pytest.raises(InvalidConfigError, match=r"depth fractions must lie in \(0, 1\]"):
        IsolationConfig(depth_fractions=(1.5,))
    assert "depth_fractions" not in IsolationConfig().signature()  # a default run's manifest is unchanged
    config = IsolationConfig(seeds=(3,), n_test=2, k=(1,), depth_fractions=(1.0, 0.5))
    frame = run_isolation(gpt2_like, "sst2", config, progress=False).to_frame()
    assert sorted(set(frame["k"])) == [1, 2]  # 0.5 of 2 layers is the given k = 1: run once


def test_isolation_layers():
    assert isolation_layers(30, 5, "first") == [0, 1, 2, 3, 4]
    assert isolation_layers(30, 5, "last") == [25, 26, 27, 28, 29]
    with pytest.raises(InvalidConfigError, match="more than the model's 2 layers; give layer counts of at most 2"):
        isolation_layers(2, 5, "first")
    with pytest.raises(InvalidConfigError):
        IsolationConfig(k=(0,))


@needs_hooked
def test_restarting_from_the_saved_residual_equals_the_full_run(llama_like, batch):
    blocked = block_earlier_mask(batch, [p.demonstration_label_positions for p in batch.prompts])
    saved = {}
    with torch.no_grad():
        run_to_target(llama_like, batch, [("blocks.1.hook_resid_pre", lambda r, hook: saved.setdefault(1, r))])
        full = run_to_target(llama_like, batch, isolation_hooks({1: blocked}))
        restarted = run_to_target(llama_like, batch, isolation_hooks({1: blocked}), start_at_layer=1, residual=saved[1])
        everything = llama_like(batch.tokens)
    assert torch.allclose(full, restarted, atol=1e-5)
    rows = torch.arange(batch.size)
    plain = run_to_target(llama_like, batch).detach()
    assert torch.allclose(plain, everything[rows, batch.target_positions], atol=1e-5)


def test_run_isolation_rows_and_ranges(gpt2_like):
    config = IsolationConfig(seeds=(3,), n_test=4, batch_size=2, k=(1, 2))
    frame = run_isolation(gpt2_like, "sst2", config, progress=False).to_frame()
    assert sorted(map(tuple, frame[["k", "condition"]].values.tolist())) == sorted(
        (k, c) for k in (1, 2) for c in CONDITIONS
    )
    assert frame["label_loyalty"].between(0, 1).all() and frame["word_loyalty"].between(0, 1).all()
    assert (frame["n"] == 4).all()
    # Same seed, same tables.
    again = run_isolation(gpt2_like, "sst2", config, progress=False).to_frame()
    assert again.equals(frame)


def test_per_example_rows_and_their_means_are_the_seed_rows(gpt2_like):
    config = IsolationConfig(seeds=(3, 4), n_test=5, batch_size=2, k=(1, 2))
    result = run_isolation(gpt2_like, "sst2", config, progress=False)
    examples = result.examples
    assert list(examples.columns) == [
        "task",
        "model",
        "seed",
        "example",
        "gold",
        "k",
        "condition",
        "base_prediction",
        "prediction",
        "label_loyalty",
        "word_loyalty",
    ]
    assert len(examples) == 2 * 5 * 2 * len(CONDITIONS)
    assert (examples.groupby(["seed", "k", "condition"]).size() == 5).all()
    assert examples.groupby(["seed", "k", "condition"])["example"].nunique().eq(5).all()
    assert set(examples["label_loyalty"]) <= {0.0, 1.0}
    assert examples["word_loyalty"].between(0, 1).all()
    assert (examples["label_loyalty"] == (examples["prediction"] == examples["base_prediction"])).all()
    # The un-isolated prediction and gold do not depend on the condition.
    per_input = examples.groupby(["seed", "example"])[["gold", "base_prediction"]].nunique()
    assert (per_input == 1).all().all()
    means = examples.groupby(["task", "model", "seed", "k", "condition"], as_index=False)[
        ["label_loyalty", "word_loyalty"]
    ].mean()
    merged = result.frame.merge(means, on=["task", "model", "seed", "k", "condition"], suffixes=("", "_examples"))
    assert len(merged) == len(result.frame) == 2 * 2 * len(CONDITIONS)
    for column in ("label_loyalty", "word_loyalty"):
        assert np.allclose(merged[column], merged[f"{column}_examples"], rtol=0, atol=1e-12)
    assert IsolationResult.example_keys == ("k", "condition")
    assert IsolationResult.example_values == ("label_loyalty", "word_loyalty")
    summary = result.summary_with_ci()
    assert set(summary["metric"]) == {"label_loyalty", "word_loyalty"}
    assert len(summary) == 2 * 2 * len(CONDITIONS)


@pytest.fixture(scope="module")
def attentive(smol_tokenizer):
    """A 3-layer random GPT-2-like model whose attention weights are scaled up (x4), so that blocking a few rows
    moves its top tokens and predictions: on the conftest models isolation hardly changes anything, and a
    batch-dependent random control would go unnoticed."""
    from anchorlens.model_classes import default_model_class

    if default_model_class() == "bridge":
        return attentive_bridge(smol_tokenizer)
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=3,
        d_model=32,
        n_heads=4,
        d_head=8,
        d_mlp=64,
        n_ctx=512,
        d_vocab=len(smol_tokenizer),
        seed=0,
        act_fn="gelu",
        normalization_type="LN",
        default_prepend_bos=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = HookedTransformer(cfg)
        model.set_tokenizer(smol_tokenizer)
    with torch.no_grad():
        for block in model.blocks:
            for weight in (block.attn.W_Q, block.attn.W_K, block.attn.W_V, block.attn.W_O):
                weight.mul_(4)
    return model.eval()


def attentive_bridge(tokenizer):
    """The same as a Hugging Face GPT-2 with random weights, attention weights scaled up, as a TransformerBridge."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from anchorlens.models import model_from_hugging_face

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=3,
        n_head=4,
        n_inner=64,
        n_positions=512,
        initializer_range=0.8 / 32**0.5,
        bos_token_id=tokenizer.bos_token_id or 0,
        eos_token_id=tokenizer.eos_token_id or 0,
    )
    hf_model = GPT2LMHeadModel(config)
    with torch.no_grad():
        for block in hf_model.transformer.h:
            block.attn.c_attn.weight.mul_(4)
            block.attn.c_proj.weight.mul_(4)
    return model_from_hugging_face(hf_model, tokenizer, prepend_bos=False, device="cpu")


def test_batch_size_changes_no_table_random_controls_included(attentive):
    one, eight = (
        run_isolation(
            attentive, "sst2", IsolationConfig(seeds=(5,), n_test=6, batch_size=size, k=(1, 2)), progress=False
        )
        for size in (1, 8)
    )
    pd.testing.assert_frame_equal(one.frame, eight.frame, rtol=1e-4, atol=1e-5)
    pd.testing.assert_frame_equal(one.examples, eight.examples, rtol=1e-4, atol=1e-5)
    random = one.examples[one.examples["condition"].str.startswith("random")]
    assert len(random) == 6 * 2 * 2
    # The random control moves this model, so a draw that depended on the batching would show.
    assert random.query("condition == 'random_first'")["word_loyalty"].min() < 0.5


@needs_hooked
def test_shorter_first_k_settings_restart_from_the_longest_ones_run(attentive):
    """The first-k settings of a kind share their isolated layers: each shorter one restarts from the longest
    one's residual stream. The numbers are those of every setting run alone from the tokens, and layer 0 runs
    once for the plain prompt, once per kind's longest first-k run and once per last-k run that covers it."""
    _, prompts = task_prompts(attentive.tokenizer, "sst2", 3, n_test=4, **prompt_settings(attentive))
    batch = make_batch(prompts)
    settings = paper_settings(3, (1, 2, 3))
    restart_at, records = shared_prefixes(settings)
    assert restart_at == {(1, "label_first"): 1, (2, "label_first"): 2, (1, "random_first"): 1, (2, "random_first"): 2}
    assert records == {(3, "label_first"): [1, 2], (3, "random_first"): [1, 2]}
    layer_zero_runs = []
    attentive.add_hook("blocks.0.hook_resid_pre", lambda residual, hook: layer_zero_runs.append(1))
    try:
        together = loyalty_of_settings(attentive, batch, settings, seed=3, word_top_k=5)
    finally:
        attentive.reset_hooks()
    assert len(layer_zero_runs) == 1 + 2 + 2  # not 1 + 6 + 2 without the shared prefixes
    for isolated in settings:
        alone = loyalty_of_settings(attentive, batch, [isolated], seed=3, word_top_k=5)
        assert torch.equal(alone.base_prediction, together.base_prediction)
        for mine, reference in zip(together.by_condition[isolated.key], alone.by_condition[isolated.key]):
            torch.testing.assert_close(mine, reference, rtol=0, atol=1e-6)
    moved = torch.stack([together.by_condition[s.key][2] for s in settings])
    assert moved.min() < 0.5  # the isolation moves this model, so a wrong restart state would show


def test_the_run_blocks_exactly_the_keyed_random_rows(gpt2_like):
    """Recompute one example's random_first prediction by hand from `random_rows`: the run uses those draws."""
    seed, k = 6, 2
    result = run_isolation(
        gpt2_like, "sst2", IsolationConfig(seeds=(seed,), n_test=3, batch_size=3, k=(k,)), progress=False
    )
    _, prompts = task_prompts(gpt2_like.tokenizer, "sst2", seed, n_test=3, **prompt_settings(gpt2_like))
    for prompt in prompts:
        alone = make_batch([prompt])
        masks = {layer: block_earlier_mask(alone, random_rows(alone, seed, layer)) for layer in range(k)}
        with torch.no_grad():
            edited = run_to_target(gpt2_like, alone, isolation_hooks(masks))
        expected = int(label_logits(edited, alone).argmax(-1))
        row = result.examples.query("example == @prompt.example_index and condition == 'random_first'")
        assert row["prediction"].tolist() == [expected]


def test_the_paper_default_k_on_a_shallow_model_runs_the_k_it_has(gpt2_like):
    """A 2-layer model cannot isolate 3, 5 or 7 layers: the default runs k = 1 with a warning (an explicit
    k that is too large is still an error, but for the main job's k = 5), and the result keeps the requested
    settings for resuming."""
    from anchorlens.paper import ISOLATION_K

    with pytest.warns(UserWarning, match=r"the model has 2 layers: isolation runs k = \(1,\)"):
        result = run_isolation(gpt2_like, "sst2", IsolationConfig(seeds=(3,), n_test=2), progress=False)
    assert set(result.frame["k"]) == {1} and result.config.k == ISOLATION_K
    with pytest.raises(InvalidConfigError, match="k=3 is more than the model's 2 layers"):
        run_isolation(gpt2_like, "sst2", IsolationConfig(seeds=(3,), n_test=2, k=(1, 3)), progress=False)
    # the main job's k = 5 alone (`anchorlens reproduce` on any model) runs the model's depth instead
    with pytest.warns(UserWarning, match=r"the model has 2 layers: isolation runs k = \(2,\) of the paper's \(5,\)"):
        result = run_isolation(gpt2_like, "sst2", IsolationConfig(seeds=(3,), n_test=2, k=(5,)), progress=False)
    assert set(result.frame["k"]) == {2}
