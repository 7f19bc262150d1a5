"""Head-level anchors: which attention heads carry the label-word flow, and does blocking them matter.

Per seed, on the seed's prompts (one fixed set of demonstrations, as in isolation and AUROC):

1. **Rank.** One forward and one backward pass per batch give every (layer, head) its saliency S_wp, S_pq,
   S_ww from I_{l,h} = |A_{h,l} ⊙ ∂L/∂A_{h,l}| (`anchorlens.hooks.SaliencyRecorder` with ``per_head``; the
   paper sums heads before the absolute value, for one head the order does not matter) and its
   target→label attention A_{l,h}(q, p_c), whose AUROC against the prediction is computed as in §2.3
   (`anchorlens.metrics.layer_auroc`). Heads are ranked over all layers by the mean over test
   inputs of S_wp (text → label flow, flow ``"wp"``) and of S_pq (label → target flow, flow ``"pq"``), largest
   first (ties by layer, then head).
2. **Check causally.** For each flow and each count k of `HeadsConfig.top_k`, that flow's edges are blocked on
   the pre-softmax scores (`anchorlens.hooks.isolate_heads_hook`) in the top k heads only:

   * ``wp``: every label-word row from attending to earlier tokens (self kept): the paper's isolation (§2.2),
     in those heads instead of whole layers;
   * ``pq``: the target row from attending to the label words.

   The control blocks the same edges in k random heads. Label loyalty (prediction unchanged) and word loyalty
   (Jaccard overlap of the top-`word_top_k` vocabulary tokens) are measured against the un-blocked run, per
   test input (`anchorlens.metrics`).

The ranking that chooses an input's blocked heads is made without that input (cross-fitting): the seed's inputs,
in order of test row index, alternate between two halves, and each input's top heads are those ranked on the
other half. So the check never blocks heads chosen on the very inputs it measures. The head table (`to_frame`)
ranks on all of the seed's inputs.

Random heads are drawn per test input and draw: ``np.random.default_rng([seed, example, draw])``
(`anchorlens.random_streams.draw_key`) permutes all heads, and the first k of them not among that input's top k
are blocked (so the control never overlaps the heads it is compared with). The key holds nothing about batching,
so batch size 1 and 8 give the same numbers, and the k random heads of a draw are the first k of one permutation
for every k.

Seed rows (`HeadsResult.to_frame`): one per (layer, head): S_wp, S_pq, S_ww (raw means over the seed's inputs),
auroc, rank_wp, rank_pq (1 = most flow), n. Per-example rows (`HeadsResult.examples`): one per (test input,
flow, k, condition, draw): example, gold, flow, k, condition (``top`` or ``random``), draw (0 for ``top``),
heads (the blocked heads as ``layer.head``, in rank or draw order), base_prediction, prediction,
label_loyalty (0/1), word_loyalty. `HeadsResult.summary_with_ci` averages an input's random draws first, then
gives intervals of loyalty per (flow, k, condition) and the paired gap random − top; `HeadsResult.causal_check` states
for each flow and k whether blocking the top heads costs more loyalty than random heads: yes when the gap's 95%
interval lies above 0, no (less) when below 0, "not shown" when it contains 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from einops import rearrange, repeat
from jaxtyping import Bool, Float, Int
from torch import Tensor

from anchorlens.errors import InvalidConfigError
from anchorlens.experiments.common import (
    MAX_BATCH_TOKENS,
    ExperimentConfig,
    ExperimentResult,
    Folder,
    OneSeed,
    SeedOutput,
    batches,
    option_name,
    setting,
)
from anchorlens.forward import run_to_target
from anchorlens.hooks import (
    LabelAttentionRecorder,
    SaliencyRecorder,
    block_earlier_mask,
    frozen_parameters,
    head_isolation_hooks,
    target_to_label_mask,
)
from anchorlens.metrics import jaccard, label_agreement, layer_auroc
from anchorlens.model_classes import Model
from anchorlens.preparation import Experiment
from anchorlens.prompts import Prompt, PromptBatch, label_logits, label_loss, prompt_settings, task_prompts
from anchorlens.random_streams import prompt_generator
from anchorlens.regions import REGIONS, region_weights
from anchorlens.stats import means_with_ci
from anchorlens.tasks import Task

#: The two flows a head can carry, by the saliency that ranks it: text → label words (S_wp) and label words →
#: target (S_pq).
FLOWS = ("wp", "pq")
FLOW_NAMES = {"wp": "text → label (S_wp)", "pq": "label → target (S_pq)"}
CONDITIONS = ("top", "random")
#: The condition of the paired per-input difference random − top in `HeadsResult.summary_with_ci`.
GAP = "random_minus_top"
LOYALTIES = ("label_loyalty", "word_loyalty")
#: Interval bounds closer to 0 than this are 0 in `HeadsResult.causal_check`'s rule (floating-point rounding).
ROUNDING = 1e-12


@dataclass(frozen=True)
class HeadsConfig(ExperimentConfig):
    """Settings of `run_heads` (and `anchorlens heads`): the fields of `ExperimentConfig`, and those below."""

    top_k: tuple[int, ...] = setting(
        (1, 5, 10), "numbers of top-ranked heads blocked, one run each; as many random heads are the control"
    )
    random_draws: int = setting(3, "random head sets per test input and count (an input's loyalty is their mean)")
    word_top_k: int = setting(5, "top-k vocabulary tokens compared by word loyalty (paper 5)")
    max_batch_tokens: int = setting(
        MAX_BATCH_TOKENS,
        "cap on batch size x padded length: the backward pass holds every layer's activations",
        flag=None,
    )

    RESUMABLE_FIELDS: ClassVar[tuple[str, ...]] = ("seeds", "batch_size", "max_batch_tokens")

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "top_k", tuple(int(k) for k in self.top_k))
        if not self.top_k or min(self.top_k) < 1:
            raise InvalidConfigError(
                f"top_k must be one or more positive head counts, got {self.top_k} (e.g. --top-k 1 5 10)"
            )
        if len(set(self.top_k)) != len(self.top_k):
            raise InvalidConfigError(f"top_k repeats: {self.top_k}; give each head count once")
        if self.random_draws < 1:
            raise InvalidConfigError(
                f"random_draws must be at least 1, got {self.random_draws}; give --random-draws 1 or more (default 3)"
            )
        if self.word_top_k < 1:
            raise InvalidConfigError(
                f"word_top_k must be at least 1, got {self.word_top_k}; give --word-top-k 1 or more (paper 5)"
            )
        if self.n_test is not None and self.n_test < 2:
            raise InvalidConfigError(
                f"n_test is {self.n_test}, but heads are ranked on one half of the test inputs and blocked on the "
                "other: give --n-test of at least 2"
            )


def check_head_counts(config: HeadsConfig, n_layers: int, n_heads: int) -> None:
    """Refuse a count k of top heads that leaves fewer than k other heads for the random control.

    Args:
        config: the settings whose `top_k` counts are checked.
        n_layers: the model's layers.
        n_heads: the model's (query) heads per layer.

    Raises:
        InvalidConfigError: a count is more than half of the ``n_layers × n_heads`` heads.
    """
    total = n_layers * n_heads
    too_many = [k for k in config.top_k if 2 * k > total]
    if too_many:
        raise InvalidConfigError(
            f"top_k {too_many} is more than half of the model's {total} heads ({n_layers} layers x {n_heads}): the "
            f"random control needs as many other heads; give counts of at most {total // 2} "
            f"({option_name(HeadsConfig, 'top_k')})"
        )


@dataclass(frozen=True)
class HeadFlow:
    """One batch's per-head measurements: saliency [batch, layer, head, region] (regions S_wp, S_pq, S_ww),
    target→label attention [batch, layer, head, class] and the predicted class [batch], on the CPU."""

    saliency: Float[Tensor, "batch layer head region=3"]
    attention: Float[Tensor, "batch layer head class"]
    prediction: Int[Tensor, " batch"]


def head_flow_of_batch(model: Model, batch: PromptBatch) -> HeadFlow:
    """Per-head saliency, per-head label attention and predictions: one forward and one backward pass.

    Args:
        model: a loaded HookedTransformer or TransformerBridge (parameters left unchanged).
        batch: prompts with gold labels (the saliency's loss is the cross-entropy of the gold label word).

    Returns:
        `HeadFlow`: saliency [batch, layer, head, 3] (S_wp, S_pq, S_ww of I_{l,h} = |A_h ⊙ ∂L/∂A_h|), attention
        [batch, layer, head, class] (A_{l,h}(q, p_c)) and the predicted class [batch], on the CPU.
    """
    saliency = SaliencyRecorder(model, region_weights(batch), per_head=True)
    attention = LabelAttentionRecorder(model, batch)
    with frozen_parameters(model):
        # The saliency hook makes each pattern a leaf of the graph; the attention recorder then reads that pattern.
        logits = run_to_target(model, batch, saliency.hooks() + attention.hooks())
        label_loss(logits, batch, reduction="sum").backward()
    prediction = label_logits(logits.detach(), batch).argmax(-1)
    return HeadFlow(saliency.values.cpu(), attention.values.cpu(), prediction.cpu())


def rank_heads(values: Float[np.ndarray, "layer head"]) -> Int[np.ndarray, " layer*head"]:
    """Heads in order of `values` [layer, head], largest first; ties by layer, then head.

    Returns:
        Flat head indices ``layer × n_heads + head``, [layer × head].
    """
    flat = np.asarray(values, dtype=float).reshape(-1)
    return np.lexsort((np.arange(flat.size), -flat))


def halves(examples: Sequence[int] | Int[np.ndarray, " example"]) -> Int[np.ndarray, " example"]:
    """The cross-fitting halves: the inputs, in order of test row index, alternate between half 0 and half 1.

    Args:
        examples: each input's test row index, in any order.

    Returns:
        0 or 1 per input, in the order given.
    """
    order = np.argsort(np.asarray(examples), kind="stable")
    half = np.empty(len(order), dtype=np.int64)
    half[order] = np.arange(len(order)) % 2
    return half


def random_heads(prompt: Prompt, seed: int, draw: int, n_total: int, excluded: Sequence[int], k: int) -> list[int]:
    """k random heads for one input: the first k heads of a permutation of all `n_total` heads that are not
    `excluded` (the input's top heads).

    Args:
        prompt: the input; its ``example_index`` keys the draw (its token ids when it has none).
        seed: the run's seed, first in the key ``np.random.default_rng([seed, example, draw])``.
        draw: which of the input's random draws, last in the key.
        n_total: the model's layers × heads.
        excluded: flat head indices never drawn.
        k: how many heads.

    Returns:
        k flat head indices (``layer × n_heads + head``) in the permutation's order.
    """
    permutation = prompt_generator(prompt, seed, draw).permutation(n_total)
    never = {int(head) for head in excluded}
    return [int(head) for head in permutation if int(head) not in never][:k]


def head_mask(chosen: Sequence[Sequence[int]], n_layers: int, n_heads: int) -> Bool[Tensor, "batch layer head"]:
    """[batch, layer, head] mask, True at each prompt's chosen flat head indices (``layer × n_heads + head``)."""
    mask = torch.zeros(len(chosen), n_layers * n_heads, dtype=torch.bool)
    for row, heads in enumerate(chosen):
        mask[row, list(heads)] = True
    return rearrange(mask, "batch (layer head) -> batch layer head", head=n_heads)


def blocked_edges(batch: PromptBatch, flow: str) -> Bool[Tensor, "batch query key"]:
    """[batch, query, key] mask of the attention entries a flow runs through: each label-word row to the tokens
    before it (``"wp"``, self kept), or the target row to the label words (``"pq"``)."""
    if flow == "wp":
        return block_earlier_mask(batch, [prompt.demonstration_label_positions for prompt in batch.prompts])
    if flow == "pq":
        return target_to_label_mask(batch)
    raise InvalidConfigError(f"unknown flow {flow!r}; use one of {FLOWS}")


def _head_names(heads: Sequence[int], n_heads: int) -> str:
    return " ".join(f"{head // n_heads}.{head % n_heads}" for head in heads)


def loyalty_of_batch(
    model: Model,
    batch: PromptBatch,
    top_heads: Mapping[tuple[str, int], Sequence[Sequence[int]]],
    config: HeadsConfig,
    seed: int,
) -> pd.DataFrame:
    """Loyalty of every prompt of the batch under each (flow, k) block in its top heads and in random heads.

    Forward passes only: the un-blocked run, then one run per (flow, k) for the top heads and one per random
    draw.

    Args:
        model: a loaded HookedTransformer or TransformerBridge.
        batch: the prompts.
        top_heads: ``top_heads[(flow, k)][b]``, prompt b's top k flat head indices for that flow.
        config: `top_k`, `random_draws` and `word_top_k`.
        seed: the seed that keys the random draws.

    Returns:
        One row per (prompt, flow, k, condition, draw): flow, k, condition, draw, heads, base_prediction,
        prediction, label_loyalty, word_loyalty, and ``_row`` (the prompt's row in the batch).
    """
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    rows = []
    with torch.no_grad():
        base = run_to_target(model, batch)
        base_prediction = label_logits(base, batch).argmax(-1)
        base_top = base.topk(config.word_top_k, dim=-1).indices
        for flow in FLOWS:
            edges = blocked_edges(batch, flow)
            for k in config.top_k:
                top = [list(heads) for heads in top_heads[(flow, k)]]
                runs = [("top", 0, top)] + [
                    (
                        "random",
                        draw,
                        [
                            random_heads(prompt, seed, draw, n_layers * n_heads, heads, k)
                            for prompt, heads in zip(batch.prompts, top)
                        ],
                    )
                    for draw in range(config.random_draws)
                ]
                for condition, draw, chosen in runs:
                    mask = head_mask(chosen, n_layers, n_heads).to(batch.tokens.device)
                    hooks = head_isolation_hooks(edges, {layer: mask[:, layer] for layer in range(n_layers)})
                    edited = run_to_target(model, batch, hooks)
                    prediction = label_logits(edited, batch).argmax(-1)
                    label = label_agreement(prediction, base_prediction).cpu().numpy()
                    word = jaccard(edited.topk(config.word_top_k, dim=-1).indices, base_top).cpu().numpy()
                    for row in range(batch.size):
                        rows.append(
                            {
                                "flow": flow,
                                "k": k,
                                "condition": condition,
                                "draw": draw,
                                "heads": _head_names(chosen[row], n_heads),
                                "base_prediction": int(base_prediction[row]),
                                "prediction": int(prediction[row]),
                                "label_loyalty": float(label[row]),
                                "word_loyalty": float(word[row]),
                                "_row": row,
                            }
                        )
    return pd.DataFrame(rows)


def head_table(
    saliency: Float[np.ndarray, "example layer head region=3"],
    attention: Float[np.ndarray, "example layer head class"],
    predicted: Int[np.ndarray, " example"],
) -> pd.DataFrame:
    """The head table of one seed.

    Args:
        saliency: [example, layer, head, 3] per-head S_wp, S_pq, S_ww.
        attention: [example, layer, head, class] per-head target→label attention.
        predicted: [example] predicted classes.

    Returns:
        One row per (layer, head): S_wp, S_pq, S_ww (means over the inputs), auroc, rank_wp, rank_pq, n.
    """
    _, n_layers, n_heads, _ = saliency.shape
    means = saliency.mean(0)  # [layer, head, 3]
    table = pd.DataFrame(
        {
            "layer": repeat(np.arange(n_layers), "layer -> (layer head)", head=n_heads),
            "head": repeat(np.arange(n_heads), "head -> (layer head)", layer=n_layers),
        }
    )
    for index, region in enumerate(REGIONS):
        table[region] = rearrange(means[..., index], "layer head -> (layer head)")
    table["auroc"] = [
        layer_auroc(attention[:, layer, head], predicted) for layer in range(n_layers) for head in range(n_heads)
    ]
    for flow in FLOWS:
        rank = np.empty(n_layers * n_heads, dtype=np.int64)
        rank[rank_heads(means[..., REGIONS.index(f"S_{flow}")])] = np.arange(1, n_layers * n_heads + 1)
        table[f"rank_{flow}"] = rank
    table["n"] = len(predicted)
    return table


@dataclass(frozen=True)
class HeadsResult(ExperimentResult):
    """Rows: task, model, seed, layer, head, S_wp, S_pq, S_ww, auroc, rank_wp, rank_pq, n.

    Per-example rows: task, model, seed, example, gold, flow, k, condition, draw, heads, base_prediction,
    prediction, label_loyalty, word_loyalty (module docstring)."""

    experiment: ClassVar[str] = "heads"
    config_class: ClassVar[type[ExperimentConfig]] = HeadsConfig
    example_values: ClassVar[tuple[str, ...]] = LOYALTIES
    example_keys: ClassVar[tuple[str, ...]] = ("flow", "k", "condition")

    def per_input(self) -> pd.DataFrame:
        """One row per (task, model, seed, example, flow, k, condition): loyalty averaged over random draws."""
        keys = ["task", "model", "seed", "example", "gold", "flow", "k", "condition"]
        if self.examples.empty:
            return pd.DataFrame(columns=[*keys, *LOYALTIES])
        return self.examples.groupby(keys, as_index=False, sort=True)[list(LOYALTIES)].mean()

    def gaps(self) -> pd.DataFrame:
        """Per input, flow and k: random − top loyalty (above 0: blocking the top heads cost more loyalty)."""
        inputs = self.per_input()
        keys = ["task", "model", "seed", "example", "flow", "k"]
        wide = inputs.pivot_table(index=keys, columns="condition", values=list(LOYALTIES))
        gaps = pd.DataFrame({metric: wide[(metric, "random")] - wide[(metric, "top")] for metric in LOYALTIES})
        return gaps.reset_index().assign(condition=GAP)

    def summary_with_ci(self) -> pd.DataFrame:
        """Loyalty per (flow, k, condition), and the paired gap random − top (condition ``random_minus_top``),
        each the mean over seeds of the mean over test inputs with a 95% seed-level interval (`anchorlens.stats`). An
        input's random draws are averaged first: the input, not the draw, is the resampled unit."""
        by = ["task", "model", "flow", "k", "condition"]
        if self.examples.empty:
            return pd.DataFrame()
        loyalty = means_with_ci(self.per_input(), by, LOYALTIES)
        gap = means_with_ci(self.gaps(), by, LOYALTIES)
        summary = pd.concat([loyalty, gap], ignore_index=True)
        order = {"top": 0, "random": 1, GAP: 2}
        summary = summary.assign(
            _flow=summary["flow"].map(FLOWS.index), _condition=summary["condition"].map(order)
        ).sort_values(["task", "model", "_flow", "k", "metric", "_condition"], kind="stable")
        return summary.drop(columns=["_flow", "_condition"]).reset_index(drop=True)

    def summary(self) -> pd.DataFrame:
        """Seed mean and std of label and word loyalty per task, flow, k and condition (the causal check)."""
        seeds = self.per_input().groupby(["task", "model", "seed", "flow", "k", "condition"])[list(LOYALTIES)].mean()
        grouped = seeds.reset_index().groupby(["task", "model", "flow", "k", "condition"])[list(LOYALTIES)]
        return grouped.agg(["mean", "std"]).reset_index()

    def top_heads(self, flow: str, n: int = 10) -> pd.DataFrame:
        """The n heads with the most `flow` (``"wp"`` or ``"pq"``) per task and model: seed means of S_wp, S_pq,
        S_ww and AUROC, ranked by the flow's mean S (rank 1 = most)."""
        if flow not in FLOWS:
            raise InvalidConfigError(f"unknown flow {flow!r}; use 'wp' (text -> label) or 'pq' (label -> target)")
        columns = [*REGIONS, "auroc"]
        means = self.frame.groupby(["task", "model", "layer", "head"], as_index=False)[columns].mean()
        tables = []
        for _, part in means.groupby(["task", "model"], sort=False):
            part = part.sort_values([f"S_{flow}", "layer", "head"], ascending=[False, True, True], kind="stable")
            tables.append(part.head(n).assign(rank=np.arange(1, min(n, len(part)) + 1)))
        if not tables:
            return pd.DataFrame(columns=["task", "model", "rank", "layer", "head", *columns])
        table = pd.concat(tables, ignore_index=True)
        return table[["task", "model", "rank", "layer", "head", *columns]]

    def causal_check(self) -> pd.DataFrame:
        """Per task, model, flow, k and loyalty: top and random loyalty and their gap with 95% intervals, and the
        rule's answer to "does blocking the top heads cost more loyalty than random heads?": ``yes`` when the
        gap's interval lies above 0, ``no: less`` when below 0, ``not shown`` when it contains 0 (bounds within
        `ROUNDING` of 0 count as 0: averaging draws leaves gaps of 1e-17 where nothing differs)."""
        summary = self.summary_with_ci()
        if summary.empty:
            return summary
        keys = ["task", "model", "flow", "k", "metric"]
        # dropna=False: with one seed the intervals are NaN (no seed spread to measure), and their columns stay.
        wide = summary.pivot_table(index=keys, columns="condition", values=["mean", "ci_low", "ci_high"], dropna=False)
        table = pd.DataFrame(index=wide.index)
        for condition, name in (("top", "top"), ("random", "random"), (GAP, "gap")):
            for column in ("mean", "ci_low", "ci_high"):
                table[f"{name}_{column}"] = wide[(column, condition)]
        table["top_costs_more"] = np.where(
            table["gap_ci_low"] > ROUNDING,
            "yes",
            np.where(table["gap_ci_high"] < -ROUNDING, "no: less", "not shown"),
        )
        n_examples = summary[summary["condition"] == "top"].set_index(keys)["n_examples"]
        table["n_examples"] = n_examples.reindex(table.index).to_numpy()
        return table.reset_index()

    def report_table(self) -> pd.DataFrame:
        return self.causal_check()


def seed_function(model: Model, task: Task, config: HeadsConfig, out: Folder, progress: bool) -> OneSeed:
    """The head table and the causal check of one seed; `top_k` counts the model's heads cannot match with
    random heads are refused before any work (`InvalidConfigError`)."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    check_head_counts(config, n_layers, n_heads)  # fail before any work

    def one_seed(seed: int) -> SeedOutput:
        _, prompts = task_prompts(
            model.tokenizer,
            task,
            seed,
            n_test=config.n_test,
            shots_per_class=config.shots_per_class,
            **prompt_settings(model),
        )
        if len(prompts) < 2:
            raise InvalidConfigError(
                f"task {task.name!r} gives {len(prompts)} test input; heads are ranked on one half of the inputs "
                "and blocked on the other: use a test split with at least 2 inputs"
            )
        saliency, attention, predictions, gold = [], [], [], []
        examples: list[int | None] = []
        for batch in batches(model, prompts, config.batch_size, progress=progress, max_tokens=config.max_batch_tokens):
            measured = head_flow_of_batch(model, batch)
            saliency.append(measured.saliency)
            attention.append(measured.attention)
            predictions.append(measured.prediction)
            examples.extend(prompt.example_index for prompt in batch.prompts)
            gold.append(batch.gold.cpu())
        # Inputs in test-row order, whatever order the batches ran in.
        order = np.argsort(np.asarray(examples), kind="stable")
        examples_sorted = np.asarray(examples, dtype=np.int64)[order]
        saliency_sorted = torch.cat(saliency).double().numpy()[order]
        table = head_table(
            saliency_sorted, torch.cat(attention).double().numpy()[order], torch.cat(predictions).numpy()[order]
        )
        half = halves(examples_sorted)
        half_of = dict(zip(examples_sorted.tolist(), half.tolist()))
        # Each half's ranking, used for the inputs of the other half.
        rankings = {
            (flow, which): rank_heads(saliency_sorted[half == which].mean(0)[..., REGIONS.index(f"S_{flow}")])
            for flow in FLOWS
            for which in (0, 1)
        }
        gold_of = dict(zip(examples, torch.cat(gold).tolist()))
        frames = []
        for batch in batches(model, prompts, config.batch_size, progress=progress):
            other = [1 - half_of[prompt.example_index] for prompt in batch.prompts]
            top_heads = {
                (flow, k): [rankings[(flow, which)][:k].tolist() for which in other]
                for flow in FLOWS
                for k in config.top_k
            }
            frame = loyalty_of_batch(model, batch, top_heads, config, seed)
            index = [batch.prompts[row].example_index for row in frame.pop("_row")]
            frame.insert(0, "gold", [gold_of[example] for example in index])
            frame.insert(0, "example", np.asarray(index, dtype=np.int64))
            frames.append(frame)
        per_example = pd.concat(frames, ignore_index=True)
        per_example["_flow"] = per_example["flow"].map(FLOWS.index)
        per_example["_condition"] = per_example["condition"].map(CONDITIONS.index)
        per_example = per_example.sort_values(["_flow", "k", "_condition", "draw", "example"], kind="stable")
        return SeedOutput(table, per_example.drop(columns=["_flow", "_condition"]).reset_index(drop=True))

    return one_seed


EXPERIMENT = Experiment(
    example="""
        >>> import anchorlens as al
        >>> config = al.HeadsConfig(seeds=(42,), n_test=2, top_k=(1,), random_draws=1)
        >>> result = al.run_heads(al.random_model(), "sst2", config, progress=False)
        >>> result.to_frame().shape
        (8, 12)
    """,
    name="heads",
    order=7,
    help="rank heads by label-word flow (S_wp, S_pq per head, AUROC) and block the top k vs random heads",
    details=(
        "It prints the top heads of each flow (seed means of S_wp, S_pq, S_ww and AUROC per head) and the causal "
        "check's verdict table.\n\n"
        "The causal check: for each flow and each k of --top-k, the flow's edges are blocked in the k top-ranked "
        "heads (text -> label words for wp, label words -> target for pq), and, as the control, in k random heads "
        "(--random-draws sets per input, averaged). Loyalty says how often the prediction (label loyalty) and its "
        "top-k vocabulary (word loyalty) stay as without blocking. Each input's top heads are ranked on the other "
        "half of the inputs, never on itself. The gap is random - top loyalty per input with its 95% interval "
        "(seed-level t, floored by the inputs' error); top_costs_more is 'yes' when that interval lies above 0 "
        "(blocking the top heads costs more loyalty than random heads), 'no: less' when below 0, 'not shown' when "
        "it contains 0."
    ),
    config_class=HeadsConfig,
    result_class=HeadsResult,
    per_seed=seed_function,
    figures=("plot_heads",),
    summary=("Rank the heads by their label-word flow and block the top k of them against k random heads, per seed."),
    returns="`HeadsResult`: the head table per seed (`to_frame`) and the per-example loyalty rows (`examples`).",
)
run_heads = EXPERIMENT.run_function()
