"""Measures shared by the experiments: per-example loyalty (agreement with a reference run) and accuracy, and
the AUROC of scores against classes.

The per-example measures return one value per test input, so summaries and their intervals (`anchorlens.stats`)
are computed from the same per-example numbers that are saved. The AUROCs (`layer_auroc`, `weighted_auc`) are
used by the AUROC, heads and diagnose experiments alike, with `warn_if_few_prompts_per_class` saying when one
rests on too few prompts.
"""

from __future__ import annotations

import warnings

import numpy as np
from jaxtyping import Bool, Float, Int
from sklearn.metrics import roc_auc_score
from torch import Tensor


def jaccard(a: Int[Tensor, "batch top_k"], b: Int[Tensor, "batch top_k"]) -> Float[Tensor, " batch"]:
    """Row-wise Jaccard overlap of two sets of token ids (word loyalty of one input, SPEC §2)."""
    inter = (a[:, :, None] == b[:, None, :]).any(-1).sum(-1).double()
    return inter / (a.shape[1] + b.shape[1] - inter)


def label_agreement(prediction: Int[Tensor, " batch"], reference: Int[Tensor, " batch"]) -> Float[Tensor, " batch"]:
    """1 where the predicted label equals the reference run's, else 0 (label loyalty of one input)."""
    return (prediction == reference).double()


def word_loyalty(
    logits: Float[Tensor, "batch vocab"], reference_logits: Float[Tensor, "batch vocab"], top_k: int
) -> Float[Tensor, " batch"]:
    """Jaccard overlap of the top-`top_k` full-vocabulary tokens of two runs, per input."""
    return jaccard(logits.topk(top_k, dim=-1).indices, reference_logits.topk(top_k, dim=-1).indices)


def correct(prediction: Int[Tensor, " batch"], gold: Int[Tensor, " batch"]) -> Float[Tensor, " batch"]:
    """1 where the prediction is the gold class, else 0 (accuracy of one input)."""
    return (prediction == gold.to(prediction.device)).double()


class FewPromptsWarning(UserWarning):
    """A number rests on fewer prompts per class than it needs to be read as more than noise."""


def layer_auroc(attention: np.ndarray, predicted: np.ndarray) -> float:
    """AUROC of one layer's [example, class] attention against the predicted classes."""
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


def weighted_auc(
    scores: Float[np.ndarray, "*layer example"],
    positive: Bool[np.ndarray, " example"],
    weights: Float[np.ndarray, "resample example"],
) -> Float[np.ndarray, "*layer resample"]:
    """Binary AUROC of `scores` [example] for the `positive` [example] rows under each row of `weights`
    [resample, example]; scores of several layers at once, [layer, example], give [layer, resample], each
    layer's row what it gives alone.

    With integer weights it equals ``roc_auc_score`` on the rows repeated that often: the weighted share of
    (positive, negative) pairs ranked correctly, ties counting one half. The pair comparison is computed once
    and every resample is one matrix product. NaN where a resample holds no positive or no negative row.
    """
    positive = np.asarray(positive, dtype=bool)
    positive_scores, negative_scores = scores[..., positive], scores[..., ~positive]
    # beats[..., i, j]: positive i ranked above negative j (1), tied (1/2) or below (0).
    above = positive_scores[..., :, None] > negative_scores[..., None, :]
    beats = above + 0.5 * (positive_scores[..., :, None] == negative_scores[..., None, :])
    positive_weights, negative_weights = weights[:, positive], weights[:, ~positive]
    # One matrix product per layer: a stacked product may round differently from the single layer's.
    correct = np.stack(
        [
            ((positive_weights @ layer_beats) * negative_weights).sum(1)
            for layer_beats in beats.reshape(-1, *beats.shape[-2:])
        ]
    ).reshape(*beats.shape[:-2], weights.shape[0])
    pairs = positive_weights.sum(1) * negative_weights.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, correct / np.where(pairs > 0, pairs, 1), np.nan)


def warn_if_few_prompts_per_class(
    labels: Int[np.ndarray, " example"], what: str, minimum: int, risk: str = "it can swing far"
) -> None:
    """One line (`FewPromptsWarning`) when the rarest class among `labels` (predicted or gold classes, one per
    prompt) has fewer than `minimum` prompts; `risk` says what can go wrong then."""
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) and counts.min() < minimum:
        shown = ", ".join(f"class {c}: {n}" for c, n in zip(classes.tolist(), counts.tolist()))
        warnings.warn(
            f"{what} rests on {counts.min()} prompt(s) in its rarest class ({shown}), fewer than {minimum} per "
            f"class: {risk}; give more prompts",
            FewPromptsWarning,
            stacklevel=3,
        )
