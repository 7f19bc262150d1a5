"""Anchor re-weighting (SPEC §4): β = 0 is vanilla ICL, fitting, saving β, calibration, the 5-shot baseline, runs."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch

from anchorlens.cli import main
from anchorlens.errors import InvalidConfigError
from anchorlens.experiments.reweight import (
    METHODS,
    ReweightConfig,
    ReweightResult,
    beta_path,
    cached_prefix_loss,
    calibrated_predictions,
    content_free_probabilities,
    evaluate_seed,
    fit_beta,
    fit_seed_beta,
    five_shot_demonstrations,
    full_prompt_loss,
    label_probabilities,
    load_beta,
    mean_label_loss,
    query_prompts,
    run_reweight,
    save_beta,
    shared_demonstrations,
)
from anchorlens.hooks import reweight_hooks
from anchorlens.model_classes import recorded_model_name
from anchorlens.paper import REWEIGHT_METHOD_LABELS
from anchorlens.plots import plot_reweight
from anchorlens.prompts import build_prompt, label_logits, make_batch
from anchorlens.sampling import sample_demonstrations, sample_test_set
from anchorlens.tasks import get_task, load_split

SST2 = get_task("sst2")
TINY = dict(seeds=(1,), n_test=6, batch_size=4, epochs=2, extra_per_class=2, five_shot_agnews=3)


@pytest.fixture(scope="module")
def tiny_result(gpt2_like) -> ReweightResult:
    """One run without an output folder: what a resumed or repeated run must reproduce."""
    return run_reweight(gpt2_like, "sst2", ReweightConfig(**TINY), progress=False)


@pytest.fixture(scope="module")
def tiny_table(tiny_result) -> pd.DataFrame:
    return tiny_result.to_frame()


@pytest.fixture(scope="module")
def sst2_setup(gpt2_like):
    demonstrations, extra = sample_demonstrations(SST2, 1, extra_per_class=4)
    tests = sample_test_set(SST2, 1, n_test=6)
    prompts = query_prompts(gpt2_like.tokenizer, SST2, demonstrations, tests, prepend_bos=False)
    return demonstrations, extra, prompts


def random_beta(model, classes: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(model.cfg.n_layers, model.cfg.n_heads, classes, generator=generator)


@pytest.mark.parametrize("variant", ["pattern", "scores"])
def test_zero_beta_is_exactly_vanilla_icl(gpt2_like, sst2_setup, variant):
    _, _, prompts = sst2_setup
    plain, gold = label_probabilities(gpt2_like, prompts, 4)
    zero = torch.zeros(gpt2_like.cfg.n_layers, gpt2_like.cfg.n_heads, 2)
    hooked, gold_hooked = label_probabilities(gpt2_like, prompts, 4, zero, variant)
    assert torch.equal(plain, hooked) and torch.equal(gold, gold_hooked)
    nonzero, _ = label_probabilities(gpt2_like, prompts, 4, random_beta(gpt2_like, 2), variant)
    assert not torch.allclose(plain, nonzero)  # the hook does act, so the equality above means something


@pytest.mark.parametrize("variant", ["pattern", "scores"])
@pytest.mark.parametrize("model_name", ["gpt2_like", "llama_like"])
def test_evaluation_against_the_cached_demonstrations_equals_full_prompts(request, model_name, variant):
    """Vanilla and re-weighted label probabilities with the shared demonstrations cached (queries of several
    lengths, right-padded, so each prompt's target is a different query row) equal the whole prompts'."""
    model = request.getfixturevalue(model_name)
    demonstrations, _ = sample_demonstrations(SST2, 1)
    prompts = query_prompts(
        model.tokenizer, SST2, demonstrations, sample_test_set(SST2, 1, n_test=7), prepend_bos=False
    )
    assert len({p.length for p in prompts}) > 1
    assert shared_demonstrations(model, prompts) is not None
    beta = random_beta(model, 2, seed=3)
    for chosen in (None, beta):
        full, gold = label_probabilities(model, prompts, 3, chosen, variant)
        cached, gold_cached = label_probabilities(model, prompts, 3, chosen, variant, prefix_cache=True)
        torch.testing.assert_close(cached, full, rtol=1e-4, atol=1e-5)
        assert torch.equal(gold, gold_cached)
    vanilla, _ = label_probabilities(model, prompts, 3, prefix_cache=True)
    assert (vanilla - cached).abs().max() > 1e-3  # β acts through the cached path too


def test_prompts_with_other_demonstrations_run_whole(gpt2_like):
    tests = sample_test_set(SST2, 1, n_test=2)
    prompts = [
        query_prompts(gpt2_like.tokenizer, SST2, sample_demonstrations(SST2, seed)[0], tests[:1], prepend_bos=False)[0]
        for seed in (1, 2)
    ]
    assert shared_demonstrations(gpt2_like, prompts) is None  # no common cache: the full-prompt path is taken
    full, _ = label_probabilities(gpt2_like, prompts, 2)
    torch.testing.assert_close(label_probabilities(gpt2_like, prompts, 2, prefix_cache=True)[0], full)


def test_probabilities_come_back_in_prompt_order_although_batches_sort_by_length(gpt2_like, sst2_setup):
    _, _, prompts = sst2_setup
    assert [p.length for p in prompts] != sorted(p.length for p in prompts)  # the batches do reorder them
    probabilities, gold = label_probabilities(gpt2_like, prompts, 4)
    for row, prompt in enumerate(prompts):  # each prompt alone gives its own row
        alone, _ = label_probabilities(gpt2_like, [prompt], 1)
        torch.testing.assert_close(probabilities[row], alone[0], rtol=1e-4, atol=1e-5)
        assert gold[row] == prompt.query_label
    twice, _ = label_probabilities(gpt2_like, [prompts[0], prompts[1], prompts[0]], 2)
    torch.testing.assert_close(twice[2], twice[0])


def test_fitting_lowers_the_training_loss_and_moves_beta(llama_like):
    demonstrations, extra = sample_demonstrations(SST2, 3, extra_per_class=3)
    config = ReweightConfig(extra_per_class=3, learning_rate=0.1, epochs=4)
    prompts = query_prompts(llama_like.tokenizer, SST2, demonstrations, extra, prepend_bos=False)
    zero = torch.zeros(llama_like.cfg.n_layers, llama_like.cfg.n_heads, 2)
    before = mean_label_loss(llama_like, prompts, zero)
    beta = fit_seed_beta(llama_like, SST2, demonstrations, extra, config, seed=3)
    assert beta.shape == (llama_like.cfg.n_layers, llama_like.cfg.n_heads, 2)
    assert (beta != 0).all()  # every entry received a gradient
    assert mean_label_loss(llama_like, prompts, beta) < before - 1e-3
    assert not any(p.requires_grad is False for p in llama_like.parameters())  # frozen only while fitting


@pytest.mark.parametrize("variant", ["pattern", "scores"])
@pytest.mark.parametrize("model_name", ["gpt2_like", "llama_like"])
def test_cached_prefix_step_equals_the_full_prompt_step(request, sst2_setup, model_name, variant):
    """The fast training step (target token against the cached prefix, label columns only) gives the full
    prompt's loss and β-gradient: learned positions (GPT-2-like) and rotary + grouped-query (Llama-like)."""
    model = request.getfixturevalue(model_name)
    _, _, prompts = sst2_setup
    for index, prompt in enumerate(prompts[:3]):
        beta = random_beta(model, 2, seed=index).mul(0.5).requires_grad_(True)
        full = full_prompt_loss(model, prompt, variant)(beta)
        (full_grad,) = torch.autograd.grad(full, beta)
        cached = cached_prefix_loss(model, prompt, variant)(beta)
        (cached_grad,) = torch.autograd.grad(cached, beta)
        torch.testing.assert_close(cached, full, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(cached_grad, full_grad, rtol=1e-4, atol=1e-6)
        assert cached_grad.abs().sum() > 0  # β does reach the loss through the cached path


def test_fitting_with_and_without_the_prefix_cache_agrees(llama_like):
    demonstrations, extra = sample_demonstrations(SST2, 3, extra_per_class=2)
    config = ReweightConfig(extra_per_class=2, learning_rate=0.05, epochs=2)
    fast = fit_seed_beta(llama_like, SST2, demonstrations, extra, config, seed=0)
    slow = fit_seed_beta(
        llama_like, SST2, demonstrations, extra, dataclasses.replace(config, prefix_cache=False), seed=0
    )
    assert fast.abs().sum() > 0
    torch.testing.assert_close(fast, slow, rtol=1e-3, atol=1e-5)


def test_fitting_is_reproducible_per_seed(gpt2_like):
    demonstrations, extra = sample_demonstrations(SST2, 2, extra_per_class=2)
    config = ReweightConfig(extra_per_class=2, epochs=2, learning_rate=0.1)
    first = fit_seed_beta(gpt2_like, SST2, demonstrations, extra, config, seed=5)
    assert torch.equal(first, fit_seed_beta(gpt2_like, SST2, demonstrations, extra, config, seed=5))
    assert not torch.equal(
        first, fit_seed_beta(gpt2_like, SST2, demonstrations, extra, config, seed=6)
    )  # shuffle order


def test_saved_beta_round_trips_and_applies_as_a_plain_hook(tmp_path, gpt2_like, sst2_setup):
    _, _, prompts = sst2_setup
    beta = random_beta(gpt2_like, 2, seed=1)
    path = save_beta(
        tmp_path / "b" / "beta.safetensors",
        beta,
        task="sst2",
        model_name="tiny",
        label_words=SST2.label_words,
        variant="scores",
    )
    loaded, metadata = load_beta(path, task="sst2")
    assert torch.equal(loaded, beta)
    assert metadata["task"] == "sst2" and metadata["model_name"] == "tiny" and metadata["variant"] == "scores"
    assert metadata["label_words"] == (" Negative", " Positive")
    assert b"pickle" not in path.read_bytes()[:200] and path.read_bytes()[8:9] == b"{"  # safetensors JSON header

    batch = make_batch(prompts[:3])
    with torch.no_grad():
        in_memory = gpt2_like.run_with_hooks(batch.tokens, fwd_hooks=reweight_hooks(beta, batch, "scores"))
        applied = gpt2_like.run_with_hooks(batch.tokens, fwd_hooks=reweight_hooks(loaded, batch, metadata["variant"]))
        plain = gpt2_like(batch.tokens)
    assert torch.equal(in_memory, applied)
    assert not torch.allclose(label_logits(plain, batch), label_logits(applied, batch))


def test_a_file_that_is_not_a_beta_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"weights": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(InvalidConfigError, match="not a re-weighting"):
        load_beta(tmp_path / "other.safetensors")
    (tmp_path / "garbage.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(InvalidConfigError, match="not a re-weighting"):
        load_beta(tmp_path / "garbage.safetensors")
    with pytest.raises(InvalidConfigError, match="no β file at"):
        load_beta(tmp_path / "missing.safetensors")


def write_raw_beta(path, beta: torch.Tensor, *, model_name: str = "tiny", label_words=SST2.label_words) -> None:
    """A β file as anchorlens writes it, but without save_beta's checks (what another tool or a bug could leave)."""
    from safetensors.torch import save_file

    metadata = {
        "format": "anchorlens-reweight-beta-1",
        "task": "sst2",
        "model_name": model_name,
        "label_words": json.dumps(list(label_words)),
        "variant": "pattern",
    }
    save_file({"beta": beta}, str(path), metadata=metadata)


def test_a_loaded_beta_must_fit_the_model_and_task_it_is_applied_to(tmp_path, gpt2_like):
    """A β of (5, 9, 2) loaded for a 30-layer model re-weighted 5 layers; (30, 1, 2) spread over all heads."""
    layers, heads = gpt2_like.cfg.n_layers, gpt2_like.cfg.n_heads
    name = recorded_model_name(gpt2_like)
    path = tmp_path / "beta.safetensors"
    expected = re.escape(f"expected (layers, heads, classes) = ({layers}, {heads}, 2)")
    for shape in [(layers - 1, heads, 2), (layers, 1, 2), (1, 1, 2)]:
        write_raw_beta(path, torch.zeros(shape), model_name=name)
        load_beta(path)  # consistent in itself
        with pytest.raises(InvalidConfigError, match=f"has shape \\{re.escape(str(shape))[1:]}.*{expected}"):
            load_beta(path, model=gpt2_like)

    write_raw_beta(path, torch.zeros(layers, heads, 3), model_name=name)  # 3 classes, 2 label words recorded
    with pytest.raises(InvalidConfigError, match=re.escape("expected (layers, heads, classes) = (?, ?, 2)")):
        load_beta(path)
    nan_beta = torch.zeros(layers, heads, 2)
    nan_beta[0, 0, 0] = float("nan")
    write_raw_beta(path, nan_beta, model_name=name)
    with pytest.raises(InvalidConfigError, match="non-finite"):
        load_beta(path)
    write_raw_beta(path, torch.zeros(layers, heads, 2, dtype=torch.int32), model_name=name)
    with pytest.raises(InvalidConfigError, match="dtype torch.int32"):
        load_beta(path)

    write_raw_beta(path, torch.zeros(layers, heads, 2), model_name="gemma-3-270m")
    with pytest.raises(InvalidConfigError, match=re.escape(f"fitted on model 'gemma-3-270m', not on '{name}'")):
        load_beta(path, model=gpt2_like)
    write_raw_beta(path, torch.zeros(layers, heads, 2), model_name=name, label_words=[" Bad", " Good"])
    with pytest.raises(
        InvalidConfigError,
        match=re.escape(
            "label words [' Bad', ' Good'] (task 'sst2'), not for those of task 'sst2', [' Negative', ' Positive']"
        ),
    ):
        load_beta(path, model=gpt2_like, task="sst2")
    with pytest.raises(InvalidConfigError, match="not for those of task 'agnews'"):
        load_beta(path, task="agnews")
    write_raw_beta(path, torch.zeros(layers, heads, 2), model_name=name)
    beta, metadata = load_beta(path, model=gpt2_like, task="sst2")
    assert beta.shape == (layers, heads, 2) and metadata["model_name"] == name


def test_save_beta_refuses_what_could_not_be_applied(tmp_path):
    layers_heads = (2, 4)
    good = dict(task="sst2", model_name="tiny", label_words=SST2.label_words, variant="pattern")
    nan_beta = torch.zeros(*layers_heads, 2)
    nan_beta[1, 3, 0] = float("inf")
    with pytest.raises(InvalidConfigError, match="non-finite"):
        save_beta(tmp_path / "b.safetensors", nan_beta, **good)
    with pytest.raises(InvalidConfigError, match=re.escape("(?, ?, 2)")):
        save_beta(tmp_path / "b.safetensors", torch.zeros(*layers_heads, 3), **good)
    with pytest.raises(InvalidConfigError, match="model_name must name the model"):
        save_beta(tmp_path / "b.safetensors", torch.zeros(*layers_heads, 2), **{**good, "model_name": None})
    assert not (tmp_path / "b.safetensors").exists()


def test_content_free_probabilities_by_hand(gpt2_like, sst2_setup):
    demonstrations, _, _ = sst2_setup
    inputs = ("N/A", "", "[MASK]")
    by_hand = []
    for text in inputs:
        prompt = build_prompt(gpt2_like.tokenizer, SST2, demonstrations, text, prepend_bos=False)
        assert prompt.text.endswith(f"Review: {text}\nSentiment:")
        with torch.no_grad():
            logits = gpt2_like(torch.tensor([prompt.token_ids]))[0, -1]
        by_hand.append(logits[list(prompt.label_token_ids)].softmax(-1))
    expected = torch.stack(by_hand).mean(0)
    assert torch.allclose(content_free_probabilities(gpt2_like, SST2, demonstrations, inputs), expected, atol=1e-5)


def test_calibration_divides_by_the_content_free_probabilities():
    probabilities = torch.tensor([[0.6, 0.4], [0.8, 0.2], [0.3, 0.7]])
    p_cf = torch.tensor([0.7, 0.3])
    # p / p_cf: [0.857, 1.333], [1.143, 0.667], [0.429, 2.333]
    assert calibrated_predictions(probabilities, p_cf).tolist() == [1, 0, 1]
    assert probabilities.argmax(-1).tolist() == [0, 0, 1]  # calibration changed the first prediction


def walk_positions(task, seed: int) -> dict[int, int]:
    """Row index -> position in the seeded walk (the paper's np.random.seed(seed); shuffle)."""
    rows = list(range(load_split(task, task.demo_split).num_rows))
    np.random.RandomState(seed).shuffle(rows)
    return {row: position for position, row in enumerate(rows)}


@pytest.mark.parametrize(("task_name", "per_class"), [("sst2", 5), ("trec", 5), ("agnews", 3)])
def test_five_shot_uses_the_demonstrations_and_extras_in_walk_order(smol_tokenizer, task_name, per_class):
    task, seed = get_task(task_name), 43
    config = ReweightConfig()
    demonstrations, extra = sample_demonstrations(task, seed, extra_per_class=config.extra_per_class)
    five = five_shot_demonstrations(task, seed, config)

    first_extras = [e for e in extra if sum(x.label == e.label for x in extra[: extra.index(e)]) < per_class - 1]
    assert {e.index for e in five} == {e.index for e in demonstrations + first_extras}
    positions = walk_positions(task, seed)
    assert [positions[e.index] for e in five] == sorted(positions[e.index] for e in five)

    prompt = build_prompt(smol_tokenizer, task, five, "a query", prepend_bos=False)
    assert Counter(prompt.demonstration_labels) == {label: per_class for label in range(task.num_classes)}


@pytest.mark.parametrize("learning_rate", [math.inf, -math.inf, math.nan, 0.0, -0.01, 1e38, True])
@pytest.mark.bad_input  # learning_rate=True, a bool
def test_learning_rate_must_be_finite_and_positive(gpt2_like, sst2_setup, learning_rate):
    """An infinite step size passed `not lr > 0` and wrote NaN into β at the first step."""
    _, extra, _ = sst2_setup
    if learning_rate != 1e38:  # 1e38 is a finite rate: only training can tell it overflows
        with pytest.raises(InvalidConfigError, match="learning_rate \\(--learning-rate\\)"):
            ReweightConfig(learning_rate=learning_rate)
    prompts = query_prompts(gpt2_like.tokenizer, SST2, sst2_setup[0], extra[:2], prepend_bos=False)
    with pytest.raises(InvalidConfigError, match="learning_rate \\(--learning-rate\\)"):
        fit_beta(gpt2_like, prompts, learning_rate=learning_rate, epochs=1, variant="pattern", seed=0)


@pytest.mark.parametrize("prefix_cache", [True, False])
def test_diverging_training_stops_naming_the_epoch_and_step(gpt2_like, prefix_cache):
    """A step size of 1e30 pushes β to ±1e30; exp(β) then overflows and the loss of the next step is NaN.
    Training stops there and names where, instead of returning (and saving) a NaN β."""
    demonstrations, extra = sample_demonstrations(SST2, 3, extra_per_class=2)
    config = ReweightConfig(extra_per_class=2, learning_rate=1e30, epochs=2, prefix_cache=prefix_cache)
    with pytest.raises(
        InvalidConfigError,
        match="diverged at epoch 1 of 2, step 2 of 4, training example row "
        "\\d+: (the loss is nan|re-weighting made the attention non-finite).*lower --learning-rate",
    ):
        fit_seed_beta(gpt2_like, SST2, demonstrations, extra, config, seed=0)


def test_training_stops_when_beta_itself_becomes_non_finite(gpt2_like, monkeypatch):
    demonstrations, extra = sample_demonstrations(SST2, 3, extra_per_class=2)
    real_step = torch.optim.Adam.step
    steps = []

    def step_that_overflows_at_the_fifth(self, *args, **kwargs):
        result = real_step(self, *args, **kwargs)
        steps.append(1)
        if len(steps) == 5:
            with torch.no_grad():
                self.param_groups[0]["params"][0][0, 1, 0] = float("inf")
        return result

    monkeypatch.setattr(torch.optim.Adam, "step", step_that_overflows_at_the_fifth)
    config = ReweightConfig(extra_per_class=2, epochs=2)
    with pytest.raises(InvalidConfigError, match="epoch 2 of 2, step 1 of 4.*β has non-finite entries"):
        fit_seed_beta(gpt2_like, SST2, demonstrations, extra, config, seed=0)


@pytest.mark.parametrize("prefix_cache", [False, True])
def test_a_huge_finite_beta_is_refused_never_predicted(gpt2_like, sst2_setup, prefix_cache):
    """Issue 31 item 3: a finite β of 1e4 through apply_beta gave NaN probabilities and predictions of class 0.
    (The "scores" variant adds β before the softmax, which stays finite for any finite float32 β.)"""
    from anchorlens.experiments.reweight import apply_beta

    beta = torch.full((gpt2_like.cfg.n_layers, gpt2_like.cfg.n_heads, 2), 1e4)
    with pytest.raises(InvalidConfigError, match="non-finite .*β is too large.*lower --learning-rate"):
        apply_beta(gpt2_like, sst2_setup[2], beta, variant="pattern", prefix_cache=prefix_cache)


def test_training_to_a_beta_whose_exp_overflows_is_refused(gpt2_like, monkeypatch):
    """Issue 31 item 3: `--learning-rate 27` trained β up to 92 (finite, exp(92) overflows float32) and the run
    reported accuracy 0.000 from NaN probabilities. The last step's β is checked too."""
    demonstrations, extra = sample_demonstrations(SST2, 3, extra_per_class=2)
    real_step = torch.optim.Adam.step
    steps = []

    def last_step_overshoots(self, *args, **kwargs):
        result = real_step(self, *args, **kwargs)
        steps.append(1)
        if len(steps) == 4:  # the last of 2 classes x 2 extras, 1 epoch
            with torch.no_grad():
                self.param_groups[0]["params"][0][0, 0, 0] = 92.0
        return result

    monkeypatch.setattr(torch.optim.Adam, "step", last_step_overshoots)
    config = ReweightConfig(extra_per_class=2, epochs=1)
    with pytest.raises(InvalidConfigError, match="β reached 92, where exp\\(β\\) overflows float32.*--learning-rate"):
        fit_seed_beta(gpt2_like, SST2, demonstrations, extra, config, seed=0)


def test_random_finite_betas_and_learning_rates_train_finite_or_are_refused(gpt2_like, sst2_setup):
    """Property (issue 31): for seeded random finite learning rates (1e-4 .. 1e6) and β scales (1e-2 .. 1e6),
    training returns a finite β or is refused with one line, and applying a finite β gives finite probabilities
    or is refused: never NaN probabilities or a prediction made from them."""
    from anchorlens.experiments.reweight import apply_beta

    demonstrations, extra, prompts = sst2_setup
    train = query_prompts(gpt2_like.tokenizer, SST2, demonstrations, extra[:2], prepend_bos=False)
    rng = np.random.default_rng(31)
    outcomes = Counter()
    for trial in range(12):
        learning_rate = float(10 ** rng.uniform(-4, 6))
        try:
            beta = fit_beta(gpt2_like, train, learning_rate=learning_rate, epochs=1, seed=trial, prefix_cache=False)
        except InvalidConfigError as error:
            assert "\n" not in str(error) and "learning-rate" in str(error)
            outcomes["training refused"] += 1
        else:
            assert bool(torch.isfinite(beta).all())
            outcomes["trained"] += 1
        scale = float(10 ** rng.uniform(-2, 6))
        beta = scale * torch.randn(
            gpt2_like.cfg.n_layers, gpt2_like.cfg.n_heads, 2, generator=torch.Generator().manual_seed(trial)
        )
        try:
            frame = apply_beta(gpt2_like, prompts[:2], beta, variant=str(rng.choice(["pattern", "scores"])))
        except InvalidConfigError as error:
            assert "\n" not in str(error) and "β is too large" in str(error)
            outcomes["applying refused"] += 1
        else:
            assert np.isfinite(frame[["p_0", "p_1"]].to_numpy()).all()
            outcomes["applied"] += 1
    assert outcomes["trained"] and outcomes["applied"] and outcomes["applying refused"], outcomes


@pytest.mark.bad_input  # variants outside ReweightVariant
def test_config_errors_name_the_cli_flags():
    """A CLI user never sees the field names: `reweight --extra-per-class 1` failed naming `five_shot_agnews`."""
    with pytest.raises(
        InvalidConfigError,
        match=re.escape(
            "shots_per_class (--shots) + extra_per_class "
            "(--extra-per-class) = 1 + 1 = 2: raise --extra-per-class "
            "to at least 2"
        ),
    ):
        ReweightConfig(extra_per_class=1)
    with pytest.raises(
        InvalidConfigError,
        match=re.escape("five_shot_agnews = 3 examples per class (a ReweightConfig field, no CLI flag)"),
    ):
        ReweightConfig(extra_per_class=1)
    with pytest.raises(InvalidConfigError, match=re.escape("lower --shots to at most 3")):
        ReweightConfig(shots_per_class=4)
    with pytest.raises(InvalidConfigError, match=re.escape("epochs (--epochs) must be an integer of at least 1")):
        ReweightConfig(epochs=0)
    with pytest.raises(InvalidConfigError, match=re.escape("extra_per_class (--extra-per-class)")):
        ReweightConfig(extra_per_class=0)
    with pytest.raises(InvalidConfigError, match=re.escape("(--variant)")):
        ReweightConfig(variant="logits")
    assert ReweightConfig(extra_per_class=1, five_shot_agnews=2).five_shot_agnews == 2


def test_cli_reweight_with_one_extra_per_class_names_the_flag(tmp_path, capsys):
    assert main(["reweight", "--task", "sst2", "--extra-per-class", "1", "--out", str(tmp_path)]) != 0
    error = capsys.readouterr().err
    assert "--extra-per-class" in error and "Traceback" not in error
    assert main(["reweight", "--task", "sst2", "--learning-rate", "inf", "--out", str(tmp_path)]) != 0
    assert "--learning-rate" in capsys.readouterr().err


@pytest.mark.bad_input  # variants outside ReweightVariant
def test_config_is_validated():
    with pytest.raises(InvalidConfigError, match="variant"):
        ReweightConfig(variant="logits")
    with pytest.raises(InvalidConfigError, match="five_shot_agnews"):
        ReweightConfig(five_shot_agnews=6)
    with pytest.raises(InvalidConfigError, match="extra_per_class"):
        ReweightConfig(extra_per_class=0)
    with pytest.raises(InvalidConfigError, match="learning_rate"):
        ReweightConfig(learning_rate=0)
    with pytest.raises(InvalidConfigError, match="calibration_inputs"):
        ReweightConfig(calibration_inputs=())
    assert ReweightConfig(calibration_inputs=["N/A"]).calibration_inputs == ("N/A",)


def test_same_seed_gives_the_same_table_and_reruns_resume(tmp_path, gpt2_like, tiny_result, monkeypatch):
    config = ReweightConfig(**TINY)
    run = run_reweight(gpt2_like, "sst2", config, out=tmp_path, progress=False)
    first = run.to_frame()
    pd.testing.assert_frame_equal(first, tiny_result.to_frame())
    pd.testing.assert_frame_equal(run.examples, tiny_result.examples)
    assert list(first.columns) == ["task", "model", "seed", "method", "accuracy", "n"]
    assert list(first["method"]) == list(METHODS) and (first["n"] == 6).all()
    assert first["accuracy"].between(0, 1).all()
    assert (tmp_path / "parts" / "reweight" / "sst2-seed1.csv").is_file()
    beta, metadata = load_beta(beta_path(tmp_path, "sst2", 1), model=gpt2_like, task="sst2")
    assert beta.shape == (gpt2_like.cfg.n_layers, gpt2_like.cfg.n_heads, 2)
    # The β file records the model that fitted it (this unnamed tiny model), never a default model's name.
    assert metadata["model_name"] == recorded_model_name(gpt2_like) != "gemma-3-270m"
    assert metadata["model_name"].startswith("unnamed-model(")

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished seed was computed again")

    monkeypatch.setattr("anchorlens.experiments.reweight.evaluate_seed", must_not_run)
    again = run_reweight(gpt2_like, "sst2", config, out=tmp_path, progress=False)
    pd.testing.assert_frame_equal(again.to_frame(), first, check_dtype=False)
    pd.testing.assert_frame_equal(again.examples, run.examples, check_dtype=False)


def test_one_row_per_test_input_and_method(gpt2_like, tiny_result):
    """Per-example rows: the seed's accuracies are their means, and the summary's intervals are built on them."""
    examples = tiny_result.examples
    assert list(examples.columns) == ["task", "model", "seed", "method", "example", "gold", "prediction", "correct"]
    tests = sample_test_set(SST2, 1, n_test=6)
    for method in METHODS:
        rows = examples[examples["method"] == method]
        assert rows["example"].tolist() == [t.index for t in tests]  # the test set's order, each input once
        assert rows["gold"].tolist() == [t.label for t in tests]
        assert rows["correct"].tolist() == (rows["prediction"] == rows["gold"]).astype(float).tolist()
        seed_row = tiny_result.frame[tiny_result.frame["method"] == method].iloc[0]
        assert seed_row["accuracy"] == pytest.approx(rows["correct"].mean()) and seed_row["n"] == len(rows)
    assert (examples["model"] == recorded_model_name(gpt2_like)).all()

    summary = tiny_result.summary_with_ci().set_index("method")
    assert set(summary.index) == set(METHODS) and (summary["metric"] == "correct").all()
    for method in METHODS:
        assert summary.loc[method, "mean"] == pytest.approx(examples[examples["method"] == method]["correct"].mean())
        assert summary.loc[method, "n_examples"] == 6
        assert summary.loc[method, "ci_low"] <= summary.loc[method, "mean"] <= summary.loc[method, "ci_high"]


def test_evaluate_seed_records_the_model_it_ran(tmp_path, gpt2_like):
    """Called directly with a config that names no model, the β still records the model that fitted it."""
    output = evaluate_seed(gpt2_like, SST2, 1, ReweightConfig(**TINY), tmp_path)
    _, metadata = load_beta(beta_path(tmp_path, "sst2", 1), model=gpt2_like)
    assert metadata["model_name"] == recorded_model_name(gpt2_like)
    assert len(output.examples) == len(METHODS) * 6 and list(output.rows["method"]) == list(METHODS)
    with pytest.raises(InvalidConfigError, match="names model 'gemma-3-270m'"):
        evaluate_seed(gpt2_like, SST2, 1, ReweightConfig(**TINY, model="gemma-3-270m"), tmp_path)


def test_vanilla_row_matches_a_direct_evaluation(gpt2_like, tiny_table):
    """The vanilla 1-shot accuracy is the plain model's, one prompt at a time."""
    result = tiny_table.set_index("method")
    demonstrations, _ = sample_demonstrations(SST2, 1)
    tests = sample_test_set(SST2, 1, n_test=6)
    prompts = query_prompts(gpt2_like.tokenizer, SST2, demonstrations, tests, prepend_bos=False)
    with torch.no_grad():
        predicted = [
            label_logits(gpt2_like(torch.tensor([p.token_ids])), make_batch([p]))[0].argmax().item() for p in prompts
        ]
    expected = np.mean([p == t.label for p, t in zip(predicted, tests)])
    assert result.loc["vanilla_1shot", "accuracy"] == pytest.approx(expected)


def test_summary_paper_table_and_plot():
    frame = pd.DataFrame(
        [
            ("sst2", "m", seed, method, accuracy, 10)
            for seed, shift in ((1, 0.0), (2, 0.2))
            for method, accuracy in zip(METHODS, (0.5 + shift, 0.4 + shift, 0.7 + shift, 0.6 + shift))
        ]
        + [("trec", "m", 1, method, accuracy, 10) for method, accuracy in zip(METHODS, (0.2, 0.3, 0.4, 0.1))],
        columns=["task", "model", "seed", "method", "accuracy", "n"],
    )
    result = ReweightResult.from_frame(frame)
    summary = result.summary().set_index(["task", "method"])
    assert summary.loc[("sst2", "reweight"), "accuracy_mean"] == pytest.approx(0.8)
    assert summary.loc[("sst2", "reweight"), "accuracy_std"] == pytest.approx(np.std([0.7, 0.9], ddof=1))

    table = result.paper_table()
    assert list(table.columns) == ["SST-2", "TREC", "Avg"]
    assert table.index[0].startswith("Vanilla ICL (1-shot") and table.index[2].startswith("Anchor re-weighting")
    assert table.loc[table.index[2]].tolist() == pytest.approx([80.0, 40.0, 60.0])

    figure = plot_reweight(result)
    assert [trace.name for trace in figure.data] == [table.index[i] for i in range(4)]
    assert list(figure.data[2].y) == pytest.approx([80.0, 40.0])

    two_models = ReweightResult.from_frame(pd.concat([frame, frame.assign(model="other")]))
    with pytest.raises(InvalidConfigError, match="several models"):
        two_models.paper_table()
    assert two_models.paper_table("other").equals(table)


def test_an_average_over_fewer_tasks_than_its_neighbours_is_left_blank():
    rows = [(task, "full", 1, method, 0.5, 10) for task in ("sst2", "trec") for method in METHODS]
    rows += [("sst2", "part", 1, method, 0.9, 10) for method in METHODS]
    rows += [("trec", "part", 1, method, 0.1, 10) for method in METHODS if method != "reweight"]
    result = ReweightResult.from_frame(pd.DataFrame(rows, columns=["task", "model", "seed", "method", "accuracy", "n"]))

    part = result.paper_table("part")
    assert np.isnan(part.loc[REWEIGHT_METHOD_LABELS["reweight"], "Avg"])  # re-weighting ran on SST-2 only
    assert part.loc[REWEIGHT_METHOD_LABELS["vanilla_1shot"], "Avg"] == pytest.approx(50.0)

    report = result.report_table().set_index(["source", "method"])
    # The paper's rows have AGNews and EmoC, which these results lack: a model's mean over two tasks would
    # stand beside means over four, so ours are left blank and the paper's kept.
    assert report.loc[("full", REWEIGHT_METHOD_LABELS["reweight"]), "SST-2"] == pytest.approx(50.0)
    assert report.loc[["full", "part"], "Avg"].isna().all()
    paper_rows = report.loc[["paper, GPT2-XL"]].reset_index()
    assert not paper_rows["Avg"].isna().any()
