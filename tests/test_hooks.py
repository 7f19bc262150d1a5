"""Canaries for the hook recipes on tiny random models: each edit acts exactly as specified."""

from __future__ import annotations

import pytest
import torch

from anchorlens.errors import HookError
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
    prompts = [
        build_prompt(smol_tokenizer, "sst2", DEMOS, text, label, prepend_bos=False) for text, label in QUERIES
    ]
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
        edited = model.run_with_hooks(
            batch.tokens, fwd_hooks=reweight_hooks(beta, batch, layers=[0]) + capture_after
        )
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


def test_verify_attention_hooks_accepts_a_hookable_model(model):
    verify_attention_hooks(model)
    require_attention_hooks(model)


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


def test_unhookable_models_get_a_clear_error():
    with pytest.raises(HookError, match="exists but did not run"):
        verify_attention_hooks(_BypassedAttention())
    plain = _BypassedAttention()
    plain.hook_dict = {}
    with pytest.raises(HookError, match="cannot be hooked"):
        require_attention_hooks(plain)
