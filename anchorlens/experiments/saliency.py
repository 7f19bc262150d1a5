"""Saliency information flow (paper §2.1, Fig. 3; SPEC §1).

I_l = |Σ_h A_{h,l} ⊙ ∂L/∂A_{h,l}| with L the cross-entropy over the label logits at the target against the
gold class, diagonal ignored. Per prompt and layer, with label positions p_k and target q (N = q):

* S_wp = Σ_k Σ_{j<p_k} I_l[p_k, j] / Σ_k p_k             -- text into label words
* S_pq = Σ_k I_l[q, p_k] / K                              -- label words into the target (K = C at 1 shot)
* S_ww = (Σ_{i>j, i≤N} I_l[i, j] − both sums) / (N(N+1)/2 − Σ_k p_k − K)

Each S is the mean of I over its set of entries, so the three sets become weight maps (1/count on the set)
and the `SaliencyRecorder` reduces I_l inside the backward pass: one forward and one backward per batch, no
attention map kept. Aggregation: mean over test inputs, then per layer normalise so the three sum to 1
(what the paper plots; raw values kept), then mean over seeds in `summary`.
Demonstrations are drawn afresh for every test input, as in the paper's code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from anchorlens.experiments.common import ExperimentConfig, ExperimentResult, batches, run_seeds
from anchorlens.hooks import SaliencyRecorder, frozen_parameters
from anchorlens.prompts import (
    Prompt,
    PromptBatch,
    build_prompt,
    label_loss,
    label_tokens,
    prompt_settings,
    run_to_target,
)
from anchorlens.sampling import sample_test_set
from anchorlens.tasks import Task, get_task, load_split

REGIONS = ("S_wp", "S_pq", "S_ww")


@dataclass(frozen=True)
class SaliencyConfig(ExperimentConfig):
    #: False: |Σ_h A ⊙ ∂L/∂A| (paper, default); True: Σ_h |A ⊙ ∂L/∂A|.
    abs_per_head: bool = False
    #: Cap on batch size × padded length: the backward pass holds every layer's attention maps.
    max_batch_tokens: int = 1536

    RESUMABLE_FIELDS: ClassVar[tuple[str, ...]] = ("seeds", "batch_size", "max_batch_tokens")


def fresh_demonstration_prompts(
    tokenizer, task: Task | str, seed: int, *, n_test: int | None, shots_per_class: int, prepend_bos: bool,
    max_length: int | None = None,
) -> list[Prompt]:
    """One prompt per seeded test input, each with its own demonstrations (the paper's saliency setup).

    As the paper's code: a legacy NumPy generator seeded once draws, for each test input in turn and each
    class in class order, `shots_per_class` rows of that class with replacement; the prompt order is the
    seeded permutation of that class-ordered list (the same permutation for every input).
    """
    task = get_task(task)
    train_labels = np.asarray(load_split(task, task.demo_split)["label"])
    train_texts = load_split(task, task.demo_split)["text"]
    rows_of_class = [np.flatnonzero(train_labels == label) for label in range(task.num_classes)]
    generator = np.random.RandomState(seed)
    order = np.random.default_rng(seed).permutation(task.num_classes * shots_per_class)
    labels = label_tokens(tokenizer, task)
    prompts = []
    for example in sample_test_set(task, seed, n_test=n_test):
        drawn = [int(row) for rows in rows_of_class for row in generator.choice(rows, shots_per_class)]
        demonstrations = [(train_texts[drawn[i]], int(train_labels[drawn[i]])) for i in order]
        prompts.append(
            build_prompt(tokenizer, task, demonstrations, example.text, example.label, prepend_bos=prepend_bos,
                         max_length=max_length, labels=labels)
        )
    return prompts


def region_weights(batch: PromptBatch) -> Float[Tensor, "batch 3 query key"]:
    """Weight maps whose weighted sums of I_l are S_wp, S_pq, S_ww (each set's entries weigh 1/count)."""
    seq = batch.seq_len
    weights = torch.zeros(batch.size, 3, seq, seq)
    lower = torch.ones(seq, seq).tril(-1)  # i > j: the diagonal never counts
    for row, prompt in enumerate(batch.prompts):
        q = prompt.target_position
        wp, pq = torch.zeros(seq, seq), torch.zeros(seq, seq)
        for p in prompt.demonstration_label_positions:
            wp[p, :p] = 1
            pq[q, p] = 1
        ww = lower.clone()
        ww[q + 1 :] = 0  # rows after the target (padding) are outside every set
        ww = ww - wp - pq
        for index, mask in enumerate((wp, pq, ww)):
            weights[row, index] = mask / mask.sum().clamp(min=1)
    return weights.to(batch.tokens.device)


def saliency_of_batch(model, batch: PromptBatch, *, abs_per_head: bool = False) -> Float[Tensor, "batch layer 3"]:
    """S_wp, S_pq, S_ww per prompt and layer: one forward and one backward pass for the whole batch."""
    recorder = SaliencyRecorder(model, region_weights(batch), abs_per_head=abs_per_head)
    with frozen_parameters(model):
        logits = run_to_target(model, batch, recorder.hooks())
        # Summed loss: each prompt's gradient is that of its own loss, as with batch size 1.
        label_loss(logits, batch, reduction="sum").backward()
    return recorder.values.cpu()


@dataclass(frozen=True)
class SaliencyResult(ExperimentResult):
    """Rows: task, model, seed, layer, S_wp, S_pq, S_ww (normalised per layer), their *_raw values, n."""

    experiment: ClassVar[str] = "saliency"
    config_class: ClassVar[type[ExperimentConfig]] = SaliencyConfig

    def summary(self) -> pd.DataFrame:
        """Mean and std over seeds per task and layer of the normalised values."""
        grouped = self.frame.groupby(["task", "model", "layer"])[list(REGIONS)]
        return grouped.agg(["mean", "std"]).reset_index()

    def report_table(self) -> pd.DataFrame:
        return self.depth_summary()

    def depth_summary(self) -> pd.DataFrame:
        """Mean of the normalised S over the shallow and the deep third of the layers, per task."""
        frame = self.frame.copy()
        # Thirds of each model's own depth: results of several models share one frame.
        n_layers = frame.groupby("model")["layer"].transform("max") + 1
        third = (n_layers // 3).clip(lower=1)
        frame["depth"] = np.where(frame["layer"] < third, "shallow", np.where(frame["layer"] >= n_layers - third, "deep", "middle"))
        frame = frame[frame["depth"] != "middle"]
        return frame.groupby(["task", "model", "depth"])[list(REGIONS)].mean().reset_index()



def run_saliency(
    model, task: Task | str, config: SaliencyConfig = SaliencyConfig(), *, out: str | Path | None = None,
    progress: bool = True,
) -> SaliencyResult:
    """Saliency flow for each seed of `config`; with `out`, each (task, seed) is saved as it finishes."""
    task = get_task(task)

    def one_seed(seed: int) -> pd.DataFrame:
        prompts = fresh_demonstration_prompts(
            model.tokenizer, task, seed, n_test=config.n_test, shots_per_class=config.shots_per_class,
            **prompt_settings(model),
        )
        per_prompt = torch.cat(
            [saliency_of_batch(model, batch, abs_per_head=config.abs_per_head)
             for batch in batches(model, prompts, config.batch_size, progress=progress, max_tokens=config.max_batch_tokens)]
        )  # [n, layer, 3]
        raw = per_prompt.double().mean(0)  # [layer, 3]
        normalised = raw / raw.sum(-1, keepdim=True)
        frame = pd.DataFrame({"layer": np.arange(raw.shape[0])})
        for index, name in enumerate(REGIONS):
            frame[name] = normalised[:, index].numpy()
        for index, name in enumerate(REGIONS):
            frame[f"{name}_raw"] = raw[:, index].numpy()
        frame["n"] = len(prompts)
        return frame

    return SaliencyResult.from_run(run_seeds("saliency", model, task, config, one_seed, out=out, progress=progress))
