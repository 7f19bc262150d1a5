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
`SaliencyResult.summary_with_ci` gives that exact statistic (mean over inputs → normalise → mean over seeds) a
seed-level interval (`anchorlens.stats`), so its intervals are of the numbers the paper plots.

Per head (``per_head=True``, ``--per-head``): the same backward pass also keeps every head apart, with a head's
saliency I_{l,h} = |A_{h,l} ⊙ ∂L/∂A_{h,l}| (one head: summing before or after the absolute value is the same).
Seed rows, per-example rows and the summary then gain a ``head`` column: empty on the whole-layer rows above,
0 … H−1 on one row per (layer, head) with that head's S normalised over its own three regions (raw kept).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
from einops import rearrange, repeat
from jaxtyping import Float, Int
from threadpoolctl import threadpool_limits
from torch import Tensor

from anchorlens.experiments.common import (
    MAX_BATCH_TOKENS,
    ExperimentConfig,
    ExperimentResult,
    Folder,
    OneSeed,
    SeedOutput,
    checked_prompts,
    example_ids,
    gold_ids,
    in_prompt_order,
    per_head_rows,
    setting,
    whole_layer_rows,
    with_head_column,
)
from anchorlens.forward import run_to_target
from anchorlens.hooks import SaliencyRecorder, frozen_parameters
from anchorlens.model_classes import Model
from anchorlens.preparation import Experiment
from anchorlens.prompts import (
    Prompt,
    PromptBatch,
    Prompts,
    build_prompt,
    label_logits,
    label_loss,
    label_tokens,
    prompt_settings,
)
from anchorlens.random_streams import fresh_demonstration_streams

# The regions are a fact of the prompt (`anchorlens.regions`; heads and flow use them too); their names here keep
# working (docs/hooks.md imports region_weights from this module).
from anchorlens.regions import REGIONS as REGIONS
from anchorlens.regions import region_weights as region_weights
from anchorlens.sampling import sample_test_set
from anchorlens.stats import (
    BOOTSTRAP_SEED,
    LEVEL,
    N_RESAMPLES,
    SUMMARY_COLUMNS,
    resamples_for,
    seed_interval,
    strata,
    within_sd_of,
)
from anchorlens.tasks import Task, get_task, load_split


@dataclass(frozen=True)
class SaliencyConfig(ExperimentConfig):
    """Settings of `run_saliency` (and `anchorlens saliency`): the fields of `ExperimentConfig`, and those below."""

    abs_per_head: bool = setting(False, "use sum_h |A*dL/dA| instead of the paper's |sum_h A*dL/dA|")
    max_batch_tokens: int = setting(
        MAX_BATCH_TOKENS,
        "cap on batch size x padded length: the backward pass holds every layer's activations",
        flag=None,
    )
    per_head: bool = setting(False, "also one row per (layer, head), |A_h*dL/dA_h| per head, with a head column")
    exclude_bos: bool = setting(
        False,
        "leave the BOS token's key column out of S_wp and S_ww (GPT-2, the paper's model, has none; default: kept, "
        "as the formula reads on the model's own tokens)",
    )

    RESUMABLE_FIELDS: ClassVar[tuple[str, ...]] = ("seeds", "batch_size", "max_batch_tokens")
    OMITTED_AT_DEFAULT: ClassVar[tuple[str, ...]] = ("per_head", "exclude_bos")


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
    # The Arrow column, not `dataset["label"]`: NumPy would iterate a datasets Column row by row (1 s on SST-2).
    train_labels = np.asarray(load_split(task, task.demo_split).data.column("label").to_pylist())
    train_texts = load_split(task, task.demo_split)["text"]
    rows_of_class = [np.flatnonzero(train_labels == label) for label in range(task.num_classes)]
    generator, ordering = fresh_demonstration_streams(seed)
    order = ordering.permutation(task.num_classes * shots_per_class)
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


