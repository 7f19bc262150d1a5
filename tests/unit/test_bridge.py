"""Both TransformerLens model classes through one API: every hook recipe acts on a HookedTransformer and on a
TransformerBridge, they agree, and a model whose attention cannot be hooked fails loudly.

Fast tests use tiny random models saved as local Hugging Face folders (GPT-NeoX, which both classes load; a
Gemma-3 with a sliding window shorter than the prompt, which only the bridge loads from a bare folder).
tests/integration/test_bridge.py runs the same canaries on both offline models in both classes. Measured
differences are printed (``pytest -s``) for the README's table.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from anchorlens import models
from anchorlens.errors import HookError, InvalidConfigError, UnsupportedModelError
from anchorlens.forward import run_to_target
from anchorlens.hooks import (
    LabelAttentionRecorder,
    SaliencyRecorder,
    block_earlier_mask,
    frozen_parameters,
    hooked,
    isolation_hooks,
    pattern_hook_name,
    require_attention_hooks,
    reweight_hooks,
    scores_hook_name,
    verify_attention_hooks,
)
from anchorlens.model_classes import has_hooked_transformer, model_class_of
from anchorlens.prompts import label_loss, make_batch, prompt_settings, task_prompts

# Every test here runs on both TransformerLens lines in CI (.ci/run); on 4.x, which has no HookedTransformer,
# the bridge's canaries run and the comparisons with a HookedTransformer are skipped.
pytestmark = pytest.mark.both_classes
#: The classes the installed transformer-lens has.
CLASSES = ("hooked", "bridge") if has_hooked_transformer() else ("bridge",)
needs_hooked = pytest.mark.skipif(
    not has_hooked_transformer(), reason="transformer-lens 4.x has no HookedTransformer to compare with"
)
#: Largest |Δ log-prob| allowed between the classes at the target, over the whole vocabulary (float32).
LOG_PROB_TOLERANCE = 1e-4
#: Largest |Δ| allowed between the classes' recorded target→label attention (a probability).
ATTENTION_TOLERANCE = 1e-4
#: Largest relative difference allowed between the classes' saliency values.
SALIENCY_RTOL = 1e-2


def _quiet_load(name, model_class, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return models.load_model(name, model_class=model_class, **kwargs)


# ------------------------------------------------------------------------------------------------- models


@pytest.fixture(scope="session")
def tiny_models(tiny_folder):
    """The tiny GPT-NeoX folder in both classes (value biases unfolded in the HookedTransformer)."""
    return {model_class: _quiet_load(str(tiny_folder), model_class, prepend_bos=False) for model_class in CLASSES}


_FIXTURES = {
    ("smollm2-135m", "hooked"): "smol_model",
    ("smollm2-135m", "bridge"): "smol_bridge",
    ("gemma-3-270m", "hooked"): "gemma_model",
    ("gemma-3-270m", "bridge"): "gemma_bridge",
}


def _get(request, name, model_class):
    if name == "tiny-neox":
        return request.getfixturevalue("tiny_models")[model_class]
    return request.getfixturevalue(_FIXTURES[(name, model_class)])


#: The canaries' cases here; tests/integration/test_bridge.py runs the same test bodies on the offline models.
MODEL_AND_CLASS = [pytest.param(("tiny-neox", model_class), id=f"tiny-neox-{model_class}") for model_class in CLASSES]
MODELS = [pytest.param("tiny-neox", id="tiny-neox")]


def _batch(model, n=3):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, prompts = task_prompts(model.tokenizer, "sst2", 42, n_test=n, **prompt_settings(model))
    return make_batch(prompts, device=next(model.parameters()).device)


def _prompt_count(name: str) -> int:
    return 3 if name == "tiny-neox" else 2  # a real model's forward pass takes seconds on a 2-core CPU


_PLAIN: dict[tuple, tuple[object, torch.Tensor]] = {}


def _plain(model, batch):
    """Unhooked logits at the targets, computed once per model and batch (real models are slow on a CPU).
    The cache holds the model too, so its id cannot be reused by another model."""
    key = (id(model), tuple(map(tuple, batch.tokens.tolist())))
    if key not in _PLAIN:
        with torch.no_grad():
            _PLAIN[key] = (model, run_to_target(model, batch))
    return _PLAIN[key][1]


@pytest.fixture
def model_and_batch(request):
    name, model_class = request.param
    model = _get(request, name, model_class)
    return model, _batch(model, _prompt_count(name))


# ------------------------------------------------------------------------------------------ loading + API


@pytest.mark.parametrize("model_class", CLASSES)
def test_load_model_gives_the_requested_class(tiny_models, model_class):
    model = tiny_models[model_class]
    assert model_class_of(model) == model_class
    assert not model.training
    assert model.cfg.default_prepend_bos is False  # as asked, not the bridge tokenizer's own BOS habit
    assert model.cfg.n_layers == 6 and model.cfg.n_heads == 4


def test_unknown_model_class_is_refused(tiny_folder):
    with pytest.raises(InvalidConfigError, match="use 'hooked' .* or 'bridge'"):
        models.load_model(str(tiny_folder), model_class="hf")


@needs_hooked
def test_same_prompt_tokens_in_both_classes(tiny_models):
    hooked_batch, bridge_batch = _batch(tiny_models["hooked"]), _batch(tiny_models["bridge"])
    assert torch.equal(hooked_batch.tokens, bridge_batch.tokens)


def test_a_hook_name_the_bridge_lacks_is_an_error_not_a_skip(tiny_models):
    """A bridge skips unknown hook names silently; anchorlens refuses them in both classes."""
    bridge = tiny_models["bridge"]
    batch = _batch(bridge)
    never = ("blocks.0.attn.hook_no_such_thing", lambda tensor, hook: tensor * 0)
    with pytest.raises(HookError, match="no hook point 'blocks.0.attn.hook_no_such_thing'"):
        run_to_target(bridge, batch, [never])
    with pytest.raises(HookError, match="TransformerBridge has no hook point"):
        with hooked(bridge, [never]):
            pass


def test_start_at_layer_needs_a_hooked_transformer(tiny_models):
    bridge = tiny_models["bridge"]
    batch = _batch(bridge)
    residual = torch.zeros(batch.size, batch.seq_len, bridge.cfg.d_model)
    with pytest.raises(UnsupportedModelError, match="model_class='hooked'"):
        run_to_target(bridge, batch, start_at_layer=3, residual=residual)


# ----------------------------------------------------------------------------------------------- canaries


def _count_passes(model, monkeypatch) -> list:
    """Count the model's ``run_with_hooks`` calls (patched on its class, undone after the test)."""
    passes: list = []
    run_with_hooks = type(model).run_with_hooks

    def counted(self, *args, **kwargs):
        passes.append(self)
        return run_with_hooks(self, *args, **kwargs)

    monkeypatch.setattr(type(model), "run_with_hooks", counted)
    return passes


