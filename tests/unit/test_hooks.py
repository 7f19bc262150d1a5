"""Canaries for the hook recipes on tiny random models: each edit acts exactly as specified."""

from __future__ import annotations

import re

import pytest
import torch

from anchorlens.errors import HookError, InvalidConfigError
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
    target_row_reweight_hooks,
    verify_attention_hooks,
)
from anchorlens.prompts import build_prompt, label_loss, make_batch

DEMOS = [("a dull , lifeless film ", 0), ("warm and funny ", 1), ("a mess ", 0)]
QUERIES = [("one of the best films of the year ", 1), ("tedious ", 0), ("an utterly charming and hilarious romp ", 1)]


@pytest.fixture(params=["gpt2_like", "llama_like"])
def model(request):
    return request.getfixturevalue(request.param)


@pytest.fixture
def batch(smol_tokenizer):
    prompts = [build_prompt(smol_tokenizer, "sst2", DEMOS, text, label, prepend_bos=False) for text, label in QUERIES]
    return make_batch(prompts)


def capture_patterns(store: dict):
    def hook(pattern, hook):
        store[hook.name] = pattern.detach().clone()

    return [(pattern_hook_name(layer), hook) for layer in range(2)], store


def test_isolation_zeroes_blocked_entries_and_changes_logits(model, batch):
    rows = [p.demonstration_label_positions for p in batch.prompts]
    blocked = block_earlier_mask(batch, rows)
    capture, store = capture_patterns({})
    with torch.no_grad():
        plain = model(batch.tokens)
        edited = model.run_with_hooks(batch.tokens, fwd_hooks=isolation_hooks({0: blocked}) + capture)
    pattern = store[pattern_hook_name(0)]  # [b, h, q, k]
    assert torch.all(pattern[blocked[:, None].expand_as(pattern)] == 0)
    for row, prompt in enumerate(batch.prompts):
        for position in prompt.demonstration_label_positions:
            # All of the row's attention sits on itself once earlier tokens are blocked.
            assert torch.allclose(pattern[row, :, position, position], torch.ones(pattern.shape[1]))
    assert not torch.allclose(plain, edited)
    # Rows that were not isolated are untouched in the isolated layer itself.
    with torch.no_grad():
        _, cache = model.run_with_cache(batch.tokens)
    free_rows = ~blocked.any(-1)  # [b, q]
    reference = cache[pattern_hook_name(0)]
    assert torch.allclose(pattern.permute(0, 2, 1, 3)[free_rows], reference.permute(0, 2, 1, 3)[free_rows])


def test_reweight_zero_beta_is_identity_and_nonzero_beta_scales_exactly(model, batch):
    n_layers, n_heads, n_classes = model.cfg.n_layers, model.cfg.n_heads, 2
    zeros = torch.zeros(n_layers, n_heads, n_classes)
    with torch.no_grad():
        plain = model(batch.tokens)
        for variant in ("pattern", "scores"):
            same = model.run_with_hooks(batch.tokens, fwd_hooks=reweight_hooks(zeros, batch, variant))
            assert torch.equal(plain, same), variant

    beta = torch.randn(n_layers, n_heads, n_classes)
    _, before = capture_patterns({})
    capture_after, after = capture_patterns({})
    with torch.no_grad():
        _, cache = model.run_with_cache(batch.tokens, names_filter=lambda name: name.endswith("hook_pattern"))
        # Only layer 0 re-weighted, so layer 0's input pattern equals the plain run's.
        edited = model.run_with_hooks(batch.tokens, fwd_hooks=reweight_hooks(beta, batch, layers=[0]) + capture_after)
    assert not torch.allclose(plain, edited)
    original, scaled = cache[pattern_hook_name(0)], after[pattern_hook_name(0)]
    expected = original.clone()
    for row, prompt in enumerate(batch.prompts):
        q = prompt.target_position
        for label, position in zip(prompt.demonstration_labels, prompt.demonstration_label_positions):
            expected[row, :, q, position] *= beta[0, :, label].exp()
    assert torch.allclose(scaled, expected, atol=1e-6)


