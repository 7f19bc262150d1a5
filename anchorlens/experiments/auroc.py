"""Per-layer AUROC of the target's attention to label words against the prediction, and R_l (paper §2.3,
Fig. 5; SPEC §3).

A_l(q, p_i): post-softmax attention from the target to class i's label word(s), summed over heads and over
that class's demonstrations, recorded inside the forward pass. The label is the model's own prediction (not
gold); classes predicted at least once are kept. Two kept classes: score = attention to the second kept
class (for SST-2, " Positive"); more: attentions renormalised over the kept classes and
``roc_auc_score(..., multi_class="ovo")``. Fewer than two kept classes leave the AUROC undefined (NaN).
R_l = Σ_{i≤l}(AUC_i − 0.5) / Σ_{i≤L}(AUC_i − 0.5) on the seed-averaged curve of each task.

Per-example rows (`AurocResult.examples`): one per test input and layer, with ``example``, ``gold``,
``layer``, ``prediction`` (the model's own, the AUROC's target) and ``att_0 … att_{C-1}``, A_l(q, p_c) of each
class c in class-id order (wide rather than a tidy class column: one row then holds everything one input
contributes to one layer's AUROC). A seed's AUROC at a layer is ``layer_auroc(rows[att columns], rows
["prediction"])`` over that seed's rows of the layer (`auroc_from_examples`), so every number can be recomputed
from the examples alone. In a table of several tasks the columns past a task's own classes are empty (NaN).

`AurocResult.summary_with_ci` gives, per task, model and layer, the seed-mean AUROC and R_l with seed-level
intervals (`anchorlens.stats`), floored by the spread over resamples of each seed's test inputs (each resample's
AUROC recomputed on the drawn inputs with a vectorised, count-weighted rank AUROC equal to `roc_auc_score` on
the repeated rows, and R_l from each resample's seed-mean curve). It uses `AUROC_RESAMPLES` resamples.

Per head (``per_head=True``, ``--per-head``): the same forward pass scores each head's own target→label
attention A_{l,h}(q, p_c) against the prediction. Seed rows, per-example rows and the summary then gain a
``head`` column: empty on the whole-layer rows above, 0 … H−1 on one row per (layer, head). A head's rows have
an AUROC but no R (R_l accumulates over layers; a head index names unrelated heads in different layers).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from einops import rearrange, repeat
from jaxtyping import Float, Int
from threadpoolctl import threadpool_limits

from anchorlens.experiments.common import (
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
from anchorlens.hooks import LabelAttentionRecorder

# The AUROC measures live in `anchorlens.metrics` (heads and diagnose use them too); their old names here keep
# working, FewPromptsWarning (public API) included.
from anchorlens.metrics import FewPromptsWarning as FewPromptsWarning
from anchorlens.metrics import layer_auroc, warn_if_few_prompts_per_class, weighted_auc
from anchorlens.model_classes import Model
from anchorlens.preparation import Experiment
from anchorlens.prompts import PromptBatch, Prompts, label_logits, task_prompts
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
from anchorlens.tasks import Task

#: Resamples of the inputs behind the AUROC summary's floor: the full `anchorlens.stats.N_RESAMPLES` (1000).
#: With the vectorised AUROC the summary of 4 tasks × 30 layers × 5 seeds × 200 inputs took 6.2 s of CPU time on
#: one core (measured with the earlier two-level resamples, which cost the same; a test holds it under a minute).
AUROC_RESAMPLES = N_RESAMPLES


@dataclass(frozen=True)
class AurocConfig(ExperimentConfig):
    """Settings of `run_auroc` (and `anchorlens auroc`): the fields of `ExperimentConfig`, and those below."""

    per_head: bool = setting(False, "also one row per (layer, head): each head's target->label attention AUROC")

    OMITTED_AT_DEFAULT: ClassVar[tuple[str, ...]] = ("per_head",)


def attention_and_prediction(
    model: Model, batch: PromptBatch, *, per_head: bool = False
) -> tuple[Float[torch.Tensor, "batch layer class"] | Float[torch.Tensor, "batch layer head class"], torch.Tensor]:
    """([batch, layer, class] target→label attention summed over heads, or [batch, layer, head, class] with
    `per_head`; [batch] predicted class)."""
    recorder = LabelAttentionRecorder(model, batch)
    with torch.no_grad():
        logits = run_to_target(model, batch, recorder.hooks())
    attention = recorder.values if per_head else recorder.values.sum(2)
    return attention.cpu(), label_logits(logits, batch).argmax(-1).cpu()


def cumulative_excess(auroc: np.ndarray) -> np.ndarray:
    """Σ_{i≤l} (AUC_i − 0.5) from one AUROC curve over layers (NaN layers count as 0.5, i.e. contribute
    nothing): R_l's numerator, and at the last layer its denominator. A 2-d array is a curve per row."""
    return np.cumsum(np.nan_to_num(np.asarray(auroc, dtype=float) - 0.5, nan=0.0), -1)


