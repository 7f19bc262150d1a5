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
(``hook_rot_k``/``hook_rot_q``), else ``hook_k``/``hook_q``. A TransformerBridge whose post-rotary hook points
never run (GPT-NeoX) gives its keys and queries before rotary and its cos / sin instead: they are rotated here
in Hugging Face's rotate-half convention and checked against the layer's attention scores (refused if they do
not give them). With grouped-query attention each key head is
repeated for the query heads that read it, so key and query vectors line up head by head.

Inputs (`diagnosis_inputs`): the true confusion of a pair is an AUROC over the inputs of its two classes, so
every class needs enough of them; anchorlens requires ``min_per_class`` (default 30) per class and seed. The
seed's ``n_test`` test inputs (the same ones every experiment uses) come first; a class still short gets more
of its rows further down the seed's shuffle of the test split, and, only where the test split itself holds too
few, rows of the demonstration split (a seeded shuffle of that class's rows, never the seed's demonstrations),
marked ``split`` in the per-example rows. On SST-2, AG News and EmoC this needs the test split only (EmoC tops
up Happy, Sad and Angry); TREC's test split holds 9 ABBR questions, so 21 more come from its train split. A
class that cannot reach ``min_per_class`` even then is refused (`EmptyClassError`), naming the class and count.

Why this and not the alternatives: pooling the AUROC over seeds (5 × 9 = 45 ABBR prompts) or prompting each
input with several demonstration sets multiplies prompts, not inputs: the same 9 questions answered 5 times
rank alike, so the AUROC would still measure 9 inputs while looking like 45. The paper's reference code fitted
on 500 prompts with demonstration sets rotating across them; on TREC (500 test rows) that is at most its 9 ABBR
questions. anchorlens keeps one demonstration set per seed (SPEC §0), so the label keys are those of the
demonstrations the inputs were answered with, and averages the matrices over seeds. The PCA is fitted on the
queries of all the seed's inputs. At n_test=200 and seeds 42 / 43 the top-up added 31 / 34 inputs on TREC (21 ABBR
from the train split each; HUM, LOC from the test split) and 70 / 47 on EmoC; none on SST-2 and AG News.

Significance (`DiagnoseResult.summary`): a one-sided Mantel permutation test of the correlation across class
pairs. The class labels of the predicted matrix are permuted (rows and columns together) and the correlation
recomputed; permuting the pair values one by one instead would ignore that pairs sharing a class are not
independent (a class far from all others raises all of its pairs) and give too small p-values. With C classes
there are C! relabellings: up to 8 classes all are enumerated (exact p, at least 1/C!, e.g. 1/24 for 4 classes,
1/720 for TREC); beyond, `N_PERMUTATIONS` seeded random ones (p = (1 + hits) / (1 + draws)).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations, permutations
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from einops import rearrange, repeat
from jaxtyping import Float
from scipy.spatial.distance import pdist, squareform
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits
from torch import Tensor

from anchorlens.activations import label_means, target_rows
from anchorlens.errors import EmptyClassError, HookError, InvalidConfigError
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
    setting,
)
from anchorlens.forward import run_to_target
from anchorlens.metrics import warn_if_few_prompts_per_class, weighted_auc
from anchorlens.model_classes import Model, describe, hooked_transformer_hint
from anchorlens.preparation import Experiment
from anchorlens.prompts import PromptBatch, Prompts, build_prompt, label_logits, label_tokens
from anchorlens.random_streams import relabelling_generator, shuffled_diagnosis_rows
from anchorlens.sampling import Example, sample_demonstrations, test_indices
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
from anchorlens.tasks import Source, Task, get_task, load_split

#: Inputs every class needs per seed for its true-confusion AUROCs (module docstring).
MIN_PER_CLASS = 30
#: Largest class count whose relabellings are all enumerated (8! = 40320); random relabellings beyond.
EXACT_UP_TO = 8
#: Random relabellings (and their generator's seed) when there are more than `EXACT_UP_TO` classes.
N_PERMUTATIONS = 9999
PERMUTATION_SEED = 0


