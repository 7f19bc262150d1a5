"""The public API: every analysis on your own prompts, prompts from your own text, a model you loaded yourself,
activations at the anchors, and the names `import anchorlens` exports.

The analyses of any prompts are the building blocks the experiments run on (one code path): each test checks
that a function's frame equals the per-example rows of its ``run_*`` on the same prompts.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from jaxtyping import Float
from torch import Tensor

import anchorlens as al
from anchorlens import errors
from anchorlens.activations import anchor_activations, label_means, target_rows
from anchorlens.experiments.auroc import AurocConfig, cumulative_r, layer_auroc, run_auroc
from anchorlens.experiments.common import per_head_rows, whole_layer_rows
from anchorlens.experiments.compress import METHODS, CompressConfig, run_compress
from anchorlens.experiments.diagnose import DiagnoseConfig, keys_and_queries, run_diagnose
from anchorlens.experiments.isolation import CONDITIONS, IsolationConfig, run_isolation
from anchorlens.experiments.reweight import (
    ReweightConfig,
    beta_path,
    fit_seed_beta,
    label_probabilities,
    load_beta,
    query_prompts,
    run_reweight,
)
from anchorlens.experiments.saliency import SaliencyConfig, fresh_demonstration_prompts, run_saliency
from anchorlens.prompts import build_prompt, make_batch, prompt_settings, task_prompts
from anchorlens.sampling import sample_demonstrations

TEMPLATE = "Review: {text}\nSentiment:{label}"
RUN_COLUMNS = ["task", "model", "seed"]


def own_prompts(model, queries=("warm and funny", "a dull mess", "fine, I guess")) -> list[al.Prompt]:
    """Prompts written by hand: the same two demonstrations, label words as words, each query's gold label."""
    demonstrations = [("a joy from start to finish", " Positive"), ("slow, long and lifeless", " Negative")]
    gold = [" Positive", " Negative", " Positive"]
    return [
        build_prompt(
            model,
            demonstrations=demonstrations,
            query=query,
            query_label=label,
            template=TEMPLATE,
            label_words=[" Negative", " Positive"],
        )
        for query, label in zip(queries, gold)
    ]


def seed_prompts(model, seed: int, n_test: int) -> list[al.Prompt]:
    return task_prompts(model, "sst2", seed, n_test=n_test)[1]


def run_examples(result) -> pd.DataFrame:
    return result.examples.drop(columns=RUN_COLUMNS)


# ------------------------------------------------------------------------------------ prompts from own text


def test_a_prompt_from_your_own_text_equals_the_task_form(gpt2_like):
    mine = own_prompts(gpt2_like)[0]
    task_form = build_prompt(
        gpt2_like.tokenizer,
        "sst2",
        [("a joy from start to finish", 1), ("slow, long and lifeless", 0)],
        "warm and funny",
        1,
        **prompt_settings(gpt2_like),
    )
    for field in ("text", "token_ids", "roles", "demonstration_label_positions", "target_position"):
        assert getattr(mine, field) == getattr(task_form, field), field
    assert mine.label_token_ids == task_form.label_token_ids and mine.query_label == 1
    assert mine.task_name == "custom" and mine.parts.task.label_words == (" Negative", " Positive")
    assert mine.parts.demonstrations == (("a joy from start to finish", 1), ("slow, long and lifeless", 0))
    # Label words as words work with a task too, and the model gives the prompt settings.
    assert build_prompt(gpt2_like, "sst2", [("x", " Positive"), ("y", " Negative")], "z").text == (
        "Review: x\nSentiment: Positive\nReview: y\nSentiment: Negative\nReview: z\nSentiment:"
    )


def test_without_label_words_the_classes_are_the_demonstrations_words_in_order(gpt2_like):
    prompt = build_prompt(
        gpt2_like,
        demonstrations=[("great", " yes"), ("awful", " no"), ("superb", " yes")],
        query="meh",
        template="Q: {text}\nA:{label}",
    )
    assert prompt.parts.task.label_words == (" yes", " no")
    assert prompt.demonstration_labels == (0, 1, 0)
    assert [len(positions) for positions in prompt.label_positions] == [2, 1]
    assert prompt.query_label is None


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        (
            {"demonstrations": [("x", "Positive"), ("y", " Negative")], "label_words": [" Negative", " Positive"]},
            errors.LabelWordError,
            "did you mean ' Positive'",
        ),
        ({"demonstrations": [("x", " Positive"), ("y", " Positive")]}, errors.LabelWordError, "at least 2"),
        ({"demonstrations": [("x", 1), ("y", 0)]}, errors.LabelWordError, "class id"),
        ({"demonstrations": [("x", " Good"), ("y", " Goodness")]}, errors.LabelWordError, "share their first"),
        ({"demonstrations": ["x", "y"]}, errors.InvalidConfigError, "not a \\(text, label\\) pair"),
        ({"query_label": " Maybe", "label_words": [" Negative", " Positive"]}, errors.LabelWordError, "the query"),
        ({"template": None}, errors.InvalidConfigError, "needs a task"),
        ({"template": "Review: {text}"}, errors.TaskDefinitionError, "exactly once"),
        ({"query": None}, errors.InvalidConfigError, "query's text"),
    ],
)
def test_own_text_refusals_name_the_fix(gpt2_like, arguments, error, message):
    call = {"demonstrations": [("x", " Positive"), ("y", " Negative")], "query": "z", "template": TEMPLATE}
    with pytest.raises(error, match=message) as refused:
        build_prompt(gpt2_like, **{**call, **arguments})
    assert "\n" not in str(refused.value)  # one line


