"""Print the README's result tables (markdown) from one or more results folders written by the analyses
scripts or the CLI, e.g. `python analyses/results_tables.py docs/results/smollm2-135m docs/results/gemma-3-270m`.

One table per experiment over all the folders (a model column or row group tells them apart), saying which
seeds and how many test inputs per (task, seed) it averages; experiments no folder has finished parts of are
skipped. Methods tables put the paper's GPT2-XL (and GPT-J) numbers beside ours."""

import argparse
from pathlib import Path

import pandas as pd

from anchorlens import paper
from anchorlens.errors import InvalidConfigError
from anchorlens.experiments import (
    AurocResult,
    CompressResult,
    DiagnoseResult,
    IsolationResult,
    ReweightResult,
    SaliencyResult,
)
from anchorlens.plots import diagnose_svg
from anchorlens.reproduce import markdown_table


def saliency_table(result: SaliencyResult) -> pd.DataFrame:
    """Per task and model: seed-mean normalised S_wp, S_pq, S_ww over the shallow and the deep third."""
    table = result.depth_summary().pivot_table(
        index=["task", "model"], columns="depth", values=["S_wp", "S_pq", "S_ww"]
    )
    table.columns = [f"{depth} {name}" for name, depth in table.columns]
    order = [f"{depth} {name}" for depth in ("shallow", "deep") for name in ("S_wp", "S_pq", "S_ww")]
    return table[order].reset_index()


def isolation_table(result: IsolationResult) -> pd.DataFrame:
    """Per task, model and k: label / word loyalty of each condition, seed mean ± std (paper Fig. 4)."""
    grouped = result.frame.groupby(["task", "model", "k", "condition"])[["label_loyalty", "word_loyalty"]]
    mean, std = grouped.mean(), grouped.std()

    def cell(index) -> str:
        return " / ".join(
            f"{mean.loc[index, m]:.2f} ± {std.loc[index, m]:.2f}"
            if pd.notna(std.loc[index, m])
            else f"{mean.loc[index, m]:.2f}"
            for m in ("label_loyalty", "word_loyalty")
        )

    rows = {}
    for index in mean.index:
        task, model, k, condition = index
        rows.setdefault((task, model, k), {})[condition] = cell(index)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index = table.index.set_names(["task", "model", "k"])
    return table[
        [c for c in ("label_first", "random_first", "label_last", "random_last") if c in table.columns]
    ].reset_index()


def speedup_table(result: CompressResult) -> pd.DataFrame:
    """Paper Table 3: Hidden_anchor speed-up per task (seed mean), with the paper's GPT2-XL and GPT-J rows."""
    anchor = result.frame[result.frame["method"] == "hidden_anchor"]
    rows = [
        {"source": model, **{paper.TASK_LABELS.get(t, t): v for t, v in part.groupby("task")["speedup"].mean().items()}}
        for model, part in anchor.groupby("model")
    ]
    rows += [
        {"source": f"paper, {name}", **{paper.TASK_LABELS[t]: v for t, v in values.items()}}
        for name, values in paper.COMPRESS_SPEEDUP.items()
    ]
    return pd.DataFrame(rows)[["source", *[name for name in paper.TASK_LABELS.values()]]]


def compress_by_task_table(result: CompressResult) -> pd.DataFrame:
    """Per task and model: label loyalty / word loyalty / accuracy (%) of each method, seed mean; the kept
    demonstration tokens of Hidden_anchor out of all of them."""
    from anchorlens.experiments.compress import METHODS

    labels = paper.COMPRESS_METHOD_LABELS

    mean = result.frame.groupby(["task", "model", "method"])[
        ["label_loyalty", "word_loyalty", "accuracy", "kept_tokens", "demo_tokens"]
    ].mean()
    rows = {}
    for (task, model, method), values in mean.iterrows():
        row = rows.setdefault((task, model), {})
        row[labels[method]] = " / ".join(
            f"{100 * values[m]:.1f}" for m in ("label_loyalty", "word_loyalty", "accuracy")
        )
        if method == "hidden_anchor":
            row["kept / demo tokens"] = f"{values['kept_tokens']:.0f} / {values['demo_tokens']:.0f}"
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index = table.index.set_names(["task", "model"])
    columns = [labels[m] for m in METHODS if labels[m] in table.columns] + ["kept / demo tokens"]
    return table[[c for c in columns if c in table.columns]].reset_index()


def diagnose_table(result: DiagnoseResult) -> pd.DataFrame:
    table = result.summary()
    layers = result.frame.groupby(["task", "model"])["layer"].first()
    table.insert(2, "layer", [int(layers[(task, model)]) for task, model in zip(table["task"], table["model"])])
    return table


