"""The offline models: SmolLM2-135M and Gemma-3-270m against their Hugging Face originals, their settings,
their weight cache rebuilt when damaged, load errors, value biases. (The cache's rules on small fake folders are
in tests/unit/test_models.py.)"""

from __future__ import annotations

import json
import shutil
import warnings

import pytest
import torch

from anchorlens import models
from anchorlens.errors import ModelLoadError, UnknownModelError
from anchorlens.hooks import (
    SaliencyRecorder,
    block_earlier_mask,
    frozen_parameters,
    isolation_hooks,
    pattern_hook_name,
    reweight_hooks,
    verify_attention_hooks,
)
from anchorlens.prompts import label_loss, make_batch, prompt_settings, task_prompts


def _task_batch(model, task="sst2", n=3):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, prompts = task_prompts(model.tokenizer, task, 42, n_test=n, **prompt_settings(model))
    return make_batch(prompts)


@pytest.mark.parametrize("name,fixture", [("smollm2-135m", "smol_model"), ("gemma-3-270m", "gemma_model")])
def test_offline_model_log_probs_equal_hf(request, name, fixture):
    model = request.getfixturevalue(fixture)
    hf_model, _ = models.load_hf_model(name)
    worst = 0.0
    for task in ("sst2", "trec"):
        batch = _task_batch(model, task, n=2)
        for prompt in batch.prompts:
            tokens = torch.tensor([prompt.token_ids])
            with torch.no_grad():  # next-token log-probs over the whole vocabulary, at the target
                ours = model(tokens)[0, -1].log_softmax(-1)
                theirs = hf_model(tokens).logits[0, -1].log_softmax(-1)
            worst = max(worst, (ours - theirs).abs().max().item())
    assert worst < 1e-4, worst


def test_offline_model_settings():
    assert models.OFFLINE_MODELS["smollm2-135m"].prepend_bos is False
    assert models.OFFLINE_MODELS["gemma-3-270m"].prepend_bos is True


def test_smollm2_config_from_hf(smol_model):
    from anchorlens.model_classes import is_bridge, model_class_of

    if is_bridge(smol_model):  # the bridge rotates with Hugging Face's own rotary module and config
        hf_config = smol_model.original_model.config
        theta = (getattr(hf_config, "rope_parameters", None) or {}).get("rope_theta") or hf_config.rope_theta
        assert theta == 100000.0
    else:
        assert smol_model.cfg.rotary_base == 100000.0
    assert smol_model.cfg.n_layers == models.OFFLINE_MODELS["smollm2-135m"].n_layers == 30
    assert smol_model.cfg.n_heads == 9 and smol_model.cfg.n_key_value_heads == 3
    assert smol_model.cfg.default_prepend_bos is False
    # what the CLI checks against before loading
    expected = (
        models.context_length("smollm2-135m", model_class_of(smol_model)),
        models.vocabulary_size("smollm2-135m"),
    )
    assert (smol_model.cfg.n_ctx, smol_model.cfg.d_vocab) == expected


@pytest.mark.smoke
def test_gemma_uses_bos(gemma_model):
    from anchorlens.model_classes import model_class_of

    assert gemma_model.cfg.default_prepend_bos is True
    assert gemma_model.cfg.n_layers == models.OFFLINE_MODELS["gemma-3-270m"].n_layers
    expected = (
        models.context_length("gemma-3-270m", model_class_of(gemma_model)),
        models.vocabulary_size("gemma-3-270m"),
    )
    assert (gemma_model.cfg.n_ctx, gemma_model.cfg.d_vocab) == expected
    batch = _task_batch(gemma_model, n=1)
    assert batch.tokens[0, 0].item() == gemma_model.tokenizer.bos_token_id


def test_corrupt_cached_weights_are_detected_and_rebuilt(tmp_path, monkeypatch):
    source = models.converted_dir("smollm2-135m")
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path))
    target = tmp_path / "smollm2-135m" / "hf"
    shutil.copytree(source, target)
    assert models.converted_dir("smollm2-135m") == target  # a valid copy is reused as is
    with (target / models.WEIGHTS_NAME).open("r+b") as handle:
        handle.seek(4096)
        handle.write(b"\x00" * 64)
    with pytest.warns(models.CacheRebuildWarning, match="failed its check: model.safetensors does not match"):
        rebuilt = models.converted_dir("smollm2-135m")
    assert models.file_sha256(rebuilt / models.WEIGHTS_NAME) == models.file_sha256(source / models.WEIGHTS_NAME)


def test_an_edited_cached_config_is_rebuilt_not_loaded(tmp_path, monkeypatch):
    """Issue 17.5: an edited hf/config.json (30 -> 20 layers) loaded a 20-layer 'smollm2-135m' without a word."""
    source = models.converted_dir("smollm2-135m")
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path))
    target = tmp_path / "smollm2-135m" / "hf"
    shutil.copytree(source, target)
    config = json.loads((target / "config.json").read_text())
    config["num_hidden_layers"] = 20
    (target / "config.json").write_text(json.dumps(config))
    with pytest.warns(UserWarning, match=r"hf failed its check: config\.json does not match"):
        model = models.load_model("smollm2-135m")
    assert model.cfg.n_layers == 30
    assert json.loads((target / "config.json").read_text())["num_hidden_layers"] == 30


