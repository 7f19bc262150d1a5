"""Which TransformerLens model class a loaded model is, and what only one of the classes can do.

anchorlens runs on two classes through the same API:

* ``"hooked"`` -- `transformer_lens.HookedTransformer` (TransformerLens's own re-implementation; weights
  converted and processed at load);
* ``"bridge"`` -- `transformer_lens.model_bridge.TransformerBridge` (present in transformer-lens 3.x, the only
  class in 4.x): the Hugging Face model itself with TransformerLens hook points, its attention computed
  step by step so that ``hook_attn_scores`` and ``hook_pattern`` fire with HookedTransformer's shapes.

The hook recipes use only the hook names both share. Three things differ and are handled here:
a bridge cannot start a forward pass at a layer (``start_at_layer``), does not use TransformerLens's
key/value cache, and silently skips a hook whose name it does not have (a HookedTransformer raises).

**Type annotations.** `Model` is what every function taking a model accepts. Tensors crossing a module
boundary carry jaxtyping shapes, which the test run checks at every call (``--jaxtyping-packages`` in
pyproject.toml). One name per axis, across the package, in jaxtyping shapes and einops patterns alike
(``tests/test_types.py`` fails on a name missing from this table, and on a row no code uses):

| axis | what it counts |
| --- | --- |
| `batch` | prompts run together in one forward pass |
| `example` | test inputs of a seed, across batches (rows of an experiment's per-example frame) |
| `seq` | token positions of a (padded) prompt |
| `query` | positions attending, where an attention pattern has both position axes (its rows) |
| `key` | positions attended to (its columns); a per-position mask applied to keys is indexed `key` |
| `kept` | positions a compressed key/value cache keeps |
| `class` | the task's classes, one label word each (`label` in einops patterns, which warn on a Python keyword) |
| `layer` | transformer blocks |
| `head` | attention (query) heads |
| `kv_head` | key/value heads (fewer than `head` under grouped-query attention) |
| `group` | query heads sharing one key/value head (`head` = `kv_head` × `group`) |
| `d_model` | residual stream width |
| `d_head` | width of one head |
| `d_qk` | every head's key or query concatenated (`head` × `d_head`) |
| `vocab` | the tokenizer's vocabulary (logits) |
| `region` | saliency regions; `region=3` where they are the paper's S_wp, S_pq, S_ww |
| `top_k` | a prediction's top-k tokens |
| `draw` | random draws of a baseline (compression's random positions) |
| `cache` | key/value caches stacked into one pass |
| `seed` | seeds of a run |
| `resample` | resamples of the test inputs within each seed |
| `unit` | resampled units: a summary's (seed, test input) pairs, all seeds together |
| `rest` | trailing axes a function passes through untouched: `*rest` (any number; one where einops merges them) |

An axis that merges two is written as their product (`layer*head`, checked against both).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeGuard, no_type_check

from anchorlens.errors import HookError, UnsupportedModelError

if TYPE_CHECKING:
    from typing import TypeAlias

    import transformer_lens
    import transformer_lens.model_bridge

    #: A loaded model of either class.
    Model: TypeAlias = transformer_lens.HookedTransformer | transformer_lens.model_bridge.TransformerBridge
else:

    class _EitherModelClass(type):
        # Runs at every check of a `Model` annotation: not itself checked (no_type_check keeps the test run's
        # import hook off it), and the classes are looked up once.
        @no_type_check
        def __instancecheck__(cls, instance):
            # A model's class has a transformer_lens class among its bases; anything else is answered without
            # importing transformer_lens (seconds). beartype probes each annotation with builtin objects when
            # it wraps a function, which would otherwise import the model classes on importing anchorlens.
            if not any(
                getattr(base, "__module__", "").startswith("transformer_lens") for base in type(instance).__mro__
            ):
                return False
            return isinstance(instance, _model_classes())

    class Model(metaclass=_EitherModelClass):
        """A loaded model of either class, for runtime type checkers: ``isinstance(x, Model)`` is true of a
        HookedTransformer or a TransformerBridge. A class rather than the union the type checker sees, so that
        importing anchorlens does not import transformer_lens (seconds): it is imported at the first check."""


#: The ``model_class`` values `anchorlens.load_model` accepts.
MODEL_CLASSES = ("hooked", "bridge")


def transformer_lens_version() -> str:
    """The installed transformer-lens version (read from the package metadata; nothing imported)."""
    import importlib.metadata

    try:
        return importlib.metadata.version("transformer-lens")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def has_hooked_transformer() -> bool:
    """Whether the installed transformer-lens has `HookedTransformer` (3.x; 4.0 removed it)."""
    return _hooked_transformer_class() is not None


def default_model_class() -> str:
    """The class `anchorlens.load_model` builds when none is named.

    Returns:
        ``"hooked"`` where the installed transformer-lens has HookedTransformer (3.9, the class the design
        names), else ``"bridge"`` (4.x, where the bridge is the only class).

    Examples:
        >>> import anchorlens as al
        >>> al.default_model_class() in ("hooked", "bridge")
        True
    """
    return "hooked" if has_hooked_transformer() else "bridge"


def hooked_transformer_hint() -> str:
    """How to get a HookedTransformer for a step only it supports, as the installed transformer-lens allows."""
    if has_hooked_transformer():
        return "load the model with anchorlens.load_model(name, model_class='hooked') (CLI: --model-class hooked)"
    return (
        f"transformer-lens {transformer_lens_version()} has no HookedTransformer; install transformer-lens 3.9 "
        "(pip install 'transformer-lens>=3.9,<3.10', or TL=3.9 bash scripts/setup.sh) and load the model with "
        "model_class='hooked'"
    )


def check_model_class_available(model_class: str) -> None:
    """Refuse, with the fix, a model class the installed transformer-lens does not have."""
    if model_class == "hooked" and not has_hooked_transformer():
        raise UnsupportedModelError(
            f"model_class='hooked' needs HookedTransformer, which transformer-lens 4.0 removed (installed: "
            f"{transformer_lens_version()}); use model_class='bridge' (the default here, CLI: --model-class bridge), "
            "or install transformer-lens 3.9 for HookedTransformer: pip install 'transformer-lens>=3.9,<3.10'"
        )


@functools.cache
def _hooked_transformer_class():
    try:
        from transformer_lens import HookedTransformer
    except ImportError:  # transformer-lens 4.x has no HookedTransformer
        return None
    return HookedTransformer


@functools.cache
def _bridge_class():
    try:
        from transformer_lens.model_bridge import TransformerBridge
    except ImportError:  # transformer-lens 2.x has no bridge
        return None
    return TransformerBridge


@functools.cache
def _model_classes() -> tuple[type, ...]:
    """The model classes the installed transformer_lens has (imported at the first call)."""
    return tuple(cls for cls in (_hooked_transformer_class(), _bridge_class()) if cls is not None)


def is_hooked_transformer(model: object) -> TypeGuard[transformer_lens.HookedTransformer]:
    cls = _hooked_transformer_class()
    return cls is not None and isinstance(model, cls)


def is_bridge(model: object) -> TypeGuard[transformer_lens.model_bridge.TransformerBridge]:
    cls = _bridge_class()
    return cls is not None and isinstance(model, cls)


def model_class_of(model: object) -> str:
    """``"hooked"``, ``"bridge"``, or the class name of anything else."""
    if is_hooked_transformer(model):
        return "hooked"
    if is_bridge(model):
        return "bridge"
    return type(model).__name__


def _package_version(name: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def device_name(device: object) -> str:
    """What a device is as a reader of a result wants it: the GPU's product name for CUDA, else the device type
    and the machine's processor (``"cpu (x86_64)"``)."""
    import platform

    import torch

    device = torch.device(str(device))
    if device.type == "cuda" and torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"{device.type} ({platform.machine() or 'unknown machine'})"


