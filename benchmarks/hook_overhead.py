"""Does an isolation hook cost anything beyond the forward it edits? One batch, three forwards timed in turn for
several rounds (so a slow spell of the machine hits all three alike): the bare forward, isolation in the first 5
layers, and do-nothing hooks on the same 5 layers' attention scores. Prints each one's times and its best time
over the bare forward's.

    OMP_NUM_THREADS=1 python benchmarks/hook_overhead.py --model gemma-3-270m --rounds 4
"""

from __future__ import annotations

import argparse
import time

import torch

from anchorlens.experiments.common import batches
from anchorlens.experiments.saliency import fresh_demonstration_prompts
from anchorlens.forward import run_to_target
from anchorlens.hooks import block_earlier_mask, isolation_hooks, scores_hook_name
from anchorlens.models import DEFAULT_MODEL, load_model
from anchorlens.prompts import prompt_settings


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--n-prompts", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)
    model = load_model(args.model)
    prompts = fresh_demonstration_prompts(
        model.tokenizer, args.task, 42, n_test=args.n_prompts, shots_per_class=1, **prompt_settings(model)
    )
    batch = next(iter(batches(model, prompts, args.n_prompts)))
    layers = range(min(5, model.cfg.n_layers))
    blocked = block_earlier_mask(batch, [p.demonstration_label_positions for p in batch.prompts])
    hooks = {
        "bare": [],
        "isolated": isolation_hooks({layer: blocked for layer in layers}),
        "do_nothing_hooks": [(scores_hook_name(layer), lambda scores, hook: scores) for layer in layers],
    }
    times: dict[str, list[float]] = {name: [] for name in hooks}
    with torch.no_grad():
        for name in hooks:  # warm-up
            run_to_target(model, batch, hooks[name])
        for _ in range(args.rounds):
            for name, fwd_hooks in hooks.items():
                start = time.perf_counter()
                run_to_target(model, batch, fwd_hooks)
                times[name].append(time.perf_counter() - start)
    ratios = {name: min(values) / min(times["bare"]) for name, values in times.items()}
    print({name: [round(t, 3) for t in values] for name, values in times.items()})
    print({name: round(ratio, 3) for name, ratio in ratios.items()})
    return ratios


if __name__ == "__main__":
    main()