def test_a_cut_cached_tokenizer_is_rebuilt(tmp_path, monkeypatch):
    """Issue 17.5: a truncated tokenizer.json was a JSONDecodeError traceback on every command."""
    source = models.tokenizer_dir("smollm2-135m")
    reference = models.load_tokenizer("smollm2-135m")
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path))
    target = tmp_path / "smollm2-135m" / "tokenizer"
    shutil.copytree(source, target)
    cut = target / "tokenizer.json"
    cut.write_bytes(cut.read_bytes()[:1000])
    with pytest.warns(UserWarning, match=r"tokenizer failed its check: tokenizer\.json does not match"):
        tokenizer = models.load_tokenizer("smollm2-135m")
    assert tokenizer("Review: fine").input_ids == reference("Review: fine").input_ids


def test_unknown_model_lists_offline_models():
    with pytest.raises(UnknownModelError, match="smollm2-135m, gemma-3-270m"):
        models.load_model("no-such-model-anywhere")


def test_hub_model_without_hub_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty HF cache
    with pytest.raises(ModelLoadError, match="hub is not reachable.*smollm2-135m"):
        models.load_model("gpt2")


def test_local_folder_loads_with_value_biases_unfolded(tmp_path, smol_tokenizer):
    """GPT-NeoX (Pythia) models have value biases: they must stay in b_V, since folding them into the output
    bias changes ∂L/∂A (SPEC §8). A local Hugging Face folder loads without the hub."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    config = GPTNeoXConfig(
        vocab_size=len(smol_tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=256,
    )
    hf_model = GPTNeoXForCausalLM(config).eval()
    with torch.no_grad():
        for layer in hf_model.gpt_neox.layers:
            layer.attention.query_key_value.bias.normal_(0, 0.5)
    hf_model.save_pretrained(tmp_path)
    smol_tokenizer.save_pretrained(tmp_path)

    model = models.load_model(str(tmp_path), prepend_bos=False)
    assert model.blocks[0].attn.b_V.abs().sum() > 0
    tokens = torch.tensor([smol_tokenizer("Review: fine \nSentiment:").input_ids])
    with torch.no_grad():
        assert (model(tokens).log_softmax(-1) - hf_model(tokens).logits.log_softmax(-1)).abs().max() < 1e-4


def test_canaries_on_smollm2(smol_model):
    verify_attention_hooks(smol_model)
    batch = _task_batch(smol_model)
    blocked = block_earlier_mask(batch, [p.demonstration_label_positions for p in batch.prompts])
    store = {}

    def keep(pattern, hook):
        store[hook.name] = pattern.detach()

    with torch.no_grad():
        plain = smol_model(batch.tokens)
        isolated = smol_model.run_with_hooks(
            batch.tokens, fwd_hooks=isolation_hooks({0: blocked}) + [(pattern_hook_name(0), keep)]
        )
        beta = torch.full((smol_model.cfg.n_layers, smol_model.cfg.n_heads, 2), 1.0)
        reweighted = smol_model.run_with_hooks(batch.tokens, fwd_hooks=reweight_hooks(beta, batch))
    assert store[pattern_hook_name(0)][blocked[:, None].expand_as(store[pattern_hook_name(0)])].eq(0).all()
    assert not torch.allclose(plain, isolated)
    assert not torch.allclose(plain, reweighted)
    weights = torch.ones(batch.size, 1, batch.seq_len, batch.seq_len).tril(-1)
    recorder = SaliencyRecorder(smol_model, weights)
    with frozen_parameters(smol_model):
        logits = smol_model.run_with_hooks(batch.tokens, fwd_hooks=recorder.hooks())
        label_loss(logits, batch).backward()
    assert (recorder.values > 0).all()  # a gradient reached every layer's pattern for every prompt


@pytest.mark.skipif(
    not __import__("anchorlens").model_classes.has_hooked_transformer(),
    reason="the transposed storage is a HookedTransformer's (transformer-lens 3.9)",
)
@pytest.mark.parametrize("model_name", ["gpt2_like", "llama_like"])
def test_transposed_weight_storage_changes_no_number(request, model_name):
    """The loader's weight layout (no per-forward weight copies) gives bit-identical logits and gradients."""
    import copy

    from anchorlens.models import lay_out_weights_for_linear

    model = request.getfixturevalue(model_name)
    relaid = lay_out_weights_for_linear(copy.deepcopy(model))
    assert not relaid.blocks[0].mlp.W_in.is_contiguous() and relaid.blocks[0].mlp.W_in.T.is_contiguous()
    tokens = torch.arange(3, 40)[None]
    assert torch.equal(model(tokens), relaid(tokens))
    gradients = []
    for each in (model, relaid):
        each.zero_grad()
        each(tokens)[0, -1].logsumexp(-1).backward()
        gradients.append(each.blocks[0].attn.W_Q.grad.clone())
        each.zero_grad()
    assert torch.equal(*gradients)
