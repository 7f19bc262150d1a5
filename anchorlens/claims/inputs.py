"""What the claims read: each folder's summaries, seed rows and per-example rows, verified against their
records (`anchorlens.experiments.saved_files`), and the helpers every group of findings uses on them."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from anchorlens import paper
from anchorlens.claims.rules import EXPERIMENTS, FLOW_COMPARISONS, PAIRED_ARMS, SUMMARY_COLUMNS, TEXT_COLUMNS, Estimate
from anchorlens.errors import DataFileError
from anchorlens.experiments import saved_files
from anchorlens.experiments.saliency import REGIONS, flow_differences
from anchorlens.stats import means_with_ci, task_average_with_ci


def task_key(task: str) -> tuple[int, str]:
    """Tasks in the paper's column order (`anchorlens.paper.task_rank`); others follow alphabetically."""
    return (paper.task_rank(task), task)


@dataclass
class Results:
    """The summaries of every folder, by experiment, and which folder each model came from."""

    folders: list[Path]
    summaries: dict[str, pd.DataFrame] = field(default_factory=dict)
    seed_rows: dict[str, pd.DataFrame] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    folders_of: dict[str, list[Path]] = field(default_factory=dict)
    #: one row per (task, model, seed, example) of the AUROC runs: the model's own ICL prediction
    predictions: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: per-example rows of the experiments in PAIRED_ARMS, for the paired checks
    examples: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: whole-layer per-example saliency rows, for the paired flow checks
    flows: pd.DataFrame = field(default_factory=pd.DataFrame)
    _paired_cache: dict[tuple, dict[str, Estimate]] = field(default_factory=dict, repr=False)
    _flow_cache: dict[str, dict[tuple[str, int, str], Estimate]] = field(default_factory=dict, repr=False)

    @classmethod
    def read(cls, folders: Iterable[str | Path]) -> Results:
        results = cls([Path(folder) for folder in folders])
        for folder in results.folders:
            if not folder.is_dir():
                raise DataFileError(
                    f"no results folder {folder}; pass folders written by `anchorlens <experiment> "
                    "--out DIR` or the analyses scripts, e.g. docs/results/smollm2-135m"
                )
            found_model = False
            files = {name: data for experiment in EXPERIMENTS for name, data in saved_files(folder, experiment).items()}
            for experiment in EXPERIMENTS:
                summary = read_summary(folder / f"{experiment}_summary.csv", files)
                if summary is not None and not summary.empty:
                    results.add(experiment, summary, folder)
                    found_model = True
            seed_models = []
            for experiment in EXPERIMENTS:  # seed rows (compression's speed-up, diagnosis's correlation, 3b held out)
                rows = files.get(f"{experiment}.csv")
                if rows is not None:
                    frame = pd.read_csv(io.BytesIO(rows), dtype={column: str for column in TEXT_COLUMNS})
                    results.seed_rows[experiment] = pd.concat(
                        [results.seed_rows.get(experiment, pd.DataFrame()), frame], ignore_index=True
                    )
                    seed_models += list(frame["model"].unique()) if "model" in frame.columns else []
            for experiment in PAIRED_ARMS:
                rows = read_examples(folder / f"{experiment}_examples.parquet", experiment, files)
                if rows is not None:
                    results.examples[experiment] = pd.concat(
                        [results.examples.get(experiment, pd.DataFrame()), rows], ignore_index=True
                    )
            flows = read_flows(folder / "saliency_examples.parquet", files)
            if flows is not None:
                results.flows = pd.concat([results.flows, flows], ignore_index=True)
            predictions = read_predictions(folder / "auroc_examples.parquet", files)
            if predictions is not None:
                results.predictions = pd.concat([results.predictions, predictions], ignore_index=True)
            if not found_model:  # no summary names the model: the seed rows do, else the folder stands for it
                for model in dict.fromkeys(seed_models or [folder.name]):
                    results.note_model(model, folder)
        return results

    def on_tasks(self, experiment: str, model: str, tasks: Iterable[str]) -> Results:
        """These results with `model`'s rows of `experiment` kept for `tasks` only (every other row as it is): to
        judge two folders of one model on the tasks both hold, so a verdict compares like with like."""
        kept = set(tasks)

        def only(frame: pd.DataFrame, rows_of: str) -> pd.DataFrame:
            if frame.empty or rows_of != experiment or "task" not in frame.columns:
                return frame
            other = (frame["model"].astype(str) != model) | frame["task"].astype(str).isin(kept)
            return frame[other].reset_index(drop=True)

        return Results(
            folders=list(self.folders),
            summaries={name: only(frame, name) for name, frame in self.summaries.items()},
            seed_rows={name: only(frame, name) for name, frame in self.seed_rows.items()},
            models=list(self.models),
            folders_of={model: list(folders) for model, folders in self.folders_of.items()},
            predictions=only(self.predictions, "auroc"),
            examples={name: only(frame, name) for name, frame in self.examples.items()},
            flows=only(self.flows, "saliency"),
        )

    def add(self, experiment: str, summary: pd.DataFrame, folder: Path) -> None:
        for model in summary["model"].astype(str).unique():
            self.note_model(model, folder)
        combined = pd.concat([self.summaries.get(experiment, pd.DataFrame()), summary], ignore_index=True)
        keys = [c for c in combined.columns if c not in ("mean", "ci_low", "ci_high", "n_seeds", "n_examples")]
        duplicated = combined.duplicated(subset=keys)
        if duplicated.any():
            row = combined[duplicated].iloc[0]
            raise DataFileError(
                f"two folders hold {experiment} results of model {row['model']}, task {row['task']} "
                f"(the second is {folder}); pass each model's folder once"
            )
        self.summaries[experiment] = combined

    def note_model(self, model: str, folder: Path) -> None:
        if model not in self.models:
            self.models.append(model)
        if folder not in self.folders_of.setdefault(model, []):
            self.folders_of[model].append(folder)

    def paired(
        self, experiment: str, model: str, better: str, other: str, metric: str, **where: object
    ) -> dict[str, Estimate]:
        """Per task: the mean of `better` − `other` on `metric` over the test inputs both arms were measured on
        (same seed and example), with its two-level bootstrap interval over seeds and test inputs; `where`
        selects rows (e.g. ``k=5``). Empty without per-example rows."""
        key = (experiment, model, better, other, metric, tuple(sorted(where.items())))
        if key not in self._paired_cache:
            self._paired_cache[key] = self._paired(experiment, model, better, other, metric, where)
        return self._paired_cache[key]

    def _paired(
        self, experiment: str, model: str, better: str, other: str, metric: str, where: dict[str, object]
    ) -> dict[str, Estimate]:
        wide = self.differences(experiment, model, better, other, metric, **where)
        if wide is None:
            return {}
        summary = means_with_ci(wide, ["task", "model"], ["difference"])
        return {
            str(row.task): Estimate(float(row.mean), float(row.ci_low), float(row.ci_high), int(row.n_seeds))
            for row in summary.itertuples(index=False)
        }

    def differences(
        self, experiment: str, model: str, better: str, other: str, metric: str, **where: object
    ) -> pd.DataFrame | None:
        """Per-input rows ``task, model, seed, example, <better>, <other>, difference`` of `better` − `other` on
        `metric` over the test inputs both arms were measured on; None without per-example rows."""
        examples = self.examples.get(experiment)
        arm = PAIRED_ARMS[experiment]
        if examples is None or metric not in examples.columns:
            return None
        rows = examples[(examples["model"] == model) & examples[arm].isin([better, other])]
        for column, value in where.items():
            rows = rows[rows[column] == value]
        if rows.empty:
            return None
        keys = ["task", "model", "seed", "example"]
        wide = rows.set_index([*keys, arm])[metric].unstack(arm)
        if better not in wide.columns or other not in wide.columns:
            return None
        wide = wide.dropna(subset=[better, other])
        return wide.assign(difference=wide[better] - wide[other]).reset_index()

    def paired_average(
        self, experiment: str, model: str, better: str, other: str, metric: str, tasks: Sequence[str]
    ) -> Estimate | None:
        """The Avg over `tasks` of `better` − `other` (`anchorlens.stats.task_average_with_ci`: seeds paired
        across tasks by their order), or None without per-example rows of every task or with differing numbers
        of seeds."""
        wide = self.differences(experiment, model, better, other, metric)
        if wide is None:
            return None
        wide = wide[wide["task"].isin(list(tasks))]
        if set(wide["task"]) != set(tasks):
            return None
        try:
            mean, low, high = task_average_with_ci(wide, "difference")
        except ValueError:  # the tasks hold different numbers of seeds: the summaries' combination instead
            return None
        return Estimate(mean, low, high, int(wide.groupby("task")["seed"].nunique().min()))

    def flow_differences(self, model: str) -> dict[tuple[str, int, str], Estimate]:
        """(task, layer, "A - B") → the difference of two normalised saliency flows with its interval, for each
        comparison of findings 1a-1c (`FLOW_COMPARISONS`). Empty without per-example saliency rows."""
        if model not in self._flow_cache:
            rows = self.flows[self.flows["model"] == model] if not self.flows.empty else self.flows
            differences = flow_differences(rows, FLOW_COMPARISONS) if not rows.empty else pd.DataFrame()
            self._flow_cache[model] = {
                (str(row.task), int(row.layer), str(row.metric)): Estimate(
                    float(row.mean), float(row.ci_low), float(row.ci_high), int(row.n_seeds)
                )
                for row in differences.itertuples(index=False)
            }
        return self._flow_cache[model]

    def of(self, experiment: str, model: str) -> tuple[pd.DataFrame, str]:
        """The model's summary of `experiment`, or an empty frame and why it is missing."""
        summary = self.summaries.get(experiment)
        part = summary[summary["model"].astype(str) == model] if summary is not None else pd.DataFrame()
        if part.empty:
            where = " or ".join(str(folder) for folder in self.folders_of.get(model, self.folders))
            return part, f"no {experiment}_summary.csv for {model} in {where}"
        return part, ""


