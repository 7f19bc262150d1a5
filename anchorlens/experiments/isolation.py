"""Isolating label words in shallow or deep layers, with label and word loyalty (paper §2.2, Fig. 4; SPEC §2).

On pre-softmax scores every label-word row is blocked from attending to earlier tokens (self kept), in the
first k or the last k layers (k = 1, 3, 5, 7 by default, as in the paper's Fig. 4; its main result is k = 5).
Versus the un-isolated run:

* label loyalty: share of test inputs whose predicted label (argmax of the label logits) is unchanged;
* word loyalty: mean Jaccard overlap of the top-k full-vocabulary tokens at the target (paper k = 5).

The random control blocks, in each isolated layer, as many random non-label positions as the prompt has label
positions. They are drawn without replacement from the positions the paper's reference draws from: those before
the token preceding the target (positions < q - 1, so neither the target q nor the token q - 1 right before it),
other than label positions and other than a BOS (whose row has nothing earlier to block).

Each draw is keyed by (seed, test example, layer): ``np.random.default_rng([seed, prompt.example_index,
layer])`` (`anchorlens.random_streams.draw_key`). So the draws do not depend on how prompts are batched or in
which order batches run (batch size 1 and 8 give the same table), a resumed run never mixes draws, and a layer
gets the same draw whatever k and whether it is isolated as one of the first or one of the last k layers. A
prompt without an ``example_index`` (built outside `task_prompts`, e.g. for a benchmark) is keyed by its content
instead: ``[seed, layer, *w]`` with w the eight 32-bit words of the SHA-256 of its token ids, just as
independent of batching.

Everything is forward-only. Each seed leaves one row per (k, condition) and one per-example row per
(test input, k, condition): example, gold, base_prediction, prediction, label_loyalty (0/1), word_loyalty.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from anchorlens.errors import InvalidConfigError
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
from anchorlens.hooks import block_earlier_mask, isolation_hooks
from anchorlens.metrics import jaccard, label_agreement
from anchorlens.model_classes import Model, supports_start_at_layer
from anchorlens.paper import ISOLATION_K, ISOLATION_MAIN_K
from anchorlens.preparation import Experiment
from anchorlens.prompts import Prompt, PromptBatch, Prompts, Role, label_logits, task_prompts

# draw_key's home was this module; it stays importable from here.
from anchorlens.random_streams import draw_key as draw_key
from anchorlens.random_streams import prompt_generator
from anchorlens.tasks import Task

CONDITIONS = ("label_first", "label_last", "random_first", "random_last")
#: The main job's isolation: the paper's main result, k = 5, alone (`anchorlens reproduce --full`: every k).
MAIN_JOB_K = (ISOLATION_MAIN_K,)


@dataclass(frozen=True)
class IsolationConfig(ExperimentConfig):
    """Settings of `run_isolation` (and `anchorlens isolation`): the fields of `ExperimentConfig`, and those below."""

    k: tuple[int, ...] = setting(
        ISOLATION_K, "isolated layer counts (paper Fig. 4: 1 3 5 7; main result 5)", flag="--k"
    )
    word_top_k: int = setting(
        5, "top-k vocabulary tokens compared by word loyalty (paper 5; its reference notebook used 10)"
    )
    depth_fractions: tuple[float, ...] = setting(
        (),
        "also isolate round(f x layers) layers for each depth fraction f, beside the absolute k: the paper's "
        "k = 5 is 5/48 = 0.1042 of GPT2-XL's depth, which is 3 of SmolLM2's 30 layers and 2 of Gemma-3's 18",
        default_text="none",
    )

    OMITTED_AT_DEFAULT: ClassVar[tuple[str, ...]] = ("depth_fractions",)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "k", tuple(int(k) for k in self.k))
        object.__setattr__(self, "depth_fractions", tuple(float(f) for f in self.depth_fractions))
        if any(not 0 < f <= 1 for f in self.depth_fractions):
            raise InvalidConfigError(
                f"depth fractions must lie in (0, 1], got {self.depth_fractions}; e.g. 0.1042 for the paper's 5/48"
            )
        if not self.k or min(self.k) < 1:
            raise InvalidConfigError(
                f"k must be one or more positive layer counts, got {self.k} (the paper uses 1 3 5 7)"
            )
        if len(set(self.k)) != len(self.k):
            raise InvalidConfigError(f"k repeats: {self.k}; give each layer count once")
        if self.word_top_k < 1:
            raise InvalidConfigError(f"word_top_k must be at least 1, got {self.word_top_k}")


def random_candidates(prompt: Prompt) -> list[int]:
    """Positions the random control may block: before the token preceding the target, not a label, not BOS."""
    anchors = set(prompt.demonstration_label_positions)
    return [p for p in range(prompt.target_position - 1) if p not in anchors and prompt.roles[p] != Role.BOS]


def random_positions(prompt: Prompt, seed: int, layer: int) -> tuple[int, ...]:
    """The random control's rows for one prompt in one layer: as many as it has label positions (fewer only if
    there are not that many candidates), drawn by a generator keyed by (seed, example, layer)."""
    candidates = random_candidates(prompt)
    count = min(len(prompt.demonstration_label_positions), len(candidates))
    generator = prompt_generator(prompt, seed, layer)
    return tuple(sorted(int(p) for p in generator.choice(candidates, size=count, replace=False)))


def random_rows(batch: PromptBatch, seed: int, layer: int) -> list[tuple[int, ...]]:
    """`random_positions` of every prompt in the batch for one layer."""
    return [random_positions(prompt, seed, layer) for prompt in batch.prompts]


def isolation_layers(n_layers: int, k: int, where: str) -> list[int]:
    if k > n_layers:
        raise InvalidConfigError(
            f"k={k} is more than the model's {n_layers} layers; give layer counts of at most {n_layers} "
            "(IsolationConfig(k=...) or --k)"
        )
    return list(range(k)) if where == "first" else list(range(n_layers - k, n_layers))


@dataclass(frozen=True)
class Isolated:
    """One edited run of an isolation analysis: its key in the results (k, condition), which rows are blocked
    (``"label"`` or ``"random"``), in which layers, and the layer a run may restart from (None: from the
    tokens)."""

    key: tuple[int, str]
    kind: str
    layers: tuple[int, ...]
    restart: int | None


def paper_settings(n_layers: int, ks: Sequence[int], conditions: Sequence[str] = CONDITIONS) -> list[Isolated]:
    """The paper's settings: for each k and condition, the first or last k layers. A run on the last k layers
    restarts from the un-isolated residual stream before layer L - k (nothing earlier differs)."""
    settings = []
    for k in ks:
        for condition in conditions:
            kind, where = condition.split("_")
            layers = tuple(isolation_layers(n_layers, k, where))
            settings.append(Isolated((k, condition), kind, layers, layers[0] if where == "last" else None))
    return settings


def layer_settings(layers: Sequence[int], kinds: Sequence[str]) -> list[Isolated]:
    """Isolation in exactly `layers`, of the label rows and/or as many random rows: keys (len(layers), kind).
    A run restarts before the first isolated layer when that is not layer 0."""
    chosen = tuple(sorted(set(layers)))
    return [Isolated((len(chosen), kind), kind, chosen, chosen[0] or None) for kind in kinds]


def _is_prefix(isolated: Isolated) -> bool:
    return isolated.restart is None and isolated.layers == tuple(range(len(isolated.layers)))


def shared_prefixes(
    settings: Sequence[Isolated],
) -> tuple[dict[tuple[int, str], int], dict[tuple[int, str], list[int]]]:
    """Which settings restart from a longer one's run, and what that run records.

    A setting isolating layers 0..j-1 of one kind reaches, after layer j - 1, the state of the setting of the
    same kind isolating the most layers 0..m-1 (m > j): it restarts at layer j from that run's residual stream.

    Returns:
        (restart layer of each such setting by key, the layers whose entering residual stream each longest
        setting's run records, by key).
    """
    longest: dict[str, Isolated] = {}
    for isolated in settings:
        known = longest.get(isolated.kind)
        if _is_prefix(isolated) and (known is None or len(isolated.layers) > len(known.layers)):
            longest[isolated.kind] = isolated
    restart_at = {
        s.key: len(s.layers) for s in settings if _is_prefix(s) and len(s.layers) < len(longest[s.kind].layers)
    }
    records: dict[tuple[int, str], list[int]] = {}
    for isolated in settings:
        if isolated.key in restart_at:
            records.setdefault(longest[isolated.kind].key, []).append(restart_at[isolated.key])
    return restart_at, records


@dataclass(frozen=True)
class BatchLoyalty:
    """One batch's per-prompt outcome: the un-isolated prediction, and per (k, condition) the edited
    prediction, label loyalty (0/1) and word loyalty (Jaccard), each a CPU tensor over the batch."""

    base_prediction: Int[Tensor, " batch"]
    by_condition: dict[tuple[int, str], tuple[Int[Tensor, " batch"], Float[Tensor, " batch"], Float[Tensor, " batch"]]]


def loyalty_of_settings(
    model: Model, batch: PromptBatch, settings: Sequence[Isolated], seed: int, word_top_k: int
) -> BatchLoyalty:
    """Every isolation setting of one batch, with random draws keyed by (seed, example, layer).

    Two shortcuts, each giving the numbers of running every setting from the tokens:

    * a setting with a restart layer (the paper's last k) starts from the un-isolated run's residual stream
      before that layer, since nothing earlier differs;
    * settings of one kind that isolate a prefix of layers (the paper's first k) share it: the run isolating
      the most layers passes through the state every shorter one reaches after its last isolated layer (same
      masks in the same layers, the random draws being keyed by layer), so a shorter one restarts there and
      runs the rest un-isolated. At k = 1, 3, 5, 7 that saves 1 + 3 + 5 layers of each kind's 4 runs.

    A TransformerBridge cannot start at a layer, so there every setting runs from the tokens. Each mask is built
    once per batch: the label mask is shared by every layer, and a layer's random mask by every setting.
    """
    label_blocked = block_earlier_mask(batch, [p.demonstration_label_positions for p in batch.prompts])
    random_blocked: dict[int, Bool[Tensor, "batch query key"]] = {}

    def random_mask(layer: int) -> Bool[Tensor, "batch query key"]:
        if layer not in random_blocked:
            random_blocked[layer] = block_earlier_mask(batch, random_rows(batch, seed, layer))
        return random_blocked[layer]

    restarts = supports_start_at_layer(model)
    restart_layers = sorted({s.restart for s in settings if s.restart is not None}) if restarts else []
    saved: dict[int, torch.Tensor] = {}
    # (kind, layer) -> the residual stream entering `layer` after the kind's isolation of every earlier layer.
    prefix_saved: dict[tuple[str, int], torch.Tensor] = {}
    restart_at, records = shared_prefixes(settings) if restarts else ({}, {})
    # The longest prefix of each kind runs before the shorter ones that restart from its states.
    order = sorted(settings, key=lambda s: s.key in restart_at)

    def keep(store: dict, key) -> Callable[[torch.Tensor, Any], None]:
        def hook(residual: torch.Tensor, hook) -> None:
            store[key] = residual.detach()

        return hook

    with torch.no_grad():
        logits = run_to_target(
            model, batch, [(f"blocks.{layer}.hook_resid_pre", keep(saved, layer)) for layer in restart_layers]
        )
        base_prediction = label_logits(logits, batch).argmax(-1)
        base_top = logits.topk(word_top_k, dim=-1).indices
        out = {}
        for isolated in order:
            restart: dict[str, Any] = {}
            if isolated.key in restart_at:  # isolated up to its restart layer already, un-isolated from there
                layer = restart_at[isolated.key]
                hooks: list = []
                restart = {"start_at_layer": layer, "residual": prefix_saved[(isolated.kind, layer)]}
            else:
                masks = {
                    layer: label_blocked if isolated.kind == "label" else random_mask(layer)
                    for layer in isolated.layers
                }
                hooks = isolation_hooks(masks)
                if isolated.restart is not None and restarts:
                    restart = {"start_at_layer": isolated.restart, "residual": saved[isolated.restart]}
                hooks += [
                    (f"blocks.{layer}.hook_resid_pre", keep(prefix_saved, (isolated.kind, layer)))
                    for layer in records.get(isolated.key, [])
                ]
            edited = run_to_target(model, batch, hooks, **restart)
            prediction = label_logits(edited, batch).argmax(-1)
            top = edited.topk(word_top_k, dim=-1).indices
            out[isolated.key] = (
                prediction.cpu(),
                label_agreement(prediction, base_prediction).cpu(),
                jaccard(top, base_top).cpu(),
            )
    return BatchLoyalty(base_prediction.cpu(), {s.key: out[s.key] for s in settings})


def loyalty_of_batch(model: Model, batch: PromptBatch, config: IsolationConfig, seed: int) -> BatchLoyalty:
    """Every (k, condition) of `config` on one batch (`loyalty_of_settings` with the paper's settings)."""
    settings = paper_settings(model.cfg.n_layers, config.k)
    return loyalty_of_settings(model, batch, settings, seed, config.word_top_k)


def k_at_depth_fractions(n_layers: int, fractions: Sequence[float]) -> tuple[int, ...]:
    """The layer count of each depth fraction on a model of `n_layers`: round(f · n_layers), at least 1 (5/48 of
    30 layers is 3; of 18 layers, 2)."""
    return tuple(max(1, round(f * n_layers)) for f in fractions)


def with_depth_fractions(ks: Sequence[int], n_layers: int, fractions: Sequence[float]) -> tuple[int, ...]:
    """`ks` followed by the layer counts of `fractions` that are not among them yet (each k once)."""
    return tuple(dict.fromkeys([*ks, *k_at_depth_fractions(n_layers, fractions)]))


def paper_k(n_layers: int, ks: tuple[int, ...] = ISOLATION_K) -> tuple[int, ...]:
    """The paper's k (1, 3, 5, 7, or the main job's 5 alone), with a warning keeping those a shallow model has
    (at least its depth)."""
    if max(ks) <= n_layers:
        return ks
    kept = tuple(k for k in ks if k <= n_layers) or (n_layers,)
    warnings.warn(f"the model has {n_layers} layers: isolation runs k = {kept} of the paper's {ks}", stacklevel=3)
    return kept


def _chosen(values, allowed: Sequence[str], name: str) -> tuple[str, ...]:
    chosen = (values,) if isinstance(values, str) else tuple(values)
    wrong = [value for value in chosen if value not in allowed]
    if not chosen or wrong:
        raise InvalidConfigError(f"{name} must be one or more of {list(allowed)}, got {values!r}")
    return chosen


def isolation(
    model: Model,
    prompts: Prompts,
    *,
    k: int | Sequence[int] | None = None,
    condition: str | Sequence[str] | None = None,
    layers: int | Sequence[int] | None = None,
    seed: int = 0,
    word_top_k: int = IsolationConfig.word_top_k,
    batch_size: int = 8,
    progress: bool = False,
) -> pd.DataFrame:
    """Label and word loyalty of each prompt when its label words (or as many random positions) are isolated
    in shallow or deep layers (paper §2.2): every label-word row blocked from attending to earlier tokens, on
    the pre-softmax scores, versus the same prompt un-isolated. Forward passes only.

    Two ways to say where:

    * `k` and `condition` (the paper's): for each k (default 1, 3, 5, 7, those the model has) and each
      condition of ``label_first``, ``label_last``, ``random_first``, ``random_last`` (default all four), the
      first or last k layers;
    * `layers`: exactly these layer ids; `condition` is then ``"label"``, ``"random"`` or both (default both),
      and the rows have ``k = len(layers)`` and that condition.

    The random control blocks, in each isolated layer, as many random non-label positions as the prompt has
    label positions, drawn by a generator keyed by (`seed`, the prompt's ``example_index`` (or its tokens),
    layer): the same draws whatever the batching.

    Args:
        model: a loaded HookedTransformer or TransformerBridge.
        prompts: a list of `Prompt`s (or a `PromptBatch`) sharing their label words.
        k: layer counts of the paper's form (an int or several).
        condition: the conditions (above); with `layers`, ``"label"`` and/or ``"random"``.
        layers: layer ids to isolate in, instead of `k`.
        seed: the seed of the random control's draws.
        word_top_k: top-k vocabulary tokens compared by word loyalty (paper 5).
        batch_size: prompts per forward pass (changes no number).
        progress: show a progress bar over batches.

    Returns:
        One row per setting and prompt (settings in the order asked, prompts in the order given): ``example``
        (``example_index`` or position in the list), ``gold`` (-1 where unknown), ``k``, ``condition``,
        ``base_prediction`` (un-isolated), ``prediction`` (isolated), ``label_loyalty`` (1.0 where the two
        agree), ``word_loyalty`` (Jaccard overlap of the top-`word_top_k` tokens at the target).

    Examples:
        >>> import anchorlens as al
        >>> model = al.random_model()
        >>> _, prompts = al.task_prompts(model, "sst2", 42, n_test=2)
        >>> frame = al.isolation(model, prompts, k=1)
        >>> sorted(frame["condition"].unique())
        ['label_first', 'label_last', 'random_first', 'random_last']
    """
    prompts = checked_prompts(model, prompts, what="isolation")
    n_layers = int(model.cfg.n_layers)
    if isinstance(word_top_k, bool) or not isinstance(word_top_k, int) or word_top_k < 1:
        raise InvalidConfigError(f"word_top_k must be an integer of at least 1, got {word_top_k!r}")
    if word_top_k > int(model.cfg.d_vocab):
        raise InvalidConfigError(
            f"word_top_k {word_top_k} is more than the model's {model.cfg.d_vocab} vocabulary tokens; compare at most "
            f"{model.cfg.d_vocab} (paper 5)"
        )
    if layers is not None:
        if k is not None:
            raise InvalidConfigError("give isolation either k (first / last k layers) or layers, not both")
        chosen = [layers] if isinstance(layers, (int, np.integer)) else list(layers)
        if not chosen or any(
            isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= layer < n_layers
            for layer in chosen
        ):
            raise InvalidConfigError(
                f"layers must be one or more layer ids of 0..{n_layers - 1}, got {layers!r}; e.g. layers=range(5)"
            )
        kinds = _chosen(condition if condition is not None else ("label", "random"), ("label", "random"), "condition")
        settings = layer_settings([int(layer) for layer in chosen], kinds)
    else:
        ks = paper_k(n_layers) if k is None else ((k,) if isinstance(k, (int, np.integer)) else tuple(k))
        if not ks or any(isinstance(value, bool) or not isinstance(value, (int, np.integer)) for value in ks):
            raise InvalidConfigError(f"k must be one or more layer counts, e.g. k=(1, 3, 5, 7); got {k!r}")
        for value in ks:
            if value < 1:
                raise InvalidConfigError(f"k must be positive layer counts, got {value}")
        conditions = _chosen(condition if condition is not None else CONDITIONS, CONDITIONS, "condition")
        settings = paper_settings(n_layers, [int(value) for value in ks], conditions)

    def compute(batch: PromptBatch) -> tuple[torch.Tensor, ...]:
        outcome = loyalty_of_settings(model, batch, settings, seed, word_top_k)
        return (outcome.base_prediction, *(value for s in settings for value in outcome.by_condition[s.key]))

    outputs = in_prompt_order(model, prompts, compute, batch_size=batch_size, progress=progress)
    examples, gold, base = example_ids(prompts), gold_ids(prompts), outputs[0].numpy()
    frames = []
    for index, isolated in enumerate(settings):
        prediction, label, word = (value.numpy() for value in outputs[1 + 3 * index : 4 + 3 * index])
        frames.append(
            pd.DataFrame(
                {
                    "example": examples,
                    "gold": gold,
                    "k": isolated.key[0],
                    "condition": isolated.key[1],
                    "base_prediction": base,
                    "prediction": prediction,
                    "label_loyalty": label,
                    "word_loyalty": word,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class IsolationResult(ExperimentResult):
    """Rows: task, model, seed, k, condition, label_loyalty, word_loyalty, n.

    Per-example rows: task, model, seed, example, gold, k, condition, base_prediction, prediction,
    label_loyalty (0/1), word_loyalty (Jaccard)."""

    experiment: ClassVar[str] = "isolation"
    config_class: ClassVar[type[ExperimentConfig]] = IsolationConfig
    example_values: ClassVar[tuple[str, ...]] = ("label_loyalty", "word_loyalty")
    example_keys: ClassVar[tuple[str, ...]] = ("k", "condition")

    def summary(self) -> pd.DataFrame:
        grouped = self.frame.groupby(["task", "model", "k", "condition"])[["label_loyalty", "word_loyalty"]]
        return grouped.agg(["mean", "std"]).reset_index()


def seed_function(model: Model, task: Task, config: IsolationConfig, out: Folder, progress: bool) -> OneSeed:
    """The loyalties of one seed under isolation, for every k and condition; the k are checked against the
    model's depth before any work. The results keep the requested settings, so a resumed run matches."""
    if config.k in (ISOLATION_K, MAIN_JOB_K):
        # The paper's default (or the main job's k = 5) on a shallow model: run the k it has rather than refuse a
        # default. The rows show which k ran.
        config = dataclasses.replace(config, k=paper_k(model.cfg.n_layers, config.k))
    if config.depth_fractions:  # rows keep the absolute k; the fractions' k run beside the others
        config = dataclasses.replace(
            config, k=with_depth_fractions(config.k, model.cfg.n_layers, config.depth_fractions)
        )
    for k in config.k:
        isolation_layers(model.cfg.n_layers, k, "first")  # fail before any work

    def one_seed(seed: int) -> SeedOutput:
        _, prompts = task_prompts(model, task, seed, n_test=config.n_test, shots_per_class=config.shots_per_class)
        frame = isolation(
            model,
            prompts,
            k=config.k,
            seed=seed,
            word_top_k=config.word_top_k,
            batch_size=config.batch_size,
            progress=progress,
        )
        # Per setting, rows in test-example order (the settings stay in the order k, then CONDITIONS).
        setting_of_row = np.repeat(np.arange(len(frame) // len(prompts)), len(prompts))
        per_example = frame.iloc[np.lexsort((frame["example"].to_numpy(), setting_of_row))].reset_index(drop=True)
        rows = [
            {
                "k": k,
                "condition": condition,
                "label_loyalty": float(part["label_loyalty"].to_numpy().mean()),
                "word_loyalty": float(part["word_loyalty"].to_numpy().mean()),
                "n": len(part),
            }
            for (k, condition), part in per_example.groupby(["k", "condition"], sort=False)
        ]
        return SeedOutput(pd.DataFrame(rows), per_example)

    return one_seed


EXPERIMENT = Experiment(
    example="""
        >>> import anchorlens as al
        >>> config = al.IsolationConfig(seeds=(42,), n_test=2, k=(1,))
        >>> result = al.run_isolation(al.random_model(), "sst2", config, progress=False)
        >>> result.to_frame().shape
        (4, 8)
    """,
    name="isolation",
    order=2,
    help="isolate label words in the first/last k layers: loyalty (Fig. 4)",
    section="2.2",
    expectation="Isolating label words in the first 5 layers sharply lowers label and word loyalty; the last 5 "
    "layers or random non-label words barely matter (Fig. 4).",
    reference_part_seconds=19.5,
    main_job={"k": MAIN_JOB_K},
    config_class=IsolationConfig,
    result_class=IsolationResult,
    paired_arm="condition",
    per_seed=seed_function,
    figures=("plot_isolation", "plot_isolation_by_k"),
    summary=(
        "Label and word loyalty under isolation (paper §2.2, Fig. 4) for each seed, k and condition: "
        "`isolation` on the seed's prompts (`task_prompts`). The paper's default k = 1, 3, 5, 7 keeps the k a "
        "shallow model has."
    ),
    returns=(
        "`IsolationResult`: per seed, k and condition the mean loyalties (`to_frame`), and one row per test "
        "input, k and condition (`examples`), the rows `isolation` returns for those prompts, in test-example "
        "order."
    ),
)
run_isolation = EXPERIMENT.run_function()
