"""Anchor-only context compression (paper §3.2, Tables 2-3; SPEC §5).

The demonstrations are run once per seed; of what they leave in every layer only the kept positions stay
(formatting tokens, label words, the newlines between demonstrations, BOS when the model uses one); every
test input then runs only its query against that cache. The cache is a pruned key/value cache queried at
original positions: `anchorlens.kv_cache` says why and how.

What is kept
------------
A token is kept only if it is made entirely of the template's fixed pieces (``Review``, ``:``, the ``\n``
before ``Sentiment``...), a label word (all its tokens) or a separating newline (`Prompt.formatting_positions`
and `Prompt.demonstration_label_positions`). A token that covers any character of a demonstration's text is
text and is dropped, including the first word that absorbs the template's space (``" What"`` on TREC, a class
cue) and the lone space token an SST-2 sentence ends with (SPEC §8).

Methods and metrics
-------------------
``icl`` (the full prompt), ``text_anchor`` (a new plain-text prompt with each demonstration's text removed),
``hidden_anchor`` (the cache at formatting, label and separator positions), ``hidden_random`` (the same, but each
label position replaced by one random text token of its demonstration; draw 0) and ``hidden_random_top`` (the best
of ``random_draws`` such draws by label loyalty on the same test inputs, as the paper does; ties go to the lower
draw). Draw ``d`` of seed ``s`` comes from its own generator, ``default_rng([s, d, COMPRESS_STREAM])``
(`anchorlens.random_streams`), so no draw depends on how many draws or inputs there are or how they are batched
(SPEC §8). Versus ICL, per test input: label loyalty (the predicted label equals ICL's), word loyalty (Jaccard of
the top-k vocabulary tokens at the target) and correctness against gold; the seed rows are their means. Later
tokens of a multi-token label word (``Role.LABEL_REST``) count as formatting, as in `Prompt.formatting_positions`,
and stay in Hidden_anchor; a random draw drops them with the label.

Speed
-----
``seconds_per_input`` is the query-side wall time per test input (cache building not timed) of the fastest of
``timing_repeats`` passes after a warm-up batch, for ``icl``, ``text_anchor`` and ``hidden_anchor``;
``speedup`` is ICL's time over the method's. The random draws are not timed: all draws of a seed run
together, each draw's cache a block of batch rows holding the same query batch (`run_queries_with_caches`),
so one pass serves every draw; their rows leave ``seconds_per_input`` and ``speedup`` empty (NaN). A draw
keeps as many positions as Hidden_anchor, so its query costs what Hidden_anchor's does.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from einops import rearrange
from jaxtyping import Float, Int
from torch import Tensor

from anchorlens.errors import InvalidConfigError
from anchorlens.experiments.common import (
    ExperimentConfig,
    ExperimentResult,
    Folder,
    OneSeed,
    SeedOutput,
    checked_prompts,
    device_of,
    example_ids,
    gold_ids,
    pad_token_id,
    setting,
)
from anchorlens.forward import final_label_logits, final_logits, run_to_target
from anchorlens.kv_cache import (
    AnchorCache,
    CacheStack,
    cache_demonstrations,
    check_supported,
    pad_queries,
    query_tokens,
    run_queries_with_caches,
    run_query_with_cache,
)
from anchorlens.metrics import correct, jaccard, label_agreement
from anchorlens.model_classes import Model
from anchorlens.paper import COMPRESS_METHOD_LABELS, COMPRESS_SPEEDUP, COMPRESS_TABLE, task_rank
from anchorlens.preparation import Experiment
from anchorlens.prompts import LabelTokens, Prompt, Prompts, Role, build_prompt, iter_batches, task_prompts
from anchorlens.random_streams import COMPRESS_STREAM, compress_draw_generator
from anchorlens.tasks import Task, get_task

#: Methods in the order of the paper's Table 2 (their names there: `anchorlens.paper.COMPRESS_METHOD_LABELS`).
METHODS = ("icl", "text_anchor", "hidden_random", "hidden_random_top", "hidden_anchor")
METRICS = ("label_loyalty", "word_loyalty", "accuracy")


@dataclass(frozen=True)
class CompressConfig(ExperimentConfig):
    """Settings of `run_compress` (and `anchorlens compress`): the fields of `ExperimentConfig`, and those below."""

    word_top_k: int = setting(5, "top-k vocabulary tokens compared by word loyalty (paper 5)")
    random_draws: int = setting(
        20, "Hidden_random draws; Hidden_random-top is the best of them by label loyalty (paper 20)"
    )
    #: The fastest pass counts, so a background job slowing one pass does not decide the speed-up.
    timing_repeats: int = setting(
        2, "timed passes over the test inputs per method, after one warm-up batch; the fastest counts", flag=None
    )

    #: Timing repeats and batch size change no loyalty or accuracy: a run may resume with other values.
    RESUMABLE_FIELDS: ClassVar[tuple[str, ...]] = ("seeds", "batch_size", "timing_repeats")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("word_top_k", "random_draws", "timing_repeats"):
            if getattr(self, name) < 1:
                raise InvalidConfigError(f"{name} must be at least 1, got {getattr(self, name)}")


# ------------------------------------------------------------------------------------------ kept positions


def anchor_positions(prompt: Prompt) -> tuple[int, ...]:
    """What Hidden_anchor keeps: formatting, separators, BOS and the label words of the demonstrations."""
    end = prompt.demonstration_length
    kept = set(prompt.formatting_positions) | set(prompt.demonstration_label_positions)
    return tuple(sorted(p for p in kept if p < end))


def random_positions(prompt: Prompt, generator: np.random.Generator) -> tuple[int, ...]:
    """What a Hidden_random draw keeps: the anchors with each label position replaced by one random text token
    of the same demonstration (a demonstration without text tokens keeps none in its place)."""
    labels = set(prompt.demonstration_label_positions)
    # The rest of a multi-token label word would leak the label: it goes with the label position.
    kept = [p for p in anchor_positions(prompt) if p not in labels and prompt.roles[p] != Role.LABEL_REST]
    for label_position in prompt.demonstration_label_positions:
        text = prompt.text_positions_by_demonstration[prompt.demonstration_of_token[label_position]]
        if text:
            kept.append(int(generator.choice(text)))
    return tuple(sorted(kept))


#: Last entry of every draw's generator key (`anchorlens.random_streams.COMPRESS_STREAM`).
DRAW_STREAM = COMPRESS_STREAM


def draw_positions(prompt: Prompt, seed: int, draw: int) -> tuple[int, ...]:
    """Hidden_random draw `draw` of seed `seed`: its own generator keyed by (seed, draw), so a draw is the same
    however many draws are made, in whatever order or batches (SPEC §8)."""
    return random_positions(prompt, compress_draw_generator(seed, draw))


def build_anchor_cache(model: Model, prompt: Prompt, keep_positions: Sequence[int] | None = None) -> AnchorCache:
    """The compressed context of a prompt's demonstrations: `keep_positions` (default: the anchors, as
    Hidden_anchor) of the demonstration part. Reuse it for every query with the same demonstrations.

    Args:
        model: a loaded HookedTransformer with learned or rotary positions (`anchorlens.kv_cache`).
        prompt: a prompt whose demonstrations are compressed (its query is not run).
        keep_positions: original positions of the demonstration part to keep; None keeps `anchor_positions`
            (formatting, label words, separators, BOS).

    Returns:
        `AnchorCache`: every layer's keys (before rotary) and values at the kept positions,
        ``[1, kept, kv_head, d_head]`` each, with their original positions; run a query against it with
        `run_query_with_cache` (its tokens from `query_tokens`).

    Examples:
        >>> import anchorlens as al
        >>> model = al.random_model()
        >>> prompt = al.task_prompts(model, "sst2", 42, n_test=1)[1][0]
        >>> cache = al.build_anchor_cache(model, prompt)
        >>> len(cache.positions) < prompt.demonstration_length  # only the anchors are kept
        True
    """
    full = cache_demonstrations(model, prompt.token_ids[: prompt.demonstration_length])
    return full.keep(anchor_positions(prompt) if keep_positions is None else keep_positions)


# --------------------------------------------------------------------------------------------- text anchor


def text_anchor_task(task: Task) -> Task:
    """The task with the demonstration text slot's leading separator moved into the query text.

    ``Review: {text}`` with the text removed would leave ``Review: \\n``; the paper's Text_anchor prompt reads
    ``Review:\\n``. Trailing whitespace of the template part before ``{text}`` therefore goes to the query
    side (`text_anchor_prompt` prepends it to the query), so the query reads exactly as in the full prompt."""
    prefix, middle, suffix = task.template_parts()

    def escape(text: str) -> str:
        return text.replace("{", "{{").replace("}", "}}")

    template = escape(prefix.rstrip()) + "{text}" + escape(middle) + "{label}" + escape(suffix)
    return dataclasses.replace(task, template=template)


def text_anchor_prompt(
    tokenizer,
    task: Task | str,
    demonstrations: Sequence,
    query_text: str,
    query_label: int | None = None,
    *,
    prepend_bos: bool,
    max_length: int | None = None,
    labels: LabelTokens | None = None,
    example_index: int | None = None,
) -> Prompt:
    """Text_anchor: the plain-text prompt with each demonstration's text removed, the query unchanged.

    ``Review:\\nSentiment: Negative\\nReview:\\nSentiment: Positive\\nReview: x\\nSentiment:``"""
    task = get_task(task)
    prefix = task.template_parts()[0]
    moved = prefix[len(prefix.rstrip()) :]
    pairs = [(d.text, d.label) if hasattr(d, "text") else (d[0], d[1]) for d in demonstrations]
    return build_prompt(
        tokenizer,
        text_anchor_task(task),
        [("", label) for _, label in pairs],
        moved + query_text,
        query_label,
        prepend_bos=prepend_bos,
        max_length=max_length,
        labels=labels,
        example_index=example_index,
    )


# ------------------------------------------------------------------------------------------------ evaluate


@dataclass(frozen=True)
class Outcome:
    """What one method leaves per test input (in the seed's processing order), and its query-side time per
    input (NaN for a method that is not timed)."""

    predictions: Int[Tensor, " example"]
    top_tokens: Int[Tensor, "example top_k"]
    seconds_per_input: float = float("nan")


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def evaluate(
    run_batch: Callable[[int], Tensor],
    n_batches: int,
    label_token_ids: Int[Tensor, " class"],
    config: CompressConfig,
    *,
    device: torch.device,
    repeats: int | None = None,
    warm_up: bool = True,
) -> Outcome:
    """Run every batch (`run_batch(i)` gives target logits), timing whole passes with `perf_counter`.

    The first timed pass gives the predictions; the fastest pass gives the time (other jobs only slow a pass
    down). A warm-up batch first keeps one-off costs (allocation, kernel choice) out of the timing."""
    repeats = config.timing_repeats if repeats is None else repeats
    with torch.no_grad():
        if warm_up:
            run_batch(0)
        passes: list[float] = []
        first: Tensor | None = None
        for _ in range(repeats):
            _synchronize(device)
            start = time.perf_counter()
            logits = [run_batch(i) for i in range(n_batches)]
            _synchronize(device)
            passes.append(time.perf_counter() - start)
            first = first if first is not None else torch.cat(logits)
    if first is None:
        raise InvalidConfigError(f"evaluate needs at least one timed pass, got repeats={repeats}")
    n = first.shape[0]
    return Outcome(
        predictions=first[:, label_token_ids.to(first.device)].argmax(-1).cpu(),
        top_tokens=first.topk(config.word_top_k, dim=-1).indices.cpu(),
        seconds_per_input=min(passes) / n,
    )


#: Batch rows (draws x queries) of one pass over the random draws; draws beyond it go to further passes.
DRAW_ROWS_PER_PASS = 256


def _residual_stream(model: Model, residual: Tensor) -> Tensor:
    return residual


def final_residuals_of_draws(
    model: Model, caches: Sequence[AnchorCache], queries: Sequence[tuple[Tensor, Tensor]]
) -> Float[Tensor, "draw example d_model"]:
    """The final residual stream at each query's last token against each cache (one per random draw).

    `queries` are the seed's (right-padded tokens, lengths) batches. All draws run together: per query batch,
    one pass whose rows are the draws' caches, each with the whole query batch (at most `DRAW_ROWS_PER_PASS`
    rows a pass), instead of one pass per draw. Rows do not interact, so the numbers are those of running
    each draw alone (`tests/experiments/test_compress.py` checks it to 1e-5)."""
    widest = max(int(tokens.shape[0]) for tokens, _ in queries)
    per_pass = max(1, DRAW_ROWS_PER_PASS // widest)
    stacks = [CacheStack.of(caches[i : i + per_pass]) for i in range(0, len(caches), per_pass)]
    with torch.no_grad():
        per_batch = [
            torch.cat(
                [run_queries_with_caches(model, stack, tokens, lengths, readout=_residual_stream) for stack in stacks]
            )
            for tokens, lengths in queries
        ]
    return torch.cat(per_batch, dim=1)


def draw_predictions(
    model: Model, residuals: Float[Tensor, "draw example d_model"], label_token_ids: Tensor
) -> Int[Tensor, "draw example"]:
    """Each draw's predicted class per input, from the label-token columns of the unembedding only."""
    with torch.no_grad():
        logits = final_label_logits(
            model, rearrange(residuals, "draw example d_model -> (draw example) d_model"), label_token_ids
        )
    return rearrange(logits.argmax(-1), "(draw example) -> draw example", draw=residuals.shape[0]).cpu()