def test_reweight_beta_receives_gradients(model, batch):
    beta = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, 2, requires_grad=True)
    with frozen_parameters(model):
        logits = model.run_with_hooks(batch.tokens, fwd_hooks=reweight_hooks(beta, batch))
        label_loss(logits, batch).backward()
    assert beta.grad is not None and beta.grad.abs().sum() > 0
    assert all(p.requires_grad for p in model.parameters())  # restored


@pytest.mark.bad_input  # β of the wrong shape and dtype
def test_reweight_hooks_refuse_a_beta_that_does_not_fit_the_model_or_the_prompts(model, batch):
    """Broadcasting would apply a β of too few layers to those layers only, or one head's values to every head:
    β must be exactly (layers, heads, classes), floating and finite."""
    layers, heads = model.cfg.n_layers, model.cfg.n_heads
    expected = f"expected (layers, heads, classes) = ({layers}, {heads}, 2)"
    for shape in [(layers - 1, heads, 2), (layers, 1, 2), (layers, heads, 1), (layers + 1, heads, 2), (heads, 2)]:
        with pytest.raises(InvalidConfigError, match=re.escape(expected)):
            reweight_hooks(torch.zeros(shape), batch, model=model)
        with pytest.raises(InvalidConfigError, match=re.escape(expected)):
            target_row_reweight_hooks(torch.zeros(shape), batch.label_mask, model=model)
    # The batch alone knows the class count: SST-2 prompts have 2 classes, whatever model runs them.
    with pytest.raises(InvalidConfigError, match=re.escape("expected (layers, heads, classes) = (?, ?, 2)")):
        reweight_hooks(torch.zeros(layers, heads, 4), batch)
    # Without the model, the heads are checked when the hooks run (a head-broadcast β would act silently).
    hooks = reweight_hooks(torch.ones(layers, 1, 2), batch)
    with pytest.raises(HookError, match=f"β has 1 head per layer but this layer's attention has {heads}"):
        with torch.no_grad():
            model.run_with_hooks(batch.tokens, fwd_hooks=hooks)
    with pytest.raises(InvalidConfigError, match="dtype torch.int64.*beta.float"):
        reweight_hooks(torch.zeros(layers, heads, 2, dtype=torch.long), batch, model=model)
    nan_beta = torch.zeros(layers, heads, 2)
    nan_beta[1, 2, 1] = float("nan")
    with pytest.raises(InvalidConfigError, match=re.escape("the first at (layer, head, class) = (1, 2, 1)")):
        reweight_hooks(nan_beta, batch, model=model)
    with pytest.raises(InvalidConfigError, match="unknown re-weighting variant"):
        reweight_hooks(torch.zeros(layers, heads, 2), batch, "logits")
    assert len(reweight_hooks(torch.zeros(layers, heads, 2), batch, model=model)) == layers


