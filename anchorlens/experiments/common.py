"""What every experiment shares: the config fields, the seed loop with resuming, and the result shape."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import torch
from tqdm.auto import tqdm

from anchorlens.errors import InvalidConfigError
from anchorlens.hooks import verify_attention_hooks
from anchorlens.models import DEFAULT_MODEL
from anchorlens.prompts import Prompt, PromptBatch, make_batch
from anchorlens.runs import ResultStore, write_frame
from anchorlens.tasks import Task, get_task



@dataclass(frozen=True)
class ExperimentConfig:
    """Fields every experiment has. Subclasses add their own; all are validated on construction.

    ``model`` is the name recorded in the results (the run function takes the loaded model itself).
    ``n_test`` is the number of test inputs per seed (capped at the split size and the task's 1000);
    None takes them all.
    """

    model: str = DEFAULT_MODEL
    seeds: tuple[int, ...] = (42, 43, 44)
    n_test: int | None = 200
    batch_size: int = 8
    shots_per_class: int = 1

    #: Fields that do not change the numbers: a run may resume with other values.
    RESUMABLE_FIELDS: ClassVar[tuple[str, ...]] = ("seeds", "batch_size")

    def __post_init__(self) -> None:
        object.__setattr__(self, "seeds", tuple(int(seed) for seed in self.seeds))
        if not self.seeds:
            raise InvalidConfigError("give at least one seed (the paper uses 42 43 44 45 46)")
        if len(set(self.seeds)) != len(self.seeds):
            raise InvalidConfigError(f"seeds repeat: {self.seeds}; give each seed once")
        if self.n_test is not None and self.n_test < 1:
            raise InvalidConfigError(f"n_test must be at least 1, got {self.n_test} (omit it to use the whole test split)")
        if self.batch_size < 1:
            raise InvalidConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.shots_per_class < 1:
            raise InvalidConfigError(f"shots_per_class must be at least 1, got {self.shots_per_class}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def signature(self) -> dict[str, Any]:
        """The settings that decide the numbers: results made with another signature are not mixed in."""
        return {k: v for k, v in self.to_dict().items() if k not in self.RESUMABLE_FIELDS}


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
        fits = current is not None and len(current) < batch_size and (
            max_tokens is None or (len(current) + 1) * max(prompt.length, current[-1].length) <= max_tokens
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


def run_seeds(
    experiment: str,
    model,
    task: Task | str,
    config: ExperimentConfig,
    one_seed: Callable[[int], pd.DataFrame],
    *,
    out: str | Path | None,
    progress: bool,
) -> pd.DataFrame:
    """Run `one_seed` for each seed not yet saved under `out`, writing each part as soon as it is done.

    Returns the rows of all requested seeds (saved ones read back), with ``task``, ``model`` and ``seed``
    columns first.
    """
    task = get_task(task)
    verify_attention_hooks(model)
    store = ResultStore(out, experiment, config.signature()) if out is not None else None
    frames = []
    seeds = tqdm(config.seeds, desc=f"{experiment} {task.name}", disable=not progress, leave=False)
    for seed in seeds:
        if store is not None and store.done(task.name, seed):
            frames.append(store.load_part(task.name, seed))
            continue
        frame = one_seed(seed)
        frame.insert(0, "seed", seed)
        frame.insert(0, "model", config.model)
        frame.insert(0, "task", task.name)
        if store is not None:
            store.write_part(task.name, seed, frame)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class ExperimentResult:
    """A tidy table plus the config that made it. Subclasses name the experiment and add derived views."""

    frame: pd.DataFrame
    config: ExperimentConfig

    experiment: ClassVar[str] = "experiment"
    config_class: ClassVar[type[ExperimentConfig]] = ExperimentConfig

    @classmethod
    def derive(cls, frame: pd.DataFrame) -> pd.DataFrame:
        """Columns computed across seeds (e.g. R_l); the identity unless an experiment needs some."""
        return frame

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, config: ExperimentConfig | None = None) -> ExperimentResult:
        return cls(cls.derive(frame), config if config is not None else cls.config_class())

    @classmethod
    def from_folder(cls, directory: str | Path, config: ExperimentConfig | None = None) -> ExperimentResult:
        """Every finished (task, seed) part in an output folder, as one result."""
        store_parts = sorted((Path(directory) / "parts" / cls.experiment).glob("*.csv"))
        if not store_parts:
            raise InvalidConfigError(f"{directory} holds no finished {cls.experiment} results")
        return cls.from_frame(pd.concat([pd.read_csv(p) for p in store_parts], ignore_index=True), config)

    @classmethod
    def load(cls, directory: str | Path, config: ExperimentConfig | None = None) -> ExperimentResult:
        """Read back what `save` wrote."""
        return cls(pd.read_csv(Path(directory) / f"{cls.experiment}.csv"), config or cls.config_class())

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()

    def summary(self) -> pd.DataFrame:
        return self.to_frame()

    def report_table(self) -> pd.DataFrame:
        """The short table a report shows; experiments override it with their paper-style view."""
        return self.summary()

    def save(self, directory: str | Path) -> Path:
        """Write ``<experiment>.csv`` and ``<experiment>.parquet`` into `directory`; returns the CSV path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.experiment}.csv"
        frame = self.to_frame()
        write_frame(frame, path)
        frame.to_parquet(directory / f"{self.experiment}.parquet", index=False)
        return path