def best_draw(predictions: Int[Tensor, "draw example"], reference: Int[Tensor, " example"]) -> int:
    """Hidden_random-top's draw: the most label-loyal one on these inputs, the lowest draw on a tie."""
    loyal = (predictions == reference[None]).sum(dim=1).tolist()
    return loyal.index(max(loyal))


def text_anchor_of(model: Model, prompt: Prompt) -> Prompt:
    """The Text_anchor prompt of `prompt` (`text_anchor_prompt`), from what `build_prompt` recorded of it."""
    parts = prompt.parts
    if parts is None:
        raise InvalidConfigError(
            "Text_anchor rebuilds a prompt without its demonstrations' text from what anchorlens.build_prompt "
            "recorded, and this prompt was made another way; build it with anchorlens.build_prompt, or leave "
            "'text_anchor' out of method="
        )
    return text_anchor_prompt(
        model.tokenizer,
        parts.task,
        parts.demonstrations,
        parts.query_text,
        prompt.query_label,
        prepend_bos=parts.prepend_bos,
        max_length=parts.max_length,
        example_index=prompt.example_index,
    )


def seed_prompts(model: Model, task: Task, seed: int, config: CompressConfig) -> list[tuple[Prompt, Prompt]]:
    """(full prompt, Text_anchor prompt) per test input of the seed, shortest first (the order `compress`
    processes them in)."""
    _, prompts = task_prompts(model, task, seed, n_test=config.n_test, shots_per_class=config.shots_per_class)
    return sorted(((prompt, text_anchor_of(model, prompt)) for prompt in prompts), key=lambda pair: pair[0].length)