def file_data(path: Path, files: Mapping[str, bytes] | None) -> bytes | None:
    """The content to read for `path`: from `files` (file name → content, as `saved_files` verified or
    recomputed it) when given, else from the disk; None when there is none."""
    if files is not None:
        return files.get(path.name)
    return path.read_bytes() if path.is_file() else None


def read_summary(path: Path, files: Mapping[str, bytes] | None = None) -> pd.DataFrame | None:
    """A summary CSV, or None when the folder has none; a malformed one is an error."""
    data = file_data(path, files)
    if data is None:
        return None
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype={column: str for column in TEXT_COLUMNS})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataFileError(
            f"{path} is not a readable CSV ({error}); rerun the experiment into that folder to rewrite it"
        ) from error
    missing = [column for column in SUMMARY_COLUMNS if column not in frame.columns]
    if missing and not frame.empty:
        raise DataFileError(
            f"{path} lacks the summary columns {missing}; rerun the experiment into that folder "
            "(ExperimentResult.save writes the long summary)"
        )
    return frame if not missing else None


def read_rows(
    path: Path, experiment: str, needed: Sequence[str], files: Mapping[str, bytes] | None = None
) -> pd.DataFrame | None:
    """An experiment's per-example rows (``<experiment>_examples.parquet``) holding at least the `needed`
    columns, whole layers only (per-head rows of a ``--per-head`` run are left out), or None when the folder
    has none; a damaged file or a missing column is an error naming the fix."""
    data = file_data(path, files)
    if data is None:
        return None
    try:
        frame = pd.read_parquet(io.BytesIO(data))
    except (OSError, ValueError) as error:  # pyarrow: ArrowInvalid is a ValueError
        raise DataFileError(
            f"{path} is not a readable {experiment} examples file ({error}); rerun `anchorlens {experiment}` into "
            "that folder"
        ) from error
    missing = sorted(set(needed) - set(frame.columns))
    if missing:
        raise DataFileError(f"{path} lacks the columns {missing}; rerun `anchorlens {experiment}` into that folder")
    if "head" in frame.columns:
        frame = frame[frame["head"].isna()]
    return frame.astype({"task": str, "model": str}).reset_index(drop=True)