@pytest.mark.parametrize("model_and_batch", MODEL_AND_CLASS, indirect=True)
def test_attention_hooks_verify(model_and_batch, monkeypatch):
    """The check runs on this session's model even when an earlier test passed it (``again=True``): its three
    passes through the model (hooks run, an edit moves the logits, a gradient arrives) run and pass, and leave no
    hook, gradient or attribute behind; a model that passed is not checked again by default."""
    model, batch = model_and_batch
    require_attention_hooks(model)
    passes = _count_passes(model, monkeypatch)
    verify_attention_hooks(model, again=True)
    assert passes == [model] * 3
    verify_attention_hooks(model)
    assert len(passes) == 3  # passed once: not run again
    assert not [name for name, point in model.hook_dict.items() if point.fwd_hooks or point.bwd_hooks]
    assert all(parameter.grad is None for parameter in model.parameters())
    assert set(name for name in vars(model) if name.startswith("_anchorlens")) <= {models.MODEL_FILES_KEY}


@pytest.mark.parametrize("model_class", CLASSES)
def test_verified_models_are_not_kept_alive(tiny_folder, model_class):
    """anchorlens remembers which models passed without holding them: a model freed by its user is freed."""
    import gc
    import weakref

    model = _quiet_load(str(tiny_folder), model_class, prepend_bos=False)
    verify_attention_hooks(model)
    run_to_target(model, _batch(model, n=1))  # a bridge also remembers whether it takes logits_to_keep
    freed = weakref.ref(model)
    del model
    gc.collect()
    assert freed() is None


