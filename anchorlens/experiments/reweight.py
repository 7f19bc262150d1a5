"""Anchor re-weighting against vanilla ICL and contextual calibration (paper §3.1, Table 1; SPEC §4).

β of shape [layer, head, class] scales the target row's post-softmax attention to each class's label words by
exp(β) (variant ``"pattern"``, the paper's form, no renormalisation; ``"scores"`` adds β before the softmax
instead). β starts at 0, so an untrained β is exactly vanilla ICL, and is fitted with the model frozen on
``extra_per_class`` training examples per class, each prompted with the same 1-shot demonstrations as the test
inputs. Per seed, on the same test inputs:

* ``vanilla_1shot``: the seed's demonstrations, no hook;
* ``vanilla_5shot``: the demonstrations and the extra examples, all as demonstrations (AGNews: 3 per class,
  for prompt length), in the order the seeded walk meets them;
* ``reweight``: the 1-shot prompts with the fitted β;
* ``contextual_calibration``: the 1-shot prompts, label probabilities divided by those of content-free
  inputs (Zhao et al. 2021, "Calibrate Before Use": W = diag(p_cf)⁻¹, b = 0) — a training-free baseline that
  also only rescales the C label scores.

A fitted β is saved (safetensors, no pickle) so it can be applied later without training.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from anchorlens.errors import HookError, InvalidConfigError
from anchorlens.experiments.common import (
    ExperimentConfig,
    ExperimentResult,
    batches,
    device_of,
    pad_token_id,
    run_seeds,
)
from anchorlens.experiments.compress import (
    AnchorCache,
    cache_demonstrations,
    check_supported,
    demonstration_length,
    pad_queries,
    rotary_table_size,
    run_query_with_cache,
)
from anchorlens.hooks import Hook, frozen_parameters, reweight_hooks, target_row_reweight_hooks
from anchorlens.prompts import (
    LabelTokens,
    Prompt,
    PromptBatch,
    build_prompt,
    final_label_logits,
    label_logits,
    label_loss,
    label_tokens,
    make_batch,
    prompt_settings,
    run_to_target,
)
from anchorlens.sampling import Example, sample_demonstrations, sample_test_set
from anchorlens.tasks import Task, get_task

if TYPE_CHECKING:
    import plotly.graph_objects as go

#: Methods in the order of the paper's Table 1 (contextual calibration added as a training-free baseline).
METHODS = ("vanilla_1shot", "vanilla_5shot", "reweight", "contextual_calibration")
METHOD_LABELS = {
    "vanilla_1shot": "Vanilla ICL (1-shot per class)",
    "vanilla_5shot": "Vanilla ICL (5-shot per class; AGNews 3)",
    "reweight": "Anchor re-weighting (1-shot per class)",
    "contextual_calibration": "Contextual calibration (1-shot per class)",
}
#: Column order and names of the paper's table; other tasks follow under their own names.
PAPER_TASKS = {"sst2": "SST-2", "trec": "TREC", "agnews": "AGNews", "emoc": "EmoC"}
VARIANTS = ("pattern", "scores")
BETA_FORMAT = "anchorlens-reweight-beta-1"

#: argparse dests the CLI maps one-to-one onto config fields.
CLI_FIELDS = ("extra_per_class", "learning_rate", "epochs", "variant")


@dataclass(frozen=True)
class ReweightConfig(ExperimentConfig):
    #: Training examples per class, disjoint from the demonstrations (paper 4).
    extra_per_class: int = 4
    learning_rate: float = 0.01
    epochs: int = 10
    #: "pattern": exp(β)·A after softmax, no renormalisation (paper); "scores": β added before softmax.
    variant: str = "pattern"
    #: Demonstrations per class of the 5-shot baseline on AGNews (paper 3, for prompt length).
    five_shot_agnews: int = 3
    #: Content-free queries whose label probabilities calibrate the 1-shot prompts (Zhao et al. 2021).
    calibration_inputs: tuple[str, ...] = ("N/A", "", "[MASK]")
    #: Run what does not change from a frozen key/value cache: a β training step runs only the target token
    #: against its prompt's cached prefix (β edits only the target row), and evaluation runs each test query
    #: against the cached demonstrations its seed shares. Loss, β-gradient and probabilities equal the full
    #: prompt's within float rounding (tests/experiments/test_reweight.py). False runs every prompt whole.
    prefix_cache: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "calibration_inputs", tuple(self.calibration_inputs))
        if self.extra_per_class < 1:
            raise InvalidConfigError(
                f"extra_per_class must be at least 1 (β is fitted on them), got {self.extra_per_class}"
            )
        if not self.learning_rate > 0:
            raise InvalidConfigError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.epochs < 1:
            raise InvalidConfigError(f"epochs must be at least 1, got {self.epochs}")
        if self.variant not in VARIANTS:
            raise InvalidConfigError(f"unknown variant {self.variant!r}; use 'pattern' (paper) or 'scores'")
        most = self.shots_per_class + self.extra_per_class
        if not self.shots_per_class <= self.five_shot_agnews <= most:
            raise InvalidConfigError(
                f"five_shot_agnews must lie between shots_per_class ({self.shots_per_class}) and shots_per_class + "
                f"extra_per_class ({most}): the 5-shot baseline uses the demonstrations and extra examples, got "
                f"{self.five_shot_agnews}"
            )
        if not self.calibration_inputs or not all(isinstance(text, str) for text in self.calibration_inputs):
            raise InvalidConfigError(f"calibration_inputs must be one or more strings, got {self.calibration_inputs!r}")


# ------------------------------------------------------------------------------------------------- prompts


def query_prompts(
    tokenizer, task: Task, demonstrations: Sequence[Example], queries: Sequence[Example | str], *,
    prepend_bos: bool, max_length: int | None = None, labels: LabelTokens | None = None,
) -> list[Prompt]:
    """One prompt per query (an example with its gold label, or a bare text without one), same demonstrations."""
    labels = labels if labels is not None else label_tokens(tokenizer, task)
    return [
        build_prompt(tokenizer, task, demonstrations, query, None, prepend_bos=prepend_bos, max_length=max_length,
                     labels=labels)
        if isinstance(query, str)
        else build_prompt(tokenizer, task, demonstrations, query.text, query.label, prepend_bos=prepend_bos,
                          max_length=max_length, labels=labels)
        for query in queries
    ]


def five_shot_per_class(task: Task, config: ReweightConfig) -> int:
    """Demonstrations per class of the 5-shot baseline: all demonstrations and extras, AGNews fewer for length."""
    return config.five_shot_agnews if task.name == "agnews" else config.shots_per_class + config.extra_per_class


def five_shot_demonstrations(task: Task, seed: int, config: ReweightConfig) -> list[Example]:
    """The 5-shot baseline's demonstrations: the seed's demonstrations plus its first extras, in walk order.

    The sampler walks one seeded shuffle of the train split and gives each class its first `shots_per_class`
    rows as demonstrations and the next `extra_per_class` as extras. Asking it for k demonstrations per class
    (k ≤ shots + extra) walks the same shuffle, so it returns exactly the demonstrations and each class's
    first k − shots extras — ordered as the walk meets them, classes interleaved, like every other prompt of
    the paper — rather than all demonstrations followed by all extras.
    """
    per_class = five_shot_per_class(task, config)
    demonstrations, _ = sample_demonstrations(task, seed, shots_per_class=per_class)
    return demonstrations


# ------------------------------------------------------------------------------------------------- fitting


def mean_label_loss(model, prompts: Sequence[Prompt], beta: torch.Tensor, variant: str = "pattern") -> float:
    """Mean cross-entropy over the label logits of `prompts` under β (one prompt at a time, as in training)."""
    pad = pad_token_id(model)
    with torch.no_grad():
        losses = [
            label_loss(run_to_target(model, batch, reweight_hooks(beta, batch, variant)), batch).item()
            for batch in (make_batch([prompt], pad_token_id=pad, device=device_of(model)) for prompt in prompts)
        ]
    return sum(losses) / len(losses)


LossOfBeta = Callable[[torch.Tensor], torch.Tensor]


def full_prompt_loss(model, prompt: Prompt, variant: str) -> LossOfBeta:
    """β ↦ the prompt's label cross-entropy, running the whole prompt each time."""
    batch = make_batch([prompt], pad_token_id=pad_token_id(model), device=device_of(model))
    return lambda beta: label_loss(run_to_target(model, batch, reweight_hooks(beta, batch, variant)), batch)


