"""Shared command line of the analyses scripts: which models, tasks, seeds and sizes, and where to write."""

from __future__ import annotations

import argparse
from pathlib import Path

from anchorlens.models import OFFLINE_MODELS
from anchorlens.tasks import list_tasks


def parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--models", nargs="+", default=list(OFFLINE_MODELS))
    parser.add_argument("--tasks", nargs="+", default=list_tasks()[:4])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", default="results", help="results go to OUT/<model name>/ (resumable)")
    return parser


def model_folder(out: str | Path, model: str) -> Path:
    """Where a model's results go: OUT/<last part of the model name>, also for a local folder or an org/name."""
    return Path(out) / Path(model).name
