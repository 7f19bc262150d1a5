"""Writing results as they finish and resuming: one verified part per (experiment, task, seed).

Layout of an output folder::

    DIR/manifest.json                                   format, anchorlens version, model, one entry per experiment
    DIR/parts/<experiment>/<task>-seed<seed>.csv        the seed's rows (what the seed-level tables average)
    DIR/parts/<experiment>/<task>-seed<seed>.examples.parquet   one row per test input (× layer, condition, ...)
    DIR/parts/<experiment>/<task>-seed<seed>.json       the part's record: settings signature, row counts, hashes
    DIR/<experiment>.csv, _examples.parquet, _summary.csv, .html   all finished parts, written by the caller
    DIR/<experiment>.record.json                        the sha256 of those tables and of the parts they were made of

A part is finished only when its record exists, its files hash to what the record says, its row counts match
and it was made with the same settings (the signature, which names the model). The record is written last,
so a killed run never leaves a part that reads as finished. A damaged part (cut, emptied, edited, or missing
a file) is reported by path and recomputed; a part made with other settings is refused with the fix, never
mixed in. Every file is written to a temporary file in its folder and renamed over the target: a symlink
planted in the folder is replaced, never followed, and no reader sees half a file. A lock per part lets two
runs on one folder share the work: the second waits for a part the first is computing, then reads it.

Every refusal comes before the first write: the manifest and every part record are checked when a store is made
(a deleted manifest hides no other model's or settings' parts), an empty path and a symbolic link to a folder
where anchorlens writes (``parts``, ``beta``) are refused. A part whose record names another experiment, task or
seed than its file name (a copied or renamed part) is damaged. Readers of the combined tables (the claims script,
`ExperimentResult.load`) check them against their record and the parts (`combined_problem`): what does not match
is recomputed from the verified parts with a `StaleResultsWarning`, never read.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from anchorlens.errors import InvalidConfigError
from anchorlens.files import atomic_write_bytes, atomic_write_text, bytes_sha256, file_lock, parquet_bytes
from anchorlens.version import __version__

#: Bumped when the meaning or layout of saved results changes (2: verified parts with per-example rows).
RESULTS_FORMAT_VERSION = 2
MANIFEST = "manifest.json"
PART_RECORD_SUFFIX = ".json"
EXAMPLES_SUFFIX = ".examples.parquet"
#: The dtype of results whose signature has no ``dtype``: configs leave it out at this default, so results made
#: before the setting existed keep their signature (`anchorlens.experiments.common.ExperimentConfig.dtype`).
DEFAULT_DTYPE = "float32"


class DamagedPartWarning(UserWarning):
    """A part file failed its check and is recomputed."""


#: Called as ``listener(experiment, task, seed, seconds)`` after each part is written (progress estimates).
_PART_LISTENERS: list[Callable[[str, str, int, float | None], None]] = []


@contextlib.contextmanager
def on_part_written(listener: Callable[[str, str, int, float | None], None]) -> Iterator[None]:
    """Call `listener` after every part written inside the block (in this process)."""
    _PART_LISTENERS.append(listener)
    try:
        yield
    finally:
        _PART_LISTENERS.remove(listener)


def part_stem(out_dir: str | Path, experiment: str, task: str, seed: int) -> Path:
    return Path(out_dir) / "parts" / experiment / f"{task}-seed{seed}"


def part_path(out_dir: str | Path, experiment: str, task: str, seed: int) -> Path:
    """The record of one (task, seed) part: it exists once the part is whole (written last)."""
    return part_stem(out_dir, experiment, task, seed).with_suffix(PART_RECORD_SUFFIX)


@dataclass(frozen=True)
class Part:
    """One finished (task, seed) part: the seed's rows and its per-example rows."""

    rows: pd.DataFrame
    examples: pd.DataFrame


def _normalised(config: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(dict(config), default=str))  # as it will read back


def _changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return sorted(key for key in set(old) | set(new) if old.get(key) != new.get(key))


def read_manifest(out_dir: Path) -> dict[str, Any]:
    path = out_dir / MANIFEST
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest, dict):
            raise ValueError
    except (ValueError, UnicodeDecodeError):
        raise InvalidConfigError(f"{path} is not valid JSON; move the folder away or choose another --out") from None
    return manifest