def cached_prefix_loss(model, prompt: Prompt, variant: str) -> LossOfBeta:
    """β ↦ the same loss as `full_prompt_loss`, running only the target token against a frozen key/value cache
    of the rest of the prompt (built here once, without gradients).

    Exact because β edits only the target row: every other position's keys and values are those of the
    unhooked prompt. Only the C label columns of the unembedding are computed.
    """
    batch = make_batch([prompt], pad_token_id=pad_token_id(model), device=device_of(model))
    prefix = cache_demonstrations(model, prompt.token_ids[: prompt.target_position])
    target = batch.tokens[:, prompt.target_position : prompt.target_position + 1]
    label_ids = batch.label_token_ids

    def loss(beta: torch.Tensor) -> torch.Tensor:
        logits = run_query_with_cache(
            model, prefix, target, fwd_hooks=target_row_reweight_hooks(beta, batch.label_mask, variant),
            readout=lambda model, residual: final_label_logits(model, residual, label_ids),
        )
        return torch.nn.functional.cross_entropy(logits, batch.gold.to(logits.device), reduction="sum")

    return loss


def supports_prefix_cache(model) -> bool:
    """Whether `cached_prefix_loss` keeps positions exact on this model (the compression cache's conditions)."""
    try:
        check_supported(model)
    except (InvalidConfigError, HookError):
        return False
    return True