def _greedy_steps(model, tokens, hooks, steps: int, *, use_cache: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Greedy generation by hand: each step's last-position logits, with or without a key/value cache (on a
    HookedTransformer TransformerLens's own, on a bridge Hugging Face's, which the bridge's attention extends)."""
    from anchorlens.model_classes import is_bridge

    logits_per_step = []
    with torch.no_grad():
        if use_cache:
            if is_bridge(model):
                from transformers import DynamicCache

                cache_kwargs = {"past_key_values": DynamicCache()}
            else:
                from transformer_lens import TransformerLensKeyValueCache

                cache_kwargs = {
                    "past_kv_cache": TransformerLensKeyValueCache.init_cache(
                        model.cfg, tokens.device, batch_size=tokens.shape[0]
                    )
                }
            step_input = tokens
            for _ in range(steps):
                logits = model.run_with_hooks(step_input, fwd_hooks=hooks, **cache_kwargs)[:, -1]
                logits_per_step.append(logits)
                step_input = logits.argmax(-1, keepdim=True)
                tokens = torch.cat([tokens, step_input], dim=1)
        else:
            for _ in range(steps):
                logits = model.run_with_hooks(tokens, fwd_hooks=hooks)[:, -1]
                logits_per_step.append(logits)
                tokens = torch.cat([tokens, logits.argmax(-1, keepdim=True)], dim=1)
    return tokens, logits_per_step


@pytest.mark.parametrize("variant", ["pattern", "scores"])
def test_reweighted_generation_with_a_kv_cache_equals_the_full_recompute(model, batch, variant):
    """Generating with β: each cached step (one query row over all earlier keys) is re-weighted like its row in
    a full recompute of the prompt and the generated tokens, so both give the same logits and tokens."""
    single = make_batch(batch.prompts[:1])
    beta = torch.randn(model.cfg.n_layers, model.cfg.n_heads, 2, generator=torch.Generator().manual_seed(0))
    hooks = reweight_hooks(beta, single, variant)
    full_tokens, full_logits = _greedy_steps(model, single.tokens, hooks, 3, use_cache=False)
    cached_tokens, cached_logits = _greedy_steps(model, single.tokens, hooks, 3, use_cache=True)
    assert torch.equal(cached_tokens, full_tokens)
    for step, (cached, full) in enumerate(zip(cached_logits, full_logits)):
        torch.testing.assert_close(cached, full, rtol=1e-4, atol=1e-4, msg=f"step {step}")

    # TransformerLens's own generate, with and without its cache, makes the same tokens under the hooks, which
    # see the cached steps as one query row each.
    length = single.seq_len
    for use_cache, query_rows in ((True, [length, 1, 1]), (False, [length, length + 1, length + 2])):
        seen: list[int] = []
        with model.hooks(fwd_hooks=_recording_query_rows(hooks, seen)):
            generated = model.generate(
                single.tokens,
                max_new_tokens=3,
                do_sample=False,
                stop_at_eos=False,
                use_past_kv_cache=use_cache,
                verbose=False,
            )
        assert torch.equal(generated, full_tokens), use_cache
        assert seen == query_rows, use_cache

    # The generated rows are re-weighted too: editing only the prompt's target row gives other later logits.
    target_only = [(name, _first_pass_only(fn, single.seq_len)) for name, fn in hooks]
    _, target_only_logits = _greedy_steps(model, single.tokens, target_only, 3, use_cache=True)
    torch.testing.assert_close(target_only_logits[0], full_logits[0])
    assert (target_only_logits[1] - full_logits[1]).abs().max() > 1e-4


def _recording_query_rows(hooks, seen: list[int]):
    """`hooks` with layer 0's hook also noting how many query rows each forward pass had."""
    name, fn = hooks[0]

    def hook(tensor, hook):
        seen.append(tensor.shape[-2])
        return fn(tensor, hook)

    return [(name, hook), *hooks[1:]]


def _first_pass_only(fn, prompt_length: int):
    def hook(tensor, hook):
        return fn(tensor, hook) if tensor.shape[-1] == prompt_length else tensor

    return hook


def test_generation_after_a_right_padded_batch_is_refused(model, batch):
    assert len({p.length for p in batch.prompts}) > 1  # the shorter prompts are right-padded
    beta = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, 2)
    longer = torch.cat([batch.tokens, batch.tokens[:, -1:]], dim=1)
    with pytest.raises(HookError, match="right-padded batch"), torch.no_grad():
        model.run_with_hooks(longer, fwd_hooks=reweight_hooks(beta, batch, model=model))
    with pytest.raises(HookError, match="was made for a batch of 3 prompts"), torch.no_grad():
        model.run_with_hooks(batch.tokens[:, :-1], fwd_hooks=reweight_hooks(beta, batch, model=model))


def test_label_attention_recorder_matches_cache(model, batch):
    recorder = LabelAttentionRecorder(model, batch)
    with torch.no_grad():
        model.run_with_hooks(batch.tokens, fwd_hooks=recorder.hooks())
        _, cache = model.run_with_cache(batch.tokens)
    values = recorder.values  # [b, layer, head, class]
    for row, prompt in enumerate(batch.prompts):
        for layer in range(model.cfg.n_layers):
            pattern = cache[pattern_hook_name(layer)][row]
            for label, positions in enumerate(prompt.label_positions):
                manual = pattern[:, prompt.target_position, list(positions)].sum(-1)
                assert torch.allclose(values[row, layer, :, label], manual, atol=1e-6)


