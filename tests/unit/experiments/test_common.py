"""Shared experiment plumbing: batching under a token budget, config validation."""

from __future__ import annotations

import dataclasses
import json
from typing import ClassVar

import pytest
import torch

from anchorlens.errors import InvalidConfigError
from anchorlens.experiments.common import ExperimentConfig, _groups
from anchorlens.model_classes import has_hooked_transformer
from anchorlens.prompts import Prompt, Role


def _prompt_of_length(length: int) -> Prompt:
    """A prompt of `length` query tokens: all that batching looks at."""
    return Prompt("t", "", (0,) * length, (Role.QUERY_TEXT,) * length, (-1,) * length, (), (), length - 1, (1, 2))


def test_groups_respect_batch_size_and_token_budget():
    prompts = [_prompt_of_length(n) for n in (10, 10, 10, 100, 100, 300)]
    groups = _groups(prompts, batch_size=2, max_tokens=None)
    assert [len(g) for g in groups] == [2, 2, 2]
    groups = _groups(prompts, batch_size=8, max_tokens=250)
    assert [[p.length for p in g] for g in groups] == [[10, 10, 10, 100, 100][:3], [100, 100], [300]]
    assert all(len(g) * max(p.length for p in g) <= 250 or len(g) == 1 for g in groups)


@pytest.mark.parametrize(
    "fields,problem",
    [
        ({"seeds": ()}, "at least one seed"),
        ({"seeds": (1, 1)}, "seeds repeat"),
        ({"n_test": 0}, "n_test must be"),
        ({"batch_size": 0}, "batch_size must be"),
        ({"shots_per_class": 0}, "shots_per_class must be"),
    ],
)
def test_config_validation(fields, problem):
    with pytest.raises(InvalidConfigError, match=problem):
        ExperimentConfig(**fields)


# ------------------------------------------------------------------------------------------------ provenance


def test_negative_seeds_are_refused_before_any_work():
    with pytest.raises(InvalidConfigError, match="seeds must be 0 or more"):
        ExperimentConfig(seeds=(-1,))


def test_rows_carry_the_name_of_the_model_that_made_them(llama_like, tmp_path):
    """The config's model used to default to "gemma-3-270m" and label every row with it."""
    from anchorlens.experiments import AurocConfig, run_auroc
    from anchorlens.model_classes import recorded_model_name

    result = run_auroc(llama_like, "sst2", AurocConfig(seeds=(42,), n_test=4), out=tmp_path, progress=False)
    name = recorded_model_name(llama_like)
    assert name.startswith("unnamed-model(") and name not in ("gemma-3-270m", "smollm2-135m")
    assert set(result.frame["model"]) == {name} and set(result.examples["model"]) == {name}
    assert result.config.model == name
    assert json.loads((tmp_path / "manifest.json").read_text())["model"] == name


def test_each_part_records_the_device_class_and_versions_that_made_it(llama_like, tmp_path):
    import importlib.metadata

    import torch

    from anchorlens.experiments import AurocConfig, run_auroc
    from anchorlens.model_classes import model_class_of

    run_auroc(llama_like, "sst2", AurocConfig(seeds=(42,), n_test=2), out=tmp_path, progress=False)
    provenance = json.loads((tmp_path / "parts" / "auroc" / "sst2-seed42.json").read_text())["provenance"]
    assert provenance["device"].startswith("cpu (")
    assert provenance["model_class"] == model_class_of(llama_like) in ("hooked", "bridge")
    assert provenance["torch"] == importlib.metadata.version("torch")
    assert provenance["transformer_lens"] == importlib.metadata.version("transformer-lens")
    assert provenance["threads"] == torch.get_num_threads()


def test_a_config_naming_another_model_is_refused(llama_like):
    from anchorlens.experiments import AurocConfig, run_auroc

    with pytest.raises(InvalidConfigError, match=r"names model 'gemma-3-270m', but the model passed is 'unnamed"):
        run_auroc(llama_like, "sst2", AurocConfig(model="gemma-3-270m", seeds=(42,), n_test=2), progress=False)


def test_a_second_model_into_the_same_folder_is_refused(llama_like, gpt2_like, tmp_path):
    from anchorlens.experiments import AurocConfig, run_auroc

    run_auroc(llama_like, "sst2", AurocConfig(seeds=(42,), n_test=2), out=tmp_path, progress=False)
    gpt2_like.cfg.model_name = "another-model"
    try:
        with pytest.raises(InvalidConfigError, match=r"of model 'unnamed.*this run is of 'another-model(:bridge)?'"):
            run_auroc(gpt2_like, "sst2", AurocConfig(seeds=(42,), n_test=2), out=tmp_path, progress=False)
    finally:
        gpt2_like.cfg.model_name = "custom"


def test_bridge_names_carry_their_suffix(llama_like):
    from anchorlens.model_classes import is_bridge, recorded_model_name

    assert recorded_model_name(llama_like).endswith(":bridge") == is_bridge(llama_like)


@pytest.mark.skipif(not has_hooked_transformer(), reason="folding value biases is a HookedTransformer's (3.9)")
def test_folded_value_biases_are_warned_about_once(smol_tokenizer):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from anchorlens.model_classes import value_biases_folded, warn_if_value_biases_folded

    cfg = HookedTransformerConfig(
        n_layers=1,
        d_model=16,
        n_heads=2,
        d_head=8,
        d_mlp=32,
        n_ctx=32,
        d_vocab=100,
        act_fn="gelu",
        normalization_type="LN",
        original_architecture="GPT2LMHeadModel",
    )
    model = HookedTransformer(cfg)
    assert value_biases_folded(model)  # GPT-2 has value biases; all zero means they were folded away
    with pytest.warns(UserWarning, match="fold_value_biases=False"):
        warn_if_value_biases_folded(model)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_value_biases_folded(model)  # once per model
    with torch.no_grad():
        model.blocks[0].attn.b_V.normal_()
    assert not value_biases_folded(model)


@dataclasses.dataclass(frozen=True)
class _WithNewFields(ExperimentConfig):
    """A config that gained fields after its results were committed."""

    switch: bool = False
    names: tuple[str, ...] = dataclasses.field(default_factory=lambda: ("a", "b"))

    OMITTED_AT_DEFAULT: ClassVar[tuple[str, ...]] = ("switch", "names")


def test_fields_omitted_at_their_default_leave_the_signature_as_it_was():
    """Saved parts are keyed by the signature: a field added later must not change it while left at its default,
    else every committed part would stop resuming; set, it is in the signature and keeps the results apart."""
    before = ExperimentConfig(model="m", n_test=20).signature()
    assert before == {"model": "m", "n_test": 20, "shots_per_class": 1}
    assert _WithNewFields(model="m", n_test=20).signature() == before
    assert _WithNewFields(model="m", n_test=20, switch=True).signature() == {**before, "switch": True}
    assert _WithNewFields(model="m", n_test=20, names=("c",)).signature() == {**before, "names": ("c",)}
    # The signature reads back into the same config (an omitted field takes its default again).
    restored = _WithNewFields.from_signature(_WithNewFields(model="m", switch=True).signature())
    assert restored.switch is True and restored.names == ("a", "b")
