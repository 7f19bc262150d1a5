"""anchorlens: label words as anchors -- information-flow analyses of in-context learning on TransformerLens.

``import anchorlens as al`` gives every public name (``__all__``): loading models (or building one with random
weights, `random_model`) and tasks, building prompts
(also from your own text), the hook recipes and recorders, the analyses of any list of prompts (`saliency`,
`isolation`, `label_attention_auroc`, `anchor_keys`, `compress`, `fit_beta` / `apply_beta`), one prompt's
whole flow (`prompt_flow`, `plot_flow`), activations at the anchors (`anchor_activations`), the experiments
over a task's seeds (``run_*`` with their configs, `run_heads` for head-level anchors, `run_experiment`),
reading a results folder back (`load_result`), the
`Model` type and `recorded_model_name` (the name results and a saved β are recorded under) and every error class.

Names from the experiment, figure and key/value-cache modules are imported on first use (a module
``__getattr__``), so ``import anchorlens`` imports neither plotly nor the experiments nor TransformerLens.
"""

from __future__ import annotations

import importlib
from typing import Any

from anchorlens.activations import AnchorActivations, anchor_activations
from anchorlens.catalog import declared as _declared
from anchorlens.catalog import public_names as _public_names
from anchorlens.errors import (
    AnchorlensError,
    DataFileError,
    DistributedRunError,
    EmptyClassError,
    HookError,
    InvalidConfigError,
    LabelWordError,
    ModelLoadError,
    PromptTooLongError,
    TaskDefinitionError,
    TokenizationError,
    UnknownModelError,
    UnknownTaskError,
    UnsupportedModelError,
)
from anchorlens.flow import PromptFlow, prompt_flow
from anchorlens.forward import run_to_target
from anchorlens.hooks import (
    LabelAttentionRecorder,
    SaliencyRecorder,
    block_earlier_mask,
    frozen_parameters,
    hooked,
    isolation_hooks,
    reweight_hooks,
    verify_attention_hooks,
)
from anchorlens.model_classes import Model, default_model_class, recorded_model_name, run_provenance
from anchorlens.models import (
    DEFAULT_MODEL,
    OFFLINE_MODELS,
    CacheRebuildWarning,
    cache_problem,
    cache_root,
    converted_dir,
    list_models,
    load_hf_model,
    load_model,
    load_tokenizer,
    model_from_hugging_face,
    random_model,
    tokenizer_dir,
    weights_fingerprint,
)
from anchorlens.prompts import (
    LabelTokens,
    Prompt,
    PromptBatch,
    PromptParts,
    Role,
    build_prompt,
    iter_batches,
    label_logits,
    label_loss,
    label_tokens,
    make_batch,
    prompt_settings,
    target_logits,
    task_prompts,
)
from anchorlens.sampling import Example, sample_demonstrations, sample_test_set
from anchorlens.tasks import Task, get_task, list_tasks, load_split, register_task, task_from_files
from anchorlens.version import __version__

#: Public names imported on first use, and the module each comes from.
_LAZY: dict[str, str] = {
    # Analyses of any prompts: the building blocks the experiments run on.
    "saliency": "anchorlens.experiments.saliency",
    "isolation": "anchorlens.experiments.isolation",
    "label_attention_auroc": "anchorlens.experiments.auroc",
    "anchor_keys": "anchorlens.experiments.diagnose",
    "AnchorKeys": "anchorlens.experiments.diagnose",
    "compress": "anchorlens.experiments.compress",
    "build_anchor_cache": "anchorlens.experiments.compress",
    "fit_beta": "anchorlens.experiments.reweight",
    "apply_beta": "anchorlens.experiments.reweight",
    "save_beta": "anchorlens.experiments.reweight",
    "load_beta": "anchorlens.experiments.reweight",
    "beta_path": "anchorlens.experiments.reweight",
    "LabelAttentionAuroc": "anchorlens.experiments.auroc",
    "FewPromptsWarning": "anchorlens.experiments.auroc",
    # Frames made with per_head=True: whole layers, heads, and one value as a [layer, head] grid.
    "layer_rows": "anchorlens.experiments.common",
    "head_rows": "anchorlens.experiments.common",
    "head_grid": "anchorlens.experiments.common",
    # The experiments over a task's seeds (each experiment's config, result and run_<name>, as its module
    # declares it: `anchorlens.catalog`), and several tasks into a folder.
    **{name: "anchorlens.experiments" for entry in _declared().values() for name in _public_names(entry)},
    "run_experiment": "anchorlens.orchestrate",
    # Reading a results folder back.
    "load_result": "anchorlens.outputs",
    # Figures (plotly).
    "plot_flow": "anchorlens.plots",
    # The pruned key/value cache (imports TransformerLens).
    "AnchorCache": "anchorlens.kv_cache",
    "cache_demonstrations": "anchorlens.kv_cache",
    "query_tokens": "anchorlens.kv_cache",
    "run_query_with_cache": "anchorlens.kv_cache",
}


def __getattr__(name: str) -> Any:
    """Import a lazily exported name (`_LAZY`) from its module on first use, then keep it here."""
    if name not in _LAZY:
        raise AttributeError(f"module 'anchorlens' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    # errors
    "AnchorlensError",
    "DataFileError",
    "DistributedRunError",
    "EmptyClassError",
    "HookError",
    "InvalidConfigError",
    "LabelWordError",
    "ModelLoadError",
    "PromptTooLongError",
    "TaskDefinitionError",
    "TokenizationError",
    "UnknownModelError",
    "UnknownTaskError",
    "UnsupportedModelError",
    # models and their cache
    "DEFAULT_MODEL",
    "OFFLINE_MODELS",
    "CacheRebuildWarning",
    "Model",
    "cache_problem",
    "cache_root",
    "converted_dir",
    "list_models",
    "load_hf_model",
    "default_model_class",
    "run_provenance",
    "load_model",
    "load_tokenizer",
    "model_from_hugging_face",
    "random_model",
    "recorded_model_name",
    "tokenizer_dir",
    "weights_fingerprint",
    # tasks and sampling
    "Example",
    "Task",
    "get_task",
    "list_tasks",
    "load_split",
    "register_task",
    "sample_demonstrations",
    "sample_test_set",
    "task_from_files",
    # prompts
    "LabelTokens",
    "Prompt",
    "PromptBatch",
    "PromptParts",
    "Role",
    "build_prompt",
    "iter_batches",
    "label_logits",
    "label_loss",
    "label_tokens",
    "make_batch",
    "prompt_settings",
    "target_logits",
    "task_prompts",
    # running and hooking the model
    "LabelAttentionRecorder",
    "SaliencyRecorder",
    "block_earlier_mask",
    "frozen_parameters",
    "hooked",
    "isolation_hooks",
    "reweight_hooks",
    "run_to_target",
    "verify_attention_hooks",
    # activations at the anchors, one prompt's flow
    "AnchorActivations",
    "anchor_activations",
    "PromptFlow",
    "prompt_flow",
    # imported on first use: every name of _LAZY, listed there once
    *_LAZY,
    "__version__",
]
