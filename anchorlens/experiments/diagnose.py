"""Error diagnosis from the geometry of label-word keys (paper §3.3, Fig. 6; SPEC §6).

At one deep layer the keys of the label words and the queries at the target (all heads concatenated) are
recorded inside the forward pass. A PCA with 10 components is fitted on the queries; each label key is
projected onto the components and scaled by the singular values (as the paper's notebook does: the
directions the queries vary along weigh more). Predicted confusion(i, j) = Euclidean distance between the
projected keys of classes i and j, divided by the largest distance; the diagonal is 1. Small values
predict classes the model confuses.

True confusion(i, j) = AUROC of p_i / p_j (label-token probabilities at the target) separating the test
inputs of gold class i from those of gold class j; diagonal 1. Both matrices say "well separated" with
values near 1, so the off-diagonal entries should correlate.

Keys and queries are those that meet in the attention score: after rotary embedding for rotary models
(``hook_rot_k``/``hook_rot_q``), else ``hook_k``/``hook_q``. With grouped-query attention each key head is
repeated for the query heads that read it, so key and query vectors line up head by head.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from scipy.spatial.distance import pdist, squareform
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

from anchorlens.errors import HookError, InvalidConfigError
from anchorlens.experiments.common import ExperimentConfig, ExperimentResult, batches, run_seeds
from anchorlens.prompts import PromptBatch, label_logits, prompt_settings, run_to_target, task_prompts
from anchorlens.tasks import Task, get_task


@dataclass(frozen=True)
class DiagnoseConfig(ExperimentConfig):
    #: Layer whose keys and queries are compared; None: two thirds of the depth (GPT2-XL: 32 of 48).
    layer: int | None = None
    n_components: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_components < 1:
            raise InvalidConfigError(f"n_components must be at least 1, got {self.n_components}")


def default_layer(n_layers: int) -> int:
    return round(n_layers * 2 / 3)


def _hook_names(model, layer: int) -> tuple[str, str]:
    rotated = model.cfg.positional_embedding_type == "rotary"
    key, query = ("hook_rot_k", "hook_rot_q") if rotated else ("hook_k", "hook_q")
    names = f"blocks.{layer}.attn.{key}", f"blocks.{layer}.attn.{query}"
    missing = [name for name in names if name not in model.hook_dict]
    if missing:  # e.g. a TransformerBridge of GPT-NeoX exposes no post-rotary keys and queries
        from anchorlens.model_classes import describe

        raise HookError(
            f"diagnose compares the keys and queries that meet in the attention score, and this {describe(model)} has "
            f"no hook point {missing[0]!r} for them; load the model with anchorlens.load_model(name, "
            "model_class='hooked') (CLI: --model-class hooked)"
        )
    return names


def keys_and_queries(model, batch: PromptBatch, layer: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per prompt: each class's label key (mean over its demonstrations) [b, C, H*d], the target's query
    [b, H*d], and the label probabilities [b, C]. Only these rows leave the hooks."""
    key_name, query_name = _hook_names(model, layer)
    label_mask = batch.label_mask.float()
    counts = label_mask.sum(-1, keepdim=True).clamp(min=1)
    store: dict[str, torch.Tensor] = {}

    def keep_keys(keys: torch.Tensor, hook) -> None:  # [b, pos, kv_heads, d]
        if keys.ndim != 4 or keys.shape[1] != batch.seq_len:
            raise HookError(f"{hook.name} carries a tensor of shape {tuple(keys.shape)}, not [batch, position, head, "
                            "d_head]; diagnose cannot read keys from this model")
        repeat = model.cfg.n_heads // keys.shape[2]
        keys = keys.repeat_interleave(repeat, dim=2).flatten(2)  # [b, pos, H*d]
        store["keys"] = (torch.einsum("bcp,bpd->bcd", label_mask.to(keys.device), keys) / counts.to(keys.device)).detach()

    def keep_queries(queries: torch.Tensor, hook) -> None:  # [b, pos, H, d]
        rows = torch.arange(queries.shape[0], device=queries.device)
        store["queries"] = queries[rows, batch.target_positions.to(queries.device)].flatten(1).detach()

    with torch.no_grad():
        logits = run_to_target(model, batch, [(key_name, keep_keys), (query_name, keep_queries)])
    probabilities = label_logits(logits, batch).softmax(-1)
    if set(store) != {"keys", "queries"}:  # e.g. a TransformerBridge of GPT-NeoX has hook_rot_k but never runs it
        from anchorlens.model_classes import describe

        raise HookError(
            f"{key_name} / {query_name} exist on this {describe(model)} but did not run, so diagnose has no post-rotary "
            "keys and queries to compare; load the model with anchorlens.load_model(name, model_class='hooked') "
            "(CLI: --model-class hooked)"
        )
    return store["keys"].cpu(), store["queries"].cpu(), probabilities.cpu()


