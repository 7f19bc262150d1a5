"""The tiers (by folder) and the shared fixtures: tiny random models built from a config (fast) and the real
offline models (integration)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import jaxtyping
import pytest

# torch and anchorlens are imported inside the fixtures: the pytest-xdist controller (`-n 2`, .ci/run) loads this
# file but runs no test, and would otherwise spend seconds of a 2-core machine importing them.

TESTS = Path(__file__).parent
#: The fast tier: tiny random models built from a config, pure functions (and the package's doctests).
UNIT = TESTS / "unit"
#: The slow tier, marked `integration` by folder: the real offline models, whole commands in worker processes,
#: the notebooks. Its tests marked `smoke` run in the README's test command beside the fast tier.
INTEGRATION = TESTS / "integration"
#: Fixtures that load a real offline model's weights (tests/integration/test_bridge.py adds the bridges).
REAL_MODEL_FIXTURES = frozenset({"smol_model", "gemma_model", "smol_bridge", "gemma_bridge"})


def tier_problem(path: Path, fixturenames, marked_integration: bool, marked_smoke: bool = False) -> str | None:
    """Why a test sits in the wrong tier, or None: a test under tests/ is in unit/ or integration/, a unit test
    neither loads a real offline model nor carries the `integration` mark (the folder gives the tier), and
    `smoke` picks integration tests only (the fast tier runs in the README's command anyway)."""
    if TESTS not in path.parents:
        return None  # the package's doctests: fast tier
    if UNIT not in path.parents and INTEGRATION not in path.parents:
        return "is outside tests/unit and tests/integration: put it in the tier it belongs to"
    if marked_smoke and INTEGRATION not in path.parents:
        return "is marked smoke outside tests/integration: smoke picks integration tests for the README's command"
    if UNIT in path.parents:
        real = sorted(REAL_MODEL_FIXTURES & set(fixturenames))
        if real or marked_integration:
            why = f"loads {', '.join(real)}" if real else "is marked integration"
            return f"{why} but sits in tests/unit (the fast tier): move it to the same path under tests/integration"
    return None


def pytest_configure(config):
    """A pytest-xdist worker (the fast tier runs `-n 2` on 2 cores, .ci/run) keeps torch to one thread: with
    each worker's torch using every core, the workers' threads would contend for the cores (tiny models gain
    nothing from threads)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """The tier is the folder: mark every test under tests/integration `integration`, and refuse a test in
    the wrong folder (`tier_problem`) by name, so that a test added to an old path or a real model in the fast
    tier cannot slip in unnoticed."""
    problems = []
    for item in items:
        path = Path(item.path)
        marked = item.get_closest_marker("integration") is not None
        smoke = item.get_closest_marker("smoke") is not None
        problem = tier_problem(path, getattr(item, "fixturenames", ()), marked, smoke)
        if problem:
            problems.append(f"{item.nodeid} {problem}")
        if INTEGRATION in path.parents:
            item.add_marker(pytest.mark.integration)
    if problems:
        raise pytest.UsageError("tests in the wrong tier:\n" + "\n".join(problems))


@pytest.fixture(autouse=True)
def _runtime_type_checks(request):
    """The test run checks every annotated call of the package (``--jaxtyping-packages`` in pyproject.toml),
    except in a test marked `bad_input`: it passes ill-typed values on purpose (a float seed, an unknown
    variant) to see the one-line error a user gets, and users run anchorlens without a runtime checker."""
    if request.node.get_closest_marker("bad_input") is None:
        yield
        return
    was = jaxtyping.config.jaxtyping_disable
    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        yield
    finally:
        jaxtyping.config.update("jaxtyping_disable", was)


@pytest.fixture(scope="session")
def smol_tokenizer():
    from anchorlens.models import load_tokenizer

    return load_tokenizer("smollm2-135m")


@pytest.fixture(scope="session")
def gemma_tokenizer():
    from anchorlens.models import load_tokenizer

    return load_tokenizer("gemma-3-270m")


def tiny_model(tokenizer, *, llama_like: bool = False, seed: int = 0):
    """A 2-layer random model over a real tokenizer's vocabulary, in the installed transformer-lens's default
    class: a HookedTransformer on 3.9, a TransformerBridge on 4.x (`anchorlens.default_model_class`).

    ``llama_like`` gives RMSNorm, rotary positions and grouped-query attention (like SmolLM2); otherwise a
    GPT-2-like model with LayerNorm, learned positions and value biases.
    """
    from anchorlens.model_classes import default_model_class

    if default_model_class() == "bridge":
        return tiny_bridge(tokenizer, llama_like=llama_like, seed=seed)
    import torch
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    common = dict(n_layers=2, d_model=32, n_heads=4, d_head=8, d_mlp=64, n_ctx=512, d_vocab=len(tokenizer), seed=seed)
    if llama_like:
        cfg = HookedTransformerConfig(
            **common,
            act_fn="silu",
            normalization_type="RMS",
            positional_embedding_type="rotary",
            rotary_dim=8,
            n_key_value_heads=2,
            gated_mlp=True,
            final_rms=True,
            default_prepend_bos=False,
        )
    else:
        cfg = HookedTransformerConfig(**common, act_fn="gelu", normalization_type="LN", default_prepend_bos=False)
    model = HookedTransformer(cfg)
    with torch.no_grad():  # value biases are zero at init; make them matter so folding traps would show
        for block in model.blocks:
            if hasattr(block.attn, "b_V") and block.attn.b_V is not None:
                block.attn.b_V.normal_(0, 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.set_tokenizer(tokenizer)
    return model.eval()


def tiny_bridge(tokenizer, *, llama_like: bool = False, seed: int = 0):
    """The same shapes as Hugging Face models with random weights, wrapped as a TransformerBridge."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    from anchorlens.models import model_from_hugging_face

    torch.manual_seed(seed)
    # HookedTransformer's own initialisation scale (0.8 / sqrt(d_model)), not Hugging Face's 0.02, under which a
    # 2-layer random model gives nearly the same distribution for every prompt.
    scale = {"initializer_range": 0.8 / 32**0.5}
    if llama_like:
        config = LlamaConfig(
            **scale,
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=8,
            max_position_embeddings=512,
            tie_word_embeddings=False,
        )
        hf_model = LlamaForCausalLM(config)
    else:
        special = {"bos_token_id": tokenizer.bos_token_id or 0, "eos_token_id": tokenizer.eos_token_id or 0}
        config = GPT2Config(
            vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=4, n_inner=64, n_positions=512, **special, **scale
        )
        hf_model = GPT2LMHeadModel(config)
        with torch.no_grad():  # value biases are zero at init; make them matter so folding traps would show
            for block in hf_model.transformer.h:
                block.attn.c_attn.bias[2 * config.n_embd :].normal_(0, 0.5)
    return model_from_hugging_face(hf_model, tokenizer, model_class="bridge", prepend_bos=False, device="cpu")


@pytest.fixture(scope="session")
def gpt2_like(smol_tokenizer):
    return tiny_model(smol_tokenizer)


@pytest.fixture(scope="session")
def llama_like(smol_tokenizer):
    return tiny_model(smol_tokenizer, llama_like=True)


@pytest.fixture(scope="session")
def smol_model():
    from anchorlens.models import load_model

    return load_model("smollm2-135m")


@pytest.fixture(scope="session")
def gemma_model():
    from anchorlens.models import load_model

    return load_model("gemma-3-270m")


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory, smol_tokenizer):
    """A tiny random GPT-NeoX saved as a local Hugging Face folder: loadable by path, like any user model."""
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    folder = tmp_path_factory.mktemp("tiny-neox")
    torch.manual_seed(0)
    config = GPTNeoXConfig(
        vocab_size=len(smol_tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=6,
        num_attention_heads=4,
        max_position_embeddings=512,
    )
    GPTNeoXForCausalLM(config).save_pretrained(folder)
    smol_tokenizer.save_pretrained(folder)
    return folder