def run_provenance(model: object) -> dict[str, object]:
    """What made a result besides its settings, written into every part record: the device of the model's
    weights, the model class, the torch, transformer-lens and transformers versions, and the CPU threads torch
    used. Results agree across these within float tolerance (docs/tested-versions.md), so they are recorded, not
    part of the signature that refuses mixing.

    Args:
        model: the loaded model (any module with parameters; its first parameter's device is the one recorded).

    Returns:
        ``{"device", "model_class", "threads", "torch", "transformer_lens", "transformers"}``; a package that is
        not installed is ``None``.

    Examples:
        >>> import anchorlens as al
        >>> sorted(al.run_provenance(object()))[:3]
        ['device', 'model_class', 'threads']
    """
    import torch

    parameters = getattr(model, "parameters", None)
    first = next(iter(parameters()), None) if callable(parameters) else None
    device = first.device if first is not None else torch.device("cpu")
    return {
        "device": device_name(device),
        "model_class": model_class_of(model),
        "threads": torch.get_num_threads(),
        "torch": _package_version("torch"),
        "transformer_lens": _package_version("transformer-lens"),
        "transformers": _package_version("transformers"),
    }


def describe(model: object) -> str:
    """The class as a user reads it in an error message."""
    kind = model_class_of(model)
    return {"hooked": "HookedTransformer", "bridge": "TransformerBridge"}.get(kind, kind)


def require_hooked_transformer(model: Model, what: str, why: str) -> None:
    """Refuse, with the fix, an analysis step that only a HookedTransformer supports."""
    if not is_hooked_transformer(model):
        raise UnsupportedModelError(
            f"{what} needs a HookedTransformer, and this model is a {describe(model)}: {why}; "
            + hooked_transformer_hint()
        )


def supports_start_at_layer(model: Model) -> bool:
    """Whether a forward pass can start from a saved residual stream (a bridge lets Hugging Face run the layers)."""
    return is_hooked_transformer(model)