@pytest.mark.parametrize("model_and_batch", MODEL_AND_CLASS, indirect=True)
def test_isolation_acts(model_and_batch):
    """Blocked entries are exactly 0 after softmax, the isolated rows attend only to themselves, logits move."""
    model, batch = model_and_batch
    blocked = block_earlier_mask(batch, [p.demonstration_label_positions for p in batch.prompts])
    store = {}

    def keep(pattern, hook):
        store[hook.name] = pattern.detach()

    plain = _plain(model, batch)
    with torch.no_grad():
        isolated = run_to_target(model, batch, isolation_hooks({0: blocked}) + [(pattern_hook_name(0), keep)])
    pattern = store[pattern_hook_name(0)]
    assert pattern[blocked[:, None].expand_as(pattern)].eq(0).all()
    for row, prompt in enumerate(batch.prompts):
        for position in prompt.demonstration_label_positions:
            torch.testing.assert_close(pattern[row, :, position, position], torch.ones(pattern.shape[1]))
    assert (plain - isolated).abs().max() > 1e-4


@pytest.mark.parametrize("model_and_batch", MODEL_AND_CLASS, indirect=True)
def test_reweighting_acts_and_zero_beta_changes_nothing(model_and_batch):
    model, batch = model_and_batch
    shape = (model.cfg.n_layers, model.cfg.n_heads, 2)
    plain = _plain(model, batch)
    with torch.no_grad():
        for variant in ("pattern", "scores"):
            same = run_to_target(model, batch, reweight_hooks(torch.zeros(shape), batch, variant))
            assert torch.equal(plain, same), variant
            moved = run_to_target(model, batch, reweight_hooks(torch.full(shape, 1.0), batch, variant))
            assert (moved - plain).abs().max() > 1e-4, variant


@pytest.mark.parametrize("model_and_batch", MODEL_AND_CLASS, indirect=True)
def test_label_attention_recorder_records(model_and_batch):
    model, batch = model_and_batch
    recorder = LabelAttentionRecorder(model, batch)
    with torch.no_grad():
        run_to_target(model, batch, recorder.hooks())
    values = recorder.values
    assert values.shape == (batch.size, model.cfg.n_layers, model.cfg.n_heads, 2)
    assert torch.isfinite(values).all() and (values > 0).any(-1).all()  # some label attention in every head
    assert (values <= 1 + 1e-5).all()


@pytest.mark.parametrize("model_and_batch", MODEL_AND_CLASS, indirect=True)
def test_saliency_gradient_arrives_in_every_layer(model_and_batch):
    model, batch = model_and_batch
    weights = torch.ones(batch.size, 1, batch.seq_len, batch.seq_len, device=batch.tokens.device).tril(-1)
    recorder = SaliencyRecorder(model, weights)
    with frozen_parameters(model):
        label_loss(run_to_target(model, batch, recorder.hooks()), batch).backward()
    values = recorder.values
    assert torch.isfinite(values).all() and (values > 0).all()  # every layer, every prompt
    assert all(p.requires_grad for p in model.parameters())  # restored


# ------------------------------------------------------------------------------------ the classes agree


