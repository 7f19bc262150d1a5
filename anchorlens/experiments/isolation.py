"""Isolating label words in shallow or deep layers, with label and word loyalty (paper §2.2, Fig. 4; SPEC §2).

On pre-softmax scores every label-word row is blocked from attending to earlier tokens (self kept), in the
first k or the last k layers (k = 1, 3, 5, 7 by default, as in the paper's Fig. 4; its main result is k = 5).
Versus the un-isolated run:

* label loyalty: share of test inputs whose predicted label (argmax of the label logits) is unchanged;
* word loyalty: mean Jaccard overlap of the top-k full-vocabulary tokens at the target (paper k = 5).

The random control blocks, in each isolated layer, as many random non-label positions as the prompt has label
positions. They are drawn without replacement from the positions the paper's reference draws from: those before
the token preceding the target (positions < q - 1, so neither the target q nor the token q - 1 right before it),
other than label positions and other than a BOS (whose row has nothing earlier to block).

Each draw is keyed by (seed, test example, layer): ``np.random.default_rng([seed, prompt.example_index,
layer])``. So the draws do not depend on how prompts are batched or in which order batches run (batch size 1
and 8 give the same table), a resumed run never mixes draws, and a layer gets the same draw whatever k and
whether it is isolated as one of the first or one of the last k layers. A prompt without an ``example_index``
(built outside `task_prompts`, e.g. for a benchmark) is keyed by its content instead: ``[seed, layer, *w]``
with w the eight 32-bit words of the SHA-256 of its token ids, just as independent of batching.

Everything is forward-only. Each seed leaves one row per (k, condition) and one per-example row per
(test input, k, condition): example, gold, base_prediction, prediction, label_loyalty (0/1), word_loyalty.
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from anchorlens.errors import InvalidConfigError
from anchorlens.experiments.common import ExperimentConfig, ExperimentResult, SeedOutput, batches, run_seeds, setting
from anchorlens.forward import run_to_target
from anchorlens.hooks import block_earlier_mask, isolation_hooks
from anchorlens.metrics import jaccard, label_agreement
from anchorlens.model_classes import supports_start_at_layer
from anchorlens.paper import ISOLATION_K
from anchorlens.prompts import Prompt, PromptBatch, Role, label_logits, prompt_settings, task_prompts
from anchorlens.tasks import Task, get_task

CONDITIONS = ("label_first", "label_last", "random_first", "random_last")


@dataclass(frozen=True)
class IsolationConfig(ExperimentConfig):
    k: tuple[int, ...] = setting(
        ISOLATION_K, "isolated layer counts (paper Fig. 4: 1 3 5 7; main result 5)", flag="--k"
    )
    word_top_k: int = setting(
        5, "top-k vocabulary tokens compared by word loyalty (paper 5; its reference notebook used 10)"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "k", tuple(int(k) for k in self.k))
        if not self.k or min(self.k) < 1:
            raise InvalidConfigError(
                f"k must be one or more positive layer counts, got {self.k} (the paper uses 1 3 5 7)"
            )
        if len(set(self.k)) != len(self.k):
            raise InvalidConfigError(f"k repeats: {self.k}; give each layer count once")
        if self.word_top_k < 1:
            raise InvalidConfigError(f"word_top_k must be at least 1, got {self.word_top_k}")


def random_candidates(prompt: Prompt) -> list[int]:
    """Positions the random control may block: before the token preceding the target, not a label, not BOS."""
    anchors = set(prompt.demonstration_label_positions)
    return [p for p in range(prompt.target_position - 1) if p not in anchors and prompt.roles[p] != Role.BOS]


def draw_key(prompt: Prompt, seed: int, layer: int) -> list[int]:
    """The entropy a random draw is seeded with: (seed, test example, layer), never anything about batching.

    Without an example index the prompt's token ids stand in for it (a different length of key, so the two
    kinds cannot coincide)."""
    if prompt.example_index is not None:
        return [seed, prompt.example_index, layer]
    digest = hashlib.sha256(np.asarray(prompt.token_ids, dtype=np.int64).tobytes()).digest()
    return [seed, layer, *np.frombuffer(digest, dtype=np.uint32).tolist()]


def random_positions(prompt: Prompt, seed: int, layer: int) -> tuple[int, ...]:
    """The random control's rows for one prompt in one layer: as many as it has label positions (fewer only if
    there are not that many candidates), drawn by a generator keyed by (seed, example, layer)."""
    candidates = random_candidates(prompt)
    count = min(len(prompt.demonstration_label_positions), len(candidates))
    generator = np.random.default_rng(draw_key(prompt, seed, layer))
    return tuple(sorted(int(p) for p in generator.choice(candidates, size=count, replace=False)))


def random_rows(batch: PromptBatch, seed: int, layer: int) -> list[tuple[int, ...]]:
    """`random_positions` of every prompt in the batch for one layer."""
    return [random_positions(prompt, seed, layer) for prompt in batch.prompts]


def isolation_layers(n_layers: int, k: int, where: str) -> list[int]:
    if k > n_layers:
        raise InvalidConfigError(
            f"k={k} is more than the model's {n_layers} layers; give layer counts of at most {n_layers} "
            "(IsolationConfig(k=...) or --k)"
        )
    return list(range(k)) if where == "first" else list(range(n_layers - k, n_layers))


@dataclass(frozen=True)
class BatchLoyalty:
    """One batch's per-prompt outcome: the un-isolated prediction, and per (k, condition) the edited
    prediction, label loyalty (0/1) and word loyalty (Jaccard), each a CPU tensor over the batch."""

    base_prediction: Int[Tensor, " batch"]
    by_condition: dict[tuple[int, str], tuple[Int[Tensor, " batch"], Float[Tensor, " batch"], Float[Tensor, " batch"]]]


def loyalty_of_batch(model, batch: PromptBatch, config: IsolationConfig, seed: int) -> BatchLoyalty:
    """Every (k, condition) of one batch, with random draws keyed by (seed, example, layer).

    The conditions on the last k layers restart from the un-isolated run's residual stream before layer
    L - k, since nothing earlier differs: about half the forward passes of this experiment are saved. A
    TransformerBridge cannot start at a layer, so there they run from the tokens (the same numbers).
    Each mask is built once per batch: the label mask is shared by every layer, and a layer's random mask by
    every k and both ends.
    """
    n_layers = model.cfg.n_layers
    label_blocked = block_earlier_mask(batch, [p.demonstration_label_positions for p in batch.prompts])
    random_blocked: dict[int, Bool[Tensor, "batch query key"]] = {}

    def random_mask(layer: int) -> Bool[Tensor, "batch query key"]:
        if layer not in random_blocked:
            random_blocked[layer] = block_earlier_mask(batch, random_rows(batch, seed, layer))
        return random_blocked[layer]

    restarts = supports_start_at_layer(model)
    restart_layers = sorted({n_layers - k for k in config.k}) if restarts else []
    saved: dict[int, torch.Tensor] = {}

    def keep(layer: int):
        def hook(residual: torch.Tensor, hook) -> None:
            saved[layer] = residual.detach()

        return hook

    with torch.no_grad():
        logits = run_to_target(
            model, batch, [(f"blocks.{layer}.hook_resid_pre", keep(layer)) for layer in restart_layers]
        )
        base_prediction = label_logits(logits, batch).argmax(-1)
        base_top = logits.topk(config.word_top_k, dim=-1).indices
        out = {}
        for k in config.k:
            for condition in CONDITIONS:
                kind, where = condition.split("_")
                layers = isolation_layers(n_layers, k, where)
                masks = {layer: label_blocked if kind == "label" else random_mask(layer) for layer in layers}
                restart = (
                    {"start_at_layer": layers[0], "residual": saved[layers[0]]} if where == "last" and restarts else {}
                )
                edited = run_to_target(model, batch, isolation_hooks(masks), **restart)
                prediction = label_logits(edited, batch).argmax(-1)
                top = edited.topk(config.word_top_k, dim=-1).indices
                out[(k, condition)] = (
                    prediction.cpu(),
                    label_agreement(prediction, base_prediction).cpu(),
                    jaccard(top, base_top).cpu(),
                )
    return BatchLoyalty(base_prediction.cpu(), out)


@dataclass(frozen=True)
class IsolationResult(ExperimentResult):
    """Rows: task, model, seed, k, condition, label_loyalty, word_loyalty, n.

    Per-example rows: task, model, seed, example, gold, k, condition, base_prediction, prediction,
    label_loyalty (0/1), word_loyalty (Jaccard)."""

    experiment: ClassVar[str] = "isolation"
    config_class: ClassVar[type[ExperimentConfig]] = IsolationConfig
    example_values: ClassVar[tuple[str, ...]] = ("label_loyalty", "word_loyalty")
    example_keys: ClassVar[tuple[str, ...]] = ("k", "condition")

    def summary(self) -> pd.DataFrame:
        grouped = self.frame.groupby(["task", "model", "k", "condition"])[["label_loyalty", "word_loyalty"]]
        return grouped.agg(["mean", "std"]).reset_index()


def run_isolation(
    model,
    task: Task | str,
    config: IsolationConfig = IsolationConfig(),
    *,
    out: str | Path | None = None,
    progress: bool = True,
) -> IsolationResult:
    """Label and word loyalty under isolation for each seed, k and condition, and for each test input."""
    task = get_task(task)
    requested = config
    if config.k == ISOLATION_K and max(ISOLATION_K) > model.cfg.n_layers:
        # The paper's default on a shallow model: run the k it has rather than refuse the default. The results
        # keep the requested settings (so a resumed run matches); the rows show which k ran.
        kept = tuple(k for k in ISOLATION_K if k <= model.cfg.n_layers) or (model.cfg.n_layers,)
        warnings.warn(
            f"the model has {model.cfg.n_layers} layers: isolation runs k = {kept} of the paper's {ISOLATION_K}",
            stacklevel=2,
        )
        config = dataclasses.replace(config, k=kept)
    for k in config.k:
        isolation_layers(model.cfg.n_layers, k, "first")  # fail before any work

    def one_seed(seed: int) -> SeedOutput:
        _, prompts = task_prompts(
            model.tokenizer,
            task,
            seed,
            n_test=config.n_test,
            shots_per_class=config.shots_per_class,
            **prompt_settings(model),
        )
        examples, gold, base = [], [], []
        collected: dict[tuple[int, str], list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {}
        for batch in batches(model, prompts, config.batch_size, progress=progress):
            outcome = loyalty_of_batch(model, batch, config, seed)
            examples.extend(prompt.example_index for prompt in batch.prompts)
            gold.append(batch.gold.cpu())
            base.append(outcome.base_prediction)
            for key, values in outcome.by_condition.items():
                collected.setdefault(key, []).append(values)
        # Rows in test-example order, whatever order the batches ran in.
        order = np.argsort(np.asarray(examples), kind="stable")
        examples_sorted = np.asarray(examples)[order]
        gold_sorted = torch.cat(gold).numpy()[order]
        base_sorted = torch.cat(base).numpy()[order]
        rows, per_example = [], []
        for k in config.k:
            for condition in CONDITIONS:
                prediction, label, word = (
                    torch.cat([v[i] for v in collected[(k, condition)]]).numpy()[order] for i in range(3)
                )
                per_example.append(
                    pd.DataFrame(
                        {
                            "example": examples_sorted,
                            "gold": gold_sorted,
                            "k": k,
                            "condition": condition,
                            "base_prediction": base_sorted,
                            "prediction": prediction,
                            "label_loyalty": label,
                            "word_loyalty": word,
                        }
                    )
                )
                rows.append(
                    {
                        "k": k,
                        "condition": condition,
                        "label_loyalty": float(label.mean()),
                        "word_loyalty": float(word.mean()),
                        "n": len(label),
                    }
                )
        return SeedOutput(pd.DataFrame(rows), pd.concat(per_example, ignore_index=True))

    return IsolationResult.from_run(
        run_seeds("isolation", model, task, requested, one_seed, out=out, progress=progress)
    )