#: The folders anchorlens writes into below an output folder: a symbolic link at or inside them is refused,
#: never followed (it would carry the writes to wherever it points).
WRITTEN_FOLDERS = ("parts", "beta")


def check_out_path(out_dir: str | Path) -> Path:
    """`out_dir` as a path; an empty one (``--out ""``, which would mean the current folder) is refused."""
    if not str(out_dir).strip():
        raise InvalidConfigError("the output folder is an empty path; give a folder, e.g. --out results")
    return Path(out_dir)


def linked_folder(out_dir: Path) -> Path | None:
    """The first symbolic link at or below the folders anchorlens writes into (`WRITTEN_FOLDERS`), or None."""
    for name in WRITTEN_FOLDERS:
        top = out_dir / name
        if top.is_symlink():
            return top
        if not top.is_dir():
            continue
        for folder, subfolders, _ in os.walk(top):  # os.walk lists a linked folder but never enters it
            for subfolder in subfolders:
                if (Path(folder) / subfolder).is_symlink():
                    return Path(folder) / subfolder
    return None


def part_records(out_dir: Path) -> Iterator[tuple[str, str, int, dict[str, Any]]]:
    """(experiment, task, seed, record) of every part record in a folder that reads as a JSON object whose own
    experiment, task and seed are its file's (others are damaged: reading them recomputes, `ResultStore._read`)."""
    for path in sorted((out_dir / "parts").glob(f"*/*-seed*{PART_RECORD_SUFFIX}")):
        task, _, seed = path.name[: -len(PART_RECORD_SUFFIX)].rpartition("-seed")
        if not seed.isdigit() or path.is_symlink():
            continue
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        experiment = path.parent.name
        if isinstance(record, dict) and record_names(record) == (experiment, task, int(seed)):
            yield experiment, task, int(seed), record


def record_names(record: Mapping[str, Any]) -> tuple[object, object, object]:
    return record.get("experiment"), record.get("task"), record.get("seed")


def _check_records(out_dir: Path, experiment: str, signature: dict[str, Any]) -> None:
    """Refuse what the part records say cannot be mixed in, as `check_folder` does with the manifest: the
    manifest may be missing or stale (deleted, or parts copied in), and the refusal must come before any write."""
    this_dtype = signature.get("dtype", DEFAULT_DTYPE)
    for other, task, seed, record in part_records(out_dir):
        made_with = record.get("signature")
        if not isinstance(made_with, dict):
            continue
        where = out_dir / "parts" / other / f"{task}-seed{seed}{PART_RECORD_SUFFIX}"
        if "model" in signature and made_with.get("model") not in (None, signature["model"]):
            raise InvalidConfigError(
                f"{where} holds results of model {made_with.get('model')!r}, and this run is of "
                f"{signature['model']!r}; results of two models are never mixed in one folder: choose another "
                "--out (e.g. OUT/<model name>)"
            )
        if made_with.get("dtype", DEFAULT_DTYPE) != this_dtype:
            raise InvalidConfigError(
                f"{where} was computed in {made_with.get('dtype', DEFAULT_DTYPE)}, and this run is in {this_dtype}; "
                "results of two dtypes are never mixed in one folder: choose another --out"
            )
        if other == experiment and made_with != signature:
            raise InvalidConfigError(
                f"{where} was made with other settings ({', '.join(_changed(made_with, signature))} differ); rerun "
                "with the same settings to resume, or choose another --out folder"
            )


def check_folder(out_dir: str | Path, experiment: str, signature: Mapping[str, Any]) -> None:
    """Refuse, before any model loads or file is written, a folder whose results cannot be mixed with these
    settings: another results format, another model, another dtype, or this experiment made with other settings
    (by the manifest and by every part record); an empty path; a symbolic link where anchorlens writes."""
    out_dir = check_out_path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidConfigError(f"output path {out_dir} exists and is not a folder; choose a folder")
    for parent in out_dir.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InvalidConfigError(f"output path {out_dir} lies below {parent}, which is a file; choose a folder")
            break
    if not out_dir.is_dir():
        return
    link = linked_folder(out_dir)
    if link is not None:
        raise InvalidConfigError(
            f"{link} is a symbolic link; anchorlens does not follow links inside its output folders (its writes "
            "would land where it points): remove the link, or choose another --out"
        )
    signature = _normalised(signature)
    _check_manifest(out_dir, experiment, signature)
    _check_records(out_dir, experiment, signature)  # the manifest may be missing or stale: the parts say too


