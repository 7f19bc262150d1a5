"""Per-example measures shared by the experiments: loyalty (agreement with a reference run) and accuracy.

Each returns one value per test input, so summaries and their intervals (`anchorlens.stats`)
are computed from the same per-example numbers that are saved.
"""

from __future__ import annotations

from jaxtyping import Float, Int
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