def saliency_and_prediction(
    model: Model, batch: PromptBatch, *, abs_per_head: bool = False, exclude_bos: bool = False
) -> tuple[Float[Tensor, "batch layer region=3"], Int[Tensor, " batch"]]:
    """S_wp, S_pq, S_ww per prompt and layer, and each prompt's predicted class: one forward and one backward
    pass for the whole batch (`exclude_bos`: `region_weights`)."""
    recorder = SaliencyRecorder(model, region_weights(batch, exclude_bos=exclude_bos), abs_per_head=abs_per_head)
    with frozen_parameters(model):
        logits = run_to_target(model, batch, recorder.hooks())
        # Summed loss: each prompt's gradient is that of its own loss, as with batch size 1.
        label_loss(logits, batch, reduction="sum").backward()
    return recorder.values.cpu(), label_logits(logits.detach(), batch).argmax(-1).cpu()


def saliency_by_head(
    model: Model, batch: PromptBatch, *, abs_per_head: bool = False, exclude_bos: bool = False
) -> tuple[Float[Tensor, "batch layer region=3"], Float[Tensor, "batch layer head region=3"], Int[Tensor, " batch"]]:
    """`saliency_and_prediction` with every head kept apart as well, from the same forward and backward pass:
    (whole-layer S as configured, per-head S from I_{l,h} = |A_{h,l} ⊙ ∂L/∂A_{h,l}|, predicted class)."""
    weights = region_weights(batch, exclude_bos=exclude_bos)
    layer_recorder = SaliencyRecorder(model, weights, abs_per_head=abs_per_head)
    head_recorder = SaliencyRecorder(model, weights, per_head=True)
    with frozen_parameters(model):
        logits = run_to_target(model, batch, layer_recorder.hooks() + head_recorder.hooks())
        label_loss(logits, batch, reduction="sum").backward()
    prediction = label_logits(logits.detach(), batch).argmax(-1).cpu()
    return layer_recorder.values.cpu(), head_recorder.values.cpu(), prediction


def saliency_of_batch(
    model: Model, batch: PromptBatch, *, abs_per_head: bool = False
) -> Float[Tensor, "batch layer region=3"]:
    """S_wp, S_pq, S_ww per prompt and layer (`saliency_and_prediction` without the predictions)."""
    return saliency_and_prediction(model, batch, abs_per_head=abs_per_head)[0]


def per_example_rows(
    values: Float[Tensor, "example layer *head region=3"],
    examples: Int[np.ndarray, " example"],
    gold: Int[np.ndarray, " example"],
    predictions: Int[np.ndarray, " example"],
) -> pd.DataFrame:
    """One row per (input, layer) -- or (input, layer, head) when `values` has a head axis -- input-major:
    ``example, gold, layer, [head,] prediction, S_wp, S_pq, S_ww`` (un-normalised, that prompt alone)."""
    n_inputs, n_layers = values.shape[:2]
    cells = {"layer": n_layers} if values.ndim == 3 else {"layer": n_layers, "head": values.shape[2]}
    axes = " ".join(cells)
    layout = f"example -> (example {axes})"
    rows = {"example": repeat(np.asarray(examples, dtype=np.int64), layout, **cells)}
    rows["gold"] = repeat(np.asarray(gold), layout, **cells)
    for axis, size in cells.items():
        others = {name: count for name, count in cells.items() if name != axis}
        rows[axis] = repeat(np.arange(size), f"{axis} -> (example {axes})", example=n_inputs, **others)
    rows["prediction"] = repeat(np.asarray(predictions), layout, **cells)
    frame = pd.DataFrame(rows)
    for index, name in enumerate(REGIONS):
        frame[name] = rearrange(values[..., index].double(), f"example {axes} -> (example {axes})").numpy()
    return frame


