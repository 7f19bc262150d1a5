"""Isolating label words in shallow or deep layers, with label and word loyalty (paper §2.2, Fig. 4; SPEC §2).

On pre-softmax scores every label-word row is blocked from attending to earlier tokens (self kept), in the
first k or the last k layers. The control blocks as many random non-label positions instead, drawn from the
positions before the target other than label positions (and other than a BOS, whose row has nothing earlier
to block), redrawn for every layer and prompt. Versus the un-isolated run:

* label loyalty: share of test inputs whose predicted label (argmax of the label logits) is unchanged;
* word loyalty: mean Jaccard overlap of the top-k full-vocabulary tokens at the target (paper k = 5).

Everything is forward-only; a prompt leaves its prediction and top-k tokens per condition.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch

from anchorlens.errors import InvalidConfigError
from anchorlens.experiments.common import ExperimentConfig, ExperimentResult, batches, run_seeds
from anchorlens.hooks import block_earlier_mask, isolation_hooks
from anchorlens.model_classes import supports_start_at_layer
from anchorlens.prompts import PromptBatch, Role, label_logits, prompt_settings, run_to_target, task_prompts
from anchorlens.tasks import Task, get_task

CONDITIONS = ("label_first", "label_last", "random_first", "random_last")


@dataclass(frozen=True)
class IsolationConfig(ExperimentConfig):
    #: Numbers of isolated layers (paper: 1, 3, 5, 7; main result 5).
    k: tuple[int, ...] = (5,)
    #: Top-k vocabulary tokens compared by word loyalty (paper 5; its reference notebook used 10).
    word_top_k: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "k", tuple(int(k) for k in self.k))
        if not self.k or min(self.k) < 1:
            raise InvalidConfigError(f"k must be one or more positive layer counts, got {self.k}")
        if self.word_top_k < 1:
            raise InvalidConfigError(f"word_top_k must be at least 1, got {self.word_top_k}")


def random_rows(batch: PromptBatch, generator: np.random.Generator) -> list[tuple[int, ...]]:
    """For each prompt, as many random non-label positions before the target as it has label positions."""
    rows = []
    for prompt in batch.prompts:
        anchors = set(prompt.demonstration_label_positions)
        candidates = [
            p for p in range(prompt.target_position) if p not in anchors and prompt.roles[p] != Role.BOS
        ]
        count = min(len(anchors), len(candidates))
        rows.append(tuple(int(p) for p in generator.choice(candidates, size=count, replace=False)))
    return rows


def isolation_layers(n_layers: int, k: int, where: str) -> list[int]:
    if k > n_layers:
        raise InvalidConfigError(f"k={k} is more than the model's {n_layers} layers")
    return list(range(k)) if where == "first" else list(range(n_layers - k, n_layers))


def _jaccard(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise Jaccard overlap of two [batch, k] sets of token ids."""
    inter = (a[:, :, None] == b[:, None, :]).any(-1).sum(-1).double()
    return inter / (a.shape[1] + b.shape[1] - inter)


def loyalty_of_batch(
    model, batch: PromptBatch, config: IsolationConfig, generator: np.random.Generator
) -> dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]]:
    """(k, condition) -> (label loyalty per prompt, word loyalty per prompt) for one batch.

    The conditions on the last k layers restart from the un-isolated run's residual stream before layer
    L - k, since nothing earlier differs: about half the forward passes of this experiment are saved. A
    TransformerBridge cannot start at a layer, so there they run from the tokens (the same numbers).
    """
    n_layers = model.cfg.n_layers
    label_blocked = block_earlier_mask(batch, [p.demonstration_label_positions for p in batch.prompts])
    restarts = supports_start_at_layer(model)
    restart_layers = sorted({n_layers - k for k in config.k}) if restarts else []
    saved: dict[int, torch.Tensor] = {}

    def keep(layer: int):
        def hook(residual: torch.Tensor, hook) -> None:
            saved[layer] = residual.detach()

        return hook

    with torch.no_grad():
        logits = run_to_target(model, batch, [(f"blocks.{layer}.hook_resid_pre", keep(layer)) for layer in restart_layers])
        base_prediction = label_logits(logits, batch).argmax(-1)
        base_top = logits.topk(config.word_top_k, dim=-1).indices
        out = {}
        for k in config.k:
            for condition in CONDITIONS:
                kind, where = condition.split("_")
                layers = isolation_layers(n_layers, k, where)
                if kind == "label":
                    masks = {layer: label_blocked for layer in layers}
                else:
                    masks = {layer: block_earlier_mask(batch, random_rows(batch, generator)) for layer in layers}
                restart = {"start_at_layer": layers[0], "residual": saved[layers[0]]} if where == "last" and restarts else {}
                edited = run_to_target(model, batch, isolation_hooks(masks), **restart)
                prediction = label_logits(edited, batch).argmax(-1)
                top = edited.topk(config.word_top_k, dim=-1).indices
                out[(k, condition)] = ((prediction == base_prediction).double().cpu(), _jaccard(top, base_top).cpu())
    return out


@dataclass(frozen=True)
class IsolationResult(ExperimentResult):
    """Rows: task, model, seed, k, condition, label_loyalty, word_loyalty, n."""

    experiment: ClassVar[str] = "isolation"
    config_class: ClassVar[type[ExperimentConfig]] = IsolationConfig

    def summary(self) -> pd.DataFrame:
        grouped = self.frame.groupby(["task", "model", "k", "condition"])[["label_loyalty", "word_loyalty"]]
        return grouped.agg(["mean", "std"]).reset_index()



def run_isolation(
    model, task: Task | str, config: IsolationConfig = IsolationConfig(), *, out: str | Path | None = None,
    progress: bool = True,
) -> IsolationResult:
    """Label and word loyalty under isolation for each seed, k and condition."""
    task = get_task(task)
    for k in config.k:
        isolation_layers(model.cfg.n_layers, k, "first")  # fail before any work

    def one_seed(seed: int) -> pd.DataFrame:
        _, prompts = task_prompts(model.tokenizer, task, seed, n_test=config.n_test,
                                  shots_per_class=config.shots_per_class, **prompt_settings(model))
        generator = np.random.default_rng(seed)  # random controls: reproducible per seed
        collected: dict[tuple[int, str], list[tuple[torch.Tensor, torch.Tensor]]] = {}
        for batch in batches(model, prompts, config.batch_size, progress=progress):
            for key, values in loyalty_of_batch(model, batch, config, generator).items():
                collected.setdefault(key, []).append(values)
        rows = []
        for (k, condition), values in collected.items():
            label = torch.cat([v[0] for v in values])
            word = torch.cat([v[1] for v in values])
            rows.append({"k": k, "condition": condition, "label_loyalty": label.mean().item(),
                         "word_loyalty": word.mean().item(), "n": len(label)})
        return pd.DataFrame(rows)

    return IsolationResult.from_run(run_seeds("isolation", model, task, config, one_seed, out=out, progress=progress))