def check_hook_names(model: Model, hooks: Sequence[tuple[object, object]]) -> None:
    """Fail on a hook name the model does not have: a TransformerBridge would skip it without a word."""
    names = [name for name, _ in hooks if isinstance(name, str)]
    if not names:
        return
    known = model.hook_dict
    missing = [name for name in names if name not in known]
    n_layers = int(model.cfg.n_layers)
    deeper = [int(found[1]) for found in (re.match(r"blocks\.(\d+)\.", name) for name in missing) if found]
    if deeper and max(deeper) >= n_layers:
        raise HookError(
            f"a hook is for layer {max(deeper)}, and this {describe(model)} has {n_layers} layers (0..{n_layers - 1}): "
            "the hooks were made for a deeper model (a β of another model has more layers; reweight_hooks(..., "
            "model=model) checks it)"
        )
    if missing:
        raise HookError(
            f"this {describe(model)} has no hook point {missing[0]!r}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + "; anchorlens recipes use only names both TransformerLens model classes share "
            "(blocks.{l}.attn.hook_attn_scores, blocks.{l}.attn.hook_pattern)"
        )


#: What results of a TransformerBridge are recorded under: the model's name and this suffix.
BRIDGE_SUFFIX = ":bridge"

#: What a model built from a config (no name) is recorded as: never the name of an offline or hub model.
UNNAMED_MODEL = "unnamed-model"


def recorded_model_name(model: Model) -> str:
    """The name results of `model` are recorded under: ``model.cfg.model_name``, ``NAME:bridge`` for a
    TransformerBridge.

    A model built from a config without a name (TransformerLens calls it ``"custom"``) is recorded as
    ``unnamed-model(<layers>L,<d_model>d,<heads>h)``, which no loadable model is called.

    Args:
        model: a loaded HookedTransformer or TransformerBridge.

    Returns:
        The name: what an experiment's results record as ``model``, and what `save_beta` takes as ``model_name``
        (`load_beta` refuses a β recorded under another).

    Examples:
        >>> import anchorlens as al
        >>> al.recorded_model_name(al.random_model(n_layers=3))  # doctest: +ELLIPSIS
        'unnamed-model(3L,32d,4h)...'
    """
    cfg = model.cfg
    name = getattr(cfg, "model_name", None)
    if not name or name == "custom":
        name = f"{UNNAMED_MODEL}({cfg.n_layers}L,{cfg.d_model}d,{cfg.n_heads}h)"
    return f"{name}{BRIDGE_SUFFIX}" if is_bridge(model) and not str(name).endswith(BRIDGE_SUFFIX) else str(name)


#: Where `anchorlens.models.load_model` keeps a local folder's `model_files_sha256` on the loaded model. Written
#: only onto models `load_model` itself creates (never onto a model a user passes in), and kept on the model rather
#: than in a side table so that it travels with a copy (``copy.deepcopy``): the hash is part of where the model
#: came from.
MODEL_FILES_KEY = "_anchorlens_model_files_sha256"


def recorded_model_files(model: Model) -> str | None:
    """The sha256 of the config, tokenizer and weight files a local model folder was loaded from (None for other
    models): part of the results' signature, so a folder edited between runs never mixes into one --out."""
    return getattr(model, "__dict__", {}).get(MODEL_FILES_KEY)


#: Hugging Face architectures whose attention has value biases: TransformerLens's default loading folds them
#: into the output bias, which changes ∂L/∂A and un-normalised re-weighting (SPEC §8).
VALUE_BIAS_ARCHITECTURES = frozenset(
    {
        "GPT2LMHeadModel",
        "GPTNeoXForCausalLM",
        "OPTForCausalLM",
        "BloomForCausalLM",
        "Qwen2ForCausalLM",
        "PhiForCausalLM",
        "BertForMaskedLM",
        "GPTBigCodeForCausalLM",
    }
)

_WARNED_FOLDED: set[int] = set()


def value_biases_folded(model: Model) -> bool:
    """Whether `model` looks loaded with its value biases folded: an architecture that has value biases
    whose ``b_V`` are all zero (a HookedTransformer only; a bridge keeps the Hugging Face weights)."""
    if not is_hooked_transformer(model):
        return False
    if getattr(model.cfg, "original_architecture", None) not in VALUE_BIAS_ARCHITECTURES:
        return False
    biases = [getattr(block.attn, "b_V", None) for block in model.blocks]
    return all(bias is not None and not bool(bias.detach().any()) for bias in biases)


def warn_if_value_biases_folded(model: Model) -> None:
    """Warn once per model when its value biases look folded (see `value_biases_folded`)."""
    import warnings

    if id(model) in _WARNED_FOLDED or not value_biases_folded(model):
        return
    _WARNED_FOLDED.add(id(model))
    warnings.warn(
        f"{recorded_model_name(model)} has value biases in its architecture but every b_V is zero: it looks "
        "loaded the TransformerLens default way, which folds value biases into the output bias and changes "
        "saliency and re-weighting (SPEC §8). Load it with anchorlens.load_model(name) or "
        "HookedTransformer.from_pretrained(name, fold_value_biases=False)",
        stacklevel=3,
    )
