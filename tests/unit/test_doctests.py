"""Public functions carry a short ``>>>`` example, run as a doctest in the fast tier (pyproject.toml:
``--doctest-modules`` over ``anchorlens``): a new public function without one fails here, and so does a name
below that has gained one (take it off the list)."""

from __future__ import annotations

import inspect

import anchorlens

#: Public functions still without an example: most need a model or a results folder; each example added
#: shortens this list.
WITHOUT_EXAMPLE_YET = {
    *("cache_problem", "load_hf_model", "load_model", "recorded_model_name", "tokenizer_dir", "weights_fingerprint"),
    *("register_task", "task_from_files", "label_loss", "prompt_settings"),
    *("frozen_parameters", "hooked", "isolation_hooks", "reweight_hooks", "run_to_target", "verify_attention_hooks"),
    *("anchor_activations", "prompt_flow", "plot_flow", "saliency", "isolation", "label_attention_auroc"),
    *("anchor_keys", "compress", "build_anchor_cache", "fit_beta", "apply_beta", "save_beta", "load_beta"),
    *("beta_path", "layer_rows", "head_rows", "head_grid", "run_experiment", "load_result"),
    *("run_auroc", "run_compress", "run_diagnose", "run_heads", "run_isolation", "run_reweight", "run_saliency"),
    *("cache_demonstrations", "query_tokens", "run_query_with_cache"),
}


def _public_functions() -> dict[str, object]:
    return {
        name: getattr(anchorlens, name) for name in anchorlens.__all__ if inspect.isfunction(getattr(anchorlens, name))
    }


def test_every_public_function_has_an_example_or_is_listed():
    without = {name for name, function in _public_functions().items() if ">>>" not in (inspect.getdoc(function) or "")}
    assert not without - WITHOUT_EXAMPLE_YET, (
        f"give these public functions a >>> example: {sorted(without - WITHOUT_EXAMPLE_YET)}"
    )
    gained = sorted(WITHOUT_EXAMPLE_YET - without)
    assert not gained, f"these have an example (or left __all__) now: take them off WITHOUT_EXAMPLE_YET: {gained}"


def test_examples_sit_in_an_examples_section():
    """mkdocstrings (Google style) renders an ``Examples:`` section as code; a bare ``>>>`` line is read as
    Markdown, where ``['a', 'b']`` becomes a broken cross-reference and fails the strict docs build."""
    bare = [
        name
        for name, function in _public_functions().items()
        if ">>>" in (inspect.getdoc(function) or "") and "Examples:" not in (inspect.getdoc(function) or "")
    ]
    assert not bare, f"put these >>> examples under an 'Examples:' heading: {bare}"
