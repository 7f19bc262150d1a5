"""Writing results as they finish and resuming: one part file per (experiment, task, seed).

Layout of an output folder::

    DIR/manifest.json                      anchorlens version, format version, one entry per experiment
    DIR/parts/<experiment>/<task>-seed<seed>.csv
    DIR/<experiment>.csv (+ .parquet)      all finished parts with derived columns, written by the caller

A part is written to a temporary file and renamed, so a killed run leaves whole parts only; a rerun with the
same configuration skips every part already there. A rerun with a different configuration, or a folder
written by another results format, is refused with a message instead of mixing incompatible rows.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from anchorlens.errors import InvalidConfigError

#: Bumped when the meaning or layout of saved results changes.
RESULTS_FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; results are for everyone who may read them
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_frame(frame: pd.DataFrame, path: Path) -> None:
    """Write a CSV atomically (temporary file, then rename)."""
    _atomic_write_text(path, frame.to_csv(index=False))


def part_path(out_dir: str | Path, experiment: str, task: str, seed: int) -> Path:
    """Where one (task, seed) part of an experiment lives; reading it needs no store (which writes the manifest)."""
    return Path(out_dir) / "parts" / experiment / f"{task}-seed{seed}.csv"


class ResultStore:
    """Part files of one experiment in one output folder; see the module docstring."""

    def __init__(self, out_dir: str | Path, experiment: str, config: Mapping[str, Any]):
        from anchorlens import __version__

        self.out_dir = Path(out_dir)
        self.experiment = experiment
        self.config = json.loads(json.dumps(dict(config), default=str))  # as it will read back
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise InvalidConfigError(f"output path {self.out_dir} exists and is not a folder; choose a folder")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        manifest_path = self.out_dir / MANIFEST
        manifest: dict[str, Any] = {}
        if manifest_path.exists():
            try:
                manifest = json.loads(manifest_path.read_text())
            except ValueError:
                raise InvalidConfigError(
                    f"{manifest_path} is not valid JSON; move the folder away or choose another --out"
                ) from None
            if manifest.get("results_format") != RESULTS_FORMAT_VERSION:
                raise InvalidConfigError(
                    f"{self.out_dir} holds results of format {manifest.get('results_format')!r} "
                    f"(anchorlens {manifest.get('anchorlens_version', '?')}), this is format {RESULTS_FORMAT_VERSION}; "
                    "choose another --out folder so old results are neither mixed in nor overwritten"
                )
            previous = manifest.get("experiments", {}).get(experiment)
            if previous is not None and previous != self.config:
                changed = sorted(k for k in set(previous) | set(self.config) if previous.get(k) != self.config.get(k))
                raise InvalidConfigError(
                    f"{self.out_dir} already holds {experiment} results made with other settings ({', '.join(changed)} "
                    "differ); rerun with the same settings to resume, or choose another --out folder"
                )
        manifest.setdefault("results_format", RESULTS_FORMAT_VERSION)
        manifest["anchorlens_version"] = __version__
        manifest.setdefault("experiments", {})[experiment] = self.config
        _atomic_write_text(manifest_path, json.dumps(manifest, indent=2, sort_keys=True))

    def part_path(self, task: str, seed: int) -> Path:
        return part_path(self.out_dir, self.experiment, task, seed)

    def done(self, task: str, seed: int) -> bool:
        return self.part_path(task, seed).is_file()

    def load_part(self, task: str, seed: int) -> pd.DataFrame:
        return pd.read_csv(self.part_path(task, seed))

    def write_part(self, task: str, seed: int, frame: pd.DataFrame) -> None:
        write_frame(frame, self.part_path(task, seed))

    def combined(self) -> pd.DataFrame:
        parts = sorted((self.out_dir / "parts" / self.experiment).glob("*.csv"))
        frames = [pd.read_csv(path) for path in parts]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