def fit_beta_on_prompts(
    model, prompts: Sequence[Prompt], *, learning_rate: float, epochs: int, variant: str, seed: int,
    prefix_cache: bool = True,
) -> torch.Tensor:
    """Adam on β alone (model frozen), batch size 1, prompts reshuffled every epoch by a private generator
    seeded with `seed`: the same seed gives the same β, and global random state is left alone.

    With `prefix_cache` (and a model the cache supports) each step runs only the target token against its
    prompt's cached prefix (`cached_prefix_loss`); otherwise the whole prompt (`full_prompt_loss`).
    """
    if not prompts:
        raise InvalidConfigError("re-weighting needs at least one training prompt")
    device = device_of(model)
    beta = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, prompts[0].num_classes, device=device, requires_grad=True)
    optimizer = torch.optim.Adam([beta], lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    loss_of = cached_prefix_loss if prefix_cache and supports_prefix_cache(model) else full_prompt_loss
    with frozen_parameters(model):
        losses = [loss_of(model, prompt, variant) for prompt in prompts]
        for _ in range(epochs):
            for index in torch.randperm(len(losses), generator=generator).tolist():
                optimizer.zero_grad()
                losses[index](beta).backward()
                optimizer.step()
    return beta.detach()


def fit_beta(
    model, task: Task | str, demonstrations: Sequence[Example], training_examples: Sequence[Example],
    config: ReweightConfig, seed: int,
) -> torch.Tensor:
    """β [layer, head, class] fitted on `training_examples`, each prompted with `demonstrations` (SPEC §4)."""
    task = get_task(task)
    prompts = query_prompts(model.tokenizer, task, demonstrations, training_examples, **prompt_settings(model))
    return fit_beta_on_prompts(model, prompts, learning_rate=config.learning_rate, epochs=config.epochs,
                               variant=config.variant, seed=seed, prefix_cache=config.prefix_cache)


# ------------------------------------------------------------------------------------------------ saving β


def save_beta(
    path: str | Path, beta: torch.Tensor, *, task: str, model_name: str, label_words: Sequence[str], variant: str
) -> Path:
    """Write β with what is needed to apply it again (task, model, label words in class order, variant)."""
    from safetensors.torch import save_file

    if variant not in VARIANTS:
        raise InvalidConfigError(f"unknown variant {variant!r}; use 'pattern' (paper) or 'scores'")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": BETA_FORMAT, "task": task, "model_name": model_name,
                "label_words": json.dumps(list(label_words)), "variant": variant}
    save_file({"beta": beta.detach().to("cpu", torch.float32).contiguous()}, str(path), metadata=metadata)
    return path