def saliency(
    model: Model,
    prompts: Prompts,
    *,
    per_head: bool = False,
    abs_per_head: bool = False,
    exclude_bos: bool = False,
    batch_size: int = 8,
    max_batch_tokens: int | None = SaliencyConfig.max_batch_tokens,
    progress: bool = False,
) -> pd.DataFrame:
    """The saliency information flow of each prompt (paper §2.1): per layer, S_wp (text → label words), S_pq
    (label words → target) and S_ww (everything else), the means of I_l = |Σ_h A_{h,l} ⊙ ∂L/∂A_{h,l}| over
    their sets, with L the cross-entropy of the gold label word at the target. One forward and one backward
    pass per batch; no attention map is kept (`anchorlens.flow.prompt_flow` keeps one prompt's whole map).

    Args:
        model: a loaded HookedTransformer or TransformerBridge (its parameters are left unchanged).
        prompts: a list of `Prompt`s (or a `PromptBatch`) with gold labels, sharing their label words.
        per_head: also one row per (layer, head) with that head's S, from I_{l,h} = |A_{h,l} ⊙ ∂L/∂A_{h,l}|.
        abs_per_head: whole layers from Σ_h |A ⊙ ∂L/∂A| instead of the paper's |Σ_h A ⊙ ∂L/∂A|.
        exclude_bos: leave a BOS token's key column out of S_wp and S_ww (`region_weights`); default kept.
        batch_size: prompts per forward pass (changes no number).
        max_batch_tokens: cap on batch size × padded length (the backward pass holds every layer's attention
            maps); None for no cap.
        progress: show a progress bar over batches.

    Returns:
        One row per prompt and layer, prompts in the order given: ``example`` (``example_index`` or position in
        the list), ``gold``, ``layer``, ``prediction`` (argmax of the label logits), ``S_wp``, ``S_pq``,
        ``S_ww`` (un-normalised; the paper normalises their means over prompts per layer). With `per_head`, a
        ``head`` column after ``layer``: empty on these rows, followed by one row per prompt, layer and head.

    Examples:
        >>> import anchorlens as al
        >>> model = al.random_model()
        >>> _, prompts = al.task_prompts(model, "sst2", 42, n_test=2)
        >>> frame = al.saliency(model, prompts)
        >>> len(frame), {"S_wp", "S_pq", "S_ww"} <= set(frame.columns)  # 2 prompts x 2 layers
        (4, True)
    """
    prompts = checked_prompts(
        model, prompts, what="saliency", need_gold="its loss is the cross-entropy of the gold label word"
    )
    if per_head:
        values, head_values, predictions = in_prompt_order(
            model,
            prompts,
            lambda batch: saliency_by_head(model, batch, abs_per_head=abs_per_head, exclude_bos=exclude_bos),
            batch_size=batch_size,
            max_tokens=max_batch_tokens,
            progress=progress,
        )
    else:
        values, predictions = in_prompt_order(
            model,
            prompts,
            lambda batch: saliency_and_prediction(model, batch, abs_per_head=abs_per_head, exclude_bos=exclude_bos),
            batch_size=batch_size,
            max_tokens=max_batch_tokens,
            progress=progress,
        )
    examples, gold = example_ids(prompts), gold_ids(prompts)
    layers = per_example_rows(values, examples, gold, predictions.numpy())
    if not per_head:
        return layers
    return with_head_column(layers, per_example_rows(head_values, examples, gold, predictions.numpy()))


