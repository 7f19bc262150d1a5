"""Head-level anchors: the per-head block, the ranking, the keyed random heads, the cross-fitted check and the
summary's rule, on tiny models (and one real model in the slow tier)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from anchorlens.errors import HookError, InvalidConfigError
from anchorlens.experiments.heads import (
    FLOWS,
    GAP,
    HeadsConfig,
    HeadsResult,
    blocked_edges,
    check_head_counts,
    halves,
    head_flow_of_batch,
    head_mask,
    random_heads,
    rank_heads,
    run_heads,
)
from anchorlens.experiments.saliency import REGIONS, saliency_by_head
from anchorlens.forward import run_to_target
from anchorlens.hooks import (
    LabelAttentionRecorder,
    block_earlier_mask,
    head_isolation_hooks,
    isolate_heads_hook,
    isolation_hooks,
    pattern_hook_name,
    scores_hook_name,
    target_to_label_mask,
)
from anchorlens.prompts import build_prompt, make_batch, prompt_settings, task_prompts


@pytest.fixture
def batch(smol_tokenizer):
    demos = [("a dull , lifeless film ", 0), ("warm and funny ", 1), ("a mess ", 0)]
    prompts = [
        build_prompt(smol_tokenizer, "sst2", demos, text, label, prepend_bos=False, example_index=index)
        for index, (text, label) in enumerate([("the best film of the year ", 1), ("tedious ", 0)])
    ]
    return make_batch(prompts)


# ------------------------------------------------------------------------------------------------ the block


def test_target_to_label_mask_marks_the_target_row_at_the_label_keys(batch):
    mask = target_to_label_mask(batch)
    for row, prompt in enumerate(batch.prompts):
        expected = torch.zeros(batch.seq_len, batch.seq_len, dtype=torch.bool)
        expected[prompt.target_position, list(prompt.demonstration_label_positions)] = True
        assert torch.equal(mask[row], expected)


def _patterns(model, tokens, hooks=()):
    kept = {}

    def keep(pattern, hook):
        kept[hook.name] = pattern.detach().clone()

    names = [pattern_hook_name(layer) for layer in range(model.cfg.n_layers)]
    with torch.no_grad():
        model.run_with_hooks(tokens, fwd_hooks=list(hooks) + [(name, keep) for name in names])
    return kept


@pytest.mark.parametrize("flow", FLOWS)
def test_the_per_head_block_zeroes_only_the_chosen_heads_entries(llama_like, batch, flow):
    """In layer 0, each prompt's chosen heads attend 0 along the flow's edges (their rows renormalised); every
    other head of that layer attends exactly as without the block."""
    edges = blocked_edges(batch, flow)
    chosen = torch.tensor([[True, False, False, True], [False, True, False, False]])  # per prompt, 4 heads
    plain = _patterns(llama_like, batch.tokens)[pattern_hook_name(0)]
    edited = _patterns(llama_like, batch.tokens, head_isolation_hooks(edges, {0: chosen}))[pattern_hook_name(0)]
    for row in range(batch.size):
        for head in range(llama_like.cfg.n_heads):
            if chosen[row, head]:
                assert edited[row, head][edges[row]].abs().max() == 0
                assert plain[row, head][edges[row]].abs().max() > 0
                assert not torch.allclose(edited[row, head], plain[row, head])
            else:
                assert torch.equal(edited[row, head], plain[row, head])


def test_blocking_every_head_is_the_papers_layer_isolation(gpt2_like, batch):
    """The per-head block with all heads chosen is `isolation_hooks` (label rows to earlier tokens, all heads)."""
    edges = blocked_edges(batch, "wp")
    assert torch.equal(edges, block_earlier_mask(batch, [p.demonstration_label_positions for p in batch.prompts]))
    every = torch.ones(batch.size, gpt2_like.cfg.n_heads, dtype=torch.bool)
    with torch.no_grad():
        per_head = run_to_target(gpt2_like, batch, head_isolation_hooks(edges, {0: every, 1: every}))
        whole = run_to_target(gpt2_like, batch, isolation_hooks({0: edges, 1: edges}))
        plain = run_to_target(gpt2_like, batch)
    assert torch.equal(per_head, whole)
    assert not torch.allclose(per_head, plain)


def test_layers_without_a_chosen_head_get_no_hook_and_a_wrong_shape_is_refused(gpt2_like, batch):
    edges = blocked_edges(batch, "pq")
    none = torch.zeros(batch.size, gpt2_like.cfg.n_heads, dtype=torch.bool)
    some = none.clone()
    some[0, 1] = True
    assert [name for name, _ in head_isolation_hooks(edges, {0: none, 1: some})] == [scores_hook_name(1)]
    wrong = isolate_heads_hook(edges, torch.ones(batch.size, gpt2_like.cfg.n_heads + 1, dtype=torch.bool))
    with pytest.raises(HookError, match=r"\(batch, head\)"), torch.no_grad():
        gpt2_like.run_with_hooks(batch.tokens, fwd_hooks=[(scores_hook_name(0), wrong)])


# ------------------------------------------------------------------------------------------- the measurements


def test_head_flow_is_per_head_saliency_and_label_attention_of_one_pass(llama_like, batch):
    measured = head_flow_of_batch(llama_like, batch)
    _, saliency, prediction = saliency_by_head(llama_like, batch)
    assert torch.allclose(measured.saliency, saliency, rtol=1e-5, atol=1e-12)
    assert torch.equal(measured.prediction, prediction)
    recorder = LabelAttentionRecorder(llama_like, batch)
    with torch.no_grad():
        run_to_target(llama_like, batch, recorder.hooks())
    assert torch.allclose(measured.attention, recorder.values, atol=1e-6)


def test_rank_heads_orders_by_value_then_layer_then_head():
    values = np.array([[0.1, 0.5], [0.5, 0.3]])
    assert rank_heads(values).tolist() == [1, 2, 3, 0]  # flat index = layer * 2 + head


def test_halves_alternate_in_order_of_test_row_whatever_the_order_given():
    assert halves([40, 7, 19, 3]).tolist() == [1, 1, 0, 0]  # sorted: 3, 7, 19, 40 -> 0, 1, 0, 1
    assert halves([3, 7, 19, 40]).tolist() == [0, 1, 0, 1]


def test_random_heads_are_keyed_by_seed_example_and_draw_and_avoid_the_top_heads(batch):
    prompt = batch.prompts[0]
    top = [5, 2, 9]
    drawn = random_heads(prompt, 42, 0, 12, top, 3)
    assert len(drawn) == 3 and not set(drawn) & set(top) and len(set(drawn)) == 3
    assert drawn == random_heads(prompt, 42, 0, 12, top, 3)  # the same key, the same heads
    assert random_heads(prompt, 42, 0, 12, top, 5)[:3] == drawn  # nested over k
    others = {tuple(random_heads(prompt, seed, draw, 12, top, 3)) for seed in (42, 43) for draw in (0, 1, 2)}
    assert len(others) > 1
    # Another test input draws its own heads (the key holds its example index).
    assert {tuple(random_heads(batch.prompts[1], 42, draw, 12, top, 3)) for draw in range(3)} != {
        tuple(random_heads(prompt, 42, draw, 12, top, 3)) for draw in range(3)
    }


def test_head_mask_marks_each_prompts_flat_heads():
    mask = head_mask([[0, 5], [3]], n_layers=2, n_heads=4)
    assert mask.shape == (2, 2, 4)
    assert mask[0].nonzero().tolist() == [[0, 0], [1, 1]] and mask[1].nonzero().tolist() == [[0, 3]]


# ---------------------------------------------------------------------------------------------------- the run


CONFIG = HeadsConfig(seeds=(5,), n_test=6, batch_size=3, top_k=(1, 3), random_draws=2)


@pytest.fixture(scope="module")
def result(llama_like):
    return run_heads(llama_like, "sst2", CONFIG, progress=False)


def test_rows_and_per_example_rows(result, llama_like):
    n_layers, n_heads = llama_like.cfg.n_layers, llama_like.cfg.n_heads
    frame = result.to_frame()
    assert list(frame.columns) == [
        "task",
        "model",
        "seed",
        "layer",
        "head",
        *REGIONS,
        "auroc",
        "rank_wp",
        "rank_pq",
        "n",
    ]
    assert len(frame) == n_layers * n_heads
    for flow in FLOWS:
        assert sorted(frame[f"rank_{flow}"]) == list(range(1, n_layers * n_heads + 1))
        best = frame.loc[frame[f"rank_{flow}"] == 1, f"S_{flow}"].item()
        assert best == frame[f"S_{flow}"].max()
    examples = result.examples
    assert list(examples.columns) == [
        "task",
        "model",
        "seed",
        "example",
        "gold",
        "flow",
        "k",
        "condition",
        "draw",
        "heads",
        "base_prediction",
        "prediction",
        "label_loyalty",
        "word_loyalty",
    ]
    # Per input: per flow and k, one top run and `random_draws` random ones.
    assert len(examples) == 6 * len(FLOWS) * 2 * (1 + 2)
    counts = examples.groupby(["example", "flow", "k", "condition"]).size()
    assert set(counts.xs("top", level="condition")) == {1} and set(counts.xs("random", level="condition")) == {2}
    blocked = examples["heads"].str.split()
    assert (blocked.str.len() == examples["k"]).all()
    assert set(examples["label_loyalty"]) <= {0.0, 1.0} and examples["word_loyalty"].between(0, 1).all()
    assert (examples["label_loyalty"] == (examples["prediction"] == examples["base_prediction"])).all()
    # The random heads never include the heads the same input's top run blocked.
    top = examples[examples["condition"] == "top"].set_index(["example", "flow", "k"])["heads"].str.split()
    for row in examples[examples["condition"] == "random"].itertuples():
        assert not set(row.heads.split()) & set(top.loc[(row.example, row.flow, row.k)])


def test_each_input_blocks_the_heads_ranked_on_the_other_half(result, llama_like):
    """Cross-fitting: recompute every input's per-head saliency, rank the heads on the other half of the inputs
    and compare with the heads the top run blocked."""
    _, prompts = task_prompts(llama_like.tokenizer, "sst2", 5, n_test=6, **prompt_settings(llama_like))
    saliency = {p.example_index: head_flow_of_batch(llama_like, make_batch([p])).saliency[0] for p in prompts}
    examples = sorted(saliency)
    half = dict(zip(examples, halves(examples)))
    n_heads = llama_like.cfg.n_heads
    top = result.examples[result.examples["condition"] == "top"]
    for flow in FLOWS:
        region = REGIONS.index(f"S_{flow}")
        for which in (0, 1):
            other = torch.stack([saliency[e] for e in examples if half[e] != which]).double().mean(0)
            ranking = rank_heads(other[..., region].numpy())
            for k in CONFIG.top_k:
                expected = " ".join(f"{h // n_heads}.{h % n_heads}" for h in ranking[:k])
                rows = top[(top["flow"] == flow) & (top["k"] == k) & top["example"].map(half).eq(which)]
                assert len(rows) == 3 and set(rows["heads"]) == {expected}


def test_batch_size_changes_no_number(result, llama_like):
    one = run_heads(llama_like, "sst2", HeadsConfig(**{**CONFIG.to_dict(), "batch_size": 1}), progress=False)
    pd.testing.assert_frame_equal(one.examples, result.examples, rtol=1e-6)
    pd.testing.assert_frame_equal(one.to_frame(), result.to_frame(), rtol=1e-5, atol=1e-12)


def test_saved_parts_resume_without_recomputing(tmp_path, llama_like, monkeypatch):
    config = HeadsConfig(seeds=(5, 6), n_test=4, batch_size=4, top_k=(2,), random_draws=1)
    first = run_heads(llama_like, "sst2", config, out=tmp_path, progress=False)
    assert (tmp_path / "parts" / "heads" / "sst2-seed6.json").is_file()

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished seed was computed again")

    monkeypatch.setattr("anchorlens.experiments.heads.head_flow_of_batch", must_not_run)
    again = run_heads(llama_like, "sst2", config, out=tmp_path, progress=False)
    pd.testing.assert_frame_equal(again.examples, first.examples)
    pd.testing.assert_frame_equal(again.to_frame(), first.to_frame())
    back = HeadsResult.from_folder(tmp_path)
    assert back.config.top_k == (2,) and back.config.random_draws == 1
    with pytest.raises(InvalidConfigError, match="top_k"):
        run_heads(llama_like, "sst2", HeadsConfig(seeds=(5,), n_test=4, top_k=(1,)), out=tmp_path, progress=False)


def test_saved_result_has_its_tables(tmp_path, result):
    result.save(tmp_path)
    for name in ("heads.csv", "heads.parquet", "heads_examples.parquet", "heads_summary.csv"):
        assert (tmp_path / name).is_file()
    summary = pd.read_csv(tmp_path / "heads_summary.csv")
    assert set(summary["condition"]) == {"top", "random", GAP}


# ------------------------------------------------------------------------------------------------ the summary


def _result(top: list[float], random: list[list[float]], seeds=(1,)) -> HeadsResult:
    """Synthetic per-example rows: label loyalty of the top run and of each random draw per input."""
    rows = []
    for seed in seeds:
        for example, (top_value, draws) in enumerate(zip(top, random)):
            common = {"task": "sst2", "model": "m", "seed": seed, "example": example, "gold": 0, "flow": "wp", "k": 1}
            rows.append({**common, "condition": "top", "draw": 0, "label_loyalty": top_value, "word_loyalty": 1.0})
            for draw, value in enumerate(draws):
                rows.append(
                    {**common, "condition": "random", "draw": draw, "label_loyalty": value, "word_loyalty": 1.0}
                )
    return HeadsResult(pd.DataFrame(), HeadsConfig(), pd.DataFrame(rows))


def test_random_draws_are_averaged_per_input_before_the_bootstrap():
    result = _result(top=[1.0, 0.0, 1.0, 1.0], random=[[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [1.0, 1.0]])
    inputs = result.per_input()
    assert inputs[inputs["condition"] == "random"]["label_loyalty"].tolist() == [0.5, 1.0, 0.0, 1.0]
    summary = result.summary_with_ci().set_index(["condition", "metric"])
    assert summary.loc[("top", "label_loyalty"), "mean"] == pytest.approx(0.75)
    assert summary.loc[("random", "label_loyalty"), "mean"] == pytest.approx(0.625)
    assert summary.loc[(GAP, "label_loyalty"), "mean"] == pytest.approx(-0.125)  # random - top
    assert summary.loc[("random", "label_loyalty"), "n_examples"] == 4


@pytest.mark.parametrize(
    ("top", "random", "answer"),
    [
        ([0.0] * 30, [[1.0]] * 30, "yes"),  # blocking the top heads flips every prediction, random ones none
        ([1.0] * 30, [[0.0]] * 30, "no: less"),
        ([1.0] * 30, [[1.0]] * 30, "not shown"),  # nothing differs: a gap of exactly 0
        ([0.0, 1.0] * 15, [[1.0], [0.0]] * 15, "not shown"),  # gaps of +1 and -1: the interval holds 0
    ],
)
def test_the_causal_check_is_a_rule_over_the_gap_interval(top, random, answer):
    table = _result(top, random, seeds=(1, 2)).causal_check().set_index("metric")
    assert table.loc["label_loyalty", "top_costs_more"] == answer
    assert table.loc["word_loyalty", "top_costs_more"] == "not shown"
    row = table.loc["label_loyalty"]
    assert row["gap_mean"] == pytest.approx(row["random_mean"] - row["top_mean"])
    assert row["gap_ci_low"] <= row["gap_mean"] <= row["gap_ci_high"]


def test_top_heads_are_the_seed_means_ranked_by_the_flow():
    frame = pd.DataFrame(
        {
            "task": "sst2",
            "model": "m",
            "seed": [1, 1, 1, 2, 2, 2],
            "layer": [0, 0, 1, 0, 0, 1],
            "head": [0, 1, 0, 0, 1, 0],
            "S_wp": [3.0, 1.0, 2.0, 1.0, 1.0, 2.0],
            "S_pq": [0.0, 0.0, 1.0, 0.0, 2.0, 1.0],
            "S_ww": 0.0,
            "auroc": [0.5, 0.6, 0.7, 0.5, 0.8, 0.9],
        }
    )
    result = HeadsResult(frame, HeadsConfig(), pd.DataFrame())
    wp = result.top_heads("wp", n=2)
    assert list(zip(wp["layer"], wp["head"], wp["S_wp"])) == [(0, 0, 2.0), (1, 0, 2.0)]  # a tie: layer order
    assert wp["rank"].tolist() == [1, 2]
    pq = result.top_heads("pq", n=1)
    assert (pq["layer"].item(), pq["head"].item(), pq["auroc"].item()) == (0, 1, pytest.approx(0.7))
    with pytest.raises(InvalidConfigError, match="unknown flow"):
        result.top_heads("qq")


# --------------------------------------------------------------------------------------------- bad settings


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"top_k": ()}, "top_k must be one or more"),
        ({"top_k": (0, 2)}, "top_k must be one or more"),
        ({"top_k": (2, 2)}, "top_k repeats"),
        ({"random_draws": 0}, "random_draws must be at least 1"),
        ({"word_top_k": 0}, "word_top_k must be at least 1"),
        ({"n_test": 1}, "at least 2"),
    ],
)
def test_config_validation(fields, problem):
    with pytest.raises(InvalidConfigError, match=problem):
        HeadsConfig(**fields)


def test_more_top_heads_than_the_random_control_can_match_is_refused_before_any_work(gpt2_like):
    with pytest.raises(InvalidConfigError, match=r"more than half of the model's 8 heads.*--top-k"):
        check_head_counts(HeadsConfig(top_k=(1, 5)), 2, 4)
    with pytest.raises(InvalidConfigError, match="at most 4"):
        run_heads(gpt2_like, "sst2", HeadsConfig(top_k=(5,), n_test=2), progress=False)


def test_the_cli_generates_the_command_and_its_options():
    from anchorlens.cli import build_parser, config_values

    args = build_parser(wanted={"heads"}).parse_args(
        ["heads", "--task", "sst2", "--out", "x", "--top-k", "2", "4", "--random-draws", "5", "--n-test", "30"]
    )
    config = HeadsConfig(**config_values(args, HeadsConfig))
    assert (config.top_k, config.random_draws, config.n_test) == ((2, 4), 5, 30)


def test_plot_heads_draws_layer_by_head_heatmaps(result, llama_like):
    from anchorlens.plots import plot_heads

    figure = plot_heads(result)
    assert [trace.type for trace in figure.data] == ["heatmap"] * 3
    s_pq = figure.data[1]
    assert np.asarray(s_pq.z).shape == (llama_like.cfg.n_layers, llama_like.cfg.n_heads)
    expected = result.to_frame().set_index(["layer", "head"])["S_pq"]
    assert np.allclose(np.asarray(s_pq.z)[1, 2], expected.loc[(1, 2)])
    assert "S_pq = %{z" in s_pq.hovertemplate and "rank" in s_pq.hovertemplate
    assert figure.layout.xaxis.title.text == "head" and figure.layout.yaxis.title.text == "layer"
