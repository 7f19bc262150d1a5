"""Model loading: offline models against their HF originals, the weight cache, errors, value biases."""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
import warnings

import pytest
import torch

from anchorlens import models
from anchorlens.errors import InvalidConfigError, ModelLoadError, UnknownModelError
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

#: The tests that load a real offline model (the cache tests below build small folders of their own).
integration = pytest.mark.integration


def _task_batch(model, task="sst2", n=3):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, prompts = task_prompts(model.tokenizer, task, 42, n_test=n, **prompt_settings(model))
    return make_batch(prompts)


@integration
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


@integration
def test_offline_model_settings():
    assert models.OFFLINE_MODELS["smollm2-135m"].prepend_bos is False
    assert models.OFFLINE_MODELS["gemma-3-270m"].prepend_bos is True


@integration
def test_smollm2_config_from_hf(smol_model):
    from anchorlens.model_classes import is_bridge, model_class_of

    if is_bridge(smol_model):  # the bridge rotates with Hugging Face's own rotary module and config
        hf_config = smol_model.original_model.config
        theta = (getattr(hf_config, "rope_parameters", None) or {}).get("rope_theta") or hf_config.rope_theta
        assert theta == 100000.0
    else:
        assert smol_model.cfg.rotary_base == 100000.0
    assert smol_model.cfg.n_layers == 30 and smol_model.cfg.n_heads == 9 and smol_model.cfg.n_key_value_heads == 3
    assert smol_model.cfg.default_prepend_bos is False
    # what the CLI checks against before loading
    expected = (
        models.context_length("smollm2-135m", model_class_of(smol_model)),
        models.vocabulary_size("smollm2-135m"),
    )
    assert (smol_model.cfg.n_ctx, smol_model.cfg.d_vocab) == expected


@integration
def test_gemma_uses_bos(gemma_model):
    from anchorlens.model_classes import model_class_of

    assert gemma_model.cfg.default_prepend_bos is True
    expected = (
        models.context_length("gemma-3-270m", model_class_of(gemma_model)),
        models.vocabulary_size("gemma-3-270m"),
    )
    assert (gemma_model.cfg.n_ctx, gemma_model.cfg.d_vocab) == expected
    batch = _task_batch(gemma_model, n=1)
    assert batch.tokens[0, 0].item() == gemma_model.tokenizer.bos_token_id


@integration
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


@integration
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


@integration
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


# ------------------------------------------------------------------ the cache, on small folders of its own


def _fake_folder(files: dict[str, bytes]):
    """A `fill` for `_write_folder_atomically` writing these files (stands in for a GGUF conversion)."""

    def fill(staging):
        for name, data in files.items():
            (staging / name).write_bytes(data)
        return {"model": "fake"}

    return fill


FAKE_FILES = {"config.json": b'{"num_hidden_layers": 30}', models.WEIGHTS_NAME: b"\x01" * 4096, "tokenizer.json": b"{}"}


def test_every_cached_file_is_in_the_manifest_and_checked(tmp_path):
    folder = tmp_path / "hf"
    models._write_folder_atomically(folder, _fake_folder(FAKE_FILES))
    manifest = json.loads((folder / models.MANIFEST_NAME).read_text())
    assert sorted(manifest["sha256"]) == sorted(FAKE_FILES)
    assert models.cache_problem(folder) is None

    (folder / "config.json").write_bytes(b'{"num_hidden_layers": 20}')
    assert models.cache_problem(folder) == "config.json does not match its recorded sha256 (edited or cut)"
    assert models.cache_problem(folder, check_hashes=False) is None  # listings do not hash
    (folder / "config.json").write_bytes(FAKE_FILES["config.json"])
    assert models.cache_problem(folder) is None

    (folder / "generation_config.json").write_text("{}")
    assert models.cache_problem(folder, check_hashes=False) == "generation_config.json is not in its manifest"
    (folder / "generation_config.json").unlink()
    (folder / "tokenizer.json").unlink()
    assert models.cache_problem(folder) == "tokenizer.json is missing"
    os.symlink(tmp_path / "elsewhere.json", folder / "tokenizer.json")
    assert models.cache_problem(folder) == "tokenizer.json is not a regular file"

    manifest["format_version"] = 1
    (folder / models.MANIFEST_NAME).write_text(json.dumps(manifest))
    assert "cache format 1" in models.cache_problem(folder)
    (folder / models.MANIFEST_NAME).write_text("{not json")
    assert "manifest" in models.cache_problem(folder)
    assert models.cache_problem(tmp_path / "nothing-here") == "it does not exist"


def test_a_damaged_cache_is_rebuilt_with_a_warning_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path))
    builds = []

    def fake_build(spec, folder):
        builds.append(spec.name)
        models._write_folder_atomically(folder, _fake_folder(FAKE_FILES))

    monkeypatch.setattr(models, "_build_converted_dir", fake_build)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the first build of a missing folder warns about nothing
        folder = models.converted_dir("smollm2-135m")
    assert builds == ["smollm2-135m"] and models.converted_dir("smollm2-135m") == folder and len(builds) == 1
    (folder / "config.json").write_bytes(b'{"num_hidden_layers": 20}')
    with pytest.warns(
        models.CacheRebuildWarning, match=r"smollm2-135m/hf failed its check: config\.json does not match"
    ):
        models.converted_dir("smollm2-135m")
    assert len(builds) == 2 and (folder / "config.json").read_bytes() == FAKE_FILES["config.json"]


