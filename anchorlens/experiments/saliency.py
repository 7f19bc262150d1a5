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

Per-example rows (`SaliencyResult.examples`): one per test input and layer with that prompt's un-normalised
S_wp, S_pq, S_ww, the gold class and the model's prediction; the seed rows are their means, normalised.
`SaliencyResult.summary_with_ci` bootstraps that exact statistic (mean over inputs → normalise → mean over
seeds), so its intervals are of the numbers the paper plots.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from einops import rearrange, repeat
from jaxtyping import Float, Int
from threadpoolctl import threadpool_limits
from torch import Tensor

from anchorlens.experiments.common import ExperimentConfig, ExperimentResult, SeedOutput, batches, run_seeds, setting
from anchorlens.forward import run_to_target
from anchorlens.hooks import SaliencyRecorder, frozen_parameters
from anchorlens.prompts import (
    Prompt,
    PromptBatch,
    build_prompt,
    label_logits,
    label_loss,
    label_tokens,
    prompt_settings,
)
from anchorlens.sampling import sample_test_set
from anchorlens.stats import BOOTSTRAP_SEED, LEVEL, N_RESAMPLES, SUMMARY_COLUMNS, interval, resamples_for, strata
from anchorlens.tasks import Task, get_task, load_split

REGIONS = ("S_wp", "S_pq", "S_ww")


@dataclass(frozen=True)
class SaliencyConfig(ExperimentConfig):
    abs_per_head: bool = setting(False, "use sum_h |A*dL/dA| instead of the paper's |sum_h A*dL/dA|")
    max_batch_tokens: int = setting(
        1536, "cap on batch size x padded length: the backward pass holds every layer's attention maps", flag=None
    )

    RESUMABLE_FIELDS: ClassVar[tuple[str, ...]] = ("seeds", "batch_size", "max_batch_tokens")


