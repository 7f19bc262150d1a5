"""Shared command line of the analyses scripts: which models and tasks, the experiment's own settings (options
generated from its config class, as `anchorlens <experiment>` does), and where to write."""

from __future__ import annotations

import argparse
from pathlib import Path

from anchorlens import paper
from anchorlens.cli import add_config_options, config_values
from anchorlens.experiments.common import ExperimentConfig
from anchorlens.models import OFFLINE_MODELS, expected_recorded_name


def parser(description: str, config_class: type[ExperimentConfig] = ExperimentConfig) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, allow_abbrev=False)
    parser.add_argument("--models", nargs="+", default=list(OFFLINE_MODELS))
    parser.add_argument("--tasks", "--task", dest="tasks", nargs="+", default=list(paper.TASKS))
    add_config_options(parser, config_class)
    parser.add_argument("--out", default="results", help="results go to OUT/<model name>/ (resumable)")
    return parser


def config_for(args: argparse.Namespace, config_class: type[ExperimentConfig], model: str) -> ExperimentConfig:
    """The experiment's config for one model from the parsed options."""
    return config_class(model=expected_recorded_name(model), **config_values(args, config_class))


def model_folder(out: str | Path, model: str) -> Path:
    """Where a model's results go: OUT/<last part of the model name>, also for a local folder or an org/name."""
    return Path(out) / Path(model).name