def reference_saliency(model, batch, weights, abs_per_head=False):
    """Plain autograd: keep every pattern, backprop the label loss, multiply and reduce with loops."""
    patterns = {}

    def keep(pattern, hook):
        pattern.retain_grad()
        patterns[hook.name] = pattern

    model.zero_grad(set_to_none=True)
    logits = model.run_with_hooks(batch.tokens, fwd_hooks=[(lambda name: name.endswith("hook_pattern"), keep)])
    label_loss(logits, batch).backward()
    out = torch.zeros(batch.size, model.cfg.n_layers, weights.shape[1])
    for layer in range(model.cfg.n_layers):
        pattern = patterns[pattern_hook_name(layer)]
        product = pattern.detach() * pattern.grad
        saliency = product.abs().sum(1) if abs_per_head else product.sum(1).abs()
        for row in range(batch.size):
            for region in range(weights.shape[1]):
                out[row, layer, region] = (saliency[row] * weights[row, region]).sum()
    model.zero_grad(set_to_none=True)
    return out


@pytest.mark.parametrize("abs_per_head", [False, True])
def test_saliency_recorder_equals_autograd_reference(model, batch, abs_per_head):
    generator = torch.Generator().manual_seed(0)
    weights = torch.rand(batch.size, 3, batch.seq_len, batch.seq_len, generator=generator)
    recorder = SaliencyRecorder(model, weights, abs_per_head=abs_per_head)
    with frozen_parameters(model):
        logits = model.run_with_hooks(batch.tokens, fwd_hooks=recorder.hooks())
        label_loss(logits, batch).backward()
    fast = recorder.values
    assert fast.abs().sum() > 0  # gradients arrived
    reference = reference_saliency(model, batch, weights, abs_per_head)
    assert torch.allclose(fast, reference, rtol=1e-4, atol=1e-7)


def test_batched_equals_batch_size_one(model, batch):
    weights = torch.ones(batch.size, 1, batch.seq_len, batch.seq_len).tril(-1)
    recorder = LabelAttentionRecorder(model, batch)
    saliency = SaliencyRecorder(model, weights)
    with frozen_parameters(model):
        logits = model.run_with_hooks(batch.tokens, fwd_hooks=recorder.hooks() + saliency.hooks())
        label_loss(logits, batch).backward()
    for row, prompt in enumerate(batch.prompts):
        single = make_batch([prompt])
        single_weights = weights[row : row + 1, :, : prompt.length, : prompt.length]
        # Padding positions carry weight in the batched map but receive zero gradient: the same numbers.
        one_recorder = LabelAttentionRecorder(model, single)
        one_saliency = SaliencyRecorder(model, single_weights)
        with frozen_parameters(model):
            one_logits = model.run_with_hooks(single.tokens, fwd_hooks=one_recorder.hooks() + one_saliency.hooks())
            label_loss(one_logits, single).backward()
        q = prompt.target_position
        assert torch.allclose(logits[row, q], one_logits[0, q], atol=1e-5)
        assert torch.allclose(recorder.values[row], one_recorder.values[0], atol=1e-6)
        assert torch.allclose(saliency.values[row], one_saliency.values[0], rtol=1e-4, atol=1e-8)


def test_recipes_compose_in_one_run(model, batch):
    """Isolation + re-weighting + capture together: the recorder sees the isolated, re-weighted pattern."""
    beta = torch.randn(model.cfg.n_layers, model.cfg.n_heads, 2)
    blocked = block_earlier_mask(batch, [p.demonstration_label_positions for p in batch.prompts])
    isolate = isolation_hooks({0: blocked, 1: blocked})
    with torch.no_grad():
        plain_recorder = LabelAttentionRecorder(model, batch)
        model.run_with_hooks(batch.tokens, fwd_hooks=isolate + plain_recorder.hooks())
        recorder = LabelAttentionRecorder(model, batch)
        model.run_with_hooks(batch.tokens, fwd_hooks=isolate + reweight_hooks(beta, batch) + recorder.hooks())
    expected = plain_recorder.values * beta.exp()[None]
    assert torch.allclose(recorder.values[:, 0], expected[:, 0], atol=1e-6)


def test_hooked_context_always_removes_hooks(model, batch):
    blocked = block_earlier_mask(batch, [p.demonstration_label_positions for p in batch.prompts])
    with torch.no_grad():
        plain = model(batch.tokens)
        with pytest.raises(RuntimeError, match="boom"):
            with hooked(model, isolation_hooks({0: blocked})):
                assert not torch.allclose(model(batch.tokens), plain)
                raise RuntimeError("boom")
        assert torch.equal(model(batch.tokens), plain)