def _check_manifest(out_dir: Path, experiment: str, signature: dict[str, Any]) -> None:
    manifest = read_manifest(out_dir)
    if not manifest:
        return
    if manifest.get("results_format") != RESULTS_FORMAT_VERSION:
        raise InvalidConfigError(
            f"{out_dir} holds results of format {manifest.get('results_format')!r} "
            f"(anchorlens {manifest.get('anchorlens_version', '?')}), this is format {RESULTS_FORMAT_VERSION}; "
            "choose another --out folder so old results are neither mixed in nor overwritten"
        )
    folder_model = manifest.get("model")
    if folder_model is not None and "model" in signature and folder_model != signature["model"]:
        raise InvalidConfigError(
            f"{out_dir} holds results of model {folder_model!r}, and this run is of {signature['model']!r}; results "
            "of two models are never mixed in one folder: choose another --out (e.g. OUT/<model name>)"
        )
    experiments = manifest.get("experiments", {})
    this_dtype = signature.get("dtype", DEFAULT_DTYPE)
    folder_dtypes = sorted({s.get("dtype", DEFAULT_DTYPE) for s in experiments.values() if isinstance(s, dict)})
    if folder_dtypes and folder_dtypes != [this_dtype]:
        other = next(dtype for dtype in folder_dtypes if dtype != this_dtype)
        raise InvalidConfigError(
            f"{out_dir} holds results computed in {other}, and this run is in {this_dtype}; results of two dtypes "
            f"are never mixed in one folder: rerun with --dtype {other} (Python: dtype={other!r}) to resume, or "
            f"choose another --out (e.g. OUT/<model name>-{this_dtype})"
        )
    previous = experiments.get(experiment)
    if previous is not None and previous != signature:
        raise InvalidConfigError(
            f"{out_dir} already holds {experiment} results made with other settings "
            f"({', '.join(_changed(previous, signature))} differ); rerun with the same settings to resume, or "
            "choose another --out folder"
        )


def _labelled(frame: pd.DataFrame, task: str, seed: int) -> bool:
    """Whether every row's ``task`` and ``seed`` (where the frame has them) are the part's."""
    return ("task" not in frame.columns or bool((frame["task"].astype(str) == task).all())) and (
        "seed" not in frame.columns or bool((frame["seed"] == seed).all())
    )


