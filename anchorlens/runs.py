"""Writing results as they finish and resuming: one verified part per (experiment, task, seed).

Layout of an output folder::

    DIR/manifest.json                                   format, anchorlens version, model, one entry per experiment
    DIR/parts/<experiment>/<task>-seed<seed>.csv        the seed's rows (what the seed-level tables average)
    DIR/parts/<experiment>/<task>-seed<seed>.examples.parquet   one row per test input (× layer, condition, ...)
    DIR/parts/<experiment>/<task>-seed<seed>.json       the part's record: settings signature, row counts, hashes
    DIR/<experiment>.csv, _examples.parquet, _summary.csv, .html   all finished parts, written by the caller

A part is finished only when its record exists, its files hash to what the record says, its row counts match
and it was made with the same settings (the signature, which names the model). The record is written last,
so a killed run never leaves a part that reads as finished. A damaged part (cut, emptied, edited, or missing
a file) is reported by path and recomputed; a part made with other settings is refused with the fix, never
mixed in. Every file is written to a temporary file in its folder and renamed over the target: a symlink
planted in the folder is replaced, never followed, and no reader sees half a file. A lock per part lets two
runs on one folder share the work: the second waits for a part the first is computing, then reads it.
"""

from __future__ import annotations

import contextlib
import io
import json
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


def check_folder(out_dir: str | Path, experiment: str, signature: Mapping[str, Any]) -> None:
    """Refuse, before any model loads or file is written, a folder whose results cannot be mixed with these
    settings: another results format, another model, another dtype, or this experiment made with other settings."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidConfigError(f"output path {out_dir} exists and is not a folder; choose a folder")
    for parent in out_dir.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InvalidConfigError(f"output path {out_dir} lies below {parent}, which is a file; choose a folder")
            break
    if not out_dir.is_dir():
        return
    manifest = read_manifest(out_dir)
    if not manifest:
        return
    signature = _normalised(signature)
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


class ResultStore:
    """Verified part files of one experiment in one output folder; see the module docstring.

    Building a store checks the folder (`check_folder`) and writes nothing: the manifest is written with the
    first part, so a run refused later leaves no trace.
    """

    def __init__(self, out_dir: str | Path, experiment: str, config: Mapping[str, Any]):
        self.out_dir = Path(out_dir)
        self.experiment = experiment
        self.config = _normalised(config)
        check_folder(self.out_dir, experiment, self.config)

    def part_path(self, task: str, seed: int) -> Path:
        return part_path(self.out_dir, self.experiment, task, seed)

    def _files(self, task: str, seed: int) -> tuple[Path, Path, Path]:
        stem = part_stem(self.out_dir, self.experiment, task, seed)
        return stem.with_suffix(".csv"), Path(f"{stem}{EXAMPLES_SUFFIX}"), stem.with_suffix(PART_RECORD_SUFFIX)

    def _read(self, task: str, seed: int) -> Part | None:
        """The part if it is whole and made with these settings; None if absent or damaged (warned)."""
        rows_path, examples_path, record_path = self._files(task, seed)
        if not record_path.is_file() and not record_path.is_symlink():
            return None
        try:
            problem = None
            record = json.loads(record_path.read_text())
            if not isinstance(record, dict) or record.get("results_format") != RESULTS_FORMAT_VERSION:
                problem = "its record is of another results format"
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
                    else:
                        return Part(rows, examples)
        except InvalidConfigError:
            raise
        except (OSError, ValueError, UnicodeDecodeError) as error:
            problem = f"it cannot be read ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
        except Exception as error:  # pyarrow / pandas parser errors of a garbled file
            problem = f"it cannot be read ({type(error).__name__})"
        warnings.warn(
            f"part {record_path.with_suffix('')} is damaged: {problem}; recomputing it",
            DamagedPartWarning,
            stacklevel=3,
        )
        return None

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
        self, task: str, seed: int, rows: pd.DataFrame, examples: pd.DataFrame, *, seconds: float | None = None
    ) -> None:
        """Write the part's two files, then its record (which makes it finished). `seconds`: what computing it
        took, kept in the record for progress estimates."""
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
    """Every whole part of `experiment` in a folder, verified (a damaged part is left out with a warning;
    parts made with settings other than the manifest's are refused)."""
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    signature = manifest.get("experiments", {}).get(experiment)
    if signature is None:
        raise InvalidConfigError(f"{out_dir} holds no finished {experiment} results")
    store = ResultStore(out_dir, experiment, signature)
    parts = [part for part in (store._read(task, seed) for task, seed in store.finished_parts()) if part is not None]
    if not parts:
        raise InvalidConfigError(f"{out_dir} holds no finished {experiment} results")
    return Part(
        pd.concat([part.rows for part in parts], ignore_index=True),
        pd.concat([part.examples for part in parts], ignore_index=True),
    )