def compress_group(
    model: Model, prompts: Sequence[Prompt], methods: Sequence[str], seed: int, config: CompressConfig
) -> dict[str, tuple[Outcome, int]]:
    """`methods` (and ICL, the reference of every loyalty) on prompts that share their demonstrations, given
    shortest first (less padding; every method processes them in this one order, so outcomes line up). One
    demonstration cache serves all hidden methods. Returns method -> (outcome, tokens kept of the
    demonstrations)."""
    prompts = list(prompts)
    device, pad = device_of(model), pad_token_id(model)
    label_ids = torch.tensor(prompts[0].label_token_ids)
    n_batches = -(-len(prompts) // config.batch_size)

    full = cache_demonstrations(model, prompts[0].token_ids[: prompts[0].demonstration_length])
    chunks = [prompts[i : i + config.batch_size] for i in range(0, len(prompts), config.batch_size)]
    queries = [pad_queries([query_tokens(p, full) for p in chunk], pad_token_id=pad, device=device) for chunk in chunks]

    def full_prompts(chosen: list[Prompt]) -> Callable[[int], Tensor]:
        ready = list(iter_batches(chosen, config.batch_size, pad_token_id=pad, device=device))
        return lambda i: run_to_target(model, ready[i])

    def cached(cache: AnchorCache) -> Callable[[int], Tensor]:
        return lambda i: run_query_with_cache(model, cache, *queries[i])

    def run(runner: Callable[[int], Tensor]) -> Outcome:
        return evaluate(runner, n_batches, label_ids, config, device=device)

    icl = run(full_prompts(prompts))
    outcomes = {"icl": (icl, full.demonstration_length)}
    if {"hidden_random", "hidden_random_top"} & set(methods):
        draws = [full.keep(draw_positions(prompts[0], seed, draw)) for draw in range(config.random_draws)]
        residuals = final_residuals_of_draws(model, draws, queries)
        predictions = draw_predictions(model, residuals, label_ids)

        def draw_outcome(draw: int) -> Outcome:  # untimed: the draws ran together (module docstring, Speed)
            with torch.no_grad():
                top = final_logits(model, residuals[draw]).topk(config.word_top_k, dim=-1).indices.cpu()
            return Outcome(predictions[draw], top)

        best = best_draw(predictions, icl.predictions)
        outcomes["hidden_random"] = (draw_outcome(0), draws[0].n_kept)
        outcomes["hidden_random_top"] = (draw_outcome(best), draws[best].n_kept)
    if "text_anchor" in methods:
        text_prompts = [text_anchor_of(model, prompt) for prompt in prompts]
        outcomes["text_anchor"] = (run(full_prompts(text_prompts)), text_prompts[0].demonstration_length)
    if "hidden_anchor" in methods:
        anchors = full.keep(anchor_positions(prompts[0]))
        outcomes["hidden_anchor"] = (run(cached(anchors)), anchors.n_kept)
    return {method: outcomes[method] for method in methods}


def compress(
    model: Model,
    prompts: Prompts,
    method: str | Sequence[str] = METHODS,
    *,
    seed: int = 0,
    random_draws: int = CompressConfig.random_draws,
    word_top_k: int = CompressConfig.word_top_k,
    batch_size: int = 8,
    timing_repeats: int = CompressConfig.timing_repeats,
) -> pd.DataFrame:
    """Anchor-only context compression of your prompts (paper §3.2): each prompt's prediction with its
    demonstrations compressed, against the full prompt (ICL).

    Prompts are grouped by their demonstrations; each group's demonstrations run once into a key/value cache of
    which a method keeps only some positions, and every query of the group runs against it at its original
    positions (`anchorlens.kv_cache`). Methods (module docstring): ``icl``, ``text_anchor``, ``hidden_random``,
    ``hidden_random_top``, ``hidden_anchor``. A HookedTransformer is needed (`check_supported`).

    Args:
        model: a loaded HookedTransformer with learned or rotary positions.
        prompts: a list of `Prompt`s (or a `PromptBatch`) sharing their label words; ``text_anchor`` needs them
            built by `build_prompt` (which records their parts).
        method: one method or several (default all five); ICL runs in any case, as the loyalty reference.
        seed: the seed of the Hidden_random draws (draw d keyed by (seed, d)).
        random_draws: Hidden_random draws; Hidden_random-top is the most label-loyal of them on these prompts.
        word_top_k: top-k vocabulary tokens compared by word loyalty (paper 5).
        batch_size: queries per forward pass (changes no number).
        timing_repeats: timed passes per method after a warm-up batch; the fastest counts.

    Returns:
        One row per method and prompt (methods in the paper's order, prompts in the order given): ``method``,
        ``example`` (``example_index`` or position), ``gold`` (-1 where unknown), ``prediction``,
        ``label_loyalty`` (1.0 where it equals ICL's), ``word_loyalty`` (Jaccard of the top-`word_top_k` tokens
        against ICL), ``correct`` (NaN without a gold label), ``seconds_per_input`` (the method's query-side time
        per input over all prompts; NaN for the untimed random draws), ``demo_tokens`` and ``kept_tokens`` (the
        prompt's demonstration tokens and how many the method keeps).

    Examples:
        >>> import anchorlens as al
        >>> model = al.random_model()
        >>> _, prompts = al.task_prompts(model, "sst2", 42, n_test=2)
        >>> frame = al.compress(model, prompts, ["icl", "hidden_anchor"])
        >>> frame.groupby("method", sort=False)["label_loyalty"].size().to_dict()
        {'icl': 2, 'hidden_anchor': 2}
    """
    check_supported(model)
    prompts = checked_prompts(model, prompts, what="compress")
    asked = (method,) if isinstance(method, str) else tuple(method)
    unknown = [name for name in asked if name not in METHODS]
    if not asked or unknown:
        raise InvalidConfigError(f"method must be one or more of {list(METHODS)}, got {method!r}")
    methods = [name for name in METHODS if name in asked]
    config = CompressConfig(
        word_top_k=word_top_k, random_draws=random_draws, timing_repeats=timing_repeats, batch_size=batch_size
    )
    if word_top_k > int(model.cfg.d_vocab):
        raise InvalidConfigError(
            f"word_top_k {word_top_k} is more than the model's {model.cfg.d_vocab} vocabulary tokens; compare at most "
            f"{model.cfg.d_vocab} (paper 5)"
        )
    groups: dict[tuple[int, ...], list[int]] = {}
    for place, prompt in enumerate(prompts):
        length = prompt.demonstration_length
        if length == 0:
            raise InvalidConfigError(
                f"prompt {place} has no demonstrations, so there is nothing to compress; build it with demonstrations"
            )
        groups.setdefault(prompt.token_ids[:length], []).append(place)
    n = len(prompts)
    gold = gold_ids(prompts)
    columns = {name: {key: np.zeros(n) for key in ("prediction", "label", "word", "kept", "demo")} for name in methods}
    seconds = dict.fromkeys(methods, 0.0)
    for places in groups.values():
        order = sorted(places, key=lambda place: prompts[place].length)
        outcomes = compress_group(model, [prompts[place] for place in order], ["icl", *methods], seed, config)
        reference, demo_tokens = outcomes["icl"]
        for name in methods:
            outcome, kept = outcomes[name]
            column = columns[name]
            column["prediction"][order] = outcome.predictions.numpy()
            column["label"][order] = label_agreement(outcome.predictions, reference.predictions).numpy()
            column["word"][order] = jaccard(outcome.top_tokens, reference.top_tokens).numpy()
            column["kept"][order], column["demo"][order] = kept, demo_tokens
            seconds[name] += outcome.seconds_per_input * len(order)
    frames = []
    for name in methods:
        column = columns[name]
        prediction = column["prediction"].astype(np.int64)
        right = correct(torch.from_numpy(prediction), torch.from_numpy(gold)).numpy()
        frames.append(
            pd.DataFrame(
                {
                    "method": name,
                    "example": example_ids(prompts),
                    "gold": gold,
                    "prediction": prediction,
                    "label_loyalty": column["label"],
                    "word_loyalty": column["word"],
                    "correct": np.where(gold < 0, np.nan, right),
                    "seconds_per_input": seconds[name] / n,
                    "demo_tokens": column["demo"].astype(np.int64),
                    "kept_tokens": column["kept"].astype(np.int64),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


#: The per-example columns an experiment run keeps of `compress`'s rows (the timing goes to the seed rows).
EXAMPLE_COLUMNS = ("method", "example", "gold", "prediction", "label_loyalty", "word_loyalty", "correct")


def evaluate_seed(model: Model, task: Task, seed: int, config: CompressConfig) -> SeedOutput:
    """Every method on one seed's test inputs (`compress`): the seed rows (one per method: the means of the
    per-example values, the timing and the tokens kept) and the per-example rows (one per test input and
    method, by test example within each method)."""
    _, prompts = task_prompts(model, task, seed, n_test=config.n_test, shots_per_class=config.shots_per_class)
    frame = compress(
        model,
        prompts,
        METHODS,
        seed=seed,
        random_draws=config.random_draws,
        word_top_k=config.word_top_k,
        batch_size=config.batch_size,
        timing_repeats=config.timing_repeats,
    )
    # The order the methods processed the inputs in (shortest first): the means are taken in it, as always.
    processed = np.argsort([prompt.length for prompt in prompts], kind="stable")
    parts = {name: part.reset_index(drop=True).iloc[processed] for name, part in frame.groupby("method", sort=False)}
    icl_seconds = float(parts["icl"]["seconds_per_input"].iloc[0])
    rows, example_rows = [], []
    for name in METHODS:
        part = parts[name]
        seconds = float(part["seconds_per_input"].iloc[0])
        rows.append(
            {
                "method": name,
                "label_loyalty": float(part["label_loyalty"].mean()),
                "word_loyalty": float(part["word_loyalty"].mean()),
                "accuracy": float(part["correct"].mean()),
                "seconds_per_input": seconds,
                "speedup": icl_seconds / seconds,
                "n": len(part),
                "demo_tokens": int(part["demo_tokens"].iloc[0]),
                "kept_tokens": int(part["kept_tokens"].iloc[0]),
            }
        )
        example_rows.append(part[list(EXAMPLE_COLUMNS)].sort_values("example", kind="stable"))
    return SeedOutput(pd.DataFrame(rows), pd.concat(example_rows, ignore_index=True))


# --------------------------------------------------------------------------------------------------- result


@dataclass(frozen=True)
class CompressResult(ExperimentResult):
    """Rows: task, model, seed, method, label_loyalty, word_loyalty, accuracy, seconds_per_input, speedup, n,
    demo_tokens, kept_tokens (timing NaN for the random draws). Per-example rows (`examples`): task, model,
    seed, method, example, gold, prediction, label_loyalty, word_loyalty, correct."""

    experiment: ClassVar[str] = "compress"
    config_class: ClassVar[type[ExperimentConfig]] = CompressConfig
    example_values: ClassVar[tuple[str, ...]] = ("label_loyalty", "word_loyalty", "correct")
    example_keys: ClassVar[tuple[str, ...]] = ("method",)

    def summary(self) -> pd.DataFrame:
        """Seed mean and std of every metric per task, model and method, methods in the paper's order."""
        values = list(METRICS) + ["seconds_per_input", "speedup"]
        grouped = self.frame.groupby(["task", "model", "method"], sort=False)
        summary = grouped[values].agg(["mean", "std"])
        summary.columns = [f"{metric}_{stat}" for metric, stat in summary.columns]
        summary["kept_tokens"] = grouped["kept_tokens"].mean()
        summary["demo_tokens"] = grouped["demo_tokens"].mean()
        summary = summary.reset_index()
        return summary.sort_values(["model", "task", "method"], key=_order_key, kind="stable", ignore_index=True)

    def paper_table(self) -> pd.DataFrame:
        """Paper Table 2: label loyalty / word loyalty / accuracy (%) per method, mean over seeds then tasks,
        plus the mean speed-up. Indexed by method, or by (model, method) for several models."""
        per_task = self.frame.groupby(["model", "task", "method"])[list(METRICS) + ["speedup"]].mean()
        table = per_task.groupby(["model", "method"]).mean()
        table[list(METRICS)] *= 100
        # The paper averages all four tasks; say how many each of our means covers, so a partial run is not read
        # as comparable.
        table["tasks"] = per_task.groupby(["model", "method"]).size()
        table = table.reset_index().sort_values(["model", "method"], key=_order_key, kind="stable")
        table["method"] = table["method"].map(lambda m: COMPRESS_METHOD_LABELS.get(m, m))
        index = ["method"] if table["model"].nunique() == 1 else ["model", "method"]
        return table.set_index(index).drop(columns=[c for c in ["model"] if c not in index])

    def report_table(self) -> pd.DataFrame:
        """Our Table 2 (with the mean speed-up), then the paper's GPT2-XL and GPT-J rows."""
        ours = self.paper_table().reset_index()
        if "model" not in ours.columns:
            ours.insert(0, "model", self.frame["model"].iloc[0])
        theirs = pd.DataFrame(
            [
                {
                    "model": f"paper, {name}",
                    "method": COMPRESS_METHOD_LABELS.get(method, method),
                    "label_loyalty": values[0],
                    "word_loyalty": values[1],
                    "accuracy": values[2],
                    "tasks": len(COMPRESS_SPEEDUP[name]),
                }
                for name, rows in COMPRESS_TABLE.items()
                for method, values in rows.items()
            ]
        )
        return pd.concat(
            [ours.rename(columns={"model": "source"}), theirs.rename(columns={"model": "source"})], ignore_index=True
        )


def _order_key(column: pd.Series) -> pd.Series:
    if column.name == "method":
        return column.map(lambda m: METHODS.index(m) if m in METHODS else len(METHODS))
    if column.name == "task":
        return column.map(task_rank)
    return column


# ------------------------------------------------------------------------------------------------------ run


def seed_function(model: Model, task: Task, config: CompressConfig, out: Folder, progress: bool) -> OneSeed:
    """Tables 2-3's rows of one seed (`evaluate_seed`); a model the key/value cache cannot serve is refused
    before any work."""
    check_supported(model)
    return lambda seed: evaluate_seed(model, task, seed, config)


EXPERIMENT = Experiment(
    example="""
        >>> import anchorlens as al
        >>> config = al.CompressConfig(seeds=(42,), n_test=2, random_draws=1, timing_repeats=1)
        >>> result = al.run_compress(al.random_model(), "sst2", config, progress=False)
        >>> result.to_frame().shape
        (5, 12)
    """,
    name="compress",
    order=6,
    help="anchor-only context compression: loyalty, accuracy, speed-up (Tables 2-3)",
    section="3.2",
    expectation="Hidden_anchor keeps the most loyalty of the compressed contexts and speeds inference up "
    "1.1-2.9x (Tables 2-3).",
    reference_part_seconds=15.3,
    # a smoke test needs a few draws to show Hidden_random-top, and one timed pass (the warm-up stays)
    main_job={"random_draws": 5, "timing_repeats": 1},
    config_class=CompressConfig,
    result_class=CompressResult,
    paired_arm="method",
    per_seed=seed_function,
    figures=("plot_compress", "plot_compress_by_task"),
    summary=(
        "Table 2 (and Table 3's speed-up) for one task (paper §3.2): `compress` with every method on each "
        "seed's prompts (`task_prompts`), each seed saved when done."
    ),
    returns=(
        "`CompressResult`: per seed and method the mean loyalties, accuracy, time per input, speed-up and "
        "tokens kept (`to_frame`), and one row per test input and method (`examples`), the rows `compress` "
        "returns."
    ),
    model_text="a loaded HookedTransformer with learned or rotary positions (the key/value cache needs one).",
)
run_compress = EXPERIMENT.run_function()