def fresh_demonstration_prompts(
    tokenizer,
    task: Task | str,
    seed: int,
    *,
    n_test: int | None,
    shots_per_class: int,
    prepend_bos: bool,
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
            build_prompt(
                tokenizer,
                task,
                demonstrations,
                example.text,
                example.label,
                prepend_bos=prepend_bos,
                max_length=max_length,
                labels=labels,
                example_index=example.index,
            )
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


def saliency_and_prediction(
    model, batch: PromptBatch, *, abs_per_head: bool = False
) -> tuple[Float[Tensor, "batch layer 3"], Int[Tensor, " batch"]]:
    """S_wp, S_pq, S_ww per prompt and layer, and each prompt's predicted class: one forward and one backward
    pass for the whole batch."""
    recorder = SaliencyRecorder(model, region_weights(batch), abs_per_head=abs_per_head)
    with frozen_parameters(model):
        logits = run_to_target(model, batch, recorder.hooks())
        # Summed loss: each prompt's gradient is that of its own loss, as with batch size 1.
        label_loss(logits, batch, reduction="sum").backward()
    return recorder.values.cpu(), label_logits(logits.detach(), batch).argmax(-1).cpu()


def saliency_of_batch(model, batch: PromptBatch, *, abs_per_head: bool = False) -> Float[Tensor, "batch layer 3"]:
    """S_wp, S_pq, S_ww per prompt and layer (`saliency_and_prediction` without the predictions)."""
    return saliency_and_prediction(model, batch, abs_per_head=abs_per_head)[0]


def normalised_seed_means(
    counts: list[Float[np.ndarray, "resample input"]],
    seed_draws: Int[np.ndarray, "resample seed"],
    values: list[Float[np.ndarray, "input layer 3"]],
) -> Float[np.ndarray, "resample layer 3"]:
    """The paper's saliency statistic under bootstrap weights, for all resamples at once.

    `values[s]` is seed s's [input, layer, 3] array of un-normalised S; `counts[s]` its [resample, input] draw
    counts and `seed_draws[:, s]` how often the seed is drawn. Per resample: the count-weighted mean over each
    drawn seed's inputs, normalised per layer to sum to 1, then the draw-weighted mean over seeds.
    Returns [resample, layer, 3] (NaN where no seed with inputs is drawn).
    """
    n_resamples = seed_draws.shape[0]
    n_layers = values[0].shape[1]
    total = np.zeros((n_resamples, n_layers, 3))
    weight = np.zeros(n_resamples)
    for s, (seed_counts, seed_values) in enumerate(zip(counts, values)):
        drawn = seed_counts.sum(1)
        use = (seed_draws[:, s] > 0) & (drawn > 0)
        if not use.any():
            continue
        # [resample, input] @ [input, (layer region)]: the weighted means of every layer and region in one product.
        flat = rearrange(seed_values, "input layer region -> input (layer region)")
        means = rearrange(seed_counts[use] @ flat, "resample (layer region) -> resample layer region", region=3)
        means /= drawn[use, None, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            normalised = means / means.sum(-1, keepdims=True)
        total[use] += seed_draws[use, s, None, None] * normalised
        weight[use] += seed_draws[use, s]
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / weight[:, None, None]


@dataclass(frozen=True)
class SaliencyResult(ExperimentResult):
    """Rows: task, model, seed, layer, S_wp, S_pq, S_ww (normalised per layer), their *_raw values, n.

    Examples: task, model, seed, example, gold, layer, prediction, S_wp, S_pq, S_ww (un-normalised, one prompt).
    """

    experiment: ClassVar[str] = "saliency"
    config_class: ClassVar[type[ExperimentConfig]] = SaliencyConfig
    example_values: ClassVar[tuple[str, ...]] = REGIONS
    example_keys: ClassVar[tuple[str, ...]] = ("layer",)

    def summary_with_ci(
        self, *, n_resamples: int = N_RESAMPLES, level: float = LEVEL, seed: int = BOOTSTRAP_SEED
    ) -> pd.DataFrame:
        """Per task, model and layer, the paper's statistic with a 95% two-level bootstrap interval.

        The statistic is that of Fig. 3: per seed the mean over its test inputs of the un-normalised S, normalised
        per layer so S_wp + S_pq + S_ww = 1, then the mean over seeds (equal to the seed rows' mean). Each
        resample redraws seeds and, within them, test inputs (`anchorlens.stats.TwoLevelResamples`; a seed
        drawn c times contributes one pooled draw of c × n inputs, as everywhere in `anchorlens.stats`) and
        recomputes the weighted means, the normalisation and the seed mean, all layers at once. Long form:
        ``task, model, layer, metric, mean, ci_low, ci_high, n_seeds, n_examples``.
        """
        # Single-threaded BLAS: the products are small, and threads fighting over shared cores made them 18 times
        # slower (measured); one thread also makes the numbers independent of the machine's core count.
        with threadpool_limits(limits=1, user_api="blas"):
            return self._bootstrap_summary(n_resamples, level, seed)

    def _bootstrap_summary(self, n_resamples: int, level: float, seed: int) -> pd.DataFrame:
        columns = ["task", "model", "layer", *SUMMARY_COLUMNS]
        if self.examples.empty:
            return pd.DataFrame(columns=columns)
        rows = []
        for stratum_key, stratum in strata(self.examples, ["task", "model"]):
            layers = np.sort(stratum["layer"].unique())
            # [unit, layer, region], units sorted by (seed, example): the unit order of `resamples_for`.
            cube = stratum.set_index(["seed", "example", "layer"])[list(REGIONS)].unstack("layer").sort_index()
            cube = cube.reorder_levels([1, 0], axis=1).reindex(columns=pd.MultiIndex.from_product([layers, REGIONS]))
            values = rearrange(cube.to_numpy(dtype=float), "unit (layer region) -> unit layer region", region=3)
            resamples, _ = resamples_for(stratum_key, stratum, n_resamples=n_resamples, seed=seed)
            members = [np.flatnonzero(resamples.seed_of_unit == s) for s in range(len(resamples.seeds))]
            point = []
            for rows_of_seed in members:
                mean = values[rows_of_seed].mean(0)
                point.append(mean / mean.sum(-1, keepdims=True))
            estimate = np.mean(point, axis=0)  # [layer, 3], the mean of the seed rows
            boot = normalised_seed_means(
                [resamples.counts[:, m] for m in members], resamples.seed_draws, [values[m] for m in members]
            )
            for index, layer in enumerate(layers):
                n_examples = int(np.isfinite(values[:, index]).all(-1).sum())
                for region, metric in enumerate(REGIONS):
                    low, high = interval(boot[:, index, region], level)
                    rows.append(
                        (
                            *stratum_key,
                            int(layer),
                            metric,
                            float(estimate[index, region]),
                            low,
                            high,
                            len(members),
                            n_examples,
                        )
                    )
        return pd.DataFrame(rows, columns=columns)

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
        frame["depth"] = np.where(
            frame["layer"] < third, "shallow", np.where(frame["layer"] >= n_layers - third, "deep", "middle")
        )
        frame = frame[frame["depth"] != "middle"]
        return frame.groupby(["task", "model", "depth"])[list(REGIONS)].mean().reset_index()


def run_saliency(
    model,
    task: Task | str,
    config: SaliencyConfig = SaliencyConfig(),
    *,
    out: str | Path | None = None,
    progress: bool = True,
) -> SaliencyResult:
    """Saliency flow for each seed of `config`; with `out`, each (task, seed) is saved as it finishes."""
    task = get_task(task)

    def one_seed(seed: int) -> SeedOutput:
        prompts = fresh_demonstration_prompts(
            model.tokenizer,
            task,
            seed,
            n_test=config.n_test,
            shots_per_class=config.shots_per_class,
            **prompt_settings(model),
        )
        values, predictions, examples, gold = [], [], [], []
        for batch in batches(model, prompts, config.batch_size, progress=progress, max_tokens=config.max_batch_tokens):
            batch_values, batch_predictions = saliency_and_prediction(model, batch, abs_per_head=config.abs_per_head)
            values.append(batch_values)
            predictions.append(batch_predictions)
            # Batches are sorted by length: each value is matched to its prompt through the batch itself.
            examples.extend(prompt.example_index for prompt in batch.prompts)
            gold.append(batch.gold.cpu())
        per_prompt = torch.cat(values).double()  # [n, layer, 3]
        raw = per_prompt.mean(0)  # [layer, 3]
        normalised = raw / raw.sum(-1, keepdim=True)
        frame = pd.DataFrame({"layer": np.arange(raw.shape[0])})
        for index, name in enumerate(REGIONS):
            frame[name] = normalised[:, index].numpy()
        for index, name in enumerate(REGIONS):
            frame[f"{name}_raw"] = raw[:, index].numpy()
        frame["n"] = len(prompts)
        n_layers = raw.shape[0]
        # One row per (input, layer), input-major: every column is laid out as "(input layer)".
        per_example = pd.DataFrame(
            {
                "example": repeat(np.asarray(examples, dtype=np.int64), "input -> (input layer)", layer=n_layers),
                "gold": repeat(torch.cat(gold).numpy(), "input -> (input layer)", layer=n_layers),
                "layer": repeat(np.arange(n_layers), "layer -> (input layer)", input=len(examples)),
                "prediction": repeat(torch.cat(predictions).numpy(), "input -> (input layer)", layer=n_layers),
            }
        )
        for index, name in enumerate(REGIONS):
            per_example[name] = rearrange(per_prompt[:, :, index], "input layer -> (input layer)").numpy()
        return SeedOutput(frame, per_example)

    return SaliencyResult.from_run(run_seeds("saliency", model, task, config, one_seed, out=out, progress=progress))
