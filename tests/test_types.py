"""Annotations are checked: the test run type-checks every annotated call of the package (pyproject.toml's
``--jaxtyping-packages``), `Model` admits exactly the two model classes, and tests marked `bad_input` run
unchecked so that they see the one-line error a user gets."""

from __future__ import annotations

import subprocess
import sys

import jaxtyping
import pytest
import torch

from anchorlens.metrics import correct, jaccard
from anchorlens.model_classes import Model, recorded_model_name


def test_the_test_run_checks_shapes_dtypes_and_models_at_each_call(gpt2_like):
    assert not jaxtyping.config.jaxtyping_disable
    with pytest.raises(jaxtyping.TypeCheckError, match="prediction"):
        correct(torch.zeros(3), torch.zeros(3, dtype=torch.long))  # a float prediction where class ids go
    with pytest.raises(jaxtyping.TypeCheckError, match="batch"):
        correct(torch.zeros(3, dtype=torch.long), torch.zeros(4, dtype=torch.long))  # batch sizes disagree
    with pytest.raises(jaxtyping.TypeCheckError, match="top_k"):
        jaccard(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(jaxtyping.TypeCheckError, match="model"):
        recorded_model_name("smollm2-135m")  # a name where a loaded model goes
    assert recorded_model_name(gpt2_like).startswith("unnamed-model")


def test_model_is_either_class_and_nothing_else(gpt2_like, tiny_folder):
    from transformers import AutoModelForCausalLM

    assert isinstance(gpt2_like, Model)
    assert not isinstance(AutoModelForCausalLM.from_pretrained(tiny_folder), Model)
    assert not isinstance(object(), Model) and not isinstance(None, Model)


def test_importing_the_model_type_does_not_import_transformer_lens():
    """`Model` resolves the classes at the first check: `import anchorlens` stays seconds faster."""
    code = "import sys, anchorlens.model_classes; print('transformer_lens' in sys.modules)"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "False"


@pytest.mark.bad_input  # this test checks the marker itself
def test_a_bad_input_test_runs_unchecked():
    assert jaxtyping.config.jaxtyping_disable
    assert correct(torch.zeros(1), torch.zeros(4)).shape == (4,)  # unchecked: broadcasting answers instead