def test_large_files_are_hashed_once_per_process_until_they_change(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "_SETTLED_NS", 0)  # remember files written just now (the test's own)
    monkeypatch.setattr(models, "_VERIFIED_HASHES", {})
    hashed = []
    real_sha256 = models.file_sha256
    monkeypatch.setattr(models, "file_sha256", lambda path: hashed.append(path.name) or real_sha256(path))
    path = tmp_path / "weights.bin"
    path.write_bytes(b"a" * 1000)
    first = models._sha256_once(path)
    assert models._sha256_once(path) == first and hashed == ["weights.bin"]
    time.sleep(0.05)  # past the file system's clock tick, so the edit gets a new ctime
    with path.open("r+b") as handle:  # same size, same path
        handle.write(b"b")
    assert models._sha256_once(path) != first and len(hashed) == 2


def test_a_symlink_planted_as_the_cache_lock_is_refused_not_followed(tmp_path, monkeypatch):
    """Issue 17.3: the lock was opened with open("w"), which follows a link and empties its target."""
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    (tmp_path / "cache" / "smollm2-135m").mkdir(parents=True)
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    os.symlink(victim, tmp_path / "cache" / "smollm2-135m" / ".tokenizer.lock")
    with pytest.raises(ModelLoadError, match=r"\.tokenizer\.lock is a symbolic link.*remove it"):
        models.tokenizer_dir("smollm2-135m")
    assert victim.read_text() == "keep me"


def test_an_unwritable_cache_is_one_line_with_the_fix(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(models.CACHE_ENV, str(blocker / "cache"))
    with pytest.raises(
        ModelLoadError,
        match=r"cannot build the cached model folder .*: it lies below a file; set "
        r"ANCHORLENS_CACHE",
    ):
        models.tokenizer_dir("smollm2-135m")

    # Permission denied (chmod cannot show it to root, who runs these tests in containers): the lock's open fails.
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    real_open = os.open

    def denied(path, *args, **kwargs):
        if str(path).endswith(".lock"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(
        ModelLoadError, match=r"smollm2-135m is not writable; set ANCHORLENS_CACHE to a writable folder"
    ):
        models.tokenizer_dir("smollm2-135m")


def test_a_complete_read_only_cache_needs_no_lock(tmp_path, monkeypatch):
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path))
    folder = tmp_path / "smollm2-135m" / "hf"
    models._write_folder_atomically(folder, _fake_folder(FAKE_FILES))
    monkeypatch.setattr(models, "_folder_lock", None)  # calling it would fail
    assert models.converted_dir("smollm2-135m") == folder


def test_check_device_refuses_what_the_machine_lacks():
    models.check_device(None)
    models.check_device("cpu")
    models.check_device("cuda:1", cuda_devices=2)
    with pytest.raises(InvalidConfigError, match="unknown device 'gpu'"):
        models.check_device("gpu")
    with pytest.raises(InvalidConfigError, match="'cuda' needs a CUDA GPU and torch finds none.*use 'cpu'"):
        models.check_device("cuda", cuda_devices=0)
    with pytest.raises(InvalidConfigError, match=r"'cuda:2' does not exist: this machine has 2 CUDA GPU\(s\)"):
        models.check_device("cuda:2", cuda_devices=2)
    with pytest.raises(InvalidConfigError, match="'mps' needs Apple's MPS backend"):
        models.check_device("mps", mps_available=False)


def test_a_folder_that_is_not_a_model_is_one_line(tmp_path):
    """Issue 17.6: a local folder without a model was a ValueError traceback from transformers."""
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ModelLoadError, match="is a folder but holds no Hugging Face model \\(no config.json\\)"):
        models.load_model(str(tmp_path))
    with pytest.raises(ModelLoadError, match="is a folder but holds no Hugging Face model"):
        models.load_model(str(tmp_path), model_class="bridge")
    with pytest.raises(ModelLoadError, match="is a folder but no tokenizer loads from it"):
        models.load_tokenizer(str(tmp_path))
    (tmp_path / "config.json").write_text('{"hello": 1}')
    with pytest.raises(ModelLoadError, match="is a folder but its model cannot be loaded \\(ValueError: "):
        models.load_model(str(tmp_path))


def test_context_and_vocabulary_known_before_loading(tmp_path):
    assert models.context_length("smollm2-135m") == 8192 and models.context_length("gemma-3-270m", "bridge") == 32768
    assert models.context_length("gemma-3-270m", "hooked") == 8192 and models.vocabulary_size("gemma-3-270m") == 262144
    (tmp_path / "config.json").write_text('{"n_positions": 1024, "vocab_size": 50257}')
    assert models.context_length(str(tmp_path)) == 1024 and models.vocabulary_size(str(tmp_path)) == 50257
    assert models.context_length("gpt2") is None and models.vocabulary_size(str(tmp_path / "none")) is None


@integration
def test_unknown_model_lists_offline_models():
    with pytest.raises(UnknownModelError, match="smollm2-135m, gemma-3-270m"):
        models.load_model("no-such-model-anywhere")


@integration
def test_hub_model_without_hub_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty HF cache
    with pytest.raises(ModelLoadError, match="hub is not reachable.*smollm2-135m"):
        models.load_model("gpt2")


@integration
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


@integration
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


@integration
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
