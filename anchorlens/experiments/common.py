"""What every experiment shares: the config fields, the seed loop with resuming, and the result shape."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import io
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, get_args

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from tqdm.auto import tqdm

from anchorlens import paper
from anchorlens.errors import (
    DataFileError,
    InvalidConfigError,
    LabelWordError,
    PromptTooLongError,
    TokenizationError,
)
from anchorlens.files import atomic_write_bytes, parquet_bytes
from anchorlens.hooks import verify_attention_hooks
from anchorlens.model_classes import (
    BRIDGE_SUFFIX,
    Model,
    recorded_model_files,
    recorded_model_name,
    run_provenance,
    warn_if_value_biases_folded,
)
from anchorlens.prompts import Prompt, PromptBatch, Prompts, make_batch
from anchorlens.runs import (
    DEFAULT_DTYPE,
    ResultStore,
    StaleResultsWarning,
    combined_names,
    combined_problem,
    read_manifest,
    read_parts,
    write_combined_record,
)
from anchorlens.stats import means_with_ci
from anchorlens.tasks import Task


def setting(
    default: Any = dataclasses.MISSING,
    help_text: str = "",
    *,
    flag: str | bool | None = True,
    default_text: str | None = None,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
    aliases: tuple[str, ...] = (),
) -> Any:
    """A config field that carries its own help text: the one source of a setting's default and meaning.

    The command line generates its options from these fields (`anchorlens.cli.add_config_options`): `flag` is the
    field's option, True for ``--field-name``, a string for another name (``--shots``), None for a field set in
    Python only. `default_text` describes a default the value alone does not say (None, a default factory).
    `aliases` are further option names of the same setting (``--task`` beside ``--tasks``).
    """
    metadata = {"help": help_text, "flag": flag, "default_text": default_text, "aliases": tuple(aliases)}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


def restated(
    config_class: type,
    name: str,
    *,
    default: Any = dataclasses.MISSING,
    help_text: str | None = None,
) -> Any:
    """A field of another config that restates `config_class`'s field `name`: its help text, option and aliases
    come from there, so the two cannot drift; `default` and `help_text` override, where the other config means
    something else by the setting (`anchorlens.reproduce.ReproduceConfig`'s smaller main job)."""
    source = {field.name: field for field in dataclasses.fields(config_class)}[name]
    metadata = dict(source.metadata)
    if help_text is not None:
        metadata["help"] = help_text
    if default is dataclasses.MISSING:
        return dataclasses.field(default=source.default, default_factory=source.default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def cli_flag(field: dataclasses.Field) -> str | None:
    """The command-line option of a config field made by `setting`, or None for a field set in Python only."""
    flag = field.metadata.get("flag")
    if flag is True:
        return "--" + field.name.replace("_", "-")
    return flag or None


def option_name(config_class: type, name: str) -> str:
    """How a user sets a field, for error messages: its flag, or that it is a field without one."""
    fields = {field.name: field for field in dataclasses.fields(config_class)}
    flag = cli_flag(fields[name]) if name in fields else None
    return flag if flag is not None else f"a {config_class.__name__} field, no CLI flag"


#: The dtypes a model may run the experiments in (`ExperimentConfig.dtype`, ``--dtype``).
Dtype = Literal["float32", "bfloat16", "float16"]
DTYPES: tuple[str, ...] = get_args(Dtype)

#: An experiment's own config or result class, kept by the methods that return a copy or build one.
ConfigT = TypeVar("ConfigT", bound="ExperimentConfig")
ResultT = TypeVar("ResultT", bound="ExperimentResult")


@dataclass(frozen=True)
class ExperimentConfig:
    """Fields every experiment has. Subclasses add their own; all are validated on construction.

    ``model`` is the name results are recorded under. Leave it None: the run function takes it from the loaded
    model (`anchorlens.model_classes.recorded_model_name`); a name given here must be that model's, or the run
    is refused. ``model_files`` is, for a local model folder, the sha256 of its config, tokenizer and weights
    (`anchorlens.models.model_files_sha256`), taken from the loaded model like ``model``: a folder edited between
    two runs into one --out is refused, not mixed in. ``n_test`` is the number of test inputs per seed (capped
    at the split size and the task's 1000); None takes them all. ``dtype`` is what the model runs in: a run
    function refuses a model in another one, and the signature names it unless it is float32 (so results made
    before it existed still resume).
    """

    model: str | None = setting(
        None, "the name results are recorded under; None takes the loaded model's, a name must be that", flag=None
    )
    seeds: tuple[int, ...] = setting(paper.SEEDS[:3], f"seeds (paper: {paper.seeds_text()})")
    n_test: int | None = setting(
        200,
        f"test inputs per seed, at most the test split and the task's 1000 (paper {paper.N_TEST}; None, in Python: "
        "all)",
    )
    batch_size: int = setting(8, "prompts per forward pass (changes no number)")
    shots_per_class: int = setting(1, "demonstrations per class", flag="--shots")
    dtype: Dtype = setting(
        DEFAULT_DTYPE,
        "dtype of the model's weights and activations; results of two dtypes are never mixed in one --out folder",
    )
    model_files: str | None = setting(
        None,
        "sha256 of the config, tokenizer and weight files of a local model folder; None takes the loaded model's",
        flag=None,
    )

    #: Fields that do not change the numbers: a run may resume with other values.
    RESUMABLE_FIELDS: ClassVar[tuple[str, ...]] = ("seeds", "batch_size")
    #: Fields added after results were committed: left out of the signature while at their default, so a config
    #: that leaves them alone has the signature it had before they existed and its saved parts still resume.
    #: Set to another value, such a field is in the signature and the results are kept apart.
    #: A subclass's list adds to its parents' (`signature` reads them all).
    OMITTED_AT_DEFAULT: ClassVar[tuple[str, ...]] = ("dtype", "model_files")

    def __post_init__(self) -> None:
        object.__setattr__(self, "seeds", tuple(int(seed) for seed in self.seeds))
        if not self.seeds:
            raise InvalidConfigError(f"give at least one seed (the paper uses {paper.seeds_text()})")
        if min(self.seeds) < 0:
            raise InvalidConfigError(
                f"seeds must be 0 or more, got {min(self.seeds)} (the paper uses {paper.seeds_text()})"
            )
        if len(set(self.seeds)) != len(self.seeds):
            raise InvalidConfigError(f"seeds repeat: {self.seeds}; give each seed once")
        if self.n_test is not None and self.n_test < 1:
            raise InvalidConfigError(
                f"n_test must be at least 1, got {self.n_test} (omit it to use the whole test split)"
            )
        if self.batch_size < 1:
            raise InvalidConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.shots_per_class < 1:
            raise InvalidConfigError(f"shots_per_class must be at least 1, got {self.shots_per_class}")
        if self.dtype not in DTYPES:
            raise InvalidConfigError(
                f"unknown dtype {self.dtype!r}; use one of {', '.join(DTYPES)} (default {DEFAULT_DTYPE})"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def signature(self) -> dict[str, Any]:
        """The settings that decide the numbers: results made with another signature are not mixed in.

        Every field but the `RESUMABLE_FIELDS`, and but the `OMITTED_AT_DEFAULT` fields left at their default."""
        omitted = {name for cls in type(self).__mro__ for name in vars(cls).get("OMITTED_AT_DEFAULT", ())}
        defaults = {
            field.name: field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
            for field in dataclasses.fields(self)
            if field.name in omitted
        }
        return {
            k: v
            for k, v in self.to_dict().items()
            if k not in self.RESUMABLE_FIELDS and not (k in omitted and v == defaults[k])
        }

    def for_model(self: ConfigT, model: Model) -> ConfigT:
        """This config with ``model`` set to the loaded model's recorded name; refused if it names another, or
        if the model's weights are not in ``dtype``. A config naming the model without its class suffix
        (``"smollm2-135m"`` for the bridge recorded as ``"smollm2-135m:bridge"``) names that model: it is what
        ``load_model(name)`` was given, whichever class the installed TransformerLens builds."""
        name = recorded_model_name(model)
        if self.model is not None and self.model not in (name, name.removesuffix(BRIDGE_SUFFIX)):
            raise InvalidConfigError(
                f"the config names model {self.model!r}, but the model passed is {name!r}; results are recorded "
                "under the model that made them: leave config.model unset (None) or load the model it names"
            )
        weights = dtype_of(model)
        if weights not in DTYPES:
            raise InvalidConfigError(
                f"the model passed runs in {weights}, and experiments run in {', '.join(DTYPES)}; convert it "
                f"(model.to(torch.{self.dtype})) or load it with anchorlens.load_model(name, dtype=torch.{self.dtype})"
            )
        if weights != self.dtype:
            raise InvalidConfigError(
                f"the config says dtype {self.dtype!r}, but the model passed runs in {weights!r}; results are "
                f"recorded under the dtype that made them: pass {type(self).__name__}(dtype={weights!r}) (CLI: "
                f"--dtype {weights}), or load the model with anchorlens.load_model(name, dtype=torch.{self.dtype})"
            )
        files = recorded_model_files(model)
        if self.model_files is not None and self.model_files != files:
            raise InvalidConfigError(
                f"the config records model files sha256 {self.model_files[:12]}…, but the model passed was loaded from "
                f"files hashing to {str(files)[:12]}…: the model folder {name} changed (config or weights edited); "
                "results of two versions of a model are never mixed: choose another --out, or restore the folder"
            )
        if self.model == name and self.model_files == files:
            return self
        return dataclasses.replace(self, model=name, model_files=files)

    @classmethod
    def from_signature(cls: type[ConfigT], signature: dict[str, Any], seeds: tuple[int, ...] | None = None) -> ConfigT:
        """The config a saved signature describes (lists read back from JSON become tuples)."""
        names = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in signature.items() if k in names}
        if seeds:
            values["seeds"] = tuple(seeds)
        return cls(**values)


def device_of(model: Model) -> torch.device:
    return next(model.parameters()).device


def dtype_of(model: Model) -> str:
    """The dtype of the model's weights by name (``"float32"``, ``"bfloat16"``, ...), as configs record it."""
    return str(next(model.parameters()).dtype).removeprefix("torch.")


def pad_token_id(model: Model) -> int:
    """The tokenizer's pad id, else 0: right padding is never attended to, so any id works."""
    tokenizer = model.tokenizer
    return tokenizer.pad_token_id if tokenizer is not None and tokenizer.pad_token_id is not None else 0


def _groups(prompts: list[Prompt], batch_size: int, max_tokens: int | None) -> list[list[Prompt]]:
    """Consecutive groups of at most `batch_size` prompts and, if given, at most `max_tokens` padded tokens."""
    groups: list[list[Prompt]] = []
    for prompt in prompts:
        current = groups[-1] if groups else None
        fits = (
            current is not None
            and len(current) < batch_size
            and (max_tokens is None or (len(current) + 1) * max(prompt.length, current[-1].length) <= max_tokens)
        )
        if fits and current is not None:  # `fits` implies a current group; the check tells the type checker
            current.append(prompt)
        else:
            groups.append([prompt])
    return groups


#: Default cap on batch size x padded length of the gradient experiments (saliency, heads): their backward pass
#: holds every layer's activations, about 1.1 MiB a token on Gemma-3-270m in float32. Measured peak resident
#: memory of `saliency` on 8 AG News prompts of Gemma-3 (306 tokens at most): 2.74 GiB at a cap of 768, 3.25 GiB
#: at 1024, 3.90 GiB at 1536, so 1024 keeps the main job under 4 GiB; batching does not pay on a CPU (one prompt
#: at a time is as fast, docs/benchmarks.md), so raise it only on a GPU. It changes no number.
MAX_BATCH_TOKENS = 1024


def batches(
    model: Model, prompts: list[Prompt], batch_size: int, *, progress: bool = False, max_tokens: int | None = None
) -> Iterator[PromptBatch]:
    """Batches of similar length (less padding), on the model's device, with an optional progress bar.

    `max_tokens` caps batch size × padded length: the backward pass of saliency keeps every layer's attention
    maps, whose memory grows with the square of the length. Experiments only aggregate over a seed's prompts,
    so the order they are processed in changes no result.
    """
    pad = pad_token_id(model)
    groups = _groups(sorted(prompts, key=lambda prompt: prompt.length), batch_size, max_tokens)
    made = (make_batch(group, pad_token_id=pad, device=device_of(model)) for group in groups)
    return iter(tqdm(made, total=len(groups), desc="batches", unit="batch", disable=not progress, leave=False))


#: The ``level`` column of a frame made with ``per_head=True``: what each row is of, a whole layer or one head.
LEVELS = ("layer", "head")


def whole_layer_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of whole layers (``al.layer_rows``). A frame made with ``per_head=True`` also holds one row per
    head, marked by ``level`` = ``"head"`` and a ``head`` number (empty, NA, on the whole-layer rows).

    Args:
        frame: any frame of the analyses or results; one without a ``head`` column is returned as it is.

    Returns:
        The whole-layer rows, without the ``head`` and ``level`` columns.

    Examples:
        >>> import anchorlens as al
        >>> model = al.random_model()
        >>> _, prompts = al.task_prompts(model, "sst2", 42, n_test=2)
        >>> frame = al.saliency(model, prompts, per_head=True)
        >>> len(al.layer_rows(frame))  # 2 prompts x 2 layers
        4
    """
    if "head" not in frame.columns:
        return frame
    layers = frame[frame["head"].isna()].drop(columns=["head", "level"], errors="ignore")
    return layers.reset_index(drop=True)


def per_head_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The per-head rows of a frame made with ``per_head=True`` (``al.head_rows``).

    Args:
        frame: any frame of the analyses or results.

    Returns:
        The rows of single heads, ``head`` as int, without the ``level`` column; no rows for a frame without
        per-head rows.

    Examples:
        >>> import anchorlens as al
        >>> model = al.random_model()
        >>> _, prompts = al.task_prompts(model, "sst2", 42, n_test=2)
        >>> frame = al.saliency(model, prompts, per_head=True)
        >>> len(al.head_rows(frame))  # 2 prompts x 2 layers x 4 heads
        16
    """
    if "head" not in frame.columns:
        return frame.iloc[0:0].assign(head=pd.Series(dtype="int64"))
    heads = frame[frame["head"].notna()].drop(columns="level", errors="ignore").reset_index(drop=True)
    return heads.assign(head=heads["head"].astype("int64"))


#: Public names (``al.layer_rows``, ``al.head_rows``) of the two halves of a ``per_head=True`` frame.
layer_rows = whole_layer_rows
head_rows = per_head_rows


def with_head_column(layer_rows: pd.DataFrame, head_rows: pd.DataFrame) -> pd.DataFrame:
    """Whole-layer rows followed by per-head rows: the tidy frame of ``per_head=True``, with a ``head`` column
    (empty on the whole-layer rows) and, after it, ``level`` saying which kind each row is (``"layer"`` or
    ``"head"``, `LEVELS`)."""
    layer_rows = layer_rows.copy()
    position = list(layer_rows.columns).index("layer") + 1 if "layer" in layer_rows.columns else 0
    layer_rows.insert(position, "head", pd.array([pd.NA] * len(layer_rows), dtype="Int64"))
    layer_rows.insert(position + 1, "level", "layer")
    head_rows = head_rows.assign(head=pd.array(head_rows["head"], dtype="Int64"), level="head")
    return pd.concat([layer_rows, head_rows[list(layer_rows.columns)]], ignore_index=True)


def head_grid(
    frame: pd.DataFrame, value: str, *, per_example: bool = False
) -> pd.DataFrame | Float[np.ndarray, "example layer head"]:
    """One value of the per-head rows as a [layer, head] grid, so a heatmap is one line
    (``px.imshow(head_grid(frame, "S_pq"))``).

    Args:
        frame: a frame with per-head rows (``al.saliency(..., per_head=True)``, ``al.label_attention_auroc(...,
            per_head=True).layers``, a ``per_head=True`` result's ``to_frame()`` or ``examples``, `run_heads`'s
            ``to_frame()``), of one task and model.
        value: the column to lay out (``"S_wp"``, ``"auroc"``, ...).
        per_example: instead of the mean over the rows of each (layer, head), an array [example, layer, head]
            with one slice per prompt (per (seed, example) of a run, in the order they first appear).

    Returns:
        A DataFrame indexed by ``layer`` with one column per ``head`` (the mean over seeds or prompts), or, with
        `per_example`, a NumPy array [example, layer, head].

    Examples:
        >>> import anchorlens as al
        >>> model = al.random_model()
        >>> _, prompts = al.task_prompts(model, "sst2", 42, n_test=2)
        >>> frame = al.saliency(model, prompts, per_head=True)
        >>> al.head_grid(frame, "S_pq").shape  # [layer, head]
        (2, 4)
    """
    if value not in frame.columns:
        raise InvalidConfigError(f"the frame has no column {value!r}; its columns are {list(frame.columns)}")
    heads = per_head_rows(frame)
    if heads.empty:
        raise InvalidConfigError("the frame has no per-head rows; make it with per_head=True (CLI: --per-head)")
    for column in ("task", "model"):
        if column in heads.columns and heads[column].nunique() > 1:
            raise InvalidConfigError(
                f"the frame holds several {column}s ({', '.join(map(str, heads[column].unique()))}); lay out one: "
                f"head_grid(frame[frame[{column!r}] == ...], {value!r})"
            )
    if not per_example:
        return heads.pivot_table(index="layer", columns="head", values=value, aggfunc="mean", dropna=False)
    if "example" not in heads.columns:
        raise InvalidConfigError("per_example needs per-example rows (an `example` column), e.g. result.examples")
    units = [column for column in ("seed", "example") if column in heads.columns]
    order = heads[units].drop_duplicates()
    layers, n_heads = sorted(heads["layer"].unique()), int(heads["head"].max()) + 1
    indexed = heads.set_index([*units, "layer", "head"])[value]
    cells = pd.MultiIndex.from_tuples(
        [(*unit, layer, head) for unit in order.itertuples(index=False) for layer in layers for head in range(n_heads)],
        names=[*units, "layer", "head"],
    )
    return indexed.reindex(cells).to_numpy(dtype=float).reshape(len(order), len(layers), n_heads)


# ------------------------------------------------------------------- analyses of any prompts (public API)


def checked_prompts(model: Model, prompts: Prompts, *, what: str, need_gold: str | None = None) -> list[Prompt]:
    """`prompts` (a list of `Prompt`s, one `Prompt` or a `PromptBatch`) as a list, checked against `model`
    before any work: one set of label words, token ids in the model's vocabulary, lengths within its context,
    and, with `need_gold` (why the analysis needs it), a gold label on every prompt. The model's attention hooks
    are verified too (`verify_attention_hooks`; once per model). `what` names the analysis in messages."""
    if isinstance(prompts, PromptBatch):
        prompts = list(prompts.prompts)
    elif isinstance(prompts, Prompt):
        prompts = [prompts]
    elif isinstance(prompts, (str, bytes)) or not hasattr(prompts, "__iter__"):
        raise InvalidConfigError(
            f"{what} takes a list of prompts (or a PromptBatch), got a {type(prompts).__name__}; build them with "
            "anchorlens.build_prompt or anchorlens.task_prompts"
        )
    prompts = list(prompts)
    if not prompts:
        raise InvalidConfigError(
            f"{what} needs at least one prompt; build them with anchorlens.build_prompt or anchorlens.task_prompts"
        )
    for index, prompt in enumerate(prompts):
        if not isinstance(prompt, Prompt):
            raise InvalidConfigError(
                f"{what}: item {index} is a {type(prompt).__name__}, not a Prompt; build prompts with "
                "anchorlens.build_prompt or anchorlens.task_prompts"
            )
        if prompt.label_token_ids != prompts[0].label_token_ids:
            raise LabelWordError(
                f"{what} compares prompts class by class, but prompt {index} has other label tokens "
                f"{list(prompt.label_token_ids)} than prompt 0 {list(prompts[0].label_token_ids)}; analyse the "
                "prompts of one task together, or build them all with the same label_words=[...] (same order)"
            )
    d_vocab, n_ctx = int(model.cfg.d_vocab), int(model.cfg.n_ctx)
    for index, prompt in enumerate(prompts):
        largest = max(prompt.token_ids + prompt.label_token_ids)
        if largest >= d_vocab:
            raise TokenizationError(
                f"prompt {index} holds token id {largest}, outside this model's vocabulary of {d_vocab}: it was built "
                "with another tokenizer; build it with this model (anchorlens.build_prompt(model, ...))"
            )
        if prompt.length > n_ctx:
            raise PromptTooLongError(
                f"prompt {index} is {prompt.length} tokens, longer than the model's context of {n_ctx}; use fewer or "
                "shorter demonstrations (anchorlens.build_prompt(model, ...) checks this)"
            )
        if need_gold and prompt.query_label is None:
            raise InvalidConfigError(
                f"{what} needs each prompt's gold label ({need_gold}), and prompt {index} has none; build it with "
                "build_prompt(..., query_label=<label word or class id>)"
            )
    if _PREPARED_MODEL.get() is not model:  # a prepared run has verified and warned once already
        verify_attention_hooks(model)
        warn_if_value_biases_folded(model)
    return prompts


def example_ids(prompts: list[Prompt]) -> Int[np.ndarray, " example"]:
    """The ``example`` column of the analyses: each prompt's ``example_index`` (its row in the task's split)
    where it has one, else its position in the list."""
    return np.asarray(
        [place if prompt.example_index is None else prompt.example_index for place, prompt in enumerate(prompts)],
        dtype=np.int64,
    )


def gold_ids(prompts: list[Prompt]) -> Int[np.ndarray, " example"]:
    """Each prompt's gold class, -1 where it has none (as `PromptBatch.gold`)."""
    return np.asarray([-1 if prompt.query_label is None else prompt.query_label for prompt in prompts], dtype=np.int64)


def in_prompt_order(
    model: Model,
    prompts: list[Prompt],
    compute: Callable[[PromptBatch], tuple[torch.Tensor, ...]],
    *,
    batch_size: int,
    max_tokens: int | None = None,
    progress: bool = False,
) -> tuple[torch.Tensor, ...]:
    """Run `compute` over length-sorted `batches` of `prompts` and put its per-prompt outputs (tensors whose
    first dimension is the batch) back in the order of `prompts`: row i of each output belongs to prompts[i],
    whatever batch it ran in (a prompt listed twice fills both rows)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidConfigError(f"batch_size must be an integer of at least 1, got {batch_size!r}")
    places: dict[int, list[int]] = {}
    for place, prompt in enumerate(prompts):
        places.setdefault(id(prompt), []).append(place)
    order: list[int] = []
    outputs: list[tuple[torch.Tensor, ...]] = []
    for batch in batches(model, prompts, batch_size, progress=progress, max_tokens=max_tokens):
        outputs.append(tuple(compute(batch)))
        order.extend(places[id(prompt)].pop(0) for prompt in batch.prompts)
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order))
    return tuple(torch.cat(parts)[inverse] for parts in zip(*outputs))


@dataclass(frozen=True)
class SeedOutput:
    """What one seed of an experiment leaves: the seed's rows (one per layer / condition / method) and the
    per-example rows they summarise (one per test input × layer / condition / method, with at least
    ``example`` (the test row index), ``gold`` and the prediction). `run_seeds` adds task, model and seed."""

    rows: pd.DataFrame
    examples: pd.DataFrame


#: An experiment's function of one seed, and the results folder a run may save into.
OneSeed = Callable[[int], SeedOutput]
Folder = str | Path | None


@dataclass(frozen=True)
class SeedRuns:
    """The rows and per-example rows of every requested seed, and the config (model name resolved)."""

    rows: pd.DataFrame
    examples: pd.DataFrame
    config: ExperimentConfig


def _tagged(frame: pd.DataFrame, task: str, model: str, seed: int) -> pd.DataFrame:
    frame = frame.reset_index(drop=True).copy()
    for column, value in (("seed", seed), ("model", model), ("task", task)):
        if column in frame.columns:
            frame = frame.drop(columns=column)
        frame.insert(0, column, value)
    return frame


def run_seeds(
    experiment: str,
    model: Model,
    task: Task,
    config: ExperimentConfig,
    one_seed: Callable[[int], SeedOutput],
    *,
    out: str | Path | None,
    progress: bool,
) -> SeedRuns:
    """Run `one_seed` for each seed not yet saved under `out`, writing each part as soon as it is done.

    `model`, `task`, `config` and `out` are a prepared run's (`anchorlens.preparation.prepare_runs`: the task
    resolved, the config with the model's recorded name, the folder checked, the hooks verified). Returns the
    rows and per-example rows of all requested seeds (saved ones read back and verified), with ``task``,
    ``model`` and ``seed`` columns first, and the config.
    """
    model_name = recorded_model_name(model)  # = config.model, which the preparation has set
    # the preparation checked the folder against these settings: the store does not check it again
    store = ResultStore(out, experiment, config.signature(), checked=True) if out is not None else None
    rows, examples = [], []

    def compute(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        output = one_seed(seed)
        if isinstance(output, pd.DataFrame):  # TRANSITION: experiments not yet returning SeedOutput
            output = SeedOutput(output, pd.DataFrame({"example": []}))
        return (
            _tagged(output.rows, task.name, model_name, seed),
            _tagged(output.examples, task.name, model_name, seed),
        )

    seeds = tqdm(config.seeds, desc=f"{experiment} {task.name}", disable=not progress, leave=False)
    for seed in seeds:
        if store is None:
            seed_rows, seed_examples = compute(seed)
        elif store.done(task.name, seed):
            part = store.load_part(task.name, seed)
            seed_rows, seed_examples = part.rows, part.examples
        else:
            with store.lock(task.name, seed):
                if store.done(task.name, seed):  # another run on this folder finished it while we waited
                    part = store.load_part(task.name, seed)
                    seed_rows, seed_examples = part.rows, part.examples
                else:
                    began = time.perf_counter()
                    seed_rows, seed_examples = compute(seed)
                    store.write_part(
                        task.name,
                        seed,
                        seed_rows,
                        seed_examples,
                        seconds=time.perf_counter() - began,
                        provenance=run_provenance(model),
                    )
        rows.append(seed_rows)
        examples.append(seed_examples)
    return SeedRuns(pd.concat(rows, ignore_index=True), pd.concat(examples, ignore_index=True), config)


#: The model of the prepared run in progress (`anchorlens.preparation.run_prepared`): its hooks were verified
#: and its biases warned of when the run was prepared, so the analyses it calls do not do it again.
_PREPARED_MODEL: contextvars.ContextVar[Model | None] = contextvars.ContextVar("prepared_model", default=None)


@contextlib.contextmanager
def prepared_model(model: Model) -> Iterator[None]:
    """Inside the block, `checked_prompts` leaves `model`'s hook check and bias warning to the preparation."""
    token = _PREPARED_MODEL.set(model)
    try:
        yield
    finally:
        _PREPARED_MODEL.reset(token)


#: Set while `anchorlens.orchestrate.run_experiment` runs task after task into one folder: it writes the combined
#: outputs once at the end, so the run functions leave them to it.
_OUTPUTS_DEFERRED: contextvars.ContextVar[bool] = contextvars.ContextVar("outputs_deferred", default=False)


@contextlib.contextmanager
def outputs_deferred() -> Iterator[None]:
    """Inside the block, ``run_*(..., out=DIR)`` writes its parts but not the folder's combined outputs."""
    token = _OUTPUTS_DEFERRED.set(True)
    try:
        yield
    finally:
        _OUTPUTS_DEFERRED.reset(token)


def finish_run(result: ResultT, out: str | Path | None) -> ResultT:
    """A run function's last step: with `out`, write the folder's combined outputs, exactly as the command line
    does (`anchorlens.outputs.write_outputs`: tables of everything in the folder, figures, README.md)."""
    if out is not None and not _OUTPUTS_DEFERRED.get():
        from anchorlens.outputs import write_outputs

        write_outputs(result.experiment, out, result.config)
    return result


@dataclass(frozen=True)
class ExperimentResult:
    """A tidy table, the per-example rows it summarises, and the config that made them. Subclasses name the
    experiment and add derived views."""

    frame: pd.DataFrame
    config: ExperimentConfig
    #: One row per test input (× layer / condition / method): task, model, seed, example, gold, prediction, ...
    examples: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame, repr=False)

    experiment: ClassVar[str] = "experiment"
    config_class: ClassVar[type[ExperimentConfig]] = ExperimentConfig
    #: The per-example columns the summary averages, and the columns (besides task and model) it groups by.
    example_values: ClassVar[tuple[str, ...]] = ()
    example_keys: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def derive(cls, frame: pd.DataFrame) -> pd.DataFrame:
        """Columns computed across seeds (e.g. R_l); the identity unless an experiment needs some."""
        return frame

    @classmethod
    def from_frame(
        cls: type[ResultT],
        frame: pd.DataFrame,
        config: ExperimentConfig | None = None,
        examples: pd.DataFrame | None = None,
    ) -> ResultT:
        return cls(
            cls.derive(frame),
            config if config is not None else cls.config_class(),
            examples if examples is not None else pd.DataFrame(),
        )

    @classmethod
    def from_run(cls: type[ResultT], run: SeedRuns) -> ResultT:
        return cls.from_frame(run.rows, run.config, run.examples)

    @classmethod
    def from_folder(cls: type[ResultT], directory: str | Path, config: ExperimentConfig | None = None) -> ResultT:
        """Every finished, verified (task, seed) part in an output folder, as one result (config from the
        folder's manifest unless given). A damaged part, or one the folder's tables were made of whose record is
        gone, is a one-line `InvalidConfigError` (only a run can recompute it; a result without it would be
        another result)."""
        part = read_parts(directory, cls.experiment)
        if config is None:
            signature = read_manifest(Path(directory))["experiments"][cls.experiment]
            config = cls.config_class.from_signature(signature, tuple(sorted(part.rows["seed"].unique().tolist())))
        return cls.from_frame(part.rows, config, part.examples)

    @classmethod
    def load(cls, directory: str | Path, config: ExperimentConfig | None = None) -> ExperimentResult:
        """Read back what `save` wrote, verified against the parts it was made from (`saved_files`)."""
        files = cls.saved_files(directory)
        table = files.get(f"{cls.experiment}.csv")
        if table is None:
            raise DataFileError(
                f"{Path(directory) / (cls.experiment + '.csv')} does not exist; rerun `anchorlens {cls.experiment}` "
                "into that folder"
            )
        examples_data = files.get(f"{cls.experiment}_examples.parquet")
        examples = pd.read_parquet(io.BytesIO(examples_data)) if examples_data is not None else pd.DataFrame()
        return cls(pd.read_csv(io.BytesIO(table)), config or cls.config_class(), examples)

    @classmethod
    def saved_files(cls, directory: str | Path) -> dict[str, bytes]:
        """File name → content of the combined files of this experiment in `directory`, as they are to be read.

        In a folder made by a run, the files are checked against the record `save` wrote beside them (each file's
        sha256, the parts they were made of, the settings; `anchorlens.runs.combined_problem`). Files that do
        not match (cut, edited, another run's or model's copied in, parts changed since) are recomputed from
        the verified parts, with a `StaleResultsWarning` naming the problem, and nothing is written; with no
        verified part left it is a one-line `DataFileError`. A folder of hand-made tables is read as it is.
        """
        directory = Path(directory)
        problem = combined_problem(directory, cls.experiment)
        if problem is None:
            files = {}
            for name in combined_names(cls.experiment):
                path = directory / name
                if path.is_file():
                    try:
                        files[name] = path.read_bytes()
                    except OSError as error:
                        raise DataFileError(f"{path} cannot be read ({error.strerror or error})") from None
            return files
        try:
            recomputed = cls.from_folder(directory)
        except InvalidConfigError as error:
            raise DataFileError(
                f"the {cls.experiment} tables in {directory} cannot be used ({problem}) and cannot be recomputed "
                f"({error})"
            ) from None
        warnings.warn(
            f"the {cls.experiment} tables in {directory} were not read: {problem}; recomputed from its verified "
            f"parts (rerun `anchorlens {cls.experiment}` into that folder to rewrite them)",
            StaleResultsWarning,
            stacklevel=2,
        )
        return recomputed.file_contents()

    @classmethod
    def record_saved(cls, directory: str | Path, *, rtol: float = 1e-9) -> None:
        """Write the record `save` writes for combined files saved before records existed (or whose record was
        lost), after checking them against a recomputation from the verified parts: each file present must hold
        the recomputed table, numbers equal to `rtol` (summing in another order moves the last bits). A file that
        differs is a one-line `DataFileError` naming it; rerun the experiment into the folder to rewrite it."""
        directory = Path(directory)
        recomputed = cls.from_folder(directory).file_contents()
        found = {}
        for name in combined_names(cls.experiment):
            path = directory / name
            if not path.is_file() or path.is_symlink():
                if name in recomputed:
                    raise DataFileError(f"{path} is missing; rerun `anchorlens {cls.experiment}` into that folder")
                continue
            found[name] = path.read_bytes()
            if name not in recomputed or not _same_table(name, found[name], recomputed[name], rtol):
                raise DataFileError(
                    f"{path} does not hold what its parts give; rerun `anchorlens {cls.experiment}` into that folder"
                )
        write_combined_record(directory, cls.experiment, found)

    def file_contents(self) -> dict[str, bytes]:
        """File name → content of what `save` writes: ``<experiment>.csv`` and ``.parquet``, and with
        per-example rows ``<experiment>_examples.parquet`` and ``<experiment>_summary.csv``."""
        frame = self.to_frame()
        files = {
            f"{self.experiment}.csv": frame.to_csv(index=False).encode("utf-8"),
            f"{self.experiment}.parquet": parquet_bytes(frame),
        }
        if not self.examples.empty:
            files[f"{self.experiment}_examples.parquet"] = parquet_bytes(self.examples)
            files[f"{self.experiment}_summary.csv"] = self.summary_with_ci().to_csv(index=False).encode("utf-8")
        return files

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()

    def summary(self) -> pd.DataFrame:
        return self.to_frame()

    def report_table(self) -> pd.DataFrame:
        """The short table a report shows; experiments override it with their paper-style view."""
        return self.summary()

    def summary_with_ci(self) -> pd.DataFrame:
        """The summary means with 95% seed-level intervals, floored by the test inputs' error (`anchorlens.stats`):
        long form, ``task, model, <keys>, metric, mean, ci_low, ci_high, n_seeds, n_examples``."""
        if self.examples.empty or not self.example_values:
            return pd.DataFrame()
        return means_with_ci(self.examples, ["task", "model", *self.example_keys], self.example_values)

    def save(self, directory: str | Path) -> Path:
        """Write ``<experiment>.csv`` (+ ``.parquet``), ``<experiment>_examples.parquet`` and
        ``<experiment>_summary.csv`` into `directory`, each atomically, then ``<experiment>.record.json`` (their
        sha256 and those of the parts they were made of, which `load` and `saved_files` check); returns the CSV
        path."""
        directory = Path(directory)
        files = self.file_contents()
        for name, data in files.items():
            atomic_write_bytes(directory / name, data)
        write_combined_record(directory, self.experiment, files)  # last: files without it are recomputed on reading
        return directory / f"{self.experiment}.csv"


def _same_table(name: str, saved: bytes, recomputed: bytes, rtol: float) -> bool:
    """Whether two contents of a combined file hold the same table, numbers equal to `rtol`."""
    read = pd.read_parquet if name.endswith(".parquet") else pd.read_csv
    try:
        pd.testing.assert_frame_equal(
            read(io.BytesIO(saved)), read(io.BytesIO(recomputed)), check_dtype=False, rtol=rtol, atol=1e-12
        )
    except AssertionError:
        return False
    return True