def _compare(request, name):
    hooked_model, bridge = _get(request, name, "hooked"), _get(request, name, "bridge")
    batch = _batch(hooked_model, _prompt_count(name))
    assert torch.equal(batch.tokens, _batch(bridge, _prompt_count(name)).tokens)
    return hooked_model, bridge, batch


@pytest.mark.parametrize("name", MODELS)
@needs_hooked
def test_target_log_probs_agree(request, name):
    hooked_model, bridge, batch = _compare(request, name)
    ours, theirs = (_plain(m, batch).log_softmax(-1) for m in (hooked_model, bridge))
    worst = (ours - theirs).abs().max().item()
    print(f"\n[measured] {name}: max |Δ log-prob| hooked vs bridge at the targets = {worst:.2e}")
    assert worst < LOG_PROB_TOLERANCE
    assert torch.equal(ours.argmax(-1), theirs.argmax(-1))


@pytest.mark.parametrize("name", MODELS)
@needs_hooked
def test_label_attention_and_saliency_agree(request, name):
    hooked_model, bridge, batch = _compare(request, name)
    weights = torch.ones(batch.size, 1, batch.seq_len, batch.seq_len).tril(-1)
    attention, saliency = {}, {}
    for model_class, model in (("hooked", hooked_model), ("bridge", bridge)):
        labels = LabelAttentionRecorder(model, batch)
        flow = SaliencyRecorder(model, weights)
        with frozen_parameters(model):
            label_loss(run_to_target(model, batch, labels.hooks() + flow.hooks()), batch).backward()
        attention[model_class], saliency[model_class] = labels.values, flow.values
    attention_gap = (attention["hooked"] - attention["bridge"]).abs().max().item()
    saliency_gap = ((saliency["hooked"] - saliency["bridge"]).abs() / saliency["hooked"].abs()).max().item()
    print(
        f"\n[measured] {name}: max |Δ label attention| = {attention_gap:.2e}, "
        f"max relative Δ saliency = {saliency_gap:.2e}"
    )
    assert attention_gap < ATTENTION_TOLERANCE
    assert saliency_gap < SALIENCY_RTOL


# ------------------------------------------------------------------------------ experiments on a bridge


@needs_hooked
def test_isolation_auroc_and_saliency_experiments_agree_across_classes(tiny_models):
    from anchorlens.experiments import (
        AurocConfig,
        IsolationConfig,
        SaliencyConfig,
        run_auroc,
        run_isolation,
        run_saliency,
    )

    runs = [
        (run_isolation, IsolationConfig(seeds=(42,), n_test=4, k=(1, 2)), ["label_loyalty", "word_loyalty"]),
        (run_auroc, AurocConfig(seeds=(42,), n_test=6), ["auroc"]),
        (run_saliency, SaliencyConfig(seeds=(42,), n_test=3), ["S_wp", "S_pq", "S_ww"]),
    ]
    for run, config, columns in runs:
        frames = {
            model_class: run(tiny_models[model_class], "sst2", config, progress=False).to_frame()
            for model_class in CLASSES
        }
        hooked_frame, bridge_frame = frames["hooked"], frames["bridge"]
        assert len(hooked_frame) == len(bridge_frame) > 0
        for column in columns:
            torch.testing.assert_close(
                torch.tensor(bridge_frame[column].to_numpy()),
                torch.tensor(hooked_frame[column].to_numpy()),
                rtol=1e-3,
                atol=1e-5,
                equal_nan=True,
                msg=f"{run.__name__}: {column}",
            )


