"""Whole-process peak memory of a saliency run, per TransformerLens model class, against a bare Hugging Face
forward and backward over the same prompts (issue 26.4).

    python benchmarks/memory.py [--layers 12 --d-model 768 --heads 12] [--n-prompts 8] [--out benchmarks/results]

A GPT-2-shaped model with random weights (GPT-2 small by default: 12 layers, d_model 768, 12 heads, learned
positions, value biases; the SmolLM2 tokenizer's 49,152-token vocabulary, so nothing comes from the hub) is
saved once as a local Hugging Face folder. Each measurement then runs in a fresh Python process, which
imports what it needs, loads the folder and runs its work on the same SST-2 prompts (seed 42, one batch):

* ``floor``: ``AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager")``, then one forward
  and backward of the label loss, unembedding the targets only (parameters frozen, gradient to the embeddings,
  as saliency needs);
* ``bridge`` / ``hooked``: ``anchorlens.load_model(folder, model_class=...)`` and `saliency_of_batch` on
  the same batch (``hooked`` only where the installed transformer-lens has HookedTransformer).

The number is the process's peak resident set (``ru_maxrss``) at the end: load and run together, as a user's
process sees it. The ratio is each class's peak over the floor's (goal on the default line: <= 1.2).
Written to ``OUT/memory-<shape>.json`` with the versions that made it.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, warnings
warnings.simplefilter("ignore")
import torch
torch.set_num_threads(1)
mode, folder, n_prompts = sys.argv[1], sys.argv[2], int(sys.argv[3])
from anchorlens.models import load_tokenizer
from anchorlens.prompts import label_loss, make_batch, task_prompts
tokenizer = load_tokenizer(folder)
if mode == "floor":
    from transformers import AutoModelForCausalLM
    from anchorlens.hooks import frozen_parameters
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
    _, prompts = task_prompts(tokenizer, "sst2", 42, n_test=n_prompts, prepend_bos=False)
    batch = make_batch(prompts, pad_token_id=tokenizer.pad_token_id or 0)
    with frozen_parameters(model):
        embeddings = model.get_input_embeddings()(batch.tokens).detach().requires_grad_(True)
        # The unembedding at the targets only, as anchorlens does: the floor is the cheapest faithful pass.
        wanted = torch.unique(batch.target_positions)
        logits = model(inputs_embeds=embeddings, logits_to_keep=wanted).logits
        rows = torch.arange(batch.size)
        loss = label_loss(logits[rows, torch.searchsorted(wanted, batch.target_positions)], batch)
        loss.backward()
else:
    from anchorlens.experiments.saliency import saliency_of_batch
    from anchorlens.models import load_model
    from anchorlens.model_classes import describe
    model = load_model(folder, model_class=mode, prepend_bos=False)
    _, prompts = task_prompts(model, "sst2", 42, n_test=n_prompts, prepend_bos=False)
    batch = make_batch(prompts, pad_token_id=tokenizer.pad_token_id or 0)
    saliency_of_batch(model, batch)
print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(mode: str, folder: Path, n_prompts: int) -> float:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(folder), str(n_prompts)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"memory.py: the {mode} process failed:\n{done.stderr[-3000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_mib"])


def save_model(folder: Path, layers: int, d_model: int, heads: int) -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from anchorlens.models import load_tokenizer

    tokenizer = load_tokenizer("smollm2-135m")
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=d_model,
        n_layer=layers,
        n_head=heads,
        n_positions=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--d-model", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--n-prompts", type=int, default=8)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)

    import importlib.metadata

    from anchorlens.model_classes import has_hooked_transformer

    classes = ["bridge"] + (["hooked"] if has_hooked_transformer() else [])
    shape = f"gpt2-{args.layers}L-{args.d_model}d-{args.heads}h"
    with tempfile.TemporaryDirectory(prefix="anchorlens-memory-") as work:
        folder = Path(work) / shape
        save_model(folder, args.layers, args.d_model, args.heads)
        floor = measure("floor", folder, args.n_prompts)
        peaks = {model_class: measure(model_class, folder, args.n_prompts) for model_class in classes}
    result = {
        "shape": shape,
        "n_prompts": args.n_prompts,
        "task": "sst2",
        "floor_peak_rss_mib": round(floor, 1),
        "peak_rss_mib": {k: round(v, 1) for k, v in peaks.items()},
        "ratio_to_floor": {k: round(v / floor, 3) for k, v in peaks.items()},
        "versions": {
            package: importlib.metadata.version(package) for package in ("transformer-lens", "transformers", "torch")
        },
        "python": platform.python_version(),
        "method": "ru_maxrss of a fresh process per measurement: load + one batch (torch 1 thread)",
    }
    tl = result["versions"]["transformer-lens"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"memory-{shape}-tl{tl}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"| model class | peak RSS (MiB) | ÷ bare HF forward+backward ({floor:.0f} MiB) |")
    print("|---|---|---|")
    for model_class, peak in peaks.items():
        print(f"| {model_class} | {peak:.0f} | {peak / floor:.2f} |")
    return result


if __name__ == "__main__":
    main()
