"""One prompt's flow: the full saliency matrix equals an autograd reference, its means equal the saliency
experiment's per-prompt values, and the figure offers each layer range with hover text from tracked roles."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from anchorlens.errors import AnchorlensError, InvalidConfigError, PromptTooLongError, TokenizationError
from anchorlens.experiments.saliency import (
    REGIONS,
    SaliencyConfig,
    fresh_demonstration_prompts,
    run_saliency,
    saliency_of_batch,
)
from anchorlens.flow import PromptFlow, layer_views, prompt_flow, role_names
from anchorlens.hooks import pattern_hook_name
from anchorlens.plots import plot_flow, save_figure
from anchorlens.prompts import Role, build_prompt, make_batch, prompt_settings

MODELS = ["gpt2_like", "llama_like"]


def close_within_1e6(mine: np.ndarray, theirs: np.ndarray) -> bool:
    """[layer, 3] S values equal to 1e-6 of each layer's total, i.e. the per-layer shares the paper plots agree
    to 1e-6. (A bare relative 1e-6 is too tight: the experiment sums I_l's ~1000 S_ww entries in float32, which
    moved S_ww alone by up to 1.2e-6 relative, measured on the tiny GPT-2-like model.)"""
    total = np.abs(theirs).sum(-1, keepdims=True)
    return bool(np.all(np.abs(mine - theirs) <= 1e-6 * total))


@pytest.fixture
def prompt(smol_tokenizer):
    # The first demonstration's text contains a label word: roles must come from positions, not strings.
    demonstrations = [("Positive vibes , a dull film ", 0), ("warm and funny ", 1), ("a mess ", 0)]
    return build_prompt(smol_tokenizer, "sst2", demonstrations, "the best film of the year ", 1, prepend_bos=False)


@pytest.mark.parametrize("model_fixture", MODELS)
def test_means_equal_the_saliency_experiments_per_prompt_values(request, model_fixture):
    model = request.getfixturevalue(model_fixture)
    result = run_saliency(model, "sst2", SaliencyConfig(seeds=(42,), n_test=3, batch_size=1), progress=False)
    prompts = fresh_demonstration_prompts(
        model.tokenizer, "sst2", 42, n_test=3, shots_per_class=1, **prompt_settings(model)
    )
    for prompt in prompts:
        flow = prompt_flow(model, prompt)
        rows = result.examples[result.examples["example"] == prompt.example_index].sort_values("layer")
        assert len(rows) == model.cfg.n_layers
        mine = flow.region_means()[list(REGIONS)].to_numpy()
        assert close_within_1e6(mine, rows[list(REGIONS)].to_numpy())
        assert (rows["prediction"] == flow.prediction).all() and (rows["gold"] == flow.gold).all()


@pytest.mark.parametrize("model_fixture", MODELS)
def test_means_equal_the_experiments_batch_function_at_batch_size_1(request, model_fixture, prompt):
    model = request.getfixturevalue(model_fixture)
    flow = prompt_flow(model, prompt)
    expected = saliency_of_batch(model, make_batch([prompt]))[0].double().numpy()  # [layer, 3]
    mine = np.stack([flow.S_wp.numpy(), flow.S_pq.numpy(), flow.S_ww.numpy()], -1)
    assert close_within_1e6(mine, expected)


@pytest.mark.parametrize("abs_per_head", [False, True])
@pytest.mark.parametrize("model_fixture", MODELS)
def test_matrix_equals_a_hand_written_autograd_reference(request, model_fixture, prompt, abs_per_head):
    model = request.getfixturevalue(model_fixture)
    flow = prompt_flow(model, prompt, abs_per_head=abs_per_head)
    patterns = {}

    def keep(pattern, hook):
        pattern.retain_grad()
        patterns[hook.name] = pattern

    model.zero_grad(set_to_none=True)
    logits = model.run_with_hooks(
        torch.tensor([prompt.token_ids]), fwd_hooks=[(lambda name: name.endswith("hook_pattern"), keep)]
    )
    label_logits = logits[0, prompt.target_position, list(prompt.label_token_ids)]
    torch.nn.functional.cross_entropy(label_logits[None], torch.tensor([prompt.query_label])).backward()
    model.zero_grad(set_to_none=True)
    for layer in range(model.cfg.n_layers):
        pattern = patterns[pattern_hook_name(layer)]
        product = (pattern.detach() * pattern.grad)[0]  # [head, query, key]
        reference = product.abs().sum(0) if abs_per_head else product.sum(0).abs()
        reference.fill_diagonal_(0)
        # Entries where the heads cancel are near 0, so a tolerance relative to the layer's largest entry: the
        # two graphs (full logits here, target logits there) round differently, by 2e-7 of it (measured).
        scale = float(reference.max())
        assert scale > 0 and torch.allclose(flow.saliency[layer], reference, rtol=1e-4, atol=1e-6 * scale), layer


def test_every_layer_gets_a_gradient_and_parameters_stay_frozen(gpt2_like, prompt):
    before = [parameter.requires_grad for parameter in gpt2_like.parameters()]
    flow = prompt_flow(gpt2_like, prompt)
    assert [parameter.requires_grad for parameter in gpt2_like.parameters()] == before
    assert all(parameter.grad is None for parameter in gpt2_like.parameters())  # no weight gradient computed
    assert flow.saliency.shape == (gpt2_like.cfg.n_layers, prompt.length, prompt.length)
    assert torch.isfinite(flow.saliency).all()
    for layer in range(gpt2_like.cfg.n_layers):
        assert flow.saliency[layer].abs().sum() > 0
        assert flow.saliency[layer].diagonal().eq(0).all() and flow.saliency[layer].triu(1).eq(0).all()
    # Every label word reaches the target in every layer; text reaches label words in the first layer (in the
    # last layer only the target row has a gradient, so S_wp is 0 there).
    assert (flow.S_pq > 0).all() and flow.S_wp[0] > 0


def test_runs_inside_no_grad(gpt2_like, prompt):
    outside = prompt_flow(gpt2_like, prompt)
    with torch.no_grad():
        inside = prompt_flow(gpt2_like, prompt)
    assert torch.equal(inside.saliency, outside.saliency)


def test_roles_come_from_tracked_positions(gpt2_like, prompt):
    flow = prompt_flow(gpt2_like, prompt)
    assert flow.roles == role_names(prompt)
    label_positions = set(prompt.demonstration_label_positions)
    assert {i for i, role in enumerate(flow.roles) if role == "label word"} == label_positions
    assert [i for i, role in enumerate(flow.roles) if role == "target"] == [prompt.target_position]
    text = {i for i, role in enumerate(prompt.roles) if role == Role.TEXT}
    assert {i for i, role in enumerate(flow.roles) if role == "text"} == text
    # " Positive" in the first demonstration's text is text, although it is the class-1 label word's token.
    in_text = [i for i in text if prompt.token_ids[i] == prompt.label_token_ids[1]]
    assert in_text and all(flow.roles[i] == "text" for i in in_text)
    assert flow.tokens[prompt.demonstration_label_positions[0]] == " Negative"


def test_tidy_rows_hold_every_causal_pair_and_average_to_the_means(gpt2_like, prompt):
    flow = prompt_flow(gpt2_like, prompt)
    frame = flow.to_frame()
    n, layers = prompt.length, gpt2_like.cfg.n_layers
    assert list(frame.columns) == [
        "layer",
        "source",
        "target",
        "source_token",
        "target_token",
        "source_role",
        "target_role",
        "saliency",
        "region",
    ]
    assert len(frame) == layers * n * (n - 1) // 2 and (frame["source"] < frame["target"]).all()
    row = frame[(frame["layer"] == 1) & (frame["target"] == prompt.target_position)].iloc[3]
    assert row["saliency"] == pytest.approx(float(flow.saliency[1, prompt.target_position, row["source"]]))
    assert row["source_token"] == flow.tokens[row["source"]] and row["target_role"] == "target"
    means = frame.groupby(["layer", "region"])["saliency"].mean().unstack()
    for region in REGIONS:
        assert np.allclose(means[region].to_numpy(), getattr(flow, region).numpy(), rtol=1e-9)


def test_default_layer_ranges_are_the_thirds_then_every_layer():
    views = layer_views(30)
    assert list(views)[:3] == ["shallow (layers 0–9)", "middle (layers 10–19)", "deep (layers 20–29)"]
    assert views["deep (layers 20–29)"] == tuple(range(20, 30)) and views["layer 7"] == (7,)
    assert len(views) == 3 + 30
    assert list(layer_views(2)) == ["shallow (layer 0)", "deep (layer 1)", "layer 0", "layer 1"]
    assert layer_views(12, [range(0, 4), 9, [3, 5]]) == {
        "layers 0–3": (0, 1, 2, 3),
        "layer 9": (9,),
        "layers 3, 5": (3, 5),
    }
    assert layer_views(12, {"early": [0, 1]}) == {"early": (0, 1)}


def test_figure_has_one_trace_group_per_layer_range_and_hover_with_token_and_role(gpt2_like, prompt):
    flow = prompt_flow(gpt2_like, prompt)
    figure = plot_flow(gpt2_like, prompt)
    views = layer_views(gpt2_like.cfg.n_layers)
    groups = [trace.meta for trace in figure.data]
    assert set(groups) == {"tokens", *views}
    buttons = figure.layout.updatemenus[0].buttons
    assert [button.label for button in buttons] == list(views)
    for button in buttons:
        visible = button.args[0]["visible"]
        assert visible == [group in ("tokens", button.label) for group in groups]
    first = list(views)[0]
    assert [trace.visible is not False for trace in figure.data] == [group in ("tokens", first) for group in groups]
    # Token hover: position, string and role of every token, exactly once.
    token_hover = [text for trace in figure.data if trace.meta == "tokens" for text in trace.hovertext]
    assert len(token_hover) == prompt.length
    label = prompt.demonstration_label_positions[1]
    assert any(text.startswith(f"token {label} “ Positive” (label word)") for text in token_hover)
    assert any(f"{prompt.target_position} “:” (target)" in text for text in token_hover)
    # Link hover: both ends with their roles, and the value of I averaged over the view's layers.
    layer_1 = [trace for trace in figure.data if trace.meta == "layer 1" and trace.mode == "markers"]
    into_target = next(trace for trace in layer_1 if trace.name.startswith("label words → target"))
    assert len(into_target.hovertext) == len(prompt.demonstration_label_positions)
    strongest = flow.saliency[1, prompt.target_position, list(prompt.demonstration_label_positions)].max()
    assert f"I = {float(strongest):.3g}" in " ".join(into_target.hovertext)
    assert all("(label word)" in text and "(target)" in text for text in into_target.hovertext)
    assert f"mean {float(flow.S_pq[1]):.3g}" in into_target.name


def test_figure_from_a_flow_with_chosen_ranges_and_link_cap(gpt2_like, prompt, tmp_path):
    flow = prompt_flow(gpt2_like, prompt)
    figure = plot_flow(flow, layers=[range(0, 2), 1], top_links=2)
    assert [button.label for button in figure.layout.updatemenus[0].buttons] == ["layers 0–1", "layer 1"]
    apexes = [trace for trace in figure.data if trace.meta != "tokens" and trace.mode == "markers"]
    assert apexes and all(len(trace.x) <= 2 for trace in apexes)
    # The view's strongest link is drawn in the widest class.
    widths = [trace.line.width for trace in figure.data if trace.meta == "layer 1" and trace.mode == "lines"]
    assert max(widths) == pytest.approx(8.0)
    html = save_figure(figure, tmp_path / "flow")[0]
    assert '"layer 1"' in Path(html).read_text(encoding="utf-8")  # the dropdown, in the self-contained page


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert isinstance(error.value, AnchorlensError) and "\n" not in message
    return message


@pytest.mark.bad_input  # layers='deep' and other ill-typed arguments
def test_bad_input_is_a_one_line_error_naming_the_fix(gpt2_like, prompt, smol_tokenizer):
    long_prompt = build_prompt(smol_tokenizer, "sst2", [("good " * 600, 1)], "fine ", 1, prepend_bos=False)
    with pytest.raises(PromptTooLongError) as error:
        prompt_flow(gpt2_like, long_prompt)
    assert "context of 512" in _one_line(error) and "max_length" in str(error.value)
    flow = prompt_flow(gpt2_like, prompt)
    for layers, fix in (
        ([5], "choose layers between 0 and 1"),
        ([-1], "choose layers between 0 and 1"),
        ([range(0, 3)], "choose layers between 0 and 1"),
        ({"early": []}, "at least one layer in 0..1"),
        ("deep", "layers=[range(0, 4), 10]"),
    ):
        with pytest.raises(InvalidConfigError) as error:
            plot_flow(flow, layers=layers)
        assert fix in _one_line(error), layers
    with pytest.raises(InvalidConfigError) as error:
        plot_flow(flow, layers=[7])
    assert "layers 0..1" in _one_line(error)
    with pytest.raises(InvalidConfigError) as error:
        prompt_flow(gpt2_like, dataclasses.replace(prompt, query_label=None))
    assert "query_label" in _one_line(error)
    foreign = dataclasses.replace(prompt, token_ids=(gpt2_like.cfg.d_vocab + 5, *prompt.token_ids[1:]))
    with pytest.raises(TokenizationError) as error:
        prompt_flow(gpt2_like, foreign)
    assert "model.tokenizer" in _one_line(error)
    with pytest.raises(InvalidConfigError) as error:
        plot_flow(gpt2_like)
    assert "plot_flow(model, prompt)" in _one_line(error)
    with pytest.raises(InvalidConfigError) as error:
        plot_flow(flow, prompt)
    _one_line(error)
    with pytest.raises(InvalidConfigError) as error:
        plot_flow(flow, top_links=0)
    _one_line(error)
    with pytest.raises(InvalidConfigError) as error:
        prompt_flow(gpt2_like, [prompt])
    assert "once per prompt" in _one_line(error)


def test_flow_is_a_frozen_record(gpt2_like, prompt):
    flow = prompt_flow(gpt2_like, prompt)
    assert isinstance(flow, PromptFlow)
    with pytest.raises(dataclasses.FrozenInstanceError):
        flow.gold = 0
