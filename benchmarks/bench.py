"""Speed and memory of anchorlens against the bare model, measured side by side in one run (issue 5).

    python benchmarks/bench.py [--model gemma-3-270m] [--n-prompts 32] [--repeats 3] [--out benchmarks/results]

Five measurements, all on the same prompts and batches as the experiments use:

1. saliency throughput: the batched gradient × attention pass (`saliency_of_batch`) against (a) the same
   prompts one at a time and (b) the floor, a bare forward and backward of the same batches without hooks
   (the same label loss, back-propagated through every layer to the embeddings; parameters frozen in both);
2. forward-only analyses: AUROC's label-attention recorder, one label-isolated forward (first 5 layers) and
   the whole isolation experiment of a batch, against a bare forward of the same batches;
3. compression: Hidden_anchor's query-against-cache time against the full prompt per task, beside the ideal
   (the token-count ratio, full prompt tokens / query tokens) and the paper's Table 3 speed-ups, and against
   its floor, a bare forward of the query tokens alone (no context, no cache; target ≤ 1.2x, issue 16.1),
   timed with glibc's usual heap reuse (`reusable_heap`), as the experiments run;
4. re-weighting's evaluation: the label probabilities of one seed's 1-shot and 5-shot prompts run whole
   against running only the queries on the cached shared demonstrations (cache building timed with it);
5. peak memory of saliency on the task's longest prompt against the bare forward + backward (CUDA: allocator
   peak; CPU: resident-set peak sampled every millisecond above the level before the call, with glibc told
   to return every freed block over 128 KiB to the system (``MALLOC_MMAP_THRESHOLD_``, set by re-executing
   the script) so the resident set follows the live tensors instead of the allocator's high-water mark).

Times are the best of `--repeats` passes after a warm-up (another job only slows a pass down). Results are
printed as a markdown table and written to ``OUT/bench-<model>.json``. Targets (issue 5): saliency within
1.25x of the floor, forward-only within 1.1x of a bare forward.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from anchorlens import paper
from anchorlens.experiments.auroc import attention_and_prediction
from anchorlens.experiments.common import batches, device_of, pad_token_id
from anchorlens.experiments.compress import build_anchor_cache
from anchorlens.experiments.isolation import IsolationConfig, loyalty_of_batch, paper_settings, shared_prefixes
from anchorlens.experiments.reweight import ReweightConfig, five_shot_demonstrations, label_probabilities, query_prompts
from anchorlens.experiments.saliency import SaliencyConfig, fresh_demonstration_prompts, saliency_of_batch
from anchorlens.forward import final_logits, final_residual, input_embeddings, logits_from_embeddings, run_to_target
from anchorlens.hooks import block_earlier_mask, frozen_parameters, isolation_hooks
from anchorlens.kv_cache import pad_queries, query_tokens, run_query_with_cache
from anchorlens.model_classes import run_provenance
from anchorlens.models import DEFAULT_MODEL, load_model
from anchorlens.prompts import Prompt, PromptBatch, iter_batches, label_loss, prompt_settings, task_prompts
from anchorlens.sampling import sample_demonstrations, sample_test_set
from anchorlens.tasks import get_task

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_protocol import reference_protocol_saliency  # noqa: E402

TASKS = ("sst2", "trec", "emoc", "agnews")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_time(
    work: Callable[[], object], repeats: int, device: torch.device, warm_up: Callable[[], object] | None = None
) -> float:
    """Fastest of `repeats` timed calls after one warm-up call (`warm_up`, or `work` itself)."""
    (warm_up or work)()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        work()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


# -------------------------------------------------------------------------------------------------- floors


def bare_forward(model, batch: PromptBatch) -> torch.Tensor:
    """The cheapest forward an analysis could make: every layer, the unembedding at the targets only."""
    with torch.no_grad():
        return run_to_target(model, batch)


def bare_forward_backward(model, batch: PromptBatch) -> None:
    """The label loss back-propagated through every layer to the embeddings, no hooks, parameters frozen."""
    with frozen_parameters(model):
        embedded = input_embeddings(model, batch.tokens).requires_grad_(True)
        label_loss(logits_from_embeddings(model, batch, embedded), batch).backward()


# --------------------------------------------------------------------------------------------- measurements


def saliency_throughput(model, prompts: list[Prompt], batch_size: int, repeats: int) -> dict:
    device = device_of(model)
    max_tokens = SaliencyConfig().max_batch_tokens
    batched = list(batches(model, prompts, batch_size, max_tokens=max_tokens))
    single = list(batches(model, prompts, 1))
    seconds = {
        "anchorlens_batched": best_time(lambda: [saliency_of_batch(model, b) for b in batched], repeats, device),
        "one_prompt_at_a_time": best_time(lambda: [saliency_of_batch(model, b) for b in single], repeats, device),
        "floor_forward_backward": best_time(
            lambda: [bare_forward_backward(model, b) for b in batched], repeats, device
        ),
        # The paper's protocol (benchmarks/reference_protocol.py): one timed pass after a one-prompt warm-up, as
        # it is many times slower than the others.
        "reference_protocol": best_time(
            lambda: reference_protocol_saliency(model, prompts),
            1,
            device,
            warm_up=lambda: reference_protocol_saliency(model, prompts[:1]),
        ),
    }
    n = len(prompts)
    return {
        "prompts": n,
        "prompts_per_second": {name: n / value for name, value in seconds.items()},
        "ratio_batched_to_floor": seconds["anchorlens_batched"] / seconds["floor_forward_backward"],
        "speedup_batched_over_one_at_a_time": seconds["one_prompt_at_a_time"] / seconds["anchorlens_batched"],
        "target_ratio_to_floor": 1.25,
        "reference_protocol": {
            "prompts_per_second": n / seconds["reference_protocol"],
            "speedup_anchorlens_over_reference": seconds["reference_protocol"] / seconds["anchorlens_batched"],
            "target_speedup_gpu": 5.0,
        },
    }


def isolation_layer_passes(n_layers: int, ks: Sequence[int], shared: bool) -> float:
    """Layers the isolation experiment runs per batch, in whole forwards: the plain prompt, then each setting
    from its restart layer (last k: L - k; first k: the shared prefix's end when `shared`, else layer 0)."""
    settings = paper_settings(n_layers, ks)
    restart_at = shared_prefixes(settings)[0] if shared else {}
    layers = n_layers + sum(n_layers - restart_at.get(s.key, s.restart or 0) for s in settings)
    return layers / n_layers


def forward_only(model, prompts: list[Prompt], batch_size: int, repeats: int) -> dict:
    device = device_of(model)
    batched = list(batches(model, prompts, batch_size))
    first_five = range(min(5, model.cfg.n_layers))

    def isolated(batch: PromptBatch) -> torch.Tensor:
        blocked = block_earlier_mask(batch, [p.demonstration_label_positions for p in batch.prompts])
        with torch.no_grad():
            return run_to_target(model, batch, isolation_hooks({layer: blocked for layer in first_five}))

    config = IsolationConfig(k=(5,))
    # The paper's Fig. 4 settings (k = 1, 3, 5, 7; those the model has), as `run_isolation` runs them by default.
    paper_k = tuple(k for k in paper.ISOLATION_K if k <= model.cfg.n_layers) or (model.cfg.n_layers,)
    seconds = {
        "bare_forward": best_time(lambda: [bare_forward(model, b) for b in batched], repeats, device),
        "auroc_recorder": best_time(lambda: [attention_and_prediction(model, b) for b in batched], repeats, device),
        "one_isolated_forward": best_time(lambda: [isolated(b) for b in batched], repeats, device),
        "isolation_experiment": best_time(
            lambda: [loyalty_of_batch(model, b, config, 0) for b in batched], repeats, device
        ),
        "isolation_experiment_paper_k": best_time(
            lambda: [loyalty_of_batch(model, b, IsolationConfig(k=paper_k), 0) for b in batched], repeats, device
        ),
    }
    n = len(prompts)
    return {
        "prompts": n,
        "prompts_per_second": {name: n / value for name, value in seconds.items()},
        "ratio_auroc_to_bare_forward": seconds["auroc_recorder"] / seconds["bare_forward"],
        "ratio_isolated_forward_to_bare_forward": seconds["one_isolated_forward"] / seconds["bare_forward"],
        # The isolation experiment runs the plain prompt and four conditions per k (the last-k ones from a
        # saved residual stream), so its cost is best read in bare-forward equivalents.
        "isolation_experiment_in_bare_forwards": seconds["isolation_experiment"] / seconds["bare_forward"],
        "isolation_paper_k": list(paper_k),
        "isolation_experiment_paper_k_in_bare_forwards": seconds["isolation_experiment_paper_k"]
        / seconds["bare_forward"],
        # Its floor: the layers it must run, in whole forwards (the plain prompt, each setting from its restart
        # layer), with the shared first-k prefixes and without them (each first-k setting from the tokens).
        "isolation_paper_k_layer_passes_in_forwards": isolation_layer_passes(model.cfg.n_layers, paper_k, True),
        "isolation_paper_k_layer_passes_in_forwards_unshared": isolation_layer_passes(
            model.cfg.n_layers, paper_k, False
        ),
        "target_ratio_to_bare_forward": 1.1,
    }


def query_only_forward(model, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The floor of a cached query: the query tokens alone through every layer (no context, no cache, no mask:
    right padding is never attended to), then the logits at each query's last token."""
    residual = final_residual(model, tokens)
    return final_logits(model, residual[torch.arange(tokens.shape[0], device=residual.device), lengths - 1])


#: glibc mallopt parameters, and the largest mmap threshold it accepts on 64-bit (where its own dynamic
#: threshold stops growing).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
HEAP_MMAP_THRESHOLD = 32 * 2**20


@contextmanager
def reusable_heap() -> Iterator[None]:
    """Time with glibc's usual reuse of freed blocks, not with the memory section's every-block-to-the-system
    setting (``MALLOC_MMAP_THRESHOLD_``, module docstring item 5), restored afterwards.

    Under that setting every tensor over 128 KiB is a fresh mmap whose pages fault in on first touch, which the
    experiments never run with. Measured on TREC (SmolLM2, one thread, batch 8, seconds per input, full prompt /
    Hidden_anchor / query only): 0.849 / 0.154 / 0.115 with it, 0.541 / 0.086 / 0.076 without; Hidden_anchor,
    whose attention tensors span the cached positions too, lost most (1.33x the query-only floor against 1.13x).
    """
    libc = ctypes.CDLL(None) if sys.platform == "linux" and "MALLOC_MMAP_THRESHOLD_" in os.environ else None
    if libc is None or not hasattr(libc, "mallopt"):
        yield
        return
    libc.mallopt(M_MMAP_THRESHOLD, HEAP_MMAP_THRESHOLD)
    libc.mallopt(M_TRIM_THRESHOLD, 2 * HEAP_MMAP_THRESHOLD)  # what glibc's dynamic threshold would pair with it
    try:
        yield
    finally:
        libc.mallopt(M_MMAP_THRESHOLD, int(os.environ["MALLOC_MMAP_THRESHOLD_"]))
        libc.mallopt(M_TRIM_THRESHOLD, int(os.environ.get("MALLOC_TRIM_THRESHOLD_", 128 * 1024)))


def compression(model, task: str, n_prompts: int, batch_size: int, repeats: int) -> dict:
    device, pad = device_of(model), pad_token_id(model)
    _, prompts = task_prompts(model.tokenizer, task, 42, n_test=n_prompts, **prompt_settings(model))
    cache = build_anchor_cache(model, prompts[0])
    chunks = [prompts[i : i + batch_size] for i in range(0, len(prompts), batch_size)]
    full = [list(iter_batches(chunk, batch_size, pad_token_id=pad, device=device))[0] for chunk in chunks]
    queries = [
        pad_queries([query_tokens(p, cache) for p in chunk], pad_token_id=pad, device=device) for chunk in chunks
    ]
    with torch.no_grad(), reusable_heap():
        full_seconds = best_time(lambda: [run_to_target(model, b) for b in full], repeats, device)
        cached_seconds = best_time(lambda: [run_query_with_cache(model, cache, *q) for q in queries], repeats, device)
        query_only_seconds = best_time(lambda: [query_only_forward(model, *q) for q in queries], repeats, device)
    full_tokens = float(np.mean([p.length for p in prompts]))
    query_length = float(np.mean([len(query_tokens(p, cache)) for p in prompts]))
    n = len(prompts)
    return {
        "prompts": n,
        "mean_prompt_tokens": full_tokens,
        "mean_query_tokens": query_length,
        "cached_positions": cache.n_kept,
        "seconds_per_input": {
            "full_prompt": full_seconds / n,
            "hidden_anchor": cached_seconds / n,
            "query_only": query_only_seconds / n,
        },
        "query_only": query_only_seconds / n,
        "speedup_hidden_anchor": full_seconds / cached_seconds,
        # What the cache costs over the query's own tokens (attending to the kept positions, the cache's mask
        # and original positions): issue 16.1's target is at most 1.2.
        "hidden_anchor_over_query_only": cached_seconds / query_only_seconds,
        "ideal_token_ratio": full_tokens / query_length,
        "paper_speedup": {name: table[task] for name, table in paper.COMPRESS_SPEEDUP.items()},
    }


def reweight_evaluation(model, task: str, n_prompts: int, batch_size: int, repeats: int) -> dict:
    device = device_of(model)
    task_object = get_task(task)
    config = ReweightConfig(model=str(model.cfg.model_name))
    tests = sample_test_set(task_object, 42, n_test=n_prompts)
    out = {"prompts": len(tests)}
    for shots, demonstrations in (
        ("1shot", sample_demonstrations(task_object, 42)[0]),
        ("5shot", five_shot_demonstrations(task_object, 42, config)),
    ):
        prompts = query_prompts(model.tokenizer, task_object, demonstrations, tests, **prompt_settings(model))
        full = best_time(lambda prompts=prompts: label_probabilities(model, prompts, batch_size), repeats, device)
        cached = best_time(
            lambda prompts=prompts: label_probabilities(model, prompts, batch_size, prefix_cache=True), repeats, device
        )
        out[f"mean_prompt_tokens_{shots}"] = float(np.mean([p.length for p in prompts]))
        out[f"speedup_cached_demonstrations_{shots}"] = full / cached
    return out


class PeakResidentMemory:
    """Peak resident set size above the level at entry, sampled every millisecond (CPU memory)."""

    def __enter__(self) -> PeakResidentMemory:
        self._page = os.sysconf("SC_PAGE_SIZE")
        self.start = self._rss()
        self.peak = self.start
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _rss(self) -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * self._page

    def _sample(self) -> None:
        while self._running:
            self.peak = max(self.peak, self._rss())
            time.sleep(0.001)

    def __exit__(self, *exc) -> None:
        self._running = False
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def above_start(self) -> int:
        return self.peak - self.start


def peak_bytes(work: Callable[[], object], device: torch.device) -> int:
    work()  # warm-up: one-off allocations (kernels, caches) are not what is compared
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        work()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    with PeakResidentMemory() as memory:
        work()
    return memory.above_start


def saliency_memory(model, prompts: Sequence[Prompt]) -> dict:
    longest = max(prompts, key=lambda prompt: prompt.length)
    (batch,) = batches(model, [longest], 1)
    device = device_of(model)
    saliency = peak_bytes(lambda: saliency_of_batch(model, batch), device)
    floor = peak_bytes(lambda: bare_forward_backward(model, batch), device)
    return {
        "prompt_tokens": longest.length,
        "saliency_peak_mib": saliency / 2**20,
        "floor_peak_mib": floor / 2**20,
        "ratio_saliency_to_floor": saliency / floor if floor else float("nan"),
        "method": "cuda allocator peak" if device.type == "cuda" else "resident-set peak above start, 1 ms sampling",
    }


# ---------------------------------------------------------------------------------------------------- main


SECTIONS = ("saliency", "forward_only", "compression", "memory", "reweight_eval")
#: The sections of the main table; re-weighting's evaluation has a table of its own.
MAIN_SECTIONS = SECTIONS[:4]


def run(
    model_name: str,
    n_prompts: int,
    batch_size: int,
    repeats: int,
    tasks: Sequence[str],
    sections: Sequence[str] = SECTIONS,
) -> dict:
    model = load_model(model_name)
    settings = prompt_settings(model)
    report: dict = {
        "model": model_name,
        "n_prompts": n_prompts,
        "batch_size": batch_size,
        "repeats": repeats,
        "device": str(device_of(model)),
        # Which accelerator: "cuda:0" alone would not say which GPU made the numbers.
        "device_name": torch.cuda.get_device_name(device_of(model))
        if device_of(model).type == "cuda"
        else platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.platform(),
        # which model class, transformer-lens and torch made the numbers (the two lines time differently)
        "provenance": run_provenance(model),
        **{section: {} for section in SECTIONS},
    }
    for task in tasks:
        prompts = fresh_demonstration_prompts(
            model.tokenizer, task, 42, n_test=n_prompts, shots_per_class=1, **settings
        )
        if "saliency" in sections:
            report["saliency"][task] = saliency_throughput(model, prompts, batch_size, repeats)
        if "forward_only" in sections:
            report["forward_only"][task] = forward_only(model, prompts, batch_size, repeats)
        if "compression" in sections:
            report["compression"][task] = compression(model, task, n_prompts, batch_size, repeats)
        if "memory" in sections:
            report["memory"][task] = saliency_memory(model, prompts)
        if "reweight_eval" in sections:
            report["reweight_eval"][task] = reweight_evaluation(model, task, n_prompts, batch_size, repeats)
        print(f"{task}: done", flush=True)
    return report


def markdown(report: dict) -> str:
    tables = []
    if all(report[section] for section in MAIN_SECTIONS):
        tables.append(main_table(report))
    elif any(report[section] for section in MAIN_SECTIONS):
        tables.append(json.dumps({s: report[s] for s in MAIN_SECTIONS if report[s]}, indent=2))
    if report["compression"]:
        tables.append(compression_table(report))
    if report["reweight_eval"]:
        rows = [
            "| task | prompt tokens 1-shot / 5-shot | re-weighting evaluation speed-up with cached demonstrations "
            "1-shot / 5-shot |",
            "|---|---|---|",
        ]
        for task, r in report["reweight_eval"].items():
            rows.append(
                f"| {task} | {r['mean_prompt_tokens_1shot']:.0f} / {r['mean_prompt_tokens_5shot']:.0f} | "
                f"{r['speedup_cached_demonstrations_1shot']:.2f} / {r['speedup_cached_demonstrations_5shot']:.2f} |"
            )
        tables.append("\n".join(rows))
    return "\n\n".join(tables)


def compression_table(report: dict) -> str:
    rows = [
        "| task | prompt / query tokens | seconds per input: full prompt / Hidden_anchor / query only | "
        "Hidden_anchor speed-up | Hidden_anchor ÷ query only (target ≤ 1.2) |",
        "|---|---|---|---|---|",
    ]
    for task, c in report["compression"].items():
        seconds = c["seconds_per_input"]
        rows.append(
            f"| {task} | {c['mean_prompt_tokens']:.1f} / {c['mean_query_tokens']:.1f} | "
            f"{seconds['full_prompt']:.4f} / {seconds['hidden_anchor']:.4f} / {seconds['query_only']:.4f} | "
            f"{c['speedup_hidden_anchor']:.2f} | {c['hidden_anchor_over_query_only']:.2f} |"
        )
    return "\n".join(rows)


def main_table(report: dict) -> str:
    rows = [
        "| task | saliency prompts/s (batched / one at a time / floor) | saliency ÷ floor | AUROC ÷ fwd | "
        "isolated fwd ÷ fwd | isolation exp. in fwds | Hidden_anchor speed-up (ideal; paper GPT2-XL, GPT-J) | "
        "saliency peak MiB (floor) |",
        "|" + "---|" * 8,
    ]
    for task in report["saliency"]:
        s, f, c, m = (report[k][task] for k in ("saliency", "forward_only", "compression", "memory"))
        pps = s["prompts_per_second"]
        rows.append(
            f"| {task} | {pps['anchorlens_batched']:.1f} / {pps['one_prompt_at_a_time']:.1f} / "
            f"{pps['floor_forward_backward']:.1f} | {s['ratio_batched_to_floor']:.2f} | "
            f"{f['ratio_auroc_to_bare_forward']:.2f} | {f['ratio_isolated_forward_to_bare_forward']:.2f} | "
            f"{f['isolation_experiment_in_bare_forwards']:.1f} | {c['speedup_hidden_anchor']:.2f} "
            f"({c['ideal_token_ratio']:.2f}; {c['paper_speedup']['GPT2-XL']}, {c['paper_speedup']['GPT-J']}) | "
            f"{m['saliency_peak_mib']:.0f} ({m['floor_peak_mib']:.0f}) |"
        )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--n-prompts", type=int, default=32, help="prompts per task")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    args = parser.parse_args(argv)
    if argv is None and sys.platform == "linux" and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        # Before any tensor exists: glibc reads this once at start-up (see the module docstring, item 5).
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"})
    report = run(args.model, args.n_prompts, args.batch_size, args.repeats, args.tasks, args.sections)
    table = markdown(report)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if list(args.sections) == list(SECTIONS) else "-" + "-".join(args.sections)
    path = out / f"bench-{Path(args.model).name}{suffix}.json"
    path.write_text(json.dumps({**report, "table": table}, indent=2))
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
