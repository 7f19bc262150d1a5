"""Which offline model shows in-context learning: accuracy with 0 demonstrations vs 1 per class, per task.

The default model of `anchorlens reproduce` is the one on which ICL beats the zero-shot baseline on more
tasks (issue 5). Writes OUT/icl_vs_zero_shot.csv and prints the table.
"""

import argparse
from pathlib import Path

import pandas as pd
import torch

from anchorlens import build_prompt, label_logits, label_tokens, load_model, make_batch, paper, prompt_settings
from anchorlens.forward import run_to_target
from anchorlens.models import OFFLINE_MODELS
from anchorlens.sampling import sample_demonstrations, sample_test_set

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--models", nargs="+", default=list(OFFLINE_MODELS))
parser.add_argument("--tasks", nargs="+", default=list(paper.TASKS))
parser.add_argument("--seeds", type=int, nargs="+", default=list(paper.SEEDS[:1]))
parser.add_argument("--n-test", type=int, default=100)
parser.add_argument("--out", default="results")
args = parser.parse_args()

rows = []
for model_name in args.models:
    model = load_model(model_name)
    for task in args.tasks:
        labels = label_tokens(model.tokenizer, task)
        for seed in args.seeds:
            demonstrations, _ = sample_demonstrations(task, seed)
            tests = sample_test_set(task, seed, n_test=args.n_test)
            for shots, demos in (("zero_shot", []), ("icl_1shot", demonstrations)):
                correct = 0
                for start in range(0, len(tests), 8):
                    chunk = tests[start : start + 8]
                    batch = make_batch(
                        [
                            build_prompt(
                                model.tokenizer, task, demos, e.text, e.label, labels=labels, **prompt_settings(model)
                            )
                            for e in chunk
                        ]
                    )
                    with torch.no_grad():
                        predicted = label_logits(run_to_target(model, batch), batch).argmax(-1)
                    correct += int((predicted == batch.gold).sum())
                rows.append(
                    {
                        "model": model_name,
                        "task": task,
                        "seed": seed,
                        "setting": shots,
                        "accuracy": correct / len(tests),
                        "n": len(tests),
                    }
                )
frame = pd.DataFrame(rows)
Path(args.out).mkdir(parents=True, exist_ok=True)
frame.to_csv(Path(args.out) / "icl_vs_zero_shot.csv", index=False)
table = frame.pivot_table(index=["model", "task"], columns="setting", values="accuracy").reset_index()
table["icl_beats_zero_shot"] = table["icl_1shot"] > table["zero_shot"]
print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
print(table.groupby("model")["icl_beats_zero_shot"].sum().to_string())