def test_a_multi_token_label_word_warns_and_uses_its_first_token(gpt2_like):
    with pytest.warns(UserWarning, match="' Posture' of task 'custom' is 2 tokens"):
        prompt = build_prompt(
            gpt2_like, demonstrations=[("x", " Posture"), ("y", " Negative")], query="z", template=TEMPLATE
        )
    assert prompt.label_token_ids[0] == gpt2_like.tokenizer(" Posture", add_special_tokens=False).input_ids[0]


def test_the_tokenizer_form_needs_the_bos_setting(gpt2_like):
    with pytest.raises(errors.InvalidConfigError, match="needs prepend_bos"):
        build_prompt(gpt2_like.tokenizer, "sst2", [("x", 1)], "z")
    with pytest.raises(errors.InvalidConfigError, match="needs prepend_bos"):
        task_prompts(gpt2_like.tokenizer, "sst2", 1, n_test=1)
    with pytest.raises(errors.InvalidConfigError, match="a loaded model .* or a Hugging Face tokenizer"):
        build_prompt("gpt2", "sst2", [("x", 1)], "z")


def test_task_prompts_takes_the_model(llama_like):
    by_model = task_prompts(llama_like, "sst2", 5, n_test=3)[1]
    by_tokenizer = task_prompts(llama_like.tokenizer, "sst2", 5, n_test=3, **prompt_settings(llama_like))[1]
    assert by_model == by_tokenizer
    assert [p.example_index for p in by_model] == [p.example_index for p in by_tokenizer]


# ------------------------------------------------------------------------------------------ a loaded model