def test_verify_attention_hooks_checks_a_hookable_model_and_leaves_it_as_it_was(model, batch, monkeypatch):
    """The session's model may have passed in an earlier test: ``again=True`` checks it anyway (its three passes
    run), a second call without it runs none, and the model is as before: no hook left on a hook point, no
    gradient, ``requires_grad`` restored, no attribute written onto it, the same logits."""
    passes = []
    run_with_hooks = type(model).run_with_hooks

    def counted(self, *args, **kwargs):
        passes.append(self)
        return run_with_hooks(self, *args, **kwargs)

    monkeypatch.setattr(type(model), "run_with_hooks", counted)
    attributes = set(vars(model))
    requires_grad = [parameter.requires_grad for parameter in model.parameters()]
    with torch.no_grad():
        before = model(batch.tokens)
    require_attention_hooks(model)
    verify_attention_hooks(model, again=True)
    assert passes == [model] * 3
    verify_attention_hooks(model)
    assert len(passes) == 3
    assert not [name for name, point in model.hook_dict.items() if point.fwd_hooks or point.bwd_hooks]
    assert [parameter.requires_grad for parameter in model.parameters()] == requires_grad
    assert all(parameter.grad is None for parameter in model.parameters())
    assert set(vars(model)) == attributes
    with torch.no_grad():
        assert torch.equal(model(batch.tokens), before)


def test_a_model_that_passed_is_checked_again_when_asked(gpt2_like):
    """A model broken after it passed: skipped by default (the check runs once per model), caught with
    ``again=True``. A copy, so the session's model stays whole."""
    import copy

    broken = copy.deepcopy(gpt2_like)
    verify_attention_hooks(broken)
    for layer in range(broken.cfg.n_layers):  # the pattern is computed, hooked, then thrown away
        point = broken.hook_dict[pattern_hook_name(layer)]
        point.forward = lambda tensor, point=point: torch.ones_like(tensor) / tensor.shape[-1]
    verify_attention_hooks(broken)
    with pytest.raises(HookError):
        verify_attention_hooks(broken, again=True)


class _BypassedAttention(torch.nn.Module):
    """Has the hook names but never calls them: the silent no-op verify_attention_hooks must catch."""

    class cfg:  # noqa: N801 - mimics model.cfg
        n_layers = 1
        n_heads = 1
        d_vocab = 10

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))
        self.hook_dict = {pattern_hook_name(0): None, "blocks.0.attn.hook_attn_scores": None}

    def forward(self, tokens):
        return torch.zeros(*tokens.shape, 10)

    def run_with_hooks(self, tokens, fwd_hooks=()):
        return self(tokens)


@pytest.mark.bad_input  # models of neither class, on purpose
def test_unhookable_models_get_a_clear_error():
    with pytest.raises(HookError, match="exists but did not run"):
        verify_attention_hooks(_BypassedAttention())
    plain = _BypassedAttention()
    plain.hook_dict = {}
    with pytest.raises(HookError, match="cannot be hooked"):
        require_attention_hooks(plain)


def test_a_huge_beta_without_model_is_refused_not_nan_logits(model, batch):
    """Issue 31 item 5: `reweight_hooks` without `model=` and a huge β gave NaN logits silently."""
    from anchorlens.forward import run_to_target

    beta = torch.full((model.cfg.n_layers, model.cfg.n_heads, 2), 1e4)
    with pytest.raises(InvalidConfigError, match="non-finite.*β is too large.*largest \\|β\\| 1e\\+04"):
        run_to_target(model, batch, reweight_hooks(beta, batch))


def test_a_beta_of_a_deeper_model_is_one_line(model, batch):
    """Issue 31 item 8: a β of 40 layers on a shallower model ended in KeyError 'blocks.N.attn.hook_pattern'."""
    from anchorlens.forward import run_to_target

    beta = torch.ones(40, model.cfg.n_heads, 2)
    with pytest.raises(HookError, match=f"a hook is for layer 39, and this .* has {model.cfg.n_layers} layers"):
        run_to_target(model, batch, reweight_hooks(beta, batch))