def load_beta(path: str | Path) -> tuple[torch.Tensor, dict[str, Any]]:
    """(β on the CPU, metadata with ``label_words`` as a tuple). Apply it with
    ``model.run_with_hooks(tokens, fwd_hooks=reweight_hooks(beta, batch, metadata["variant"]))``."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
        if metadata.get("format") != BETA_FORMAT or "beta" not in handle.keys():
            raise InvalidConfigError(f"{path} is not a re-weighting β saved by anchorlens (format {BETA_FORMAT})")
        beta = handle.get_tensor("beta")
    metadata["label_words"] = tuple(json.loads(metadata["label_words"]))
    return beta, metadata


def beta_path(out: str | Path, task: str, seed: int) -> Path:
    return Path(out) / "beta" / f"{task}-seed{seed}.safetensors"


# --------------------------------------------------------------------------------------------- evaluation


def label_probabilities(
    model, prompts: Sequence[Prompt], batch_size: int, beta: torch.Tensor | None = None, variant: str = "pattern",
    *, prefix_cache: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(softmax over the C label logits [n, C], gold [n]) in the order `batches` processes the prompts, which
    sorts by length: the gold labels come from the same batches so the two stay aligned. With `beta`, under
    re-weighting.

    With `prefix_cache`, when every prompt starts with the same demonstrations (one seed's test inputs do) and
    the model supports the cache, the demonstrations run once into a frozen key/value cache and each batch runs
    only its queries against it (`shared_demonstrations`); otherwise every prompt runs whole.
    """
    cache = shared_demonstrations(model, prompts) if prefix_cache else None
    probabilities, gold = [], []
    with torch.no_grad():
        for batch in batches(model, list(prompts), batch_size):
            if cache is None:
                hooks = reweight_hooks(beta, batch, variant) if beta is not None else []
                logits = label_logits(run_to_target(model, batch, hooks), batch)
            else:
                logits = cached_label_logits(model, cache, batch, beta, variant)
            probabilities.append(logits.float().softmax(-1).cpu())
            gold.append(batch.gold.cpu())
    return torch.cat(probabilities), torch.cat(gold)


def shared_demonstrations(model, prompts: Sequence[Prompt]) -> AnchorCache | None:
    """The key/value cache of the demonstrations all `prompts` start with, or None where it cannot stand in for
    the full prompts: a model the cache does not support, prompts with different demonstrations (or a
    tokenization that merges them into the query), or positions beyond the model's rotary table."""
    if not prompts or not supports_prefix_cache(model):
        return None
    length = demonstration_length(prompts[0])
    demonstrations = prompts[0].token_ids[:length]
    if any(p.token_ids[:length] != demonstrations or p.target_position < length for p in prompts):
        return None
    if max(p.length for p in prompts) > rotary_table_size(model):
        return None
    return cache_demonstrations(model, demonstrations)


def cached_label_logits(
    model, cache: AnchorCache, batch: PromptBatch, beta: torch.Tensor | None, variant: str
) -> Float[Tensor, "batch label"]:
    """The label logits of `batch` with its shared demonstrations taken from `cache` (every position kept), so
    only the query tokens run. β, when given, edits each prompt's target row among the query rows; its label
    columns are the cached demonstration positions, whose indices are their original positions."""
    start = cache.demonstration_length
    queries = [prompt.token_ids[start : prompt.target_position + 1] for prompt in batch.prompts]
    tokens, lengths = pad_queries(queries, pad_token_id=pad_token_id(model), device=batch.tokens.device)
    hooks: list[Hook] = []
    if beta is not None:
        keys = start + tokens.shape[1]
        label_mask = torch.zeros(*batch.label_mask.shape[:2], keys, dtype=torch.bool)
        label_mask[..., :start] = batch.label_mask[..., :start].cpu()  # every label word lies in the demonstrations
        hooks = target_row_reweight_hooks(beta, label_mask, variant, target_rows=lengths - 1)
    return run_query_with_cache(
        model, cache, tokens, lengths, fwd_hooks=hooks,
        readout=lambda model, residual: final_label_logits(model, residual, batch.label_token_ids),
    )