def read_examples(path: Path, experiment: str, files: Mapping[str, bytes] | None = None) -> pd.DataFrame | None:
    """The per-example rows of an experiment in PAIRED_ARMS (one per task, model, seed, example and arm)."""
    return read_rows(path, experiment, ["task", "model", "seed", "example", PAIRED_ARMS[experiment]], files)


def read_flows(path: Path, files: Mapping[str, bytes] | None = None) -> pd.DataFrame | None:
    """The per-example saliency rows: ``task, model, seed, example, layer, S_wp, S_pq, S_ww``."""
    needed = ["task", "model", "seed", "example", "layer", *REGIONS]
    frame = read_rows(path, "saliency", needed, files)
    return None if frame is None else frame[needed]


def read_predictions(path: Path, files: Mapping[str, bytes] | None = None) -> pd.DataFrame | None:
    """The model's own ICL prediction per test input (one row per task, model, seed and example) from the AUROC
    run's per-example rows, or None when the folder has none."""
    columns = ["task", "model", "seed", "example", "prediction"]
    frame = read_rows(path, "auroc", [*columns, "layer"], files)
    if frame is None:
        return None
    frame = frame[frame["layer"] == frame["layer"].min()]  # the prediction is the same at every layer
    return frame[columns].reset_index(drop=True)


