"""Prompt building: positions from token ids, for every task on both offline tokenizers."""

from __future__ import annotations

import warnings

import pytest
import torch

from anchorlens.errors import LabelWordError, PromptTooLongError, TokenizationError
from anchorlens.prompts import Role, build_prompt, label_tokens, make_batch, task_prompts
from anchorlens.tasks import Task, get_task

TASKS = ["sst2", "agnews", "trec", "emoc"]
TOKENIZERS = {"smol_tokenizer": False, "gemma_tokenizer": True}  # fixture -> prepend_bos


@pytest.fixture(params=list(TOKENIZERS))
def tokenizer_and_bos(request):
    return request.getfixturevalue(request.param), TOKENIZERS[request.param]


@pytest.mark.parametrize("task_name", TASKS)
def test_positions_hold_the_right_tokens(tokenizer_and_bos, task_name):
    tokenizer, bos = tokenizer_and_bos
    task = get_task(task_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        demonstrations, prompts = task_prompts(tokenizer, task, 42, prepend_bos=bos, n_test=4)
    assert [d.label for d in demonstrations] == list(prompts[0].demonstration_labels)
    assert sorted(prompts[0].demonstration_labels) == list(range(task.num_classes))  # 1 per class
    for prompt in prompts:
        # The token ids are exactly the tokenization of the whole text (plus BOS).
        plain = tokenizer(prompt.text, add_special_tokens=False).input_ids
        assert list(prompt.token_ids) == ([tokenizer.bos_token_id] if bos else []) + plain
        assert (prompt.roles[0] == Role.BOS) == bos
        for label, positions in enumerate(prompt.label_positions):
            assert len(positions) == 1
            assert prompt.token_ids[positions[0]] == prompt.label_token_ids[label]
            assert prompt.roles[positions[0]] == Role.LABEL
        target_token = tokenizer.convert_ids_to_tokens([prompt.token_ids[prompt.target_position]])[0]
        assert target_token == ":" and prompt.target_position == prompt.length - 1
        assert prompt.roles[prompt.target_position] == Role.QUERY_FORMAT
        anchors = set(prompt.demonstration_label_positions)
        assert set(prompt.text_positions) == set(range(prompt.target_position)) - anchors
        # Label positions increase with the prompt order of demonstrations.
        assert list(prompt.demonstration_label_positions) == sorted(prompt.demonstration_label_positions)
        # Demonstration text tokens decode back to the demonstration texts.
        for index, demonstration in enumerate(demonstrations):
            text_ids = [
                t
                for t, r, d in zip(prompt.token_ids, prompt.roles, prompt.demonstration_of_token)
                if r == Role.TEXT and d == index
            ]
            assert tokenizer.decode(text_ids).strip() in demonstration.text


def test_sst2_prompt_reads_like_the_paper(smol_tokenizer):
    demos = [("bad ", 0), ("good ", 1)]
    prompt = build_prompt(smol_tokenizer, "sst2", demos, "fine ", prepend_bos=False)
    assert (
        prompt.text
        == "Review: bad \nSentiment: Negative\nReview: good \nSentiment: Positive\nReview: fine \nSentiment:"
    )
    tokens = prompt.tokens(smol_tokenizer)
    assert [tokens[p] for p in prompt.demonstration_label_positions] == ["ĠNegative", "ĠPositive"]
    assert prompt.label_positions == (
        (prompt.demonstration_label_positions[0],),
        (prompt.demonstration_label_positions[1],),
    )
    newline_after_label = prompt.demonstration_label_positions[0] + 1
    assert prompt.roles[newline_after_label] == Role.SEPARATOR
    assert prompt.query_label is None


def test_multi_token_label_word_warns_naming_the_word(smol_tokenizer, monkeypatch):
    monkeypatch.setattr("anchorlens.prompts._WARNED_MULTI_TOKEN", set())
    with pytest.warns(UserWarning, match=r"' Abbreviation'.*3 tokens.*'ĠAb', 'brev', 'iation'"):
        labels = label_tokens(smol_tokenizer, "trec")
    prompt = build_prompt(
        smol_tokenizer, "trec", [("What does CPR stand for ?", 0)], "Who is he ?", prepend_bos=False, labels=labels
    )
    position = prompt.demonstration_label_positions[0]
    assert prompt.roles[position] == Role.LABEL
    assert prompt.roles[position + 1] == prompt.roles[position + 2] == Role.LABEL_REST
    assert position + 1 in prompt.text_positions  # w is every other token before q
    assert position + 1 in prompt.formatting_positions


def test_label_words_sharing_a_first_token_are_an_error(smol_tokenizer):
    task = Task(
        name="clash",
        template="Q: {text}\nA:{label}",
        label_words=(" Ab", " Abbreviation"),
        class_names=("x", "y"),
        demo_split="train",
        test_split="test",
    )
    with pytest.raises(LabelWordError, match="share their first token"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            label_tokens(smol_tokenizer, task)


def test_prompt_longer_than_the_context_is_an_error(smol_tokenizer):
    with pytest.raises(PromptTooLongError, match=r"longer than the model's context of 10"):
        build_prompt(smol_tokenizer, "sst2", [("bad ", 0), ("good ", 1)], "fine ", prepend_bos=False, max_length=10)


def test_label_word_merging_with_the_template_is_an_error(smol_tokenizer):
    task = Task(
        name="merging",
        template="Review: {text}\nSentiment{label}",
        label_words=("al", "ist"),
        class_names=("a", "b"),
        demo_split="train",
        test_split="test",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(TokenizationError, match="does not start a token of its own"):
            build_prompt(smol_tokenizer, task, [("x ", 0), ("y ", 1)], "z ", prepend_bos=False)


def test_batch_is_right_padded_and_keeps_positions(smol_tokenizer):
    prompts = [
        build_prompt(smol_tokenizer, "sst2", [("bad ", 0), ("good ", 1)], text, label, prepend_bos=False)
        for text, label in [("fine ", 1), ("a long and rather tedious exercise in style ", 0)]
    ]
    batch = make_batch(prompts, pad_token_id=7)
    assert batch.tokens.shape == (2, max(p.length for p in prompts))
    assert batch.tokens[0, prompts[0].length :].eq(7).all()
    assert batch.target_positions.tolist() == [p.target_position for p in prompts]
    assert batch.gold.tolist() == [1, 0]
    for row, prompt in enumerate(prompts):
        assert batch.tokens[row, : prompt.length].tolist() == list(prompt.token_ids)
        for label, positions in enumerate(prompt.label_positions):
            assert torch.nonzero(batch.label_mask[row, label]).flatten().tolist() == list(positions)


@pytest.mark.parametrize("model_name", ["gpt2_like", "llama_like"])
def test_target_logits_equal_the_full_forward_at_the_targets(request, model_name):
    """run_to_target's own unembedding (no weight copy) and the label-only readout give the model's numbers."""
    from anchorlens.forward import final_label_logits, final_logits, final_residual, run_to_target
    from anchorlens.prompts import task_prompts

    model = request.getfixturevalue(model_name)
    _, prompts = task_prompts(model.tokenizer, "trec", 1, n_test=3, prepend_bos=False)
    batch = make_batch(prompts)
    fired = []
    with torch.no_grad():
        full = model(batch.tokens)[torch.arange(batch.size), batch.target_positions]
        with model.hooks(fwd_hooks=[("unembed.hook_out", lambda tensor, hook: fired.append(tensor.shape))]):
            fast = run_to_target(model, batch)
        residual = final_residual(model, batch.tokens)[torch.arange(batch.size), batch.target_positions]
        labels_only = final_label_logits(model, residual, batch.label_token_ids)
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        labels_only, final_logits(model, residual)[:, batch.label_token_ids], rtol=1e-5, atol=1e-5
    )
    assert fired  # the unembedding's hook point still runs


def _query_start_by_scanning(prompt) -> int:
    """How `anchorlens.kv_cache.demonstration_length` found it before it became a fact of the prompt."""
    return next(p for p, role in enumerate(prompt.roles) if role in (Role.QUERY_FORMAT, Role.QUERY_TEXT))


@pytest.mark.parametrize("task_name", TASKS)
def test_demonstration_length_is_found_once_and_equals_the_cache_modules_scan(tokenizer_and_bos, task_name):
    from anchorlens import kv_cache

    tokenizer, bos = tokenizer_and_bos
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, prompts = task_prompts(tokenizer, get_task(task_name), 42, prepend_bos=bos, n_test=3, shots_per_class=2)
    for prompt in prompts:
        length = prompt.demonstration_length
        assert length == prompt.query_start == _query_start_by_scanning(prompt)
        assert prompt.roles[length - 1] == Role.SEPARATOR  # the newline after the last demonstration
        assert max(prompt.demonstration_label_positions) < length <= prompt.target_position
        # the old function still answers, with a FutureWarning naming the new place
        with pytest.warns(FutureWarning, match="prompt.demonstration_length"):
            assert kv_cache.demonstration_length(prompt) == length
    # derived from the roles, so not part of the repr (nor of equality)
    assert "query_start" not in repr(prompts[0])


def test_a_prompt_without_query_tokens_has_no_demonstration_length():
    from anchorlens.errors import InvalidConfigError
    from anchorlens.prompts import Prompt

    prompt = Prompt("t", "", (5, 6, 7), (Role.TEXT, Role.LABEL, Role.FORMAT), (0, 0, 0), (0,), (1,), 2, (6, 9))
    assert prompt.query_start is None
    with pytest.raises(InvalidConfigError, match="no query tokens"):
        _ = prompt.demonstration_length


def test_text_positions_by_demonstration_are_each_demonstrations_text(smol_tokenizer):
    demos = [("a dull , lifeless film ", 0), ("warm and funny ", 1), ("a mess ", 0)]
    prompt = build_prompt(smol_tokenizer, "sst2", demos, "tedious ", 0, prepend_bos=False)
    grouped = prompt.text_positions_by_demonstration
    assert len(grouped) == len(demos)
    for demonstration, positions in enumerate(grouped):
        # the scan compression's random draw used before: text tokens of that demonstration, in prompt order
        scanned = [
            p
            for p in range(prompt.demonstration_length)
            if prompt.roles[p] == Role.TEXT and prompt.demonstration_of_token[p] == demonstration
        ]
        assert list(positions) == scanned and scanned
        text = smol_tokenizer.decode([prompt.token_ids[p] for p in positions])
        assert demos[demonstration][0].strip().split()[0] in text