def cumulative_r(auroc: np.ndarray) -> np.ndarray:
    """R_l from one AUROC curve over layers (NaN layers count as 0.5, i.e. contribute nothing). A 2-d array is
    a curve per row."""
    excess = cumulative_excess(auroc)
    total = excess[..., -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total != 0, excess / np.where(total != 0, total, 1), np.nan)


def r_pseudo_values(
    seed_excess: Float[np.ndarray, "seed layer"], r: Float[np.ndarray, " layer"]
) -> Float[np.ndarray, "seed layer"]:
    """Per-seed values of R_l whose mean is `r` (R_l of the seed-mean curve) and whose spread is R_l's: R_l is a
    ratio of seed means, E_l / E_L, so each seed enters through its linearisation
    R_l + (e_{s,l} − R_l · e_{s,L}) / E_L (delta method), which `anchorlens.stats.seed_interval` takes like any
    seed values. Seeds whose excess is NaN (AUROC undefined) stay NaN."""
    mean_excess = np.nanmean(seed_excess, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return r + (seed_excess - r * seed_excess[:, -1:]) / mean_excess[-1]


def _kept_groups(
    predicted: np.ndarray, counts: np.ndarray, n_classes: int
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Resamples grouped by the classes they keep (predicted by a drawn input): (resamples, kept classes,
    inputs predicted as a kept class) per group with at least two kept classes."""
    one_hot = np.eye(n_classes)[predicted]
    kept_by_resample = (counts @ one_hot) > 0  # [resample, class]
    groups = []
    for kept_mask in np.unique(kept_by_resample, axis=0):
        kept = np.flatnonzero(kept_mask)
        if len(kept) < 2:
            continue
        resamples = np.flatnonzero((kept_by_resample == kept_mask).all(1))
        groups.append((resamples, kept, np.flatnonzero(np.isin(predicted, kept))))
    return groups


def resampled_layer_auroc(
    attention: Float[np.ndarray, "*layer example class"],
    predicted: Int[np.ndarray, " example"],
    counts: Float[np.ndarray, "resample example"],
    groups: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
) -> Float[np.ndarray, "*layer resample"]:
    """`layer_auroc` of one layer's [example, class] attention under each row of `counts` [resample, example] (how often
    each input is drawn): the classes kept, the renormalisation and the one-vs-one average follow the drawn
    inputs, as if `layer_auroc` ran on the repeated rows. [resample], NaN where fewer than two classes are kept.
    Several layers' attention at once, [layer, example, class], gives [layer, resample], each layer's row what
    it gives alone (the kept classes depend on the predictions only: one pass over them serves every layer).
    `groups` (from `_kept_groups`) may be passed to reuse them: they depend on predictions only."""
    groups = _kept_groups(predicted, counts, attention.shape[-1]) if groups is None else groups
    result = np.full((*attention.shape[:-2], counts.shape[0]), np.nan)
    for resamples, kept, inputs in groups:
        weights = counts[np.ix_(resamples, inputs)]
        target = predicted[inputs]
        scores = attention[..., inputs, :][..., kept]
        if len(kept) == 2:
            result[..., resamples] = weighted_auc(scores[..., 1], target == kept[1], weights)
            continue
        scores = scores / scores.sum(-1, keepdims=True).clip(min=1e-30)
        pair_scores = []
        # Hand & Till one-vs-one, as roc_auc_score(multi_class="ovo"): each pair's two AUROCs on its inputs.
        for a in range(len(kept)):
            for b in range(a + 1, len(kept)):
                pair = (target == kept[a]) | (target == kept[b])
                pair_weights = weights[:, pair]
                a_vs_b = weighted_auc(scores[..., pair, a], target[pair] == kept[a], pair_weights)
                b_vs_a = weighted_auc(scores[..., pair, b], target[pair] == kept[b], pair_weights)
                pair_scores.append((a_vs_b + b_vs_a) / 2)
        # Averaged layer by layer: numpy's order of summing the pairs depends on the array's shape, and a layer's
        # AUROC should not depend on the layers computed with it.
        by_pair = np.stack(pair_scores, axis=-2)  # [*layer, pair, resample]
        layer_means = [np.mean(layer, axis=0) for layer in by_pair.reshape(-1, *by_pair.shape[-2:])]
        result[..., resamples] = np.stack(layer_means).reshape(*by_pair.shape[:-2], len(resamples))
    return result


def attention_columns(examples: pd.DataFrame) -> list[str]:
    """The ``att_c`` columns of `examples` that hold values (a task's own classes), in class-id order."""
    present = [column for column in examples.columns if column.startswith("att_")]
    present = [column for column in present if examples[column].notna().any()]
    return sorted(present, key=lambda column: int(column.split("_", 1)[1]))


def auroc_from_examples(examples: pd.DataFrame) -> pd.DataFrame:
    """The seed rows' AUROC recomputed from per-example rows: task, model, seed, layer, auroc (and ``head``
    after ``layer`` for the rows of a ``per_head`` result, whole layers first)."""
    keys = ["task", "model", "seed", "layer"]

    def recomputed(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
        rows = []
        for key, part in frame.groupby(by):
            columns = attention_columns(part)
            rows.append((*key, layer_auroc(part[columns].to_numpy(float), part["prediction"].to_numpy())))
        return pd.DataFrame(rows, columns=[*by, "auroc"])

    layers = recomputed(whole_layer_rows(examples), keys)
    if "head" not in examples.columns:
        return layers
    return with_head_column(layers, recomputed(per_head_rows(examples), [*keys, "head"]))


@dataclass(frozen=True)
class AurocResult(ExperimentResult):
    """Rows: task, model, seed, layer, auroc, R (from the seed-averaged curve of the task), n, classes_kept.

    Examples: task, model, seed, example, gold, layer, prediction, att_0 … att_{C-1} (module docstring).
    With ``per_head`` both also have a ``head`` column after ``layer`` (module docstring).
    """

    experiment: ClassVar[str] = "auroc"
    config_class: ClassVar[type[ExperimentConfig]] = AurocConfig
    example_keys: ClassVar[tuple[str, ...]] = ("layer",)

    def summary_with_ci(
        self, *, n_resamples: int = AUROC_RESAMPLES, level: float = LEVEL, seed: int = BOOTSTRAP_SEED
    ) -> pd.DataFrame:
        """Per task, model and layer: ``auroc`` (seed mean; equals the seed rows' mean) and ``R`` (R_l of the
        seed-mean curve), each with a seed-level interval (`anchorlens.stats.seed_interval`; R_l through its
        per-seed linearisation, `r_pseudo_values`) whose floor is the spread over resamples that redraw each
        seed's test inputs, recompute its AUROC at every layer, average over the seeds and take R_l of that
        curve; and ``excess``, that curve's cumulative excess over 0.5,
        Σ_{i≤l}(AUC_i − 0.5) (R_l's numerator; at the last layer its denominator, so R_l is a share of the
        AUROC's rise only where the last layer's excess lies above 0). Long form: ``task, model, layer, metric,
        mean, ci_low, ci_high, n_seeds, n_examples``. ``n_seeds`` and ``n_examples`` count the seeds whose
        AUROC is defined (the model predicted at least two classes on their inputs) and those seeds' inputs:
        what the mean rests on. A seed on whose every input the model predicts one class adds nothing, and
        ``n_seeds`` says so."""
        # Single-threaded BLAS: the products are small, and threads fighting over shared cores made them 18 times
        # slower (measured); one thread also makes the numbers independent of the machine's core count.
        with threadpool_limits(limits=1, user_api="blas"):
            layers = self._bootstrap_summary(whole_layer_rows(self.examples), n_resamples, level, seed)
            if "head" not in self.examples.columns:
                return layers
            # Per head: each head's AUROC over the layers, resampled alike; R is a whole-layer measure only.
            by_head = [
                self._bootstrap_summary(rows.drop(columns="head"), n_resamples, level, seed).assign(head=head)
                for head, rows in per_head_rows(self.examples).groupby("head")
            ]
            heads = pd.concat(by_head, ignore_index=True)
            return with_head_column(layers, heads[heads["metric"] == "auroc"])

    @staticmethod
    def _bootstrap_summary(examples: pd.DataFrame, n_resamples: int, level: float, seed: int) -> pd.DataFrame:
        columns = ["task", "model", "layer", *SUMMARY_COLUMNS]
        if examples.empty:
            return pd.DataFrame(columns=columns)
        rows = []
        for stratum_key, stratum in strata(examples, ["task", "model"]):
            attention_names = attention_columns(stratum)
            n_classes = len(attention_names)
            layers = np.sort(stratum["layer"].unique())
            resamples, _ = resamples_for(stratum_key, stratum, n_resamples=n_resamples, seed=seed)
            n_inputs = len(resamples.seed_of_unit)
            if len(stratum) != n_inputs * len(layers) or stratum.duplicated(["seed", "example", "layer"]).any():
                raise ValueError(f"the auroc examples of {stratum_key} do not hold one row per (seed, input, layer)")
            stratum = stratum.sort_values(["seed", "example", "layer"])
            # [unit, layer, class] with units sorted by (seed, example): the unit order of `resamples_for`.
            attention = rearrange(
                stratum[attention_names].to_numpy(float), "(unit layer) label -> unit layer label", unit=n_inputs
            )
            predicted = rearrange(stratum["prediction"].to_numpy(), "(unit layer) -> unit layer", unit=n_inputs)
            predicted = predicted[:, 0].astype(int)
            curves = np.zeros((n_resamples, len(layers)))
            weights = np.zeros((n_resamples, len(layers)))
            point = []
            seed_sizes = []
            for position in range(len(resamples.seeds)):
                members = np.flatnonzero(resamples.seed_of_unit == position)
                seed_sizes.append(len(members))
                seed_counts = resamples.counts[:, members]
                drawn = resamples.seed_draws[:, position].astype(float)
                groups = _kept_groups(predicted[members], seed_counts, n_classes)
                # [layer, example, class]: every layer in one pass over the kept-class groups.
                seed_attention = rearrange(attention[members], "example layer label -> layer example label")
                boots = resampled_layer_auroc(seed_attention, predicted[members], seed_counts, groups)
                for index, boot in enumerate(boots):
                    use = (drawn > 0) & np.isfinite(boot)
                    curves[use, index] += drawn[use] * boot[use]
                    weights[use, index] += drawn[use]
                # The same AUROC with every input once (equal to `layer_auroc`, which is sklearn's and slower).
                once = np.ones((1, len(members)))
                point.append(list(resampled_layer_auroc(seed_attention, predicted[members], once)[:, 0]))
            with np.errstate(invalid="ignore", divide="ignore"):
                curves = curves / weights
            # Mean over the seeds where the AUROC is defined, as the seed rows' mean (NaN if it is in none).
            estimate = pd.DataFrame(point).mean(axis=0).to_numpy()
            boot_r, boot_excess = cumulative_r(curves), cumulative_excess(curves)
            estimate_r, estimate_excess = cumulative_r(estimate), cumulative_excess(estimate)
            seed_curves = np.array(point, dtype=float).reshape(len(point), len(layers))
            seed_excess = cumulative_excess(seed_curves)
            seed_excess[~np.isfinite(seed_curves).any(1)] = np.nan  # a seed without AUROC has no excess either
            seed_r = r_pseudo_values(seed_excess, estimate_r)
            # What each number rests on: the seeds whose AUROC is defined (a seed whose inputs the model all
            # predicts as one class has none) and their inputs, not every seed run.
            defined = np.isfinite(np.array(point, dtype=float).reshape(len(point), len(layers)))
            sizes = np.array(seed_sizes)
            for index, layer in enumerate(layers):
                n_seeds = int(defined[:, index].sum())
                n_examples = int(sizes[defined[:, index]].sum())
                for metric, value, per_seed, boot in (
                    ("auroc", estimate[index], np.array(point, dtype=float)[:, index], curves[:, index]),
                    ("R", estimate_r[index], seed_r[:, index], boot_r[:, index]),
                    ("excess", estimate_excess[index], seed_excess[:, index], boot_excess[:, index]),
                ):
                    low, high = seed_interval(per_seed, within_sd_of(boot), level)
                    rows.append((*stratum_key, int(layer), metric, float(value), low, high, n_seeds, n_examples))
        return pd.DataFrame(rows, columns=columns)

    @classmethod
    def derive(cls, frame: pd.DataFrame) -> pd.DataFrame:
        return with_r(frame)

    def report_table(self) -> pd.DataFrame:
        return compact(self.summary())

    def summary(self) -> pd.DataFrame:
        """Seed mean and std of AUROC per task and layer, with R_l (whole layers; per-head rows are in `to_frame`
        and `summary_with_ci`)."""
        grouped = whole_layer_rows(self.frame).groupby(["task", "model", "layer"])
        return grouped.agg(auroc_mean=("auroc", "mean"), auroc_std=("auroc", "std"), R=("R", "first")).reset_index()


def compact(summary: pd.DataFrame) -> pd.DataFrame:
    """Per task: AUROC of the first and last layer, the best layer, and the first layer where R_l passes 0.5."""
    rows = []
    for (task, model), part in summary.groupby(["task", "model"]):
        part = part.sort_values("layer")
        curve = part["auroc_mean"].to_numpy()
        passed = part.loc[part["R"] >= 0.5, "layer"]
        rows.append(
            {
                "task": task,
                "model": model,
                "layers": len(part),
                "auroc_first": curve[0],
                "auroc_last": curve[-1],
                "auroc_max": float(np.nanmax(curve)) if np.isfinite(curve).any() else float("nan"),
                "best_layer": int(part["layer"].iloc[int(np.nanargmax(curve))]) if np.isfinite(curve).any() else -1,
                "layer_R_half": int(passed.iloc[0]) if len(passed) else -1,
            }
        )
    return pd.DataFrame(rows)


def with_r(frame: pd.DataFrame) -> pd.DataFrame:
    """Add R from the seed-averaged AUROC curve of each (task, model) (whole-layer rows; per-head rows get NaN)."""
    frame = frame.drop(columns=["R"], errors="ignore")
    curves = whole_layer_rows(frame).groupby(["task", "model", "layer"])["auroc"].mean().reset_index()
    curves["R"] = curves.groupby(["task", "model"])["auroc"].transform(lambda column: cumulative_r(column.to_numpy()))
    if "head" in frame.columns:
        r_of_layer = curves.set_index(["task", "model", "layer"])["R"]
        looked_up = r_of_layer.reindex(pd.MultiIndex.from_frame(frame[["task", "model", "layer"]])).to_numpy()
        return frame.assign(R=np.where(frame["head"].isna().to_numpy(), looked_up, np.nan))
    return frame.merge(curves[["task", "model", "layer", "R"]], on=["task", "model", "layer"], how="left")


def attention_rows(
    attention: Float[np.ndarray, "example layer *head class"],
    examples: Int[np.ndarray, " example"],
    gold: Int[np.ndarray, " example"],
    predicted: Int[np.ndarray, " example"],
) -> SeedOutput:
    """The AUROC of each layer's -- or, with a head axis, each (layer, head)'s -- target→label attention against
    the prediction (`layer_auroc`), with ``n`` and ``classes_kept``; and one per-example row per (input, layer
    [, head]), input-major, with ``att_c`` of each class."""
    n_inputs, n_layers = attention.shape[:2]
    cells = {"layer": n_layers} if attention.ndim == 3 else {"layer": n_layers, "head": attention.shape[2]}
    axes = " ".join(cells)
    rows: dict[str, Any] = {}
    for axis, size in cells.items():
        others = {name: count for name, count in cells.items() if name != axis}
        rows[axis] = repeat(np.arange(size), f"{axis} -> ({axes})", **others)
    curves = rearrange(attention, f"example {axes} label -> ({axes}) example label")
    rows["auroc"] = [layer_auroc(curve, predicted) for curve in curves]
    seed_rows = pd.DataFrame(rows).assign(n=n_inputs, classes_kept=len(np.unique(predicted)))
    layout = f"example -> (example {axes})"
    per_example = {"example": repeat(np.asarray(examples, dtype=np.int64), layout, **cells)}
    per_example["gold"] = repeat(np.asarray(gold), layout, **cells)
    for axis, size in cells.items():
        others = {name: count for name, count in cells.items() if name != axis}
        per_example[axis] = repeat(np.arange(size), f"{axis} -> (example {axes})", example=n_inputs, **others)
    per_example["prediction"] = repeat(np.asarray(predicted), layout, **cells)
    frame = pd.DataFrame(per_example)
    for label in range(attention.shape[-1]):
        frame[f"att_{label}"] = rearrange(attention[..., label], f"example {axes} -> (example {axes})")
    return SeedOutput(seed_rows, frame)


#: Fewer prompts than this in a predicted class leave the AUROC and R_l resting on too little:
#: `label_attention_auroc` warns.
MIN_PROMPTS_PER_CLASS = 10


@dataclass(frozen=True)
class LabelAttentionAuroc:
    """What `label_attention_auroc` returns: the per-prompt rows and, beside them, the per-layer numbers.

    Reading it as the single DataFrame it used to be (``frame["auroc"]``, ``frame.groupby(...)``) still works
    for now, with a `FutureWarning`: that frame repeated each layer's ``auroc`` and ``R`` on every prompt's row.
    """

    #: One row per prompt and layer (and head): ``example, gold, layer, [head, level,] prediction, att_0 …``.
    examples: pd.DataFrame
    #: One row per layer (and head): ``layer, [head, level,] auroc, R, n, classes_kept`` (R empty on heads).
    layers: pd.DataFrame

    def combined(self) -> pd.DataFrame:
        """The old single frame: the per-prompt rows with their layer's ``auroc`` and ``R`` on each."""
        # Whole layers are head -1 in the lookup: an NA key does not match itself in an index.
        keys = ["layer", "head"] if "head" in self.examples.columns else ["layer"]

        def cells(frame: pd.DataFrame) -> pd.MultiIndex:
            return pd.MultiIndex.from_frame(frame[keys].astype("float").fillna(-1))

        numbers = self.layers[["auroc", "R"]].set_axis(cells(self.layers))
        looked_up = numbers.reindex(cells(self.examples))
        return self.examples.assign(auroc=looked_up["auroc"].to_numpy(), R=looked_up["R"].to_numpy())

    def _deprecated(self) -> pd.DataFrame:
        warnings.warn(
            "label_attention_auroc now returns .examples (per prompt) and .layers (per layer: auroc, R, n); "
            "reading it as one DataFrame is deprecated: use result.layers for auroc and R, "
            "result.examples for the prompts, or result.combined() for the old frame",
            FutureWarning,
            stacklevel=3,
        )
        return self.combined()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("examples", "layers"):
            raise AttributeError(name)
        return getattr(self._deprecated(), name)

    def __getitem__(self, key: Any) -> Any:
        return self._deprecated()[key]

    def __len__(self) -> int:
        return len(self._deprecated())


def measure_label_attention(
    model: Model, prompts: Prompts, *, per_head: bool = False, batch_size: int = 8, progress: bool = False
) -> LabelAttentionAuroc:
    """`label_attention_auroc` without its warning about too few prompts (the runs report ``n`` instead)."""
    prompts = checked_prompts(model, prompts, what="label_attention_auroc")
    recorded, predictions = in_prompt_order(
        model,
        prompts,
        lambda batch: attention_and_prediction(model, batch, per_head=per_head),
        batch_size=batch_size,
        progress=progress,
    )
    attention = recorded.double().numpy()  # [example, layer, class] or [example, layer, head, class]
    predicted = predictions.numpy()
    examples, gold = example_ids(prompts), gold_ids(prompts)
    layers = attention_rows(attention.sum(2) if per_head else attention, examples, gold, predicted)
    numbers = layers.rows.copy()
    numbers.insert(list(numbers.columns).index("auroc") + 1, "R", cumulative_r(numbers["auroc"].to_numpy()))
    if not per_head:
        return LabelAttentionAuroc(layers.examples, numbers)
    heads = attention_rows(attention, examples, gold, predicted)
    head_numbers = heads.rows.copy()
    head_numbers.insert(list(head_numbers.columns).index("auroc") + 1, "R", np.nan)
    return LabelAttentionAuroc(
        with_head_column(layers.examples, heads.examples), with_head_column(numbers, head_numbers)
    )


def label_attention_auroc(
    model: Model, prompts: Prompts, *, per_head: bool = False, batch_size: int = 8, progress: bool = False
) -> LabelAttentionAuroc:
    """How well the target's attention to the label words predicts the model's answer, layer by layer, over
    the given prompts (paper §2.3): per layer the AUROC of A_l(q, p_c) -- the target's post-softmax attention
    to class c's label words, summed over heads and over that class's demonstrations -- against the model's own
    prediction, and R_l, the share of the AUROC's excess over 0.5 reached by layer l. One forward pass per batch.

    Classes predicted at least once are kept; two: score = attention to the second kept class; more: attentions
    renormalised over the kept classes, one-vs-one AUROC. With fewer than two kept classes the AUROC is
    undefined (NaN): give prompts the model answers differently. With fewer than `MIN_PROMPTS_PER_CLASS`
    prompts in a predicted class a one-line `FewPromptsWarning` says the numbers rest on too little.

    Args:
        model: a loaded HookedTransformer or TransformerBridge.
        prompts: a list of `Prompt`s (or a `PromptBatch`) sharing their label words (gold labels not needed).
        per_head: also each head's own attention A_{l,h}(q, p_c) and its AUROC, one row per (layer, head).
        batch_size: prompts per forward pass (changes no number).
        progress: show a progress bar over batches.

    Returns:
        `LabelAttentionAuroc` with ``.examples``, one row per prompt and layer, prompts in the order given:
        ``example`` (``example_index`` or position), ``gold`` (-1 where unknown), ``layer``, ``prediction``,
        ``att_0 … att_{C-1}`` (that prompt's A_l(q, p_c)); and ``.layers``, one row per layer: ``layer``,
        ``auroc`` and ``R`` over all the prompts, ``n`` (prompts) and ``classes_kept``. With `per_head`, both
        have ``head`` and ``level`` columns after ``layer`` (``head`` empty and ``level`` = ``"layer"`` on the
        whole-layer rows), followed by one row per head (``R`` empty: it accumulates whole layers);
        ``head_grid(result.layers, "auroc")`` lays the heads' AUROC out as [layer, head].

    Examples:
        >>> import anchorlens as al
        >>> model = al.random_model()
        >>> _, prompts = al.task_prompts(model, "sst2", 42, n_test=2)
        >>> result = al.label_attention_auroc(model, prompts)
        >>> len(result.examples), tuple(result.layers.columns)
        (4, ('layer', 'auroc', 'R', 'n', 'classes_kept'))
    """
    measured = measure_label_attention(model, prompts, per_head=per_head, batch_size=batch_size, progress=progress)
    predicted = whole_layer_rows(measured.examples).groupby("example", sort=False)["prediction"].first()
    warn_if_few_prompts_per_class(
        predicted.to_numpy(), "the AUROC and R_l of label_attention_auroc", MIN_PROMPTS_PER_CLASS
    )
    return measured


def seed_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """One seed's rows from `label_attention_auroc`'s frame: per layer (and per head, when there is a ``head``
    column) ``auroc``, ``n`` (the inputs) and ``classes_kept`` (classes predicted at least once)."""

    def rows_of(part: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
        grouped = part.groupby(keys)
        rows = grouped["auroc"].first().reset_index()  # one value per layer (head), repeated on its rows
        return rows.assign(n=grouped.size().to_numpy(), classes_kept=part["prediction"].nunique())

    layers = rows_of(whole_layer_rows(frame), ["layer"])
    if "head" not in frame.columns:
        return layers
    return with_head_column(layers, rows_of(per_head_rows(frame), ["layer", "head"]))


def seed_function(model: Model, task: Task, config: AurocConfig, out: Folder, progress: bool) -> OneSeed:
    """The per-layer AUROC of one seed: `label_attention_auroc` on the seed's prompts (`task_prompts`)."""

    def one_seed(seed: int) -> SeedOutput:
        _, prompts = task_prompts(model, task, seed, n_test=config.n_test, shots_per_class=config.shots_per_class)
        measured = measure_label_attention(
            model, prompts, per_head=config.per_head, batch_size=config.batch_size, progress=progress
        )
        # R is taken across seeds (`with_r`), not per seed.
        return SeedOutput(measured.layers.drop(columns="R"), measured.examples)

    return one_seed


EXPERIMENT = Experiment(
    example="""
        >>> import anchorlens as al
        >>> config = al.AurocConfig(seeds=(42,), n_test=2)
        >>> result = al.run_auroc(al.random_model(), "sst2", config, progress=False)
        >>> result.to_frame().shape
        (2, 8)
    """,
    name="auroc",
    order=3,
    help="per-layer AUROC of target->label attention vs prediction, R_l (Fig. 5)",
    section="2.3",
    expectation="AUROC is about 0.5 in shallow layers and reaches about 0.8 in deep layers; R_l rises mainly in middle "
    "and deep layers (Fig. 5).",
    reference_part_seconds=4.3,
    config_class=AurocConfig,
    result_class=AurocResult,
    per_seed=seed_function,
    figures=("plot_auroc",),
    summary=(
        "Per-layer AUROC (paper §2.3, Fig. 5) for each seed: `label_attention_auroc` on the seed's prompts "
        "(`task_prompts`), and R_l over the seed-averaged curve."
    ),
    returns=(
        "`AurocResult`: per seed and layer the AUROC, with R_l of the task's seed-averaged curve "
        "(`to_frame`), and one row per test input and layer (`examples`): `label_attention_auroc`'s "
        "``examples``."
    ),
)
run_auroc = EXPERIMENT.run_function()