def _tiny(smol_tokenizer, **cfg):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    config = HookedTransformerConfig(
        n_layers=1,
        d_model=16,
        n_heads=2,
        d_head=8,
        d_mlp=32,
        n_ctx=64,
        d_vocab=len(smol_tokenizer),
        act_fn="gelu",
        **cfg,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = HookedTransformer(config)
        model.set_tokenizer(smol_tokenizer)
    return model


@pytest.mark.skipif(not al.model_classes.has_hooked_transformer(), reason="a HookedTransformer's (3.9)")
def test_load_model_warns_of_folded_value_biases_and_refuses_a_missing_hook(smol_tokenizer):
    model = _tiny(smol_tokenizer, original_architecture="GPT2LMHeadModel", normalization_type="LN")
    with pytest.warns(UserWarning, match="fold_value_biases=False"):  # b_V all zero: folded value biases
        assert al.load_model(model, prepend_bos=True) is model
    assert model.cfg.default_prepend_bos is True and not model.training
    broken = _tiny(smol_tokenizer)  # a HookedTransformer lets a hook point be deleted from its hook_dict
    del broken.hook_dict["blocks.0.attn.hook_pattern"]
    with pytest.raises(errors.HookError, match="'blocks.0.attn.hook_pattern'"):
        al.load_model(broken)


def test_load_model_takes_a_loaded_model_and_checks_it(gpt2_like):
    assert al.load_model(gpt2_like) is gpt2_like
    other = "hooked" if al.model_classes.is_bridge(gpt2_like) else "bridge"
    for options, message in (
        ({"device": "cpu"}, "device: options used only when loading by name"),
        ({"dtype": torch.float16}, "dtype"),
        ({"model_class": other}, "keeps its class"),
    ):
        with pytest.raises(errors.InvalidConfigError, match=message):
            al.load_model(gpt2_like, **options)
    with pytest.raises(errors.UnknownModelError, match="got a int"):
        al.load_model(3)


def test_load_model_takes_a_loaded_bridge(tiny_folder):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bridge = al.load_model(str(tiny_folder), model_class="bridge", prepend_bos=False)
    bridge.train()
    assert al.load_model(bridge, prepend_bos=True) is bridge
    assert bridge.cfg.default_prepend_bos is True and not bridge.training
    assert al.recorded_model_name(bridge).endswith(":bridge")
    with pytest.raises(errors.InvalidConfigError, match="keeps its class"):
        al.load_model(bridge, model_class="hooked")


# ------------------------------------------------------------------------------------ analyses of any prompts


def test_saliency_frame_is_the_runs_per_example_rows(gpt2_like):
    config = SaliencyConfig(seeds=(4,), n_test=4, batch_size=3)
    prompts = fresh_demonstration_prompts(
        gpt2_like.tokenizer, "sst2", 4, n_test=4, shots_per_class=1, prepend_bos=False
    )
    frame = al.saliency(gpt2_like, prompts, batch_size=3)
    pd.testing.assert_frame_equal(frame, run_examples(run_saliency(gpt2_like, "sst2", config, progress=False)))
    assert list(frame.columns) == ["example", "gold", "layer", "prediction", "S_wp", "S_pq", "S_ww"]
    # Rows follow the prompts as given, whatever order the length-sorted batches ran in.
    assert frame["example"].tolist()[:: gpt2_like.cfg.n_layers] == [p.example_index for p in prompts]
    alone = pd.concat([al.saliency(gpt2_like, [p]) for p in prompts], ignore_index=True)
    pd.testing.assert_frame_equal(frame.drop(columns="example"), alone.drop(columns="example"), rtol=1e-4, atol=1e-9)


def test_saliency_per_head_is_the_runs_per_head_rows(llama_like):
    config = SaliencyConfig(seeds=(4,), n_test=3, batch_size=2, per_head=True)
    prompts = fresh_demonstration_prompts(
        llama_like.tokenizer, "sst2", 4, n_test=3, shots_per_class=1, prepend_bos=False
    )
    frame = al.saliency(llama_like, prompts, per_head=True, batch_size=2)
    pd.testing.assert_frame_equal(frame, run_examples(run_saliency(llama_like, "sst2", config, progress=False)))
    heads = per_head_rows(frame)
    assert len(heads) == 3 * llama_like.cfg.n_layers * llama_like.cfg.n_heads
    pd.testing.assert_frame_equal(whole_layer_rows(frame), al.saliency(llama_like, prompts, batch_size=2))


def test_own_prompts_take_their_position_as_example_and_need_a_gold_label(gpt2_like):
    prompts = own_prompts(gpt2_like)
    frame = al.saliency(gpt2_like, al.make_batch(prompts))  # a PromptBatch works as well as a list
    assert sorted(set(frame["example"])) == [0, 1, 2] and frame["gold"].tolist()[::2] == [1, 0, 1]
    unlabelled = dataclasses.replace(prompts[1], query_label=None)
    with pytest.raises(errors.InvalidConfigError, match="prompt 1 has none"):
        al.saliency(gpt2_like, [prompts[0], unlabelled])
    other = build_prompt(gpt2_like, demonstrations=[("x", " yes"), ("y", " no")], query="z", template=TEMPLATE)
    with pytest.raises(errors.LabelWordError, match="same label_words"):
        al.label_attention_auroc(gpt2_like, [prompts[0], other])
    with pytest.raises(errors.InvalidConfigError, match="at least one prompt"):
        al.isolation(gpt2_like, [])


def test_isolation_frame_is_the_runs_per_example_rows(gpt2_like):
    config = IsolationConfig(seeds=(6,), n_test=5, batch_size=2, k=(1, 2))
    prompts = seed_prompts(gpt2_like, 6, 5)
    frame = al.isolation(gpt2_like, prompts, k=(1, 2), seed=6, batch_size=2)
    assert list(frame[["k", "condition"]].drop_duplicates().itertuples(index=False, name=None)) == [
        (k, condition) for k in (1, 2) for condition in CONDITIONS
    ]
    in_example_order = frame.sort_values(["k", "condition", "example"], key=_setting_order, kind="stable")
    pd.testing.assert_frame_equal(
        in_example_order.reset_index(drop=True), run_examples(run_isolation(gpt2_like, "sst2", config, progress=False))
    )


def _setting_order(column: pd.Series) -> pd.Series:
    return column.map(CONDITIONS.index) if column.name == "condition" else column


def test_isolation_in_chosen_layers_equals_the_papers_first_and_last_k(gpt2_like):
    """On a 2-layer model, layers=[0] is the first 1 and layers=[1] the last 1: the same rows."""
    prompts = own_prompts(gpt2_like)
    paper = al.isolation(gpt2_like, prompts, k=1, seed=3)
    for layers, where in (([0], "first"), ([1], "last")):
        chosen = al.isolation(gpt2_like, prompts, layers=layers, seed=3)
        assert chosen["condition"].unique().tolist() == ["label", "random"] and (chosen["k"] == 1).all()
        for kind in ("label", "random"):
            expected = paper[paper["condition"] == f"{kind}_{where}"].drop(columns="condition").reset_index(drop=True)
            got = chosen[chosen["condition"] == kind].drop(columns="condition").reset_index(drop=True)
            pd.testing.assert_frame_equal(got, expected)
    with pytest.raises(errors.InvalidConfigError, match="either k .* or layers"):
        al.isolation(gpt2_like, prompts, k=1, layers=[0])
    with pytest.raises(errors.InvalidConfigError, match="condition must be one or more of"):
        al.isolation(gpt2_like, prompts, layers=[0], condition="label_first")
    with pytest.raises(errors.InvalidConfigError, match="layer ids of 0..1"):
        al.isolation(gpt2_like, prompts, layers=[2])


def test_label_attention_auroc_frames_are_the_runs_rows(llama_like):
    config = AurocConfig(seeds=(2,), n_test=6, batch_size=4, per_head=True)
    prompts = seed_prompts(llama_like, 2, 6)
    with pytest.warns(al.FewPromptsWarning, match=r"rests on \d prompt\(s\) in its rarest class .* fewer than 10"):
        measured = al.label_attention_auroc(llama_like, prompts, per_head=True, batch_size=4)
    result = run_auroc(llama_like, "sst2", config, progress=False)
    pd.testing.assert_frame_equal(measured.examples, run_examples(result))
    # The per-layer numbers in their own frame: one row per layer (then per head), as the run's seed rows.
    layers = al.layer_rows(measured.layers)
    assert list(layers.columns) == ["layer", "auroc", "R", "n", "classes_kept"] and len(layers) == 2
    curve = layers["auroc"].to_numpy()
    np.testing.assert_array_equal(curve, whole_layer_rows(result.frame)["auroc"].to_numpy())
    rows = whole_layer_rows(measured.examples)
    for layer in range(llama_like.cfg.n_layers):
        at = rows[rows["layer"] == layer]
        assert curve[layer] == layer_auroc(at[["att_0", "att_1"]].to_numpy(), at["prediction"].to_numpy()) or (
            np.isnan(curve[layer])
        )
    np.testing.assert_array_equal(layers["R"].to_numpy(), cumulative_r(curve))
    assert al.head_rows(measured.layers)["R"].isna().all()
    assert set(measured.layers["level"]) == {"layer", "head"}
    grid = al.head_grid(measured.layers, "auroc")
    assert grid.shape == (llama_like.cfg.n_layers, llama_like.cfg.n_heads)
    heads = al.head_rows(measured.layers)
    assert grid.loc[1, 2] == heads[(heads["layer"] == 1) & (heads["head"] == 2)]["auroc"].item() or np.isnan(
        grid.loc[1, 2]
    )


def test_label_attention_auroc_read_as_one_frame_still_works_with_a_warning(llama_like):
    prompts = seed_prompts(llama_like, 2, 6)
    with pytest.warns(al.FewPromptsWarning):
        measured = al.label_attention_auroc(llama_like, prompts, batch_size=4)
    with pytest.warns(FutureWarning, match=r"use result.layers for auroc and R"):
        old = measured.groupby("layer")[["auroc", "R"]].first()
    np.testing.assert_array_equal(old["R"].to_numpy(), measured.layers["R"].to_numpy())
    with pytest.warns(FutureWarning):
        assert len(measured) == len(measured.examples)
        # NaN where a random tiny model predicts one class only: equal as arrays, NaN matching NaN
        np.testing.assert_array_equal(measured["auroc"].to_numpy(), measured.combined()["auroc"].to_numpy())
    with pytest.warns(al.FewPromptsWarning):
        by_head = al.label_attention_auroc(llama_like, prompts, per_head=True, batch_size=4)
    combined = by_head.combined()  # the old frame: each row's own layer's (or head's) numbers
    for frame in (al.layer_rows, al.head_rows):
        expected = frame(by_head.layers).set_index(["layer", "head"] if frame is al.head_rows else ["layer"])
        rows = frame(combined)
        keys = list(expected.index.names)
        got = rows.groupby(keys)[["auroc", "R"]].first()
        pd.testing.assert_frame_equal(got, expected[["auroc", "R"]], check_names=False)


def test_head_grid_lays_out_per_head_saliency(llama_like):
    prompts = seed_prompts(llama_like, 2, 3)
    rows = al.saliency(llama_like, prompts, per_head=True, batch_size=4)
    assert list(rows.columns[:5]) == ["example", "gold", "layer", "head", "level"]
    assert (rows["level"] == np.where(rows["head"].isna(), "layer", "head")).all()
    cube = al.head_grid(rows, "S_pq", per_example=True)
    assert cube.shape == (3, llama_like.cfg.n_layers, llama_like.cfg.n_heads)
    np.testing.assert_allclose(al.head_grid(rows, "S_pq").to_numpy(), cube.mean(0))
    heads = al.head_rows(rows)
    first = heads[heads["example"] == rows["example"].iloc[0]]
    assert cube[0, 1, 0] == first[(first["layer"] == 1) & (first["head"] == 0)]["S_pq"].item()
    with pytest.raises(errors.InvalidConfigError, match="no per-head rows; make it with per_head=True"):
        al.head_grid(al.layer_rows(rows), "S_pq")
    with pytest.raises(errors.InvalidConfigError, match="has no column 'S_xx'"):
        al.head_grid(rows, "S_xx")


def test_anchor_keys_are_the_diagnosis_keys(llama_like):
    config = DiagnoseConfig(seeds=(3,), n_test=4, batch_size=3, layer=1, min_per_class=2, n_components=2)
    result = run_diagnose(llama_like, "sst2", config, progress=False)
    examples = run_examples(result)
    demonstrations, _ = sample_demonstrations("sst2", 3)
    # The run's prompts: its inputs (test rows, topped up) with the seed's demonstrations.
    test_rows = set(examples.loc[examples["split"] == "validation", "example"])
    _, prompts = task_prompts(llama_like, "sst2", 3)
    prompts = [p for p in prompts if p.example_index in test_rows]
    order = {index: place for place, index in enumerate(examples["example"])}
    prompts.sort(key=lambda p: order[p.example_index])
    keys = al.anchor_keys(llama_like, prompts, layer=1, batch_size=3)
    pd.testing.assert_frame_equal(keys.examples, examples.drop(columns="split"))
    batch_keys, batch_queries, probabilities = keys_and_queries(llama_like, make_batch(prompts), 1)
    torch.testing.assert_close(keys.keys, batch_keys, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(keys.queries, batch_queries, rtol=1e-5, atol=1e-6)
    predicted = result.frame.pivot(index="class_a", columns="class_b", values="predicted").to_numpy()
    np.testing.assert_allclose(keys.predicted_confusion(2), predicted[np.ix_([0, 1], [0, 1])], rtol=1e-9)
    assert keys.keys.shape == (len(prompts), 2, llama_like.cfg.n_heads * llama_like.cfg.d_head)
    with pytest.raises(errors.InvalidConfigError, match="layer 5 does not exist"):
        al.anchor_keys(llama_like, prompts, layer=5)


def test_compress_frame_is_the_runs_per_example_rows(gpt2_like):
    config = CompressConfig(seeds=(5,), n_test=5, batch_size=2, random_draws=3, timing_repeats=1)
    prompts = seed_prompts(gpt2_like, 5, 5)
    frame = al.compress(gpt2_like, prompts, seed=5, random_draws=3, batch_size=2, timing_repeats=1)
    result = run_compress(gpt2_like, "sst2", config, progress=False)
    timing = ["seconds_per_input", "demo_tokens", "kept_tokens"]
    in_run_order = frame.drop(columns=timing).sort_values(["method", "example"], key=_method_order, kind="stable")
    pd.testing.assert_frame_equal(in_run_order.reset_index(drop=True), run_examples(result))
    kept = frame.groupby("method", sort=False)["kept_tokens"].first()
    assert kept.to_dict() == result.frame.set_index("method")["kept_tokens"].to_dict()


def _method_order(column: pd.Series) -> pd.Series:
    return column.map(METHODS.index) if column.name == "method" else column


def test_compress_groups_prompts_by_their_demonstrations(llama_like):
    """Prompts with two demonstration sets: each group runs against its own cache, as if compressed alone."""
    first = own_prompts(llama_like)
    second = task_prompts(llama_like, "sst2", 9, n_test=2)[1]
    mixed = [first[0], second[0], first[1], second[1], first[2]]
    methods = ["icl", "text_anchor", "hidden_anchor"]
    together = al.compress(llama_like, mixed, methods, timing_repeats=1)
    alone = {}
    for group in (first, second):
        frame = al.compress(llama_like, group, methods, timing_repeats=1)
        for method in methods:
            rows = frame[frame["method"] == method].reset_index(drop=True)
            for place, prompt in enumerate(group):
                alone[(id(prompt), method)] = rows.loc[place]
    for method in methods:
        rows = together[together["method"] == method].reset_index(drop=True)
        for place, prompt in enumerate(mixed):
            expected = alone[(id(prompt), method)]
            for column in ("prediction", "label_loyalty", "word_loyalty", "correct", "kept_tokens", "demo_tokens"):
                assert rows.loc[place, column] == expected[column], (method, place, column)
    unbuilt = dataclasses.replace(first[0], parts=None)
    with pytest.raises(errors.InvalidConfigError, match="leave 'text_anchor' out"):
        al.compress(llama_like, [unbuilt], "text_anchor")
    with pytest.raises(errors.InvalidConfigError, match="method must be one or more"):
        al.compress(llama_like, first, "hidden")


def test_fit_beta_is_the_runs_beta_and_apply_beta_its_predictions(gpt2_like, tmp_path):
    config = ReweightConfig(seeds=(1,), n_test=4, batch_size=3, epochs=2, extra_per_class=2)
    result = run_reweight(gpt2_like, "sst2", config, out=tmp_path, progress=False)
    saved, metadata = load_beta(beta_path(tmp_path, "sst2", 1), model=gpt2_like, task="sst2")
    demonstrations, extra = sample_demonstrations("sst2", 1, extra_per_class=2)
    training = query_prompts(gpt2_like.tokenizer, al.get_task("sst2"), demonstrations, extra, prepend_bos=False)
    beta = al.fit_beta(gpt2_like, training, learning_rate=0.01, epochs=2, seed=1)
    assert torch.equal(beta, fit_seed_beta(gpt2_like, "sst2", demonstrations, extra, config, 1))
    torch.testing.assert_close(beta, saved, rtol=0, atol=0)
    prompts = seed_prompts(gpt2_like, 1, 4)
    applied = al.apply_beta(gpt2_like, prompts, saved, variant=metadata["variant"], batch_size=3)
    reweighted = run_examples(result).query("method == 'reweight'").drop(columns="method").reset_index(drop=True)
    pd.testing.assert_frame_equal(applied[list(reweighted.columns)], reweighted)
    # β = 0 is exactly vanilla ICL.
    zero = al.apply_beta(gpt2_like, prompts, torch.zeros_like(saved), batch_size=3)
    vanilla, _ = label_probabilities(gpt2_like, prompts, 3, prefix_cache=True)
    np.testing.assert_array_equal(zero[["p_0", "p_1"]].to_numpy(), vanilla.double().numpy())
    with pytest.raises(errors.InvalidConfigError, match="expected \\(layers, heads, classes\\)"):
        al.apply_beta(gpt2_like, prompts, saved[:1])
    unlabelled = [dataclasses.replace(p, query_label=None) for p in training]
    with pytest.raises(errors.InvalidConfigError, match="gold label"):
        al.fit_beta(gpt2_like, unlabelled)
    assert np.isnan(al.apply_beta(gpt2_like, unlabelled[:1], saved)["correct"]).all()


# --------------------------------------------------------------------------------- activations at the anchors


def test_anchor_activations_gather_the_label_positions_and_the_target(llama_like):
    prompts = own_prompts(llama_like) + [
        build_prompt(
            llama_like,
            demonstrations=[("a", " Positive"), ("b", " Negative"), ("c", " Positive")],
            query="d",
            template=TEMPLATE,
            label_words=[" Negative", " Positive"],
        )
    ]
    batch = make_batch(prompts)
    with torch.no_grad():
        _, cache = llama_like.run_with_cache(batch.tokens)
    labels, target = anchor_activations(cache, batch)
    n_layers, d_model = llama_like.cfg.n_layers, llama_like.cfg.d_model
    assert labels.shape == (n_layers, 4, 2, d_model) and target.shape == (n_layers, 4, d_model)
    for layer in range(n_layers):
        residual = cache[f"blocks.{layer}.hook_resid_post"]
        for row, prompt in enumerate(prompts):
            torch.testing.assert_close(target[layer, row], residual[row, prompt.target_position])
            for label, positions in enumerate(prompt.label_positions):
                expected = residual[row, list(positions)].mean(0)
                torch.testing.assert_close(labels[layer, row, label], expected, rtol=1e-5, atol=1e-6)
    # Keys per head keep their head axes: [layer, batch, class, kv_head, d_head].
    keys, _ = anchor_activations(cache, batch, "k", layers=[1])
    assert keys.shape == (1, 4, 2, llama_like.cfg.n_key_value_heads, llama_like.cfg.d_head)
    with pytest.raises(errors.HookError, match="holds no 'blocks.0.hook_mlp_out'"):
        anchor_activations(
            llama_like.run_with_cache(batch.tokens, names_filter=lambda name: "resid" in name)[1], batch, "mlp_out"
        )
    with pytest.raises(errors.HookError, match="not \\[batch, position, ...\\]"):
        anchor_activations(cache, make_batch(prompts[:2]))


def test_the_diagnosis_gathers_its_keys_with_the_same_helpers(llama_like):
    """`keys_and_queries` (inside hooks) equals `label_means` / `target_rows` of a cached run: rotary keys with
    their grouped heads repeated, queries at the target."""
    from einops import rearrange, repeat

    batch = make_batch(own_prompts(llama_like))
    keys, queries, _ = keys_and_queries(llama_like, batch, 1)
    with torch.no_grad():
        _, cache = llama_like.run_with_cache(batch.tokens)
    group = llama_like.cfg.n_heads // llama_like.cfg.n_key_value_heads
    cached_keys = repeat(cache["blocks.1.attn.hook_rot_k"], "b p kv d -> b p (kv group d)", group=group)
    assert torch.equal(keys, label_means(cached_keys, batch))
    assert torch.equal(queries, rearrange(target_rows(cache["blocks.1.attn.hook_rot_q"], batch), "b h d -> b (h d)"))


# -------------------------------------------------------------------------------------------------- exports


def test_every_public_name_is_exported_and_documented():
    assert len(al.__all__) == len(set(al.__all__))
    missing = [name for name in al.__all__ if not hasattr(al, name)]
    assert not missing, missing
    error_classes = [
        name for name, value in vars(errors).items() if inspect.isclass(value) and issubclass(value, Exception)
    ]
    assert set(error_classes) <= set(al.__all__)
    experiments = importlib.import_module("anchorlens.experiments")
    assert set(experiments.__all__) <= set(al.__all__)  # every experiment, `run_heads` included
    for name in (
        "save_beta",
        "load_beta",
        "cache_root",
        "converted_dir",
        "prompt_flow",
        "PromptFlow",
        "plot_flow",
        "AnchorCache",
        "cache_demonstrations",
        "query_tokens",
        "run_query_with_cache",
        "recorded_model_name",  # the name `save_beta` records and `load_beta` checks
        "Model",
    ):
        assert name in al.__all__
    # A class's own docstring, not the signature a dataclass writes when it has none.
    classes = [getattr(al, name) for name in al.__all__ if inspect.isclass(getattr(al, name))]
    undocumented = [c.__name__ for c in classes if not c.__doc__ or c.__doc__.startswith(f"{c.__name__}(")]
    assert not undocumented, undocumented


#: Public functions whose modules (`anchorlens.plots`, `anchorlens.orchestrate`) still describe their arguments
#: in prose rather than in ``Args:``/``Returns:`` sections.
def docstring_gaps(function) -> list[str]:
    """What a public function's docstring lacks: an ``Args:`` item per parameter (``name:`` or ``name (type):``,
    ``**name`` for keyword arguments), a ``Returns:`` or ``Yields:`` section unless it returns None, and every
    jaxtyping shape of its parameters and return value written out (``Float[Tensor, "batch class"]`` as
    ``[batch, class]``)."""
    import re

    doc = inspect.getdoc(function) or ""
    signature = inspect.signature(function)
    gaps = []
    for parameter in signature.parameters.values():
        stars = {parameter.VAR_POSITIONAL: "*", parameter.VAR_KEYWORD: "**"}.get(parameter.kind, "")
        if not re.search(rf"^    {re.escape(stars + parameter.name)}( \([^\n]*\))?:", doc, re.MULTILINE):
            gaps.append(f"argument {stars}{parameter.name}")
    returned = signature.return_annotation
    if returned not in (None, "None") and not re.search(r"^(Returns|Yields):$", doc, re.MULTILINE):
        gaps.append("Returns")
    annotations = [parameter.annotation for parameter in signature.parameters.values()] + [returned]
    for annotation in annotations:
        for shape in re.findall(r"(?:Float|Int|Bool)\[\w+, [\"']([^\"']+)[\"']\]", str(annotation)):
            written = "[" + ", ".join(re.sub(r"=\d+$", "", axis) for axis in shape.split()) + "]"
            if written not in doc:
                gaps.append(f"shape {written}")
    return gaps


def test_every_public_function_documents_its_arguments_returns_and_shapes():
    functions = {
        name: getattr(al, name)
        for name in al.__all__
        if callable(getattr(al, name)) and not inspect.isclass(getattr(al, name))
    }
    gaps = {name: docstring_gaps(function) for name, function in functions.items()}
    assert not {name: gap for name, gap in gaps.items() if gap}


def test_the_docstring_check_finds_what_is_missing():
    def documented(model: al.Model, beta: Float[Tensor, "layer head class"], **options: int) -> Float[Tensor, " batch"]:
        """Something.

        Args:
            model: a model.
            beta: [layer, head, class].
            **options: more.

        Returns:
            [batch].
        """

    def undocumented(model: al.Model, beta: Float[Tensor, "layer head class"]) -> Float[Tensor, "batch class"]:
        """Something about `model` and `beta`, returning logits."""

    assert docstring_gaps(documented) == []
    assert docstring_gaps(undocumented) == [
        "argument model",
        "argument beta",
        "Returns",
        "shape [layer, head, class]",
        "shape [batch, class]",
    ]


def test_importing_anchorlens_imports_no_experiment_figure_or_transformer_lens():
    # `import anchorlens` imports `Model` (anchorlens.model_classes), so this also checks that the `Model` type
    # leaves TransformerLens unimported (the fast tier's stand-in for tests/unit/test_types.py's own subprocess).
    code = (
        "import sys, anchorlens\n"
        "loaded = [m for m in ('plotly', 'anchorlens.experiments', 'anchorlens.plots', 'transformer_lens') "
        "if m in sys.modules]\n"
        "print(loaded)\n"
        "print('anchorlens.model_classes' in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["[]", "True"]
    # The names left out resolve on first use, each to its module's object: checked in this process, where those
    # modules are loaded already (using one in the fresh process would cost it 8 s of CPU importing them).
    for name, module in al._LAZY.items():
        assert getattr(al, name) is getattr(importlib.import_module(module), name), name


# ------------------------------------------------------------------------------------------- the real model


def test_the_building_blocks_refuse_bad_input_with_the_fix(gpt2_like):
    """The lower-level public functions raise an AnchorlensError naming the fix (they raised bare ValueErrors)."""
    prompts = own_prompts(gpt2_like)
    with pytest.raises(errors.InvalidConfigError, match="at least one prompt; build them with"):
        al.make_batch([])
    with pytest.raises(errors.InvalidConfigError, match="batch_size must be at least 1, got 0"):
        next(al.iter_batches(prompts, 0))
    unlabelled = al.make_batch([dataclasses.replace(prompts[0], query_label=None)])
    with pytest.raises(errors.InvalidConfigError, match="query_label="):
        al.label_loss(torch.zeros(1, gpt2_like.cfg.d_vocab), unlabelled)
    with pytest.raises(errors.InvalidConfigError, match="or neither to run from the embeddings"):
        al.run_to_target(gpt2_like, al.make_batch(prompts[:1]), start_at_layer=1)
    other = build_prompt(gpt2_like, "sst2", [("another demonstration", 0), ("and one more", 1)], query="x")
    cache = al.cache_demonstrations(gpt2_like, prompts[0].token_ids[: prompts[0].length - 8])
    with pytest.raises(errors.InvalidConfigError, match="group prompts by their demonstrations"):
        al.query_tokens(other, cache)


def test_a_true_confusion_on_few_prompts_per_class_warns_in_one_line(llama_like):
    prompts = seed_prompts(llama_like, 3, 4)
    keys = al.anchor_keys(llama_like, prompts, layer=1, batch_size=4)
    with pytest.warns(al.FewPromptsWarning, match=r"true confusion rests on \d prompt\(s\).* fewer than 30 per class"):
        keys.true_confusion()


def test_build_prompt_takes_a_model_or_tokenizer_and_one_query_name(gpt2_like):
    demonstrations = [("a dull film", 0), ("a joy", 1)]
    by_position = al.build_prompt(gpt2_like, "sst2", demonstrations, "fine", 1)
    by_name = al.build_prompt(model_or_tokenizer=gpt2_like, task="sst2", demonstrations=demonstrations, query="fine")
    assert by_name.token_ids == by_position.token_ids
    with pytest.warns(
        FutureWarning, match=r"build_prompt\(tokenizer=...\) is deprecated: the parameter is now model_or"
    ):
        old = al.build_prompt(tokenizer=gpt2_like, task="sst2", demonstrations=demonstrations, query="fine")
    with pytest.warns(
        FutureWarning, match=r"build_prompt\(query_text=...\) is deprecated: the parameter is now query="
    ):
        old_query = al.build_prompt(gpt2_like, "sst2", demonstrations, query_text="fine")
    assert old.token_ids == old_query.token_ids == by_position.token_ids
    with pytest.raises(errors.InvalidConfigError, match="both query= and query_text="):
        al.build_prompt(gpt2_like, "sst2", demonstrations, "fine", query_text="other")
    with pytest.raises(errors.InvalidConfigError, match=r"needs a loaded model or its tokenizer first"):
        al.build_prompt(task="sst2", demonstrations=demonstrations, query="fine")