def sizes(frame: pd.DataFrame) -> str:
    """ ", n = 200 per task and seed" (a range where tasks differ); results written before `n` was recorded have
    none to show."""
    if "n" not in frame.columns:
        return ""
    per_part = frame.groupby(["task", "seed"])["n"].first()
    low, high = int(per_part.min()), int(per_part.max())
    return f", n = {low} per task and seed" if low == high else f", n = {low}-{high} per task and seed"


TABLES = (
    # (title, result class, table of a result, decimals shown)
    (
        "Saliency (Fig. 3), normalised, mean over the shallow and the deep third of the layers",
        SaliencyResult,
        saliency_table,
        3,
    ),
    ("Isolation (Fig. 4), label loyalty / word loyalty, seed mean ± std", IsolationResult, isolation_table, 3),
    ("AUROC and R_l (Fig. 5), seed-averaged curve", AurocResult, lambda r: r.report_table(), 3),
    (
        "Error diagnosis (Fig. 6): correlation of predicted and true confusion, off-diagonal pairs",
        DiagnoseResult,
        diagnose_table,
        3,
    ),
    ("Anchor re-weighting (Table 1), accuracy %", ReweightResult, lambda r: r.report_table(), 1),
    ("Context compression (Table 2), % (mean over seeds, then tasks)", CompressResult, lambda r: r.report_table(), 1),
    (
        "Context compression per task, label loyalty / word loyalty / accuracy %, seed mean",
        CompressResult,
        compress_by_task_table,
        1,
    ),
    ("Hidden_anchor speed-up (Table 3)", CompressResult, speedup_table, 2),
)


def combined(result_class, folders: list[Path]):
    """One result over every folder that holds finished parts of the experiment (None if none does)."""
    frames = []
    for folder in folders:
        try:
            frames.append(result_class.from_folder(folder).frame)
        except InvalidConfigError:
            continue
    return result_class.from_frame(pd.concat(frames, ignore_index=True)) if frames else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folders", nargs="+", help="results folders, e.g. docs/results/smollm2-135m")
    parser.add_argument(
        "--matrices",
        nargs="*",
        default=[],
        metavar="TASK",
        help="also print the seed-mean predicted and true confusion matrices of these tasks (Fig. 6)",
    )
    parser.add_argument(
        "--heatmaps",
        action="store_true",
        help="with --matrices: also write them as FOLDER/diagnose-TASK.svg (static heatmaps that "
        "render in a README) and print a markdown image link to each",
    )
    args = parser.parse_args()
    if args.heatmaps and not args.matrices:
        parser.error("--heatmaps draws the tasks named by --matrices; add e.g. --matrices trec")
    folders = [Path(folder) for folder in args.folders]
    for title, result_class, table, digits in TABLES:
        result = combined(result_class, folders)
        if result is None:
            continue
        seeds = sorted(int(seed) for seed in result.frame["seed"].unique())
        print(f"#### {title}: seeds {seeds}{sizes(result.frame)}\n")
        print(markdown_table(table(result), digits=digits))
        print()
    diagnosis = combined(DiagnoseResult, folders) if args.matrices else None
    for task in args.matrices if diagnosis is not None else []:
        for model in sorted(diagnosis.frame.loc[diagnosis.frame["task"] == task, "model"].unique()):
            predicted, true = diagnosis.matrices(task, model)
            side_by_side = pd.concat({"predicted": predicted, "true": true}, axis=1)
            side_by_side.columns = [f"{kind}: {name}" for kind, name in side_by_side.columns]
            print(
                f"#### Confusion matrices (Fig. 6), {task}, {model}: predicted from label-key distances, true from "
                "AUROCs; near 1 = well separated, small = confused\n"
            )
            print(markdown_table(side_by_side.rename_axis("class"), digits=2))
            print()
    for folder in folders if args.heatmaps else []:
        result = combined(DiagnoseResult, [folder])  # per folder: each heatmap is written beside its parts
        for task in args.matrices if result is not None else []:
            models = sorted(result.frame.loc[result.frame["task"] == task, "model"].unique())
            for model in models:
                # one model per folder is the layout the CLI writes; name the model only when a folder mixes them
                path = folder / (f"diagnose-{task}.svg" if len(models) == 1 else f"diagnose-{task}-{model}.svg")
                path.write_text(diagnose_svg(result, task, model))
                print(f"![Fig. 6, {task}, {model}: predicted and true confusion]({path.as_posix()})\n")


if __name__ == "__main__":
    main()