@needs_hooked
def test_reweight_fits_on_a_bridge_like_on_a_hooked_transformer(tiny_models):
    """The bridge fits β on full prompts (no TransformerLens key/value cache); the result is the same β."""
    from anchorlens.experiments.reweight import fit_beta

    hooked_model = tiny_models["hooked"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, prompts = task_prompts(hooked_model.tokenizer, "sst2", 43, n_test=3, **prompt_settings(hooked_model))
    betas = {
        model_class: fit_beta(
            tiny_models[model_class], prompts, learning_rate=0.05, epochs=2, variant="pattern", seed=0
        )
        for model_class in CLASSES
    }
    assert betas["bridge"].abs().sum() > 0
    torch.testing.assert_close(betas["bridge"], betas["hooked"], rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("model_and_batch", MODEL_AND_CLASS, indirect=True)
def test_keep_all_compression_equals_the_full_prompt(model_and_batch):
    """The demonstrations' key/value cache with every position kept, queried at the original positions, gives
    the full prompt's logits: on a bridge Hugging Face's cache, which its attention extends (transformers < 5.24)."""
    from anchorlens.kv_cache import (
        cache_demonstrations,
        pad_queries,
        query_tokens,
        run_query_with_cache,
    )

    model, batch = model_and_batch
    prompts = batch.prompts
    length = prompts[0].demonstration_length
    assert all(p.token_ids[:length] == prompts[0].token_ids[:length] for p in prompts)
    cache = cache_demonstrations(model, prompts[0].token_ids[:length])
    tokens, lengths = pad_queries([query_tokens(p, cache) for p in prompts], pad_token_id=0, device=batch.tokens.device)
    with torch.no_grad():
        cached = run_query_with_cache(model, cache, tokens, lengths)
    full = _plain(model, batch)
    torch.testing.assert_close(cached.log_softmax(-1), full.log_softmax(-1), rtol=0, atol=1e-4)
    # Dropping the demonstrations' text changes the answer's distribution: the cache really is read.
    with torch.no_grad():
        pruned = run_query_with_cache(model, cache.keep(cache.positions[:1]), tokens, lengths)
    assert (pruned.log_softmax(-1) - full.log_softmax(-1)).abs().max() > 1e-3


@needs_hooked
def test_compress_on_a_bridge_equals_the_hooked_transformer(tiny_models):
    """All five methods of anchor-only compression give the same numbers in both classes."""
    from anchorlens.experiments import CompressConfig, run_compress

    config = CompressConfig(seeds=(42,), n_test=3, random_draws=2)
    frames = {
        model_class: run_compress(tiny_models[model_class], "sst2", config, progress=False).to_frame()
        for model_class in CLASSES
    }
    columns = ["label_loyalty", "word_loyalty", "accuracy"]
    assert len(frames["bridge"]) == len(frames["hooked"]) > 0
    for column in columns:
        torch.testing.assert_close(
            torch.tensor(frames["bridge"][column].to_numpy(dtype=float)),
            torch.tensor(frames["hooked"][column].to_numpy(dtype=float)),
            rtol=1e-3,
            atol=1e-5,
            msg=column,
        )


def test_diagnose_rotates_the_keys_of_a_bridge_without_post_rotary_hooks(tiny_models, monkeypatch):
    """GPT-NeoX's bridge never runs hook_rot_k / hook_rot_q: diagnose rotates its keys and queries itself, checked
    against the attention scores; a rotation that does not give the scores is refused, not diagnosed."""
    from anchorlens.experiments import DiagnoseConfig, run_diagnose
    from anchorlens.experiments import diagnose as diagnose_module

    config = DiagnoseConfig(seeds=(42,), n_test=4, min_per_class=4)
    frame = run_diagnose(tiny_models["bridge"], "sst2", config, progress=False).to_frame()
    assert frame["predicted"].notna().all()
    if "hooked" in tiny_models:  # 3.9: the same matrix as the HookedTransformer's post-rotary hooks give
        reference = run_diagnose(tiny_models["hooked"], "sst2", config, progress=False).to_frame()
        torch.testing.assert_close(
            torch.tensor(frame["predicted"].to_numpy()),
            torch.tensor(reference["predicted"].to_numpy()),
            rtol=1e-3,
            atol=1e-4,
        )
    monkeypatch.setattr(diagnose_module, "_rotate_half_embedding", lambda vectors, cos, sin: vectors)
    with pytest.raises(HookError, match="do not give its attention scores"):
        run_diagnose(tiny_models["bridge"], "sst2", config, progress=False)


# ----------------------------------------------------------------------------- a bridge of a Gemma-3 folder


def test_gemma3_bridge_equals_hugging_face_past_the_sliding_window(tmp_path, smol_tokenizer):
    """The bridge re-implements attention (so its hooks fire); with a window shorter than the prompt its
    logits still equal the Hugging Face model's, and its hooks verify. A bare Gemma-3 folder has no
    TransformerLens name, so only the bridge loads it."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=len(smol_tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=8,
        max_position_embeddings=512,
        sliding_window=6,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
        query_pre_attn_scalar=8,
    )
    hf_model = Gemma3ForCausalLM(config).eval()
    with torch.no_grad():
        for name, parameter in hf_model.named_parameters():
            if "norm" in name:  # zero at init; make the (1 + w) scales matter
                parameter.normal_(0, 0.3)
    hf_model.save_pretrained(tmp_path)
    smol_tokenizer.save_pretrained(tmp_path)
    bridge = _quiet_load(str(tmp_path), "bridge", prepend_bos=False)
    verify_attention_hooks(bridge)
    batch = _batch(bridge, n=2)
    assert batch.seq_len > 3 * config.sliding_window
    with torch.no_grad():
        theirs = hf_model(batch.tokens).logits
        ours = run_to_target(bridge, batch)
    rows = torch.arange(batch.size)
    assert (ours - theirs[rows, batch.target_positions]).abs().max() < 1e-5


# -------------------------------------------------------------------------------- un-hookable models


def _bypass(hook_point, mode: str) -> None:
    """Turn one TransformerLens HookPoint into a subclass that is never called ("silent") or whose hooks run
    but whose returned tensor the layer never uses ("ignored")."""
    from transformer_lens.hook_points import HookPoint

    class Silent(HookPoint):
        def __call__(self, tensor, *args, **kwargs):
            return self.forward(tensor)

    class Ignored(HookPoint):
        def __call__(self, tensor, *args, **kwargs):
            super().__call__(tensor, *args, **kwargs)
            return tensor

    hook_point.__class__ = Silent if mode == "silent" else Ignored


@pytest.mark.parametrize("model_class", CLASSES)
@pytest.mark.parametrize(
    "which,mode,message",
    [
        ("pattern", "silent", "hook_pattern' of this (HookedTransformer|TransformerBridge) exists but did not run"),
        ("scores", "ignored", "hook_attn_scores did not change the logits"),
        ("pattern", "ignored", "edit of 'blocks.1.attn.hook_pattern' did not reach the logits"),
    ],
)
def test_unhookable_attention_fails_loudly(tiny_folder, model_class, which, mode, message):
    model = _quiet_load(str(tiny_folder), model_class, prepend_bos=False)  # a fresh one: it gets broken here
    layers = [1] if (which, mode) == ("pattern", "ignored") else range(model.cfg.n_layers)
    name = pattern_hook_name if which == "pattern" else scores_hook_name
    for layer in layers:
        _bypass(model.hook_dict[name(layer)], mode)
    with pytest.raises(HookError, match=message) as caught:
        verify_attention_hooks(model)
    assert "model_class='hooked'" in str(caught.value)  # the fix is named
    require_attention_hooks(model)  # the names are all there: only running the model shows the problem


@pytest.mark.bad_input  # a plain Hugging Face model, on purpose
def test_a_plain_hugging_face_model_is_not_hookable(tiny_folder):
    from transformers import AutoModelForCausalLM

    hf_model = AutoModelForCausalLM.from_pretrained(tiny_folder)
    with pytest.raises(HookError, match="GPTNeoXForCausalLM is not a TransformerLens model.*load_model"):
        verify_attention_hooks(hf_model)


def test_cli_runs_an_experiment_on_a_bridge_and_labels_its_results(tiny_folder, tmp_path, capsys):
    import pandas as pd

    from anchorlens.cli import build_parser, main

    with pytest.raises(SystemExit):
        build_parser().parse_args(["auroc", "--task", "sst2", "--out", "x", "--model-class", "hf"])
    out = tmp_path / "auroc"
    code = main(
        [
            "auroc",
            "--task",
            "sst2",
            "--model",
            str(tiny_folder),
            "--model-class",
            "bridge",
            "--n-test",
            "4",
            "--seeds",
            "42",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert set(pd.read_csv(out / "auroc.csv")["model"]) == {f"{tiny_folder}:bridge"}


@pytest.mark.parametrize("model_class", CLASSES)
def test_a_gpt2_folder_without_n_ctx_loads_and_equals_hugging_face(tmp_path, smol_tokenizer, model_class):
    """A GPT-2 config.json with n_positions but no n_ctx (as transformers 4.28 and 5.x write it): TransformerLens
    3.9 reads config.n_ctx, so the HookedTransformer is converted from a copy of the config that names it; the
    bridge reads Hugging Face's config. Both give Hugging Face's log-probs; the folder is not written."""
    import json

    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(smol_tokenizer), n_embd=32, n_layer=2, n_head=4, n_positions=256)
    hf_model = GPT2LMHeadModel(config).eval()
    hf_model.save_pretrained(tmp_path)
    smol_tokenizer.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    saved.pop("n_ctx", None)
    (tmp_path / "config.json").write_text(json.dumps(saved))
    before = (tmp_path / "config.json").read_bytes()
    model = _quiet_load(str(tmp_path), model_class, prepend_bos=False)
    assert (tmp_path / "config.json").read_bytes() == before
    assert model.cfg.n_ctx == 256
    batch = _batch(model, n=2)
    with torch.no_grad():
        theirs = hf_model(batch.tokens).logits[torch.arange(batch.size), batch.target_positions]
        ours = run_to_target(model, batch)
    assert (ours.log_softmax(-1) - theirs.log_softmax(-1)).abs().max() < 1e-4


def test_hooked_on_transformer_lens_4_is_one_line_naming_the_fix(tiny_folder, monkeypatch):
    """transformer-lens 4.x has no HookedTransformer: asking for one names the fix (simulated on 3.9)."""
    from anchorlens import model_classes

    monkeypatch.setattr(model_classes, "_hooked_transformer_class", lambda: None)
    assert model_classes.default_model_class() == "bridge"
    with pytest.raises(
        UnsupportedModelError, match=r"transformer-lens 4\.0 removed.*model_class='bridge'.*>=3\.9,<3\.10"
    ):
        models.load_model(str(tiny_folder), model_class="hooked")


def test_a_bridge_that_ignores_the_cache_is_refused(tiny_models, monkeypatch):
    """With transformers 5.24 and later the bridge's attention never stores into the cache it is given: the
    cached demonstrations would be silently dropped, so anchorlens refuses instead of computing without them."""
    from transformers import DynamicCache

    from anchorlens import kv_cache

    class IgnoredCache(DynamicCache):
        def update(self, key_states, value_states, layer_idx, *args, **kwargs):
            return key_states, value_states  # as if the attention never handed its keys and values over

    monkeypatch.setattr(kv_cache, "_hugging_face_cache", IgnoredCache)
    bridge = tiny_models["bridge"]
    prompt = _batch(bridge).prompts[0]
    with pytest.raises(UnsupportedModelError, match=r"did not fill the key/value cache.*transformers>=5\.0,<5\.24"):
        kv_cache.cache_demonstrations(bridge, prompt.token_ids[: prompt.demonstration_length])