class ResultStore:
    """Verified part files of one experiment in one output folder; see the module docstring.

    Building a store checks the folder (`check_folder`) and writes nothing: the manifest is written with the
    first part, so a run refused later leaves no trace.
    """

    def __init__(self, out_dir: str | Path, experiment: str, config: Mapping[str, Any], *, checked: bool = False):
        self.out_dir = check_out_path(out_dir)
        self.experiment = experiment
        self.config = _normalised(config)
        if not checked:  # a prepared run's folder was checked against these settings before the model loaded
            check_folder(self.out_dir, experiment, self.config)

    def part_path(self, task: str, seed: int) -> Path:
        return part_path(self.out_dir, self.experiment, task, seed)

    def _files(self, task: str, seed: int) -> tuple[Path, Path, Path]:
        stem = part_stem(self.out_dir, self.experiment, task, seed)
        return stem.with_suffix(".csv"), Path(f"{stem}{EXAMPLES_SUFFIX}"), stem.with_suffix(PART_RECORD_SUFFIX)

    def _read(self, task: str, seed: int) -> Part | None:
        """The part if it is whole and made with these settings; None if absent or damaged (warned)."""
        part = self._check(task, seed)
        if isinstance(part, str):
            warnings.warn(
                f"part {self.part_path(task, seed).with_suffix('')} is damaged: {part}; recomputing it",
                DamagedPartWarning,
                stacklevel=3,
            )
            return None
        return part

    def _check(self, task: str, seed: int) -> Part | str | None:
        """The part if it is whole and made with these settings, what is wrong with it if it is damaged, or None
        if it is absent; a part made with other settings is refused."""
        rows_path, examples_path, record_path = self._files(task, seed)
        if not record_path.is_file() and not record_path.is_symlink():
            return None
        try:
            problem = None
            record = json.loads(record_path.read_text())
            if not isinstance(record, dict) or record.get("results_format") != RESULTS_FORMAT_VERSION:
                problem = "its record is of another results format"
            elif record_names(record) != (self.experiment, task, seed):
                problem = f"its record is of {record_names(record)}, not of its file name (a copied or renamed part)"
            elif record.get("signature") != self.config:
                changed = ", ".join(_changed(record.get("signature") or {}, self.config))
                raise InvalidConfigError(
                    f"{record_path} was made with other settings ({changed} "
                    "differ); rerun with the same settings to resume, or choose another --out folder"
                )
            else:
                rows_data, examples_data = rows_path.read_bytes(), examples_path.read_bytes()
                if bytes_sha256(rows_data) != record.get("rows_sha256"):
                    problem = f"{rows_path.name} does not match its recorded hash"
                elif bytes_sha256(examples_data) != record.get("examples_sha256"):
                    problem = f"{examples_path.name} does not match its recorded hash"
                else:
                    rows = pd.read_csv(io.BytesIO(rows_data)) if rows_data.strip() else pd.DataFrame()
                    examples = pd.read_parquet(io.BytesIO(examples_data))
                    if len(rows) != record.get("rows") or len(examples) != record.get("example_rows"):
                        problem = "its row counts differ from its record"
                    elif not (_labelled(rows, task, seed) and _labelled(examples, task, seed)):
                        problem = "its rows are of another task or seed than its file name"
                    else:
                        return Part(rows, examples)
        except InvalidConfigError:
            raise
        except (OSError, ValueError, UnicodeDecodeError) as error:
            problem = f"it cannot be read ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
        except Exception as error:  # pyarrow / pandas parser errors of a garbled file
            problem = f"it cannot be read ({type(error).__name__})"
        return problem or "it cannot be read"

    def done(self, task: str, seed: int) -> bool:
        """Whether the part is whole and made with these settings (a damaged part is warned about)."""
        return self._read(task, seed) is not None

    def load_part(self, task: str, seed: int) -> Part:
        part = self._read(task, seed)
        if part is None:
            raise InvalidConfigError(f"part {self.part_path(task, seed)} is missing or damaged; rerun to recompute it")
        return part

    @contextlib.contextmanager
    def lock(self, task: str, seed: int) -> Iterator[None]:
        """Hold the part's lock: a second run on the folder waits here while the first computes the part."""
        stem = part_stem(self.out_dir, self.experiment, task, seed)
        with file_lock(Path(f"{stem}.lock")):
            yield

    def _write_manifest(self) -> None:
        manifest = read_manifest(self.out_dir)
        manifest.setdefault("results_format", RESULTS_FORMAT_VERSION)
        manifest["anchorlens_version"] = __version__
        if "model" in self.config:
            manifest["model"] = self.config["model"]
        experiments = manifest.setdefault("experiments", {})
        if experiments.get(self.experiment) != self.config:
            experiments[self.experiment] = self.config
        atomic_write_text(self.out_dir / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))

    def write_part(
        self,
        task: str,
        seed: int,
        rows: pd.DataFrame,
        examples: pd.DataFrame,
        *,
        seconds: float | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> None:
        """Write the part's two files, then its record (which makes it finished). `seconds`: what computing it
        took, kept in the record for progress estimates; `provenance`: the device, model class and package
        versions that made it (`anchorlens.model_classes.run_provenance`), kept in the record."""
        check_folder(self.out_dir, self.experiment, self.config)  # another run may have claimed the folder
        self._write_manifest()
        rows_path, examples_path, record_path = self._files(task, seed)
        rows_data = rows.to_csv(index=False).encode("utf-8")
        examples_data = parquet_bytes(examples)
        atomic_write_bytes(rows_path, rows_data)
        atomic_write_bytes(examples_path, examples_data)
        record = {
            "results_format": RESULTS_FORMAT_VERSION,
            "anchorlens_version": __version__,
            "experiment": self.experiment,
            "task": task,
            "seed": seed,
            "signature": self.config,
            # Stated even where the signature leaves it out (at float32), so every record says what it was made in.
            "dtype": self.config.get("dtype", DEFAULT_DTYPE),
            "rows": len(rows),
            "example_rows": len(examples),
            # What was used, which may be fewer than n_test asked for (capped at the split and 1000).
            "test_inputs": int(examples["example"].nunique()) if "example" in examples.columns else None,
            "rows_sha256": bytes_sha256(rows_data),
            "examples_sha256": bytes_sha256(examples_data),
            "seconds": None if seconds is None else round(seconds, 3),
        }
        if provenance is not None:
            record["provenance"] = dict(provenance)
        atomic_write_text(record_path, json.dumps(record, indent=2, sort_keys=True))
        for listener in list(_PART_LISTENERS):
            listener(self.experiment, task, seed, seconds)

    def finished_parts(self) -> list[tuple[str, int]]:
        """(task, seed) of every part record in the folder (whole or not: reading verifies)."""
        folder = self.out_dir / "parts" / self.experiment
        found = []
        for record in sorted(folder.glob(f"*-seed*{PART_RECORD_SUFFIX}")):
            task, _, seed = record.name[: -len(PART_RECORD_SUFFIX)].rpartition("-seed")
            if seed.lstrip("-").isdigit():
                found.append((task, int(seed)))
        return found


def part_seconds(out_dir: str | Path, experiment: str) -> list[float]:
    """The recorded compute time of every part of `experiment` in a folder (records without one left out)."""
    seconds = []
    for record in sorted((Path(out_dir) / "parts" / experiment).glob(f"*-seed*{PART_RECORD_SUFFIX}")):
        try:
            value = json.loads(record.read_text()).get("seconds")
        except (OSError, ValueError):
            continue
        if isinstance(value, (int, float)):
            seconds.append(float(value))
    return seconds


def read_parts(out_dir: str | Path, experiment: str) -> Part:
    """Every part of `experiment` in a folder, verified: a damaged part (which only a run can recompute) and
    parts made with settings other than the manifest's are refused with one line."""
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    signature = manifest.get("experiments", {}).get(experiment)
    if signature is None:
        raise InvalidConfigError(f"{out_dir} holds no finished {experiment} results")
    store = ResultStore(out_dir, experiment, signature)
    missing = missing_parts(out_dir, experiment)
    if missing:
        raise InvalidConfigError(
            f"part {out_dir / 'parts' / experiment / missing[0]} is missing or damaged (its record is gone), and the "
            f"folder's {experiment} tables were made with it ({combined_record_path(out_dir, experiment).name}); "
            f"rerun the experiment into {out_dir} to recompute it"
        )
    parts = []
    for task, seed in store.finished_parts():
        part = store._check(task, seed)
        if isinstance(part, str):  # reading cannot recompute it, and a table without it would be another result
            raise InvalidConfigError(
                f"part {store.part_path(task, seed).with_suffix('')} is damaged: {part}; rerun the experiment into "
                f"{out_dir} to recompute it"
            )
        if part is not None:
            parts.append(part)
    if not parts:
        raise InvalidConfigError(f"{out_dir} holds no finished {experiment} results")
    return Part(
        pd.concat([part.rows for part in parts], ignore_index=True),
        pd.concat([part.examples for part in parts], ignore_index=True),
    )


# ------------------------------------------------------------------ the combined files and what they were made of


class StaleResultsWarning(UserWarning):
    """A combined file (``<experiment>.csv``, ``_examples.parquet``, ``_summary.csv``) does not match the record
    of the parts it was made from, so it is recomputed from the verified parts instead of being read."""


#: ``DIR/<experiment>.record.json``: the sha256 of each combined file and of each part it was made from.
COMBINED_RECORD_SUFFIX = ".record.json"


def combined_names(experiment: str) -> tuple[str, ...]:
    """The combined files `ExperimentResult.save` writes for `experiment`, in the order it writes them."""
    return (f"{experiment}.csv", f"{experiment}.parquet", f"{experiment}_examples.parquet", f"{experiment}_summary.csv")


def combined_record_path(out_dir: str | Path, experiment: str) -> Path:
    return Path(out_dir) / f"{experiment}{COMBINED_RECORD_SUFFIX}"


def parts_digest(out_dir: str | Path, experiment: str) -> dict[str, list[str]]:
    """``<task>-seed<seed>`` → [rows sha256, examples sha256] of every well-named part record of `experiment`:
    what the combined files were made of (reading the records only, never the part files)."""
    return {
        f"{task}-seed{seed}": [str(record.get("rows_sha256")), str(record.get("examples_sha256"))]
        for other, task, seed, record in part_records(Path(out_dir))
        if other == experiment
    }


def is_run_folder(out_dir: str | Path, experiment: str) -> bool:
    """Whether `experiment`'s results in the folder were made by a run (its manifest lists the experiment or it
    has parts), so its combined files can be checked against the parts; hand-made tables cannot be."""
    out_dir = Path(out_dir)
    listed = (
        experiment in (read_manifest(out_dir).get("experiments") or {}) if (out_dir / MANIFEST).is_file() else False
    )
    return listed or (out_dir / "parts" / experiment).is_dir()


def missing_parts(out_dir: str | Path, experiment: str) -> list[str]:
    """``<task>-seed<seed>`` of each part the combined files were made of (their record) whose record is gone or
    unreadable now: results without it would be other results, so only a run may go on (recomputing it)."""
    path = combined_record_path(out_dir, experiment)
    try:
        record = json.loads(path.read_bytes()) if path.is_file() and not path.is_symlink() else {}
    except (OSError, ValueError, UnicodeDecodeError):
        return []
    recorded = record.get("parts") if isinstance(record, dict) else None
    if not isinstance(recorded, dict):
        return []
    present = parts_digest(out_dir, experiment)
    return sorted(name for name in recorded if name not in present)


def write_combined_record(out_dir: str | Path, experiment: str, files: Mapping[str, bytes]) -> None:
    """Record the sha256 of the combined files just written and of the parts they were made from (written last:
    a combined file written without its record reads as unverified and is recomputed)."""
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir) if (out_dir / MANIFEST).is_file() else {}
    record = {
        "results_format": RESULTS_FORMAT_VERSION,
        "experiment": experiment,
        "signature": (manifest.get("experiments") or {}).get(experiment),
        "files": {name: bytes_sha256(data) for name, data in files.items()},
        "parts": parts_digest(out_dir, experiment),
    }
    atomic_write_text(combined_record_path(out_dir, experiment), json.dumps(record, indent=2, sort_keys=True))


