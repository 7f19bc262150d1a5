"""Both TransformerLens model classes on the two offline models: the unit tier's canaries (tests/unit/test_bridge.py)
run on SmolLM2-135M and Gemma-3-270M in each class the installed transformer-lens has, and the classes agree.
Each model and class is loaded once per session. Measured differences are printed (``pytest -s``)."""

from __future__ import annotations

import warnings

import pytest
import torch

from anchorlens import models
from tests.unit import test_bridge as unit

# Every test here runs on both TransformerLens lines in CI (.ci/run); on 4.x, which has no HookedTransformer,
# the bridge's canaries run and the comparisons with a HookedTransformer are skipped.
pytestmark = pytest.mark.both_classes

OFFLINE = ("smollm2-135m", "gemma-3-270m")
MODEL_AND_CLASS = [
    pytest.param((name, model_class), id=f"{name}-{model_class}") for name in OFFLINE for model_class in unit.CLASSES
]


def _quiet_load(name, model_class):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return models.load_model(name, model_class=model_class)


# `unit._get` finds the offline models by these fixture names (smol_model, gemma_model: tests/conftest.py).
@pytest.fixture(scope="session")
def smol_bridge():
    return _quiet_load("smollm2-135m", "bridge")


@pytest.fixture(scope="session")
def gemma_bridge():
    return _quiet_load("gemma-3-270m", "bridge")


@pytest.fixture
def model_and_batch(request):
    name, model_class = request.param
    model = unit._get(request, name, model_class)
    return model, unit._batch(model, unit._prompt_count(name))


@pytest.mark.parametrize("model_and_batch", MODEL_AND_CLASS, indirect=True)
def test_attention_hooks_verify(model_and_batch, monkeypatch):
    unit.test_attention_hooks_verify(model_and_batch, monkeypatch)


@pytest.mark.parametrize("model_and_batch", MODEL_AND_CLASS, indirect=True)
def test_isolation_acts(model_and_batch):
    unit.test_isolation_acts(model_and_batch)


@pytest.mark.parametrize("model_and_batch", MODEL_AND_CLASS, indirect=True)
def test_reweighting_acts_and_zero_beta_changes_nothing(model_and_batch):
    unit.test_reweighting_acts_and_zero_beta_changes_nothing(model_and_batch)


@pytest.mark.parametrize("model_and_batch", MODEL_AND_CLASS, indirect=True)
def test_label_attention_recorder_records(model_and_batch):
    unit.test_label_attention_recorder_records(model_and_batch)


@pytest.mark.parametrize("model_and_batch", MODEL_AND_CLASS, indirect=True)
def test_saliency_gradient_arrives_in_every_layer(model_and_batch):
    unit.test_saliency_gradient_arrives_in_every_layer(model_and_batch)


@pytest.mark.parametrize("model_and_batch", MODEL_AND_CLASS, indirect=True)
def test_keep_all_compression_equals_the_full_prompt(model_and_batch):
    unit.test_keep_all_compression_equals_the_full_prompt(model_and_batch)


@pytest.mark.parametrize("name", OFFLINE)
@unit.needs_hooked
def test_target_log_probs_agree(request, name):
    unit.test_target_log_probs_agree(request, name)


@pytest.mark.parametrize("name", OFFLINE)
@unit.needs_hooked
def test_label_attention_and_saliency_agree(request, name):
    unit.test_label_attention_and_saliency_agree(request, name)


@unit.needs_hooked
def test_diagnose_agrees_across_classes_on_smollm2(request):
    from anchorlens.experiments import DiagnoseConfig, run_diagnose

    config = DiagnoseConfig(seeds=(42,), n_test=4, batch_size=4)
    frames = [
        run_diagnose(unit._get(request, "smollm2-135m", c), "sst2", config, progress=False).to_frame()
        for c in unit.CLASSES
    ]
    torch.testing.assert_close(
        torch.tensor(frames[1]["predicted"].to_numpy()),
        torch.tensor(frames[0]["predicted"].to_numpy()),
        rtol=1e-3,
        atol=1e-4,
    )
