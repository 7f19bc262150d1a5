"""Recompute committed parts with the installed TransformerLens line's default model class and compare them with
the committed per-example rows (issue 26.5: are the committed results, made on transformer-lens 3.9 with
HookedTransformer, still the numbers of the default line?).

    python analyses/class_agreement.py docs/results/smollm2-135m --parts saliency:sst2:42 auroc:sst2:42 \\
        [--n-test 200] [--out benchmarks/results]

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

#: The per-example columns compared, per experiment (what the claims are computed from).
COMPARED = {
    "saliency": ("S_wp", "S_pq", "S_ww"),
    "auroc": tuple(f"att_{i}" for i in range(6)),
    "isolation": ("label_loyalty", "word_loyalty"),
    "diagnose": ("predicted",),
}
#: Columns that identify a row within a part.
KEYS = ("example", "layer", "condition", "k", "method", "head")


def compare_part(committed: pd.DataFrame, fresh: pd.DataFrame, experiment: str) -> dict:
    keys = [k for k in KEYS if k in committed.columns and k in fresh.columns]
    joined = committed.merge(fresh, on=keys, suffixes=("_committed", "_fresh"), validate="one_to_one")
    if len(joined) != len(committed) or len(joined) != len(fresh):
        raise SystemExit(
            f"class_agreement: the fresh {experiment} part has {len(fresh)} rows, the committed one {len(committed)}, "
            f"{len(joined)} match on {keys}: not the same inputs"
        )
    report: dict = {"rows": len(joined)}
    for column in COMPARED[experiment]:
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
    return report


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a committed results folder (docs/results/<model>)")
    parser.add_argument("--parts", nargs="+", required=True, help="EXPERIMENT:TASK:SEED, e.g. saliency:sst2:42")
    parser.add_argument("--n-test", type=int, default=200, help="test inputs per seed the committed parts used")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
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
        report["parts"][spec] = compare_part(committed, fresh, experiment)
        print(spec, json.dumps(report["parts"][spec]), file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"class-agreement-{model_name}.json"
    target.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