def combined_problem(out_dir: str | Path, experiment: str) -> str | None:
    """Why the combined files of `experiment` in a run folder cannot be read as they are, or None when each one
    present hashes to its record, none is present that the record lacks, and the record's parts and settings are
    the folder's now (`is_run_folder`; a folder of hand-made tables has nothing to check against: None)."""
    out_dir = Path(out_dir)
    if not is_run_folder(out_dir, experiment):
        return None
    path = combined_record_path(out_dir, experiment)
    try:
        record = json.loads(path.read_bytes()) if path.is_file() and not path.is_symlink() else None
    except (OSError, ValueError, UnicodeDecodeError):
        return f"{path.name} cannot be read"
    if not isinstance(record, dict) or not isinstance(record.get("files"), dict):
        return f"there is no record of what they were made from ({path.name})"
    if record.get("results_format") != RESULTS_FORMAT_VERSION or record.get("experiment") != experiment:
        return f"{path.name} is of another experiment or results format"
    files = record["files"]
    for name in combined_names(experiment):
        file = out_dir / name
        if name not in files:
            if file.exists() or file.is_symlink():
                return f"{name} is not one of the files its record lists"
            continue
        try:
            if file.is_symlink() or bytes_sha256(file.read_bytes()) != files[name]:
                return f"{name} does not match its recorded sha256 (cut, edited, replaced or linked)"
        except OSError as error:
            return f"{name} cannot be read ({os.strerror(error.errno) if error.errno else error})"
    if record.get("parts") != parts_digest(out_dir, experiment):
        return "the parts they were made from have changed since (added, recomputed, removed or renamed)"
    manifest = read_manifest(out_dir) if (out_dir / MANIFEST).is_file() else {}
    listed = manifest.get("experiments") or {}
    if experiment in listed and listed[experiment] != record.get("signature"):
        return "they were made with other settings than the folder's manifest records"
    return None