def content_free_probabilities(
    model, task: Task | str, demonstrations: Sequence[Example], calibration_inputs: Sequence[str],
    *, prefix_cache: bool = False,
) -> torch.Tensor:
    """p_cf [C]: the label probabilities of the content-free queries (same demonstrations), averaged."""
    task = get_task(task)
    prompts = query_prompts(model.tokenizer, task, demonstrations, list(calibration_inputs), **prompt_settings(model))
    probabilities, _ = label_probabilities(model, prompts, batch_size=len(prompts), prefix_cache=prefix_cache)
    return probabilities.mean(0)


def calibrated_predictions(probabilities: torch.Tensor, p_cf: torch.Tensor) -> torch.Tensor:
    """argmax of p / p_cf: the class the model favours more than it does without content."""
    return (probabilities / p_cf.to(probabilities)).argmax(-1)


def accuracy(predicted: torch.Tensor, gold: torch.Tensor) -> float:
    return (predicted == gold).double().mean().item()


# -------------------------------------------------------------------------------------------------- result


@dataclass(frozen=True)
class ReweightResult(ExperimentResult):
    """Rows: task, model, seed, method, accuracy, n."""

    experiment: ClassVar[str] = "reweight"
    config_class: ClassVar[type[ExperimentConfig]] = ReweightConfig

    def summary(self) -> pd.DataFrame:
        """Seed mean and std of accuracy per task, model and method (one row each); n = test inputs over all seeds."""
        grouped = self.frame.groupby(["task", "model", "method"])
        return grouped.agg(accuracy_mean=("accuracy", "mean"), accuracy_std=("accuracy", "std"),
                           seeds=("seed", "nunique"), n=("n", "sum")).reset_index()

    def report_table(self) -> pd.DataFrame:
        """Our Table 1 per model, with the paper's GPT2-XL rows below it."""
        from anchorlens import paper

        ours = [self.paper_table(model).reset_index().assign(source=model) for model in self.frame["model"].unique()]
        theirs = pd.DataFrame([{"method": METHOD_LABELS[method], **{PAPER_TASKS.get(t, t): v for t, v in row.items()},
                                "source": "paper, GPT2-XL"} for method, row in paper.REWEIGHT_TABLE.items()])
        table = pd.concat(ours + [theirs], ignore_index=True)
        tasks = [c for c in table.columns if c not in ("source", "method", "Avg")]
        tasks = sorted(tasks, key=lambda name: list(PAPER_TASKS.values()).index(name) if name in PAPER_TASKS.values() else 99)
        # A row missing one of the table's tasks averages fewer tasks than the rows it stands beside (the paper's
        # Avg is over all four): leave its Avg blank rather than print a mean that is not comparable.
        table.loc[table[tasks].isna().any(axis=1), "Avg"] = float("nan")
        return table[["source", "method", *tasks, "Avg"]]

    def paper_table(self, model: str | None = None) -> pd.DataFrame:
        """Paper Table 1: mean accuracy (%) per method (rows) and task (columns), plus the mean over tasks."""
        frame = self.frame
        models = list(frame["model"].unique())
        if model is None and len(models) > 1:
            raise InvalidConfigError(f"results of several models ({', '.join(models)}); choose one with model=")
        if model is not None:
            frame = frame[frame["model"] == model]
        table = frame.pivot_table(index="method", columns="task", values="accuracy", aggfunc="mean") * 100
        tasks = sorted(table.columns, key=lambda task: (_task_rank(task), task))
        methods = [m for m in METHODS if m in table.index] + sorted(m for m in table.index if m not in METHODS)
        table = table.reindex(index=methods, columns=tasks)
        table["Avg"] = table.mean(axis=1, skipna=False)  # a method missing on a task has no mean over tasks
        table = table.rename(index=METHOD_LABELS, columns=PAPER_TASKS)
        table.index.name, table.columns.name = "method", None
        return table


