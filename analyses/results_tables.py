"""Print the README's result tables (markdown) from a results folder written by the fig* scripts."""

import argparse
from pathlib import Path

from anchorlens.errors import InvalidConfigError
from anchorlens.experiments import AurocResult, IsolationResult, SaliencyResult
from anchorlens.reproduce import markdown_table

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("folder", help="e.g. results/smollm2-135m")
folder = Path(parser.parse_args().folder)
for title, result_class in (("Saliency (Fig. 3)", SaliencyResult), ("Isolation, k = 5 (Fig. 4)", IsolationResult),
                            ("AUROC and R_l (Fig. 5)", AurocResult)):
    try:
        result = result_class.from_folder(folder)
    except InvalidConfigError:
        continue
    frame = result.report_table()
    if result_class is IsolationResult:
        frame = result.frame.groupby(["task", "k", "condition"])[["label_loyalty", "word_loyalty"]].mean().reset_index()
    seeds = sorted(int(seed) for seed in result.frame["seed"].unique())
    print(f"### {title}: seeds {seeds}, n = {int(result.frame['n'].iloc[0])} per task and seed\n")
    print(markdown_table(frame))
    print()
