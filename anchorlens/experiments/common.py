"""What every experiment shares: the config fields, the seed loop with resuming, and the result shape."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import torch
from tqdm.auto import tqdm

from anchorlens.errors import InvalidConfigError
from anchorlens.files import write_frame, write_parquet
from anchorlens.hooks import verify_attention_hooks
from anchorlens.model_classes import recorded_model_name, warn_if_value_biases_folded
from anchorlens.prompts import Prompt, PromptBatch, make_batch
from anchorlens.runs import ResultStore, read_manifest, read_parts
from anchorlens.stats import bootstrap_means
from anchorlens.tasks import Task, get_task


def setting(
    default: Any = dataclasses.MISSING,
    help_text: str = "",
    *,
    flag: str | bool | None = True,
    default_text: str | None = None,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
) -> Any:
    """A config field that carries its own help text: the one source of a setting's default and meaning.

    The command line generates its options from these fields (`anchorlens.cli.add_config_options`): `flag` is the
    field's option, True for ``--field-name``, a string for another name (``--shots``), None for a field set in
    Python only. `default_text` describes a default the value alone does not say (None, a default factory).
    """
    metadata = {"help": help_text, "flag": flag, "default_text": default_text}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


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


@dataclass(frozen=True)
class ExperimentConfig:
    """Fields every experiment has. Subclasses add their own; all are validated on construction.

    ``model`` is the name results are recorded under. Leave it None: the run function takes it from the loaded
    model (`anchorlens.model_classes.recorded_model_name`); a name given here must be that model's, or the run
    is refused. ``n_test`` is the number of test inputs per seed (capped at the split size and the task's
    1000); None takes them all.
    """

    model: str | None = setting(
        None, "the name results are recorded under; None takes the loaded model's, a name must be that", flag=None
    )
    seeds: tuple[int, ...] = setting((42, 43, 44), "seeds (paper: 42 43 44 45 46)")
    n_test: int | None = setting(
        200, "test inputs per seed, at most the test split and the task's 1000 (paper 1000; None, in Python: all)"
    )
    batch_size: int = setting(8, "prompts per forward pass (changes no number)")
    shots_per_class: int = setting(1, "demonstrations per class", flag="--shots")

    #: Fields that do not change the numbers: a run may resume with other values.
    RESUMABLE_FIELDS: ClassVar[tuple[str, ...]] = ("seeds", "batch_size")

    def __post_init__(self) -> None:
        object.__setattr__(self, "seeds", tuple(int(seed) for seed in self.seeds))
        if not self.seeds:
            raise InvalidConfigError("give at least one seed (the paper uses 42 43 44 45 46)")
        if min(self.seeds) < 0:
            raise InvalidConfigError(f"seeds must be 0 or more, got {min(self.seeds)} (the paper uses 42 43 44 45 46)")
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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def signature(self) -> dict[str, Any]:
        """The settings that decide the numbers: results made with another signature are not mixed in."""
        return {k: v for k, v in self.to_dict().items() if k not in self.RESUMABLE_FIELDS}

    def for_model(self, model) -> ExperimentConfig:
        """This config with ``model`` set to the loaded model's recorded name; refused if it names another."""
        name = recorded_model_name(model)
        if self.model is not None and self.model != name:
            raise InvalidConfigError(
                f"the config names model {self.model!r}, but the model passed is {name!r}; results are recorded "
                "under the model that made them: leave config.model unset (None) or load the model it names"
            )
        return self if self.model == name else dataclasses.replace(self, model=name)

    @classmethod
    def from_signature(cls, signature: dict[str, Any], seeds: tuple[int, ...] | None = None) -> ExperimentConfig:
        """The config a saved signature describes (lists read back from JSON become tuples)."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in signature.items() if k in names}
        if seeds:
            values["seeds"] = tuple(seeds)
        return cls(**values)


def device_of(model) -> torch.device:
    return next(model.parameters()).device


def pad_token_id(model) -> int:
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
        if fits:
            current.append(prompt)
        else:
            groups.append([prompt])
    return groups


def batches(
    model, prompts: list[Prompt], batch_size: int, *, progress: bool = False, max_tokens: int | None = None
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


@dataclass(frozen=True)
class SeedOutput:
    """What one seed of an experiment leaves: the seed's rows (one per layer / condition / method) and the
    per-example rows they summarise (one per test input × layer / condition / method, with at least
    ``example`` (the test row index), ``gold`` and the prediction). `run_seeds` adds task, model and seed."""

    rows: pd.DataFrame
    examples: pd.DataFrame


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
    model,
    task: Task | str,
    config: ExperimentConfig,
    one_seed: Callable[[int], SeedOutput],
    *,
    out: str | Path | None,
    progress: bool,
) -> SeedRuns:
    """Run `one_seed` for each seed not yet saved under `out`, writing each part as soon as it is done.

    Returns the rows and per-example rows of all requested seeds (saved ones read back and verified), with
    ``task``, ``model`` and ``seed`` columns first, and the config with the model's recorded name.
    """
    task = get_task(task)
    config = config.for_model(model)
    verify_attention_hooks(model)
    warn_if_value_biases_folded(model)
    store = ResultStore(out, experiment, config.signature()) if out is not None else None
    rows, examples = [], []

    def compute(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        output = one_seed(seed)
        if isinstance(output, pd.DataFrame):  # TRANSITION: experiments not yet returning SeedOutput
            output = SeedOutput(output, pd.DataFrame({"example": []}))
        return (
            _tagged(output.rows, task.name, config.model, seed),
            _tagged(output.examples, task.name, config.model, seed),
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
                    store.write_part(task.name, seed, seed_rows, seed_examples, seconds=time.perf_counter() - began)
        rows.append(seed_rows)
        examples.append(seed_examples)
    return SeedRuns(pd.concat(rows, ignore_index=True), pd.concat(examples, ignore_index=True), config)


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
        cls, frame: pd.DataFrame, config: ExperimentConfig | None = None, examples: pd.DataFrame | None = None
    ) -> ExperimentResult:
        return cls(
            cls.derive(frame),
            config if config is not None else cls.config_class(),
            examples if examples is not None else pd.DataFrame(),
        )

    @classmethod
    def from_run(cls, run: SeedRuns) -> ExperimentResult:
        return cls.from_frame(run.rows, run.config, run.examples)

    @classmethod
    def from_folder(cls, directory: str | Path, config: ExperimentConfig | None = None) -> ExperimentResult:
        """Every finished, verified (task, seed) part in an output folder, as one result (config from the
        folder's manifest unless given)."""
        part = read_parts(directory, cls.experiment)
        if config is None:
            signature = read_manifest(Path(directory))["experiments"][cls.experiment]
            config = cls.config_class.from_signature(signature, tuple(sorted(part.rows["seed"].unique().tolist())))
        return cls.from_frame(part.rows, config, part.examples)

    @classmethod
    def load(cls, directory: str | Path, config: ExperimentConfig | None = None) -> ExperimentResult:
        """Read back what `save` wrote."""
        directory = Path(directory)
        examples_path = directory / f"{cls.experiment}_examples.parquet"
        examples = pd.read_parquet(examples_path) if examples_path.is_file() else pd.DataFrame()
        return cls(pd.read_csv(directory / f"{cls.experiment}.csv"), config or cls.config_class(), examples)

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()

    def summary(self) -> pd.DataFrame:
        return self.to_frame()

    def report_table(self) -> pd.DataFrame:
        """The short table a report shows; experiments override it with their paper-style view."""
        return self.summary()

    def summary_with_ci(self) -> pd.DataFrame:
        """The summary means with 95% bootstrap intervals over seeds and test inputs (`anchorlens.stats`):
        long form, ``task, model, <keys>, metric, mean, ci_low, ci_high, n_seeds, n_examples``."""
        if self.examples.empty or not self.example_values:
            return pd.DataFrame()
        return bootstrap_means(self.examples, ["task", "model", *self.example_keys], self.example_values)

    def save(self, directory: str | Path) -> Path:
        """Write ``<experiment>.csv`` (+ ``.parquet``), ``<experiment>_examples.parquet`` and
        ``<experiment>_summary.csv`` into `directory`, each atomically; returns the CSV path."""
        directory = Path(directory)
        path = directory / f"{self.experiment}.csv"
        frame = self.to_frame()
        write_frame(frame, path)
        write_parquet(frame, directory / f"{self.experiment}.parquet")
        if not self.examples.empty:
            write_parquet(self.examples, directory / f"{self.experiment}_examples.parquet")
            write_frame(self.summary_with_ci(), directory / f"{self.experiment}_summary.csv")
        return path