def predicted_confusion(label_keys: np.ndarray, queries: np.ndarray, n_components: int = 10) -> np.ndarray:
    """Normalised distances between label keys in the query PCA space, diagonal 1 (see module docstring)."""
    components = min(n_components, queries.shape[0], queries.shape[1])
    pca = PCA(n_components=components, random_state=42).fit(queries)
    projected = (label_keys @ pca.components_.T) * pca.singular_values_[None]
    distances = squareform(pdist(projected, metric="euclidean"))
    largest = distances.max()
    distances = distances / largest if largest > 0 else distances
    np.fill_diagonal(distances, 1.0)
    return distances


def true_confusion(probabilities: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """AUROC of p_i / p_j telling gold class i from gold class j; NaN where a class has no test input."""
    n_classes = probabilities.shape[1]
    matrix = np.eye(n_classes)
    for a in range(n_classes):
        for b in range(n_classes):
            if a == b:
                continue
            chosen = (gold == a) | (gold == b)
            if not (gold == a).any() or not (gold == b).any():
                matrix[a, b] = np.nan
                continue
            ratio = probabilities[chosen, a] / np.clip(probabilities[chosen, b], 1e-30, None)
            matrix[a, b] = roc_auc_score(gold[chosen] == a, ratio)
    return matrix


@dataclass(frozen=True)
class DiagnoseResult(ExperimentResult):
    """Rows: task, model, seed, layer, class_a, class_b, predicted, true, n (one row per ordered class pair; n = test inputs)."""

    experiment: ClassVar[str] = "diagnose"
    config_class: ClassVar[type[ExperimentConfig]] = DiagnoseConfig

    def matrices(self, task: str, model: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Seed-mean predicted and true confusion matrices of a task, indexed by class names."""
        frame = self.frame[self.frame["task"] == task]
        if model is not None:
            frame = frame[frame["model"] == model]
        names = list(get_task(task).class_names)
        mean = frame.groupby(["class_a", "class_b"])[["predicted", "true"]].mean()
        predicted = mean["predicted"].unstack().reindex(index=names, columns=names)
        true = mean["true"].unstack().reindex(index=names, columns=names)
        return predicted, true

    def summary(self) -> pd.DataFrame:
        """Per task: Pearson and Spearman correlation of the off-diagonal pairs (i < j) of the seed-mean matrices,
        and the most confused pair by each matrix."""
        rows = []
        for (task, model), _ in self.frame.groupby(["task", "model"]):
            predicted, true = self.matrices(task, model)
            pairs = [(a, b) for a, b in combinations(predicted.index, 2)]
            x = np.array([predicted.loc[a, b] for a, b in pairs])
            y = np.array([true.loc[a, b] for a, b in pairs])
            valid = ~(np.isnan(x) | np.isnan(y))
            enough = valid.sum() >= 3
            rows.append({
                "task": task, "model": model, "pairs": int(valid.sum()),
                "pearson": float(np.corrcoef(x[valid], y[valid])[0, 1]) if enough else float("nan"),
                "spearman": float(pd.Series(x[valid]).corr(pd.Series(y[valid]), method="spearman")) if enough else float("nan"),
                "most_confused_predicted": "-".join(pairs[int(np.nanargmin(x))]) if valid.any() else "",
                "most_confused_true": "-".join(pairs[int(np.nanargmin(y))]) if valid.any() else "",
            })
        return pd.DataFrame(rows)


def run_diagnose(
    model, task: Task | str, config: DiagnoseConfig = DiagnoseConfig(), *, out: str | Path | None = None,
    progress: bool = True,
) -> DiagnoseResult:
    """Predicted and true confusion for each seed at `config.layer`."""
    task = get_task(task)
    layer = default_layer(model.cfg.n_layers) if config.layer is None else config.layer
    if not 0 <= layer < model.cfg.n_layers:
        raise InvalidConfigError(f"layer {layer} does not exist; the model has layers 0..{model.cfg.n_layers - 1}")

    def one_seed(seed: int) -> pd.DataFrame:
        _, prompts = task_prompts(model.tokenizer, task, seed, n_test=config.n_test,
                                  shots_per_class=config.shots_per_class, **prompt_settings(model))
        keys, queries, probabilities, gold = [], [], [], []
        for batch in batches(model, prompts, config.batch_size, progress=progress):
            batch_keys, batch_queries, batch_probabilities = keys_and_queries(model, batch, layer)
            keys.append(batch_keys)
            queries.append(batch_queries)
            probabilities.append(batch_probabilities)
            gold.append(batch.gold.cpu())
        # The label keys depend only on the demonstrations (causal attention), the same in every prompt.
        label_keys = torch.cat(keys).double().mean(0).numpy()
        predicted = predicted_confusion(label_keys, torch.cat(queries).double().numpy(), config.n_components)
        true = true_confusion(torch.cat(probabilities).double().numpy(), torch.cat(gold).numpy())
        names = task.class_names
        return pd.DataFrame([
            {"layer": layer, "class_a": names[a], "class_b": names[b], "predicted": predicted[a, b], "true": true[a, b],
             "n": len(prompts)}
            for a in range(task.num_classes) for b in range(task.num_classes)
        ])

    return DiagnoseResult.from_run(run_seeds("diagnose", model, task, config, one_seed, out=out, progress=progress))
