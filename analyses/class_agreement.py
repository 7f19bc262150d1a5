"""Recompute committed parts with the installed TransformerLens line's default model class and compare them with
the committed per-example rows (issue 26.5: are the committed results, made on transformer-lens 3.9 with
HookedTransformer, still the numbers of the default line?).

    python analyses/class_agreement.py docs/results/smollm2-135m --parts saliency:sst2:42 auroc:sst2:42 \\
        [--n-test 200] [--out benchmarks/results] [--name class-agreement-smollm2-135m.json]

With ``--n-test`` below the committed parts' count, the first inputs of each part are recomputed (a seed's test
inputs are the first ``n_test`` rows of its shuffle, so they are the committed part's first inputs) and compared
with those inputs' committed rows: a cheap check that a change to the code leaves the committed numbers as they
are (issue 27: every committed number byte-identical). Only experiments whose rows of an input do not depend on
the other inputs qualify: not diagnosis (its PCA is fitted on all of a seed's queries), and compression without
its Hidden_random-top rows (the best draw is chosen over the inputs).

Each part ``EXPERIMENT:TASK:SEED`` is run afresh (`anchorlens.run_experiment` into a temporary folder, the
committed part's settings) on the model the folder's manifest names, loaded in `anchorlens.default_model_class`,
and its per-example rows are joined to the committed rows on (example, layer). Reported per numeric column: the
largest absolute difference, the largest difference relative to the column's largest magnitude, and how many
predictions differ. Written to ``OUT/class-agreement-<model>.json`` with the versions that made it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd


def compared_columns(experiment: str, frame: pd.DataFrame) -> tuple[str, ...]:
    """The per-example values the claims are computed from: the result class's ``example_values``, else (AUROC,
    diagnosis) the per-class columns (``att_<class>``, ``p_<class>``)."""
    from anchorlens.registry import EXPERIMENTS

    declared = EXPERIMENTS[experiment].result_class.example_values
    return declared or tuple(column for column in frame.columns if column.startswith(("att_", "p_")))


#: Rows of a committed part that depend on the part's other inputs, as (column, value): left out of a subset
#: check (compression's best random draw is chosen over the inputs).
DEPENDS_ON_OTHER_INPUTS = {"compress": ("method", "hidden_random_top")}
#: Columns that identify a row within a part.
KEYS = ("example", "layer", "condition", "k", "method", "head")


def compare_part(committed: pd.DataFrame, fresh: pd.DataFrame, experiment: str, subset: bool = False) -> dict:
    """Per compared column the largest absolute and relative difference, the rows compared, the predictions
    that differ, and whether the two are identical. `subset`: compare only the committed rows of the inputs
    `fresh` holds (its first inputs), leaving out rows that depend on the other inputs."""
    keys = [k for k in KEYS if k in committed.columns and k in fresh.columns]
    if subset:
        if experiment == "diagnose":
            raise SystemExit("class_agreement: a diagnosis part cannot be checked on a subset (PCA over all inputs)")
        committed = committed[committed["example"].isin(set(fresh["example"]))]
        if experiment in DEPENDS_ON_OTHER_INPUTS:
            column, value = DEPENDS_ON_OTHER_INPUTS[experiment]
            committed, fresh = committed[committed[column] != value], fresh[fresh[column] != value]
    joined = committed.merge(fresh, on=keys, suffixes=("_committed", "_fresh"), validate="one_to_one")
    if len(joined) != len(committed) or len(joined) != len(fresh):
        raise SystemExit(
            f"class_agreement: the fresh {experiment} part has {len(fresh)} rows, the committed one {len(committed)}, "
            f"{len(joined)} match on {keys}: not the same inputs"
        )
    report: dict = {"rows": len(joined)}
    for column in compared_columns(experiment, committed):
        if f"{column}_committed" not in joined:
            continue
        ours = joined[f"{column}_fresh"].to_numpy(dtype=float)
        theirs = joined[f"{column}_committed"].to_numpy(dtype=float)
        both = ~(np.isnan(ours) | np.isnan(theirs))
        if (np.isnan(ours) != np.isnan(theirs)).any():
            raise SystemExit(f"class_agreement: {experiment} {column} is NaN in one run and not in the other")
        gap = np.abs(ours[both] - theirs[both])
        scale = float(np.abs(theirs[both]).max()) if both.any() else 0.0
        report[column] = {
            "max_abs_diff": float(gap.max()) if gap.size else 0.0,
            "max_diff_over_column_max": float(gap.max() / scale) if gap.size and scale else 0.0,
        }
    if "prediction_committed" in joined:
        report["predictions_differing"] = int((joined["prediction_committed"] != joined["prediction_fresh"]).sum())
    report["identical"] = report.get("predictions_differing", 0) == 0 and all(
        value["max_abs_diff"] == 0.0 for value in report.values() if isinstance(value, dict)
    )
    return report


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a committed results folder (docs/results/<model>)")
    parser.add_argument("--parts", nargs="+", required=True, help="EXPERIMENT:TASK:SEED, e.g. saliency:sst2:42")
    parser.add_argument("--n-test", type=int, default=200, help="test inputs per seed the committed parts used")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--name", default=None, help="the report's file name (default class-agreement-<model>.json)")
    args = parser.parse_args(argv)

    import anchorlens as al
    from anchorlens.orchestrate import EXPERIMENTS

    manifest = json.loads((args.folder / "manifest.json").read_text())
    models = {settings.get("model") for settings in manifest.get("experiments", {}).values()}
    if len(models) != 1:
        raise SystemExit(f"class_agreement: {args.folder}'s manifest names {len(models)} models, expected one")
    (model_name,) = models
    model = al.load_model(model_name)
    report: dict = {
        "model": model_name,
        "model_class": al.default_model_class(),
        "compared_with": str(args.folder),
        "n_test": args.n_test,
        "versions": {p: importlib.metadata.version(p) for p in ("transformer-lens", "transformers", "torch")},
        "parts": {},
    }
    for spec in args.parts:
        experiment, task, seed = spec.split(":")
        committed = pd.read_parquet(args.folder / f"{experiment}_examples.parquet")
        committed = committed[(committed["task"] == task) & (committed["seed"] == int(seed))]
        if committed.empty:
            raise SystemExit(f"class_agreement: {args.folder} holds no {experiment} rows of {task} seed {seed}")
        with tempfile.TemporaryDirectory(prefix="anchorlens-agreement-") as out:
            config = EXPERIMENTS[experiment].config_class(seeds=(int(seed),), n_test=args.n_test)
            al.run_experiment(experiment, model, [task], config, out, progress=False, figure=False)
            fresh = pd.read_parquet(Path(out) / f"{experiment}_examples.parquet")
        subset = fresh["example"].nunique() < committed["example"].nunique()
        report["parts"][spec] = compare_part(committed, fresh, experiment, subset=subset)
        print(spec, json.dumps(report["parts"][spec]), file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / (args.name or f"class-agreement-{model_name}.json")
    target.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