def plot_reweight(result: ReweightResult) -> go.Figure:
    """Grouped bars: accuracy (%) per task and method, seed mean ± std."""
    import plotly.graph_objects as go

    summary = result.summary()
    several_models = summary["model"].nunique() > 1
    summary["where"] = summary["task"] + (" (" + summary["model"] + ")" if several_models else "")
    in_paper_order = summary.sort_values("task", key=lambda tasks: tasks.map(_task_rank), kind="stable")
    places = list(dict.fromkeys(in_paper_order["where"]))
    figure = go.Figure()
    for method in [m for m in METHODS if m in set(summary["method"])]:
        part = summary[summary["method"] == method].set_index("where").reindex(places)
        figure.add_trace(go.Bar(x=places, y=part["accuracy_mean"] * 100, name=METHOD_LABELS[method],
                                error_y={"type": "data", "array": part["accuracy_std"].fillna(0) * 100}))
    figure.update_yaxes(title_text="accuracy (%)", range=[0, 105])
    figure.update_layout(title="Anchor re-weighting vs vanilla ICL and contextual calibration", barmode="group",
                         template="plotly_white", height=420, width=max(600, 220 * len(places)))
    return figure


def _task_rank(task: str) -> int:
    order = list(PAPER_TASKS)
    return order.index(task) if task in order else len(order)


# --------------------------------------------------------------------------------------------------- run


def evaluate_seed(model, task: Task, seed: int, config: ReweightConfig, out: str | Path | None) -> pd.DataFrame:
    """Accuracy of every method on one seed's test inputs; β is saved under `out` when given."""
    demonstrations, extra = sample_demonstrations(task, seed, shots_per_class=config.shots_per_class,
                                                  extra_per_class=config.extra_per_class)
    test_set = sample_test_set(task, seed, n_test=config.n_test)
    settings = prompt_settings(model)
    labels = label_tokens(model.tokenizer, task)
    one_shot = query_prompts(model.tokenizer, task, demonstrations, test_set, labels=labels, **settings)
    five_shot = query_prompts(model.tokenizer, task, five_shot_demonstrations(task, seed, config), test_set,
                              labels=labels, **settings)

    beta = fit_beta(model, task, demonstrations, extra, config, seed)
    if out is not None:
        save_beta(beta_path(out, task.name, seed), beta, task=task.name, model_name=config.model,
                  label_words=task.label_words, variant=config.variant)

    cached = {"prefix_cache": config.prefix_cache}
    p_one, gold = label_probabilities(model, one_shot, config.batch_size, **cached)
    p_five, gold_five = label_probabilities(model, five_shot, config.batch_size, **cached)
    p_reweight, gold_reweight = label_probabilities(model, one_shot, config.batch_size, beta, config.variant, **cached)
    p_cf = content_free_probabilities(model, task, demonstrations, config.calibration_inputs, **cached)
    accuracies = {
        "vanilla_1shot": accuracy(p_one.argmax(-1), gold),
        "vanilla_5shot": accuracy(p_five.argmax(-1), gold_five),
        "reweight": accuracy(p_reweight.argmax(-1), gold_reweight),
        "contextual_calibration": accuracy(calibrated_predictions(p_one, p_cf), gold),
    }
    return pd.DataFrame({"method": list(accuracies), "accuracy": list(accuracies.values()), "n": len(test_set)})


def run_reweight(
    model, task: Task | str, config: ReweightConfig = ReweightConfig(), *, out: str | Path | None = None,
    progress: bool = True,
) -> ReweightResult:
    """Table 1 for one task: the four methods' accuracy per seed, each seed saved as soon as it is done."""
    task = get_task(task)
    config = config.for_model(model)  # the β files record the model that fitted them
    run = run_seeds("reweight", model, task, config, lambda seed: evaluate_seed(model, task, seed, config, out),
                    out=out, progress=progress)
    return ReweightResult.from_run(run)