def prediction_spread(results: Results) -> list[str]:
    """One line per model: per task, the share of a seed's test inputs the model predicts as that seed's most
    frequent class under ICL (mean over the AUROC run's seeds), and the seeds on which it predicts a single
    class. A model that predicts one class keeps label loyalty high under any intervention that does not flip
    it, and leaves the AUROC undefined, so the verdicts read differently there."""
    frame = results.predictions
    if frame.empty:
        return []
    lines = []
    for model in results.models:
        mine = frame[frame["model"] == model]
        if mine.empty:
            continue
        cells = []
        for task in sorted(mine["task"].unique(), key=task_key):
            rows = mine[mine["task"] == task]
            # Per seed: each seed is its own demonstration set, and the class a context favours changes with it.
            by_seed = rows.groupby("seed")["prediction"]
            top = by_seed.agg(lambda predicted: predicted.value_counts(normalize=True).iloc[0])
            single = int((by_seed.nunique() == 1).sum())
            one_class = f", one class only at {single} of {len(top)} seeds" if single else ""
            cells.append(f"{task} {100 * top.mean():.1f}%{one_class}")
        lines.append(f"- {model}: " + "; ".join(cells))
    return lines


def spread_text(lines: Sequence[str]) -> list[str]:
    if not lines:
        return []
    return [
        "",
        "How the model's own ICL predictions spread: per task, the share of a seed's test inputs predicted as that"
        " seed's most frequent class, mean over the AUROC run's seeds (a model that predicts one class keeps label"
        " loyalty high under any intervention that does not flip it, and has no AUROC):",
        "",
        *lines,
    ]


def estimates(part: pd.DataFrame, keys: Sequence[str]) -> dict:
    """{(*keys, metric): Estimate} of a summary part."""
    out = {}
    for values in part.to_dict("records"):
        key = tuple(_plain(values[k]) for k in keys) + (values["metric"],)
        seeds = values.get("n_seeds")
        seeds = int(seeds) if seeds is not None and pd.notna(seeds) else None
        out[key] = Estimate(float(values["mean"]), float(values["ci_low"]), float(values["ci_high"]), seeds)
    return out


def _plain(value):
    """Numbers read from CSV as floats (a layer of 3.0) become ints, so keys compare as written."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def first_present(metrics: Iterable[str], names: Sequence[str]) -> str | None:
    available = set(metrics)
    return next((name for name in names if name in available), None)


def tasks_of(part: pd.DataFrame) -> list[str]:
    return sorted(part["task"].astype(str).unique(), key=task_key)


def depth_layers(layers: Iterable[int]) -> tuple[list[int], list[int]]:
    """(shallow, deep) layers: the first and the last third of the model's layers (at least one each)."""
    layers = sorted(set(int(layer) for layer in layers))
    n_layers = max(layers) + 1
    third = max(n_layers // 3, 1)
    return [layer for layer in layers if layer < third], [layer for layer in layers if layer >= n_layers - third]