def seed_rows(examples: pd.DataFrame) -> pd.DataFrame:
    """One seed's rows from its per-example rows: per layer (and per head, when there is a ``head`` column) the
    mean over inputs of the un-normalised S, normalised so the three regions sum to 1 (raw kept as ``*_raw``),
    and ``n``, the inputs averaged."""

    def rows_of(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
        grouped = frame.groupby(keys)
        raw = grouped[list(REGIONS)].mean()
        normalised = raw.div(raw.sum(axis=1), axis=0)
        rows = raw.index.to_frame(index=False)
        for name in REGIONS:
            rows[name] = normalised[name].to_numpy()
        for name in REGIONS:
            rows[f"{name}_raw"] = raw[name].to_numpy()
        rows["n"] = grouped.size().to_numpy()
        return rows

    layers = rows_of(whole_layer_rows(examples), ["layer"])
    if "head" not in examples.columns:
        return layers
    return with_head_column(layers, rows_of(per_head_rows(examples), ["layer", "head"]))


def normalised_seed_means(
    counts: list[Float[np.ndarray, "resample example"]],
    seed_draws: Int[np.ndarray, "resample seed"],
    values: list[Float[np.ndarray, "example layer region=3"]],
) -> Float[np.ndarray, "resample layer region=3"]:
    """The paper's saliency statistic under bootstrap weights, for all resamples at once.

    `values[s]` is seed s's [example, layer, 3] array of un-normalised S; `counts[s]` its [resample, example] draw
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
        # [resample, example] @ [example, (layer region)]: the weighted means of every layer and region in one product.
        flat = rearrange(seed_values, "example layer region -> example (layer region)")
        means = rearrange(seed_counts[use] @ flat, "resample (layer region) -> resample layer region", region=3)
        means /= drawn[use, None, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            normalised = means / means.sum(-1, keepdims=True)
        total[use] += seed_draws[use, s, None, None] * normalised
        weight[use] += seed_draws[use, s]
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / weight[:, None, None]


#: The comparisons of the paper's Fig. 3 reading (SPEC §7, finding 1): each flow against the other two.
FLOW_PAIRS: tuple[tuple[str, str], ...] = (("S_wp", "S_pq"), ("S_wp", "S_ww"), ("S_pq", "S_ww"))


@dataclass(frozen=True)
class FlowBootstrap:
    """The Fig. 3 statistic of one (task, model) stratum: per seed, their mean, and its resamples over the test
    inputs within each seed (`stratum_bootstraps`)."""

    layers: Int[np.ndarray, " layer"]
    per_seed: Float[np.ndarray, "seed layer region=3"]
    estimate: Float[np.ndarray, "layer region=3"]
    resampled: Float[np.ndarray, "resample layer region=3"]
    n_seeds: int
    n_examples: list[int]


def stratum_bootstraps(
    examples: pd.DataFrame, n_resamples: int = N_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> Iterator[tuple[tuple, FlowBootstrap]]:
    """(stratum key, `FlowBootstrap`) per (task, model) of whole-layer per-example rows: per seed the mean over
    its inputs of the un-normalised S, normalised per layer, then the mean over seeds; and the same statistic
    under each resample of the inputs within the seeds (`normalised_seed_means`). The draws depend only on the
    stratum and `seed`, so every quantity computed from one stratum's resamples (a flow, a difference of two
    flows) shares them."""
    for stratum_key, stratum in strata(examples, ["task", "model"]):
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
        resampled = normalised_seed_means(
            [resamples.counts[:, m] for m in members], resamples.seed_draws, [values[m] for m in members]
        )
        n_examples = [int(np.isfinite(values[:, index]).all(-1).sum()) for index in range(len(layers))]
        per_seed = np.array(point)
        yield stratum_key, FlowBootstrap(layers, per_seed, per_seed.mean(0), resampled, len(members), n_examples)


def flow_differences(
    examples: pd.DataFrame,
    pairs: Sequence[tuple[str, str]] = FLOW_PAIRS,
    *,
    n_resamples: int = N_RESAMPLES,
    level: float = LEVEL,
    seed: int = BOOTSTRAP_SEED,
) -> pd.DataFrame:
    """Per task, model and layer, the difference a − b of two normalised flows of Fig. 3 for each (a, b) in
    `pairs`, with its 95% seed-level interval (`anchorlens.stats.seed_interval`).

    Both flows come from the same prompts, so a seed's demonstrations move them together; the interval of the
    difference, from the seeds' differences and the very resamples of `SaliencyResult.summary_with_ci`,
    says whether a lies above b where the two flows' own intervals overlap. Reads whole-layer per-example rows
    (``task, model, seed, example, layer, S_wp, S_pq, S_ww``; per-head rows are left out). Long form:
    ``task, model, layer, metric`` (``"S_wp - S_pq"``), ``mean, ci_low, ci_high, n_seeds, n_examples``."""
    unknown = sorted({name for pair in pairs for name in pair} - set(REGIONS))
    if unknown:
        raise ValueError(f"unknown saliency flows {unknown}; the flows are {list(REGIONS)}")
    columns = ["task", "model", "layer", *SUMMARY_COLUMNS]
    if examples.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    with threadpool_limits(limits=1, user_api="blas"):  # as in summary_with_ci: small products, one thread
        for stratum_key, flows in stratum_bootstraps(whole_layer_rows(examples), n_resamples, seed):
            for a, b in pairs:
                i, j = REGIONS.index(a), REGIONS.index(b)
                for index, layer in enumerate(flows.layers):
                    low, high = seed_interval(
                        flows.per_seed[:, index, i] - flows.per_seed[:, index, j],
                        within_sd_of(flows.resampled[:, index, i] - flows.resampled[:, index, j]),
                        level,
                    )
                    difference = float(flows.estimate[index, i] - flows.estimate[index, j])
                    rows.append(
                        (
                            *stratum_key,
                            int(layer),
                            f"{a} - {b}",
                            difference,
                            low,
                            high,
                            flows.n_seeds,
                            flows.n_examples[index],
                        )
                    )
    return pd.DataFrame(rows, columns=columns)


@dataclass(frozen=True)
class SaliencyResult(ExperimentResult):
    """Rows: task, model, seed, layer, S_wp, S_pq, S_ww (normalised per layer), their *_raw values, n.

    Examples: task, model, seed, example, gold, layer, prediction, S_wp, S_pq, S_ww (un-normalised, one prompt).
    With ``per_head`` both also have a ``head`` column after ``layer`` (module docstring).
    """

    experiment: ClassVar[str] = "saliency"
    config_class: ClassVar[type[ExperimentConfig]] = SaliencyConfig
    example_values: ClassVar[tuple[str, ...]] = REGIONS
    example_keys: ClassVar[tuple[str, ...]] = ("layer",)

    def summary_with_ci(
        self, *, n_resamples: int = N_RESAMPLES, level: float = LEVEL, seed: int = BOOTSTRAP_SEED
    ) -> pd.DataFrame:
        """Per task, model and layer, the paper's statistic with a 95% seed-level interval.

        The statistic is that of Fig. 3: per seed the mean over its test inputs of the un-normalised S, normalised
        per layer so S_wp + S_pq + S_ww = 1, then the mean over seeds (equal to the seed rows' mean). The
        interval is `anchorlens.stats.seed_interval` of the seeds' values, its floor the spread of the statistic
        over resamples of the test inputs within each seed (`anchorlens.stats.TwoLevelResamples`), which
        recompute the weighted means, the normalisation and the seed mean, all layers at once. Long form:
        ``task, model, layer, metric, mean, ci_low, ci_high, n_seeds, n_examples``.
        """
        # Single-threaded BLAS: the products are small, and threads fighting over shared cores made them 18 times
        # slower (measured); one thread also makes the numbers independent of the machine's core count.
        with threadpool_limits(limits=1, user_api="blas"):
            layers = self._bootstrap_summary(whole_layer_rows(self.examples), n_resamples, level, seed)
            if "head" not in self.examples.columns:
                return layers
            # Per head: the same statistic on each head's rows (its S normalised over its own three regions).
            heads = per_head_rows(self.examples)
            by_head = [
                self._bootstrap_summary(rows.drop(columns="head"), n_resamples, level, seed).assign(head=head)
                for head, rows in heads.groupby("head")
            ]
            return with_head_column(layers, pd.concat(by_head, ignore_index=True))

    @staticmethod
    def _bootstrap_summary(examples: pd.DataFrame, n_resamples: int, level: float, seed: int) -> pd.DataFrame:
        columns = ["task", "model", "layer", *SUMMARY_COLUMNS]
        rows = []
        for stratum_key, flows in stratum_bootstraps(examples, n_resamples, seed):
            for index, layer in enumerate(flows.layers):
                for region, metric in enumerate(REGIONS):
                    low, high = seed_interval(
                        flows.per_seed[:, index, region], within_sd_of(flows.resampled[:, index, region]), level
                    )
                    rows.append(
                        (
                            *stratum_key,
                            int(layer),
                            metric,
                            float(flows.estimate[index, region]),
                            low,
                            high,
                            flows.n_seeds,
                            flows.n_examples[index],
                        )
                    )
        return pd.DataFrame(rows, columns=columns)

    def differences_with_ci(
        self,
        pairs: Sequence[tuple[str, str]] = FLOW_PAIRS,
        *,
        n_resamples: int = N_RESAMPLES,
        level: float = LEVEL,
        seed: int = BOOTSTRAP_SEED,
    ) -> pd.DataFrame:
        """`flow_differences` of this result's whole-layer per-example rows."""
        return flow_differences(self.examples, pairs, n_resamples=n_resamples, level=level, seed=seed)

    def summary(self) -> pd.DataFrame:
        """Mean and std over seeds per task and layer of the normalised values (whole layers; per-head rows are in
        `to_frame` and `summary_with_ci`)."""
        grouped = whole_layer_rows(self.frame).groupby(["task", "model", "layer"])[list(REGIONS)]
        return grouped.agg(["mean", "std"]).reset_index()

    def report_table(self) -> pd.DataFrame:
        return self.depth_summary()

    def depth_summary(self) -> pd.DataFrame:
        """Mean of the normalised S over the shallow and the deep third of the layers, per task."""
        frame = whole_layer_rows(self.frame).copy()
        # Thirds of each model's own depth: results of several models share one frame.
        n_layers = frame.groupby("model")["layer"].transform("max") + 1
        third = (n_layers // 3).clip(lower=1)
        frame["depth"] = np.where(
            frame["layer"] < third, "shallow", np.where(frame["layer"] >= n_layers - third, "deep", "middle")
        )
        frame = frame[frame["depth"] != "middle"]
        return frame.groupby(["task", "model", "depth"])[list(REGIONS)].mean().reset_index()


def seed_function(model: Model, task: Task, config: SaliencyConfig, out: Folder, progress: bool) -> OneSeed:
    """The saliency of one seed: `saliency` on the seed's prompts, each test input with demonstrations drawn
    afresh (as the paper's code)."""

    def one_seed(seed: int) -> SeedOutput:
        prompts = fresh_demonstration_prompts(
            model.tokenizer,
            task,
            seed,
            n_test=config.n_test,
            shots_per_class=config.shots_per_class,
            **prompt_settings(model),
        )
        per_example = saliency(
            model,
            prompts,
            per_head=config.per_head,
            abs_per_head=config.abs_per_head,
            exclude_bos=config.exclude_bos,
            batch_size=config.batch_size,
            max_batch_tokens=config.max_batch_tokens,
            progress=progress,
        )
        return SeedOutput(seed_rows(per_example), per_example)

    return one_seed


EXPERIMENT = Experiment(
    example="""
        >>> import anchorlens as al
        >>> config = al.SaliencyConfig(seeds=(42,), n_test=2)
        >>> result = al.run_saliency(al.random_model(), "sst2", config, progress=False)
        >>> result.to_frame().shape
        (2, 11)
    """,
    name="saliency",
    order=1,
    help="saliency information flow S_wp, S_pq, S_ww per layer (paper Fig. 3)",
    section="2.1",
    expectation="S_wp dominates in shallow layers and decays; S_pq is small early and dominates deep layers; "
    "both mostly above S_ww (Fig. 3, GPT2-XL and GPT-J).",
    reference_part_seconds=9.5,
    config_class=SaliencyConfig,
    result_class=SaliencyResult,
    per_seed=seed_function,
    figures=("plot_saliency",),
    summary=(
        "Saliency flow (paper §2.1, Fig. 3) for each seed of `config`: `saliency` on the seed's prompts, each "
        "test input with demonstrations drawn afresh (as the paper's code)."
    ),
    returns=(
        "`SaliencyResult`: per seed and layer the normalised S_wp, S_pq, S_ww (`to_frame`), and one row per "
        "test input and layer (`examples`), the rows `saliency` returns for those prompts."
    ),
)
run_saliency = EXPERIMENT.run_function()