@dataclass(frozen=True)
class DiagnoseConfig(ExperimentConfig):
    """Settings of `run_diagnose` (and `anchorlens diagnose`): the fields of `ExperimentConfig`, and those below."""

    layer: int | None = setting(
        None, "layer whose keys and queries are compared", default_text="two thirds of the depth; GPT2-XL: 32 of 48"
    )
    n_components: int = setting(10, "principal components the queries are projected onto", flag=None)
    min_per_class: int = setting(
        MIN_PER_CLASS,
        "inputs each class needs per seed; classes short in the seed's test inputs are topped up (module docstring)",
        flag=None,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_components < 1:
            raise InvalidConfigError(f"n_components must be at least 1, got {self.n_components}")
        if self.min_per_class < 2:
            raise InvalidConfigError(
                f"min_per_class must be at least 2, got {self.min_per_class} (default {MIN_PER_CLASS}: an AUROC over "
                "fewer inputs of a class says little)"
            )


@dataclass(frozen=True)
class DiagnosisInput:
    """One query of the diagnosis: the example and the split it comes from (its index is a row of that split)."""

    example: Example
    split: str


def diagnosis_inputs(
    task: Task | str,
    seed: int,
    *,
    n_test: int | None,
    min_per_class: int = MIN_PER_CLASS,
    demonstration_rows: Sequence[int] = (),
    source: Source = "local",
) -> list[DiagnosisInput]:
    """The seed's diagnosis queries: its first `n_test` test inputs, then, for each class with fewer than
    `min_per_class` of them, more of that class's rows further down the seed's test shuffle and, if the test split
    runs out, from a seeded shuffle of the demonstration split (skipping `demonstration_rows`). `EmptyClassError`
    if a class cannot reach `min_per_class` (module docstring)."""
    task = get_task(task)
    test = load_split(task, task.test_split, source=source)
    test_labels = np.asarray(test.data.column("label").to_pylist())
    test_texts = test.data.column("text")
    base = min(task.max_test, test.num_rows) if n_test is None else min(n_test, test.num_rows)
    order = test_indices(test.num_rows, seed)  # the whole shuffle: its first `base` rows are the test inputs
    chosen = [
        DiagnosisInput(Example(test_texts[i].as_py(), int(test_labels[i]), i), task.test_split) for i in order[:base]
    ]
    counts = np.bincount([item.example.label for item in chosen if item.example.label >= 0], minlength=task.num_classes)
    for i in order[base:]:
        label = int(test_labels[i])
        if 0 <= label and counts[label] < min_per_class:
            chosen.append(DiagnosisInput(Example(test_texts[i].as_py(), label, i), task.test_split))
            counts[label] += 1
    if (counts < min_per_class).any():
        demo = load_split(task, task.demo_split, source=source)
        demo_labels = np.asarray(demo.data.column("label").to_pylist())
        demo_texts = demo.data.column("text")
        excluded = set(int(row) for row in demonstration_rows)
        for i in shuffled_diagnosis_rows(seed, demo.num_rows):
            label = int(demo_labels[i])
            if 0 <= label and counts[label] < min_per_class and int(i) not in excluded:
                chosen.append(DiagnosisInput(Example(demo_texts[int(i)].as_py(), label, int(i)), task.demo_split))
                counts[label] += 1
    short = np.flatnonzero(counts < min_per_class)
    if len(short):
        label = int(short[0])
        raise EmptyClassError(
            f"diagnose needs {min_per_class} inputs of every class for its true-confusion AUROCs, but class "
            f"{task.class_names[label]!r} (id {label}) of task {task.name!r} has only {counts[label]} rows in its "
            f"{task.test_split!r} and {task.demo_split!r} splits (demonstrations excluded); add rows of that class, "
            f"or accept a noisier matrix with DiagnoseConfig(min_per_class={max(int(counts[label]), 2)})"
        )
    return chosen


def default_layer(n_layers: int) -> int:
    return round(n_layers * 2 / 3)


def _hook_names(model: Model, layer: int) -> tuple[str, str] | None:
    """The hook points carrying the keys and queries that meet in the attention score, or None where a rotary
    bridge has no such points and they are rotated here (`_rotated_parts_names`)."""
    rotated = model.cfg.positional_embedding_type == "rotary"
    key, query = ("hook_rot_k", "hook_rot_q") if rotated else ("hook_k", "hook_q")
    names = f"blocks.{layer}.attn.{key}", f"blocks.{layer}.attn.{query}"
    if all(name in model.hook_dict for name in names):
        return names
    if rotated and _rotated_parts_names(model, layer) is not None:
        return None
    missing = next(name for name in names if name not in model.hook_dict)
    raise HookError(
        f"diagnose compares the keys and queries that meet in the attention score, and this {describe(model)} has "
        f"no hook point {missing!r} for them; " + hooked_transformer_hint()
    )


def _rotated_parts_names(model: Model, layer: int) -> dict[str, str] | None:
    """A bridge's hook points for keys and queries before rotary (``attn.k`` / ``attn.q``), the rotary cos / sin
    and the scores, where all exist (the inputs of `_rotate_half_embedding`)."""
    prefix = f"blocks.{layer}.attn"
    names = {
        "keys": f"{prefix}.k.hook_out",
        "queries": f"{prefix}.q.hook_out",
        "cos": f"{prefix}.hook_cos",
        "sin": f"{prefix}.hook_sin",
        "scores": f"{prefix}.hook_attn_scores",
    }
    return names if all(name in model.hook_dict for name in names.values()) else None


def _rotate_half_embedding(vectors: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotary embedding of the first ``cos.shape[-1]`` dimensions of [batch, seq, head, d_head] vectors, with
    cos and sin [batch, seq, rotary], in the rotate-half convention of Hugging Face's GPT-NeoX, Llama, Gemma and
    Qwen models (cos and sin repeat each frequency over the two halves)."""
    width = cos.shape[-1]
    rotary, passed = vectors[..., :width], vectors[..., width:]
    first, second = rotary[..., : width // 2], rotary[..., width // 2 :]
    rotate_half = torch.cat([-second, first], dim=-1)
    return torch.cat([rotary * cos[:, :, None] + rotate_half * sin[:, :, None], passed], dim=-1)


def _keys_and_queries_rotated_here(model: Model, batch: PromptBatch, layer: int) -> tuple[Tensor, Tensor, Tensor]:
    """Post-rotary keys and queries of a bridge whose ``hook_rot_k`` / ``hook_rot_q`` do not run (GPT-NeoX): the
    projections before rotary, rotated here with the model's own cos / sin. Checked against the layer's attention
    scores, which must be the scaled products of the vectors returned: a model whose rotary convention differs
    (GPT-J's interleaved pairs) is refused rather than diagnosed from the wrong keys.

    Returns keys [batch, seq, kv_head, d_head], queries [batch, seq, head, d_head] and the target logits."""
    names = _rotated_parts_names(model, layer)
    if names is None:
        raise HookError(
            f"this {describe(model)} has no post-rotary keys and queries at layer {layer}, nor the hook points to "
            "rotate them (attn.k / attn.q / hook_cos / hook_sin); " + hooked_transformer_hint()
        )
    store: dict[str, Tensor] = {}

    def keep(what: str):
        def hook(tensor: Tensor, hook) -> None:
            store[what] = tensor.detach()

        return hook

    with torch.no_grad():
        logits = run_to_target(model, batch, [(name, keep(what)) for what, name in names.items()])
    if set(store) != set(names) or store["keys"].ndim != 4 or store["cos"].shape[-1] > store["keys"].shape[-1]:
        raise HookError(
            f"this {describe(model)} did not run {', '.join(names.values())} with the expected shapes, so diagnose "
            "has no post-rotary keys and queries to compare; " + hooked_transformer_hint()
        )
    keys = _rotate_half_embedding(store["keys"], store["cos"], store["sin"])
    queries = _rotate_half_embedding(store["queries"], store["cos"], store["sin"])
    group = queries.shape[2] // keys.shape[2]
    repeated = repeat(keys, "batch seq kv_head d_head -> batch seq (kv_head group) d_head", group=group)
    products = torch.einsum("bqhd,bkhd->bhqk", queries, repeated)
    scores = store["scores"]
    causal = torch.ones(scores.shape[-2:], dtype=torch.bool, device=scores.device).tril()
    scale = (scores[..., causal] / products[..., causal]).median()
    if not torch.allclose(products[..., causal] * scale, scores[..., causal], rtol=1e-3, atol=1e-4):
        raise HookError(
            f"this {describe(model)}'s layer {layer} keys and queries, rotated in the rotate-half convention, do not "
            "give its attention scores (another rotary convention), so diagnose cannot read post-rotary keys and "
            "queries from it; " + hooked_transformer_hint()
        )
    return keys, queries, logits


def keys_and_queries(
    model: Model, batch: PromptBatch, layer: int
) -> tuple[Float[Tensor, "batch class d_qk"], Float[Tensor, "batch d_qk"], Float[Tensor, "batch class"]]:
    """Per prompt: each class's label key (mean over its demonstrations, `anchorlens.activations.label_means`)
    [batch, class, d_qk], the target's query (`anchorlens.activations.target_rows`) [batch, d_qk], and the label
    probabilities [batch, class]. Only these rows leave the hooks."""
    names = _hook_names(model, layer)
    store: dict[str, torch.Tensor] = {}

    def label_keys(keys: torch.Tensor, name: str) -> Tensor:  # [batch, seq, kv_head, d_head]
        if keys.ndim != 4 or keys.shape[1] != batch.seq_len:
            raise HookError(
                f"{name} carries a tensor of shape {tuple(keys.shape)}, not [batch, position, head, "
                "d_head]; diagnose cannot read keys from this model"
            )
        # Grouped-query attention: each key head serves `group` consecutive query heads.
        group = model.cfg.n_heads // keys.shape[2]
        keys = repeat(keys, "batch seq kv_head d_head -> batch seq (kv_head group d_head)", group=group)
        return label_means(keys, batch).detach()

    def target_queries(queries: torch.Tensor) -> Tensor:  # [batch, seq, head, d_head]
        at_target = target_rows(queries, batch)
        return rearrange(at_target, "batch head d_head -> batch (head d_head)").detach()

    if names is not None:
        key_name, query_name = names

        def keep_keys(keys: torch.Tensor, hook) -> None:
            store["keys"] = label_keys(keys, hook.name)

        def keep_queries(queries: torch.Tensor, hook) -> None:
            store["queries"] = target_queries(queries)

        with torch.no_grad():
            logits = run_to_target(model, batch, [(key_name, keep_keys), (query_name, keep_queries)])
        if set(store) != {"keys", "queries"} and model.cfg.positional_embedding_type != "rotary":
            raise HookError(
                f"{key_name} / {query_name} exist on this {describe(model)} but did not run, so diagnose has no "
                "keys and queries to compare; " + hooked_transformer_hint()
            )
    if set(store) != {"keys", "queries"}:
        # A rotary bridge without post-rotary hook points, or whose hook_rot_k never runs (GPT-NeoX): rotate here.
        keys, queries, logits = _keys_and_queries_rotated_here(model, batch, layer)
        store = {"keys": label_keys(keys, f"blocks.{layer}.attn.k.hook_out"), "queries": target_queries(queries)}
    probabilities = label_logits(logits, batch).softmax(-1)
    return store["keys"].cpu(), store["queries"].cpu(), probabilities.cpu()


@dataclass(frozen=True, eq=False)
class AnchorKeys:
    """The label-word keys and target queries of some prompts at one layer (`anchor_keys`), and the model's
    label probabilities. Keys and queries are those that meet in the attention score, all heads concatenated
    (``dim`` = heads × d_head; grouped-query key heads repeated for the query heads that read them)."""

    #: The layer they were recorded at.
    layer: int
    #: Each class's label key per prompt (mean over that class's demonstrations): [prompt, class, dim].
    keys: Float[Tensor, "example class d_qk"]
    #: The target's query per prompt: [prompt, dim].
    queries: Float[Tensor, "example d_qk"]
    #: Softmax over the C label logits at the target: [prompt, class].
    probabilities: Float[Tensor, "example class"]
    #: One row per prompt, in the order given: ``example, gold, prediction, p_0 … p_{C-1}``.
    examples: pd.DataFrame

    def predicted_confusion(self, n_components: int = DiagnoseConfig.n_components) -> Float[np.ndarray, "class class"]:
        """The paper's predicted confusion [class, class] from these keys and queries (`predicted_confusion`):
        the label keys averaged over the prompts, projected on the queries' principal components."""
        return predicted_confusion(self.keys.double().mean(0).numpy(), self.queries.double().numpy(), n_components)

    def true_confusion(self) -> Float[np.ndarray, "class class"]:
        """AUROC of p_i / p_j telling gold class i from gold class j over these prompts (`true_confusion`).

        With fewer than `MIN_PER_CLASS` prompts of some gold class (the diagnosis's own minimum), a one-line
        `FewPromptsWarning` says the matrix rests on too little (on 2 a class, AUROCs of 1 are common)."""
        gold = self.examples["gold"].to_numpy()
        if (gold < 0).any():
            raise InvalidConfigError(
                "true confusion needs every prompt's gold class; build the prompts with query_label=..."
            )
        warn_if_few_prompts_per_class(
            gold, "anchor_keys' true confusion", MIN_PER_CLASS, "its AUROCs can be 1 by chance"
        )
        return true_confusion(self.probabilities.double().numpy(), gold)


def checked_layer(model: Model, layer: int | None) -> int:
    """`layer`, or two thirds of the depth when None; `InvalidConfigError` outside the model's layers."""
    layer = default_layer(model.cfg.n_layers) if layer is None else layer
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= layer < model.cfg.n_layers:
        raise InvalidConfigError(f"layer {layer} does not exist; the model has layers 0..{model.cfg.n_layers - 1}")
    return int(layer)


def anchor_keys(
    model: Model, prompts: Prompts, layer: int | None = None, *, batch_size: int = 8, progress: bool = False
) -> AnchorKeys:
    """The label-word keys and target queries of `prompts` at one layer, as the error diagnosis compares them
    (paper §3.3): recorded inside one forward pass per batch, only these rows kept.

    Args:
        model: a loaded model whose attention exposes its keys and queries (``hook_rot_k``/``hook_rot_q`` for
            rotary models, else ``hook_k``/``hook_q``).
        prompts: a list of `Prompt`s (or a `PromptBatch`) sharing their label words.
        layer: the layer (default two thirds of the depth, as the diagnosis).
        batch_size: prompts per forward pass (changes no number).
        progress: show a progress bar over batches.

    Returns:
        `AnchorKeys`: ``keys`` [prompt, class, heads × d_head], ``queries`` [prompt, heads × d_head],
        ``probabilities`` [prompt, class] (float32, CPU, rows in the order given) and the per-example frame
        ``examples`` (``example, gold, prediction, p_0 … p_{C-1}``); ``predicted_confusion()`` and
        ``true_confusion()`` give the diagnosis's two matrices over these prompts.

    Examples:
        >>> import anchorlens as al
        >>> model = al.random_model()
        >>> _, prompts = al.task_prompts(model, "sst2", 42, n_test=2)
        >>> keys = al.anchor_keys(model, prompts)
        >>> tuple(keys.keys.shape), tuple(keys.queries.shape)  # heads × d_head = 4 × 8
        ((2, 2, 32), (2, 32))
    """
    layer = checked_layer(model, layer)
    prompts = checked_prompts(model, prompts, what="anchor_keys")
    keys, queries, probabilities = in_prompt_order(
        model,
        prompts,
        lambda batch: keys_and_queries(model, batch, layer),
        batch_size=batch_size,
        progress=progress,
    )
    examples = pd.DataFrame(
        {
            "example": example_ids(prompts),
            "gold": gold_ids(prompts),
            "prediction": probabilities.argmax(1).numpy(),
        }
    )
    for label in range(probabilities.shape[1]):
        examples[f"p_{label}"] = probabilities[:, label].double().numpy()
    return AnchorKeys(layer, keys, queries, probabilities, examples)


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
            matrix[a, b] = roc_auc_score(gold[chosen] == a, pair_score(probabilities[chosen], a, b))
    return matrix


def pair_score(probabilities: np.ndarray, a: int, b: int) -> np.ndarray:
    """p_a / p_b of each input: the score whose AUROC is true confusion(a, b)."""
    return probabilities[:, a] / np.clip(probabilities[:, b], 1e-30, None)


def probability_columns(examples: pd.DataFrame) -> list[str]:
    """The ``p_c`` columns of `examples` that hold values (a task's own classes), in class-id order."""
    present = [column for column in examples.columns if column.startswith("p_") and column[2:].isdigit()]
    present = [column for column in present if examples[column].notna().any()]
    return sorted(present, key=lambda column: int(column[2:]))


def _pair_correlations(predicted_pairs: np.ndarray, true_pairs: np.ndarray) -> dict[str, np.ndarray]:
    """Pearson and Spearman correlation of each row of `predicted_pairs` [draw, pair] with `true_pairs` [pair]."""
    from scipy.stats import rankdata

    def pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x = x - x.mean(-1, keepdims=True)
        y = y - y.mean()
        with np.errstate(invalid="ignore", divide="ignore"):
            return (x @ y) / np.sqrt((x * x).sum(-1) * (y @ y))

    return {
        "pearson": pearson(predicted_pairs, true_pairs),
        "spearman": pearson(rankdata(predicted_pairs, axis=-1), rankdata(true_pairs)),
    }


def mantel_test(
    predicted: np.ndarray,
    true: np.ndarray,
    *,
    n_permutations: int = N_PERMUTATIONS,
    seed: int = PERMUTATION_SEED,
) -> dict[str, float]:
    """One-sided permutation p-values of the Pearson and Spearman correlation of the off-diagonal pairs (i < j)
    of two C × C matrices, relabelling the classes of `predicted` (module docstring). Pairs whose true value is
    NaN are left out. Returns ``pearson``, ``spearman``, ``p_pearson``, ``p_spearman``, ``n_permutations`` (the
    relabellings compared, identity included); NaN where fewer than 3 pairs are usable."""
    n_classes = len(predicted)
    first, second = np.triu_indices(n_classes, k=1)
    true_pairs = true[first, second]
    usable = np.isfinite(true_pairs)
    nothing = {"pearson": np.nan, "spearman": np.nan, "p_pearson": np.nan, "p_spearman": np.nan, "n_permutations": 0}
    if usable.sum() < 3 or not np.isfinite(predicted[first, second]).all():
        return nothing
    if n_classes <= EXACT_UP_TO:
        relabellings = np.array(list(permutations(range(n_classes))))  # the identity is the first
    else:  # the identity, then random relabellings: p = (1 + hits among them) / (1 + n_permutations)
        generator = relabelling_generator(seed)
        drawn = [generator.permutation(n_classes) for _ in range(n_permutations)]
        relabellings = np.vstack([np.arange(n_classes), *drawn])
    permuted = predicted[relabellings[:, first], relabellings[:, second]][:, usable]  # [relabelling, pair]
    correlations = _pair_correlations(permuted, true_pairs[usable])
    result: dict[str, float] = {"n_permutations": len(relabellings)}
    for name, values in correlations.items():
        observed = values[0]
        result[name] = float(observed)
        if not np.isfinite(observed):
            result[f"p_{name}"] = np.nan
            continue
        # As large or larger (rounding aside); an undefined correlation (a constant relabelled row) counts as not.
        hits = int((np.nan_to_num(values, nan=-np.inf) >= observed - 1e-12).sum())
        result[f"p_{name}"] = hits / len(values)
    return result


@dataclass(frozen=True)
class DiagnoseResult(ExperimentResult):
    """Rows: task, model, seed, layer, class_a, class_b, predicted, true, n (the seed's inputs), n_a, n_b (its
    inputs of gold class_a and class_b), one row per ordered class pair.

    Examples: task, model, seed, example, split, gold, prediction, p_0 … p_{C-1} (label probabilities at the
    target), one row per input; ``example`` is a row index of ``split``.
    """

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
        """Per task: Pearson and Spearman correlation of the off-diagonal pairs (i < j) of the seed-mean matrices
        with their one-sided permutation p-values (`mantel_test`: class labels permuted), the most confused pair
        by each matrix, and the fewest inputs any class had in a seed (``min_class_inputs``)."""
        rows = []
        for (task, model), part in self.frame.groupby(["task", "model"]):
            predicted, true = self.matrices(task, model)
            pairs = [(a, b) for a, b in combinations(predicted.index, 2)]
            x = np.array([predicted.loc[a, b] for a, b in pairs])
            y = np.array([true.loc[a, b] for a, b in pairs])
            valid = ~(np.isnan(x) | np.isnan(y))
            test = mantel_test(predicted.to_numpy(float), true.to_numpy(float))
            fewest = pd.concat([part["n_a"], part["n_b"]]).min() if {"n_a", "n_b"} <= set(part.columns) else np.nan
            rows.append(
                {
                    "task": task,
                    "model": model,
                    "pairs": int(valid.sum()),
                    "pearson": test["pearson"],
                    "p_pearson": test["p_pearson"],
                    "spearman": test["spearman"],
                    "p_spearman": test["p_spearman"],
                    "n_permutations": test["n_permutations"],
                    "most_confused_predicted": "-".join(pairs[int(np.nanargmin(x))]) if valid.any() else "",
                    "most_confused_true": "-".join(pairs[int(np.nanargmin(y))]) if valid.any() else "",
                    "min_class_inputs": fewest,
                }
            )
        return pd.DataFrame(rows)

    def summary_with_ci(
        self, *, n_resamples: int = N_RESAMPLES, level: float = LEVEL, seed: int = BOOTSTRAP_SEED
    ) -> pd.DataFrame:
        """The true confusion of each ordered class pair (seed mean, as `matrices`) with a seed-level interval
        (`anchorlens.stats.seed_interval`), floored by the spread over resamples of each seed's inputs: each seed's
        AUROC of p_a / p_b recomputed on its drawn inputs of gold a or b (count-weighted,
        `anchorlens.metrics.weighted_auc`), averaged over the seeds. The predicted confusion has no interval:
        it comes from the keys and a PCA of all the seed's queries, which the per-example rows do not hold. Long form:
        ``task, model, class_a, class_b, metric, mean, ci_low, ci_high, n_seeds, n_examples`` (n_examples: inputs of
        gold a or b over the seeds)."""
        # Single-threaded BLAS: the products are small, and threads fighting over shared cores made them 18 times
        # slower (measured); one thread also makes the numbers independent of the machine's core count.
        with threadpool_limits(limits=1, user_api="blas"):
            return self._bootstrap_summary(n_resamples, level, seed)

    def _bootstrap_summary(self, n_resamples: int, level: float, seed: int) -> pd.DataFrame:
        columns = ["task", "model", "class_a", "class_b", *SUMMARY_COLUMNS]
        if self.examples.empty:
            return pd.DataFrame(columns=columns)
        examples = self.examples.copy()
        # The bootstrap unit is the input: the row index within its split (top-up rows come from another split).
        split = examples["split"].astype(str) if "split" in examples.columns else ""
        examples["unit"] = split + ":" + examples["example"].astype(str)
        rows = []
        for stratum_key, stratum in strata(examples, ["task", "model"]):
            task, model = stratum_key
            names = list(get_task(task).class_names)
            resamples, _ = resamples_for(stratum_key, stratum, unit="unit", n_resamples=n_resamples, seed=seed)
            stratum = stratum.sort_values(["seed", "unit"])
            if len(stratum) != len(resamples.seed_of_unit):
                raise ValueError(f"the diagnose examples of {stratum_key} hold an input twice in a seed")
            probabilities = stratum[probability_columns(stratum)].to_numpy(float)
            gold = stratum["gold"].to_numpy().astype(int)
            members = [np.flatnonzero(resamples.seed_of_unit == s) for s in range(len(resamples.seeds))]
            for a in range(probabilities.shape[1]):
                for b in range(probabilities.shape[1]):
                    if a == b:
                        continue
                    total = np.zeros(n_resamples)
                    weight = np.zeros(n_resamples)
                    point = []
                    for position, rows_of_seed in enumerate(members):
                        chosen = rows_of_seed[(gold[rows_of_seed] == a) | (gold[rows_of_seed] == b)]
                        score, positive = pair_score(probabilities[chosen], a, b), gold[chosen] == a
                        point.append(weighted_auc(score, positive, np.ones((1, len(chosen))))[0])
                        boot = weighted_auc(score, positive, resamples.counts[:, chosen])
                        drawn = resamples.seed_draws[:, position].astype(float)
                        use = (drawn > 0) & np.isfinite(boot)
                        total[use] += drawn[use] * boot[use]
                        weight[use] += drawn[use]
                    with np.errstate(invalid="ignore", divide="ignore"):
                        low, high = seed_interval(point, within_sd_of(total / weight), level)
                    n_examples = int(((gold == a) | (gold == b)).sum())
                    mean = float(pd.Series(point, dtype=float).mean())  # over seeds where it is defined, as `matrices`
                    rows.append((task, model, names[a], names[b], "true", mean, low, high, len(members), n_examples))
        return pd.DataFrame(rows, columns=columns)


def seed_function(model: Model, task: Task, config: DiagnoseConfig, out: Folder, progress: bool) -> OneSeed:
    """The predicted and true confusion of one seed at `config.layer` (checked against the model before any
    work): `anchor_keys` on the seed's diagnosis inputs, each prompted with the seed's demonstrations."""
    layer = checked_layer(model, config.layer)

    def one_seed(seed: int) -> SeedOutput:
        demonstrations, _ = sample_demonstrations(task, seed, shots_per_class=config.shots_per_class)
        inputs = diagnosis_inputs(
            task,
            seed,
            n_test=config.n_test,
            min_per_class=config.min_per_class,
            demonstration_rows=[example.index for example in demonstrations],
        )
        labels = label_tokens(model.tokenizer, task)
        prompts = [
            build_prompt(
                model,
                task,
                demonstrations,
                item.example.text,
                item.example.label,
                labels=labels,
                example_index=item.example.index,
            )
            for item in inputs
        ]
        recorded = anchor_keys(model, prompts, layer, batch_size=config.batch_size, progress=progress)
        # The label keys depend only on the demonstrations (causal attention), the same in every prompt.
        predicted = recorded.predicted_confusion(config.n_components)
        gold = recorded.examples["gold"].to_numpy()
        # The run's own minimum (config.min_per_class) was enforced above; rows record each class's count.
        true = true_confusion(recorded.probabilities.double().numpy(), gold)
        per_class = np.bincount(gold, minlength=task.num_classes)
        names = task.class_names
        rows = pd.DataFrame(
            [
                {
                    "layer": layer,
                    "class_a": names[a],
                    "class_b": names[b],
                    "predicted": predicted[a, b],
                    "true": true[a, b],
                    "n": len(prompts),
                    "n_a": int(per_class[a]),
                    "n_b": int(per_class[b]),
                }
                for a in range(task.num_classes)
                for b in range(task.num_classes)
            ]
        )
        per_example = recorded.examples.copy()
        per_example.insert(1, "split", [item.split for item in inputs])
        return SeedOutput(rows, per_example)

    return one_seed


EXPERIMENT = Experiment(
    example="""
        >>> import anchorlens as al
        >>> config = al.DiagnoseConfig(seeds=(42,), n_test=2, n_components=2, min_per_class=2)
        >>> result = al.run_diagnose(al.random_model(), "sst2", config, progress=False)
        >>> result.to_frame().shape
        (4, 11)
    """,
    name="diagnose",
    order=4,
    help="predicted vs true confusion from label-word key geometry (Fig. 6)",
    section="3.3",
    expectation="Predicted confusion from label-key distances resembles the true confusion; on TREC, "
    "Description-Entity is the most confused pair (Fig. 6).",
    reference_part_seconds=9.0,
    # topping every class up to 30 inputs is most of a small run's prompts (TREC: 180 for 20 test inputs)
    main_job={"min_per_class": 10},
    config_class=DiagnoseConfig,
    result_class=DiagnoseResult,
    per_seed=seed_function,
    figures=("plot_diagnose",),
    summary=(
        "Predicted and true confusion (paper §3.3, Fig. 6) for each seed at `config.layer`: `anchor_keys` on "
        "the seed's diagnosis inputs (`diagnosis_inputs`), each prompted with the seed's demonstrations."
    ),
    returns=(
        "`DiagnoseResult`: per seed one row per ordered class pair with its predicted and true confusion "
        "(`to_frame`), and one row per input (`examples`): `AnchorKeys.examples` with the input's ``split``."
    ),
)
run_diagnose = EXPERIMENT.run_function()
