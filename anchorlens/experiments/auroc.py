"""Per-layer AUROC of the target's attention to label words against the prediction, and R_l (paper §2.3,
Fig. 5; SPEC §3).

A_l(q, p_i): post-softmax attention from the target to class i's label word(s), summed over heads and over
that class's demonstrations, recorded inside the forward pass. The label is the model's own prediction (not
gold); classes predicted at least once are kept. Two kept classes: score = attention to the second kept
class (for SST-2, " Positive"); more: attentions renormalised over the kept classes and
``roc_auc_score(..., multi_class="ovo")``. Fewer than two kept classes leave the AUROC undefined (NaN).
R_l = Σ_{i≤l}(AUC_i − 0.5) / Σ_{i≤L}(AUC_i − 0.5) on the seed-averaged curve of each task.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from anchorlens.experiments.common import ExperimentConfig, ExperimentResult, batches, run_seeds
from anchorlens.hooks import LabelAttentionRecorder
from anchorlens.prompts import PromptBatch, label_logits, prompt_settings, run_to_target, task_prompts
from anchorlens.tasks import Task, get_task


@dataclass(frozen=True)
class AurocConfig(ExperimentConfig):
    pass


def attention_and_prediction(model, batch: PromptBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """([batch, layer, class] target→label attention summed over heads, [batch] predicted class)."""
    recorder = LabelAttentionRecorder(model, batch)
    with torch.no_grad():
        logits = run_to_target(model, batch, recorder.hooks())
    return recorder.values.sum(2).cpu(), label_logits(logits, batch).argmax(-1).cpu()


def layer_auroc(attention: np.ndarray, predicted: np.ndarray) -> float:
    """AUROC of one layer's [n, class] attention against the predicted classes."""
    kept = np.unique(predicted)
    if len(kept) < 2:
        return float("nan")
    scores = attention[:, kept]
    if len(kept) == 2:
        return float(roc_auc_score(predicted == kept[1], scores[:, 1]))
    scores = scores / scores.sum(1, keepdims=True).clip(min=1e-30)
    index_of = {label: index for index, label in enumerate(kept)}
    targets = np.array([index_of[label] for label in predicted])
    return float(roc_auc_score(targets, scores, multi_class="ovo", labels=list(range(len(kept)))))


def cumulative_r(auroc: np.ndarray) -> np.ndarray:
    """R_l from one AUROC curve over layers (NaN layers count as 0.5, i.e. contribute nothing)."""
    excess = np.nan_to_num(np.asarray(auroc, dtype=float) - 0.5, nan=0.0)
    total = excess.sum()
    return np.cumsum(excess) / total if total != 0 else np.full(len(excess), np.nan)


@dataclass(frozen=True)
class AurocResult(ExperimentResult):
    """Rows: task, model, seed, layer, auroc, R (from the seed-averaged curve of the task), n, classes_kept."""

    experiment: ClassVar[str] = "auroc"
    config_class: ClassVar[type[ExperimentConfig]] = AurocConfig

    @classmethod
    def derive(cls, frame: pd.DataFrame) -> pd.DataFrame:
        return with_r(frame)

    def report_table(self) -> pd.DataFrame:
        return compact(self.summary())

    def summary(self) -> pd.DataFrame:
        """Seed mean and std of AUROC per task and layer, with R_l."""
        grouped = self.frame.groupby(["task", "model", "layer"])
        return grouped.agg(auroc_mean=("auroc", "mean"), auroc_std=("auroc", "std"), R=("R", "first")).reset_index()



def compact(summary: pd.DataFrame) -> pd.DataFrame:
    """Per task: AUROC of the first and last layer, the best layer, and the first layer where R_l passes 0.5."""
    rows = []
    for (task, model), part in summary.groupby(["task", "model"]):
        part = part.sort_values("layer")
        curve = part["auroc_mean"].to_numpy()
        passed = part.loc[part["R"] >= 0.5, "layer"]
        rows.append({
            "task": task, "model": model, "layers": len(part),
            "auroc_first": curve[0], "auroc_last": curve[-1],
            "auroc_max": float(np.nanmax(curve)) if np.isfinite(curve).any() else float("nan"),
            "best_layer": int(part["layer"].iloc[int(np.nanargmax(curve))]) if np.isfinite(curve).any() else -1,
            "layer_R_half": int(passed.iloc[0]) if len(passed) else -1,
        })
    return pd.DataFrame(rows)


def with_r(frame: pd.DataFrame) -> pd.DataFrame:
    """Add R from the seed-averaged AUROC curve of each (task, model)."""
    frame = frame.drop(columns=["R"], errors="ignore")
    curves = frame.groupby(["task", "model", "layer"])["auroc"].mean().reset_index()
    curves["R"] = curves.groupby(["task", "model"])["auroc"].transform(lambda column: cumulative_r(column.to_numpy()))
    return frame.merge(curves[["task", "model", "layer", "R"]], on=["task", "model", "layer"], how="left")


def run_auroc(
    model, task: Task | str, config: AurocConfig = AurocConfig(), *, out: str | Path | None = None,
    progress: bool = True,
) -> AurocResult:
    """Per-layer AUROC for each seed (one forward pass per batch) and R_l over the seed-averaged curve."""
    task = get_task(task)

    def one_seed(seed: int) -> pd.DataFrame:
        _, prompts = task_prompts(model.tokenizer, task, seed, n_test=config.n_test,
                                  shots_per_class=config.shots_per_class, **prompt_settings(model))
        pairs = [attention_and_prediction(model, batch) for batch in batches(model, prompts, config.batch_size, progress=progress)]
        attention = torch.cat([a for a, _ in pairs]).double().numpy()  # [n, layer, class]
        predicted = torch.cat([p for _, p in pairs]).numpy()
        return pd.DataFrame(
            {
                "layer": np.arange(attention.shape[1]),
                "auroc": [layer_auroc(attention[:, layer], predicted) for layer in range(attention.shape[1])],
                "n": len(predicted),
                "classes_kept": len(np.unique(predicted)),
            }
        )

    return AurocResult.from_run(run_seeds("auroc", model, task, config, one_seed, out=out, progress=progress))
