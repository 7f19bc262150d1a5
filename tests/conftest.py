"""The tiers (by folder) and the shared fixtures: tiny random models built from a config (fast) and the real
offline models (integration)."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session")
def gpt2_like():
    """A 2-layer GPT-2-like random model (LayerNorm, learned positions, value biases) over SmolLM2's tokenizer,
    in the installed transformer-lens's default class (`anchorlens.random_model`)."""
    from anchorlens.models import random_model

    return random_model("smollm2-135m", architecture="gpt2")


@pytest.fixture(scope="session")
def llama_like():
    """The same with RMSNorm, rotary positions and grouped-query attention, like SmolLM2."""
    from anchorlens.models import random_model

    return random_model("smollm2-135m", architecture="llama")


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
